#!/usr/bin/perl
# 012-upstream.t -- kap_upstream (core/include/kapd/kap_upstream.h) end
# to end, through the test_hooks line protocol (DIAL, IDLE-PUT,
# IDLE-TAKE): a name is resolved by kapd's resolver (FakeDNS upstream),
# every address is asked as a KAP_REQ_ADDR question before anything is
# dialled, the allowed addresses are dialled happy-eyeballs style, and an
# idle connection is asked about again when it is taken.
#
# Checked: an allowed name is dialled (the origin sees the connection);
# a name with one address in the deny set next to an allowed one is
# refused (403, that address, the reason; audited) and nothing is
# dialled; NXDOMAIN and a resolver timeout fail with 502 and 504; an
# address that refuses the connection gives way to the next one at once,
# one that does not answer after 250 ms; a client that goes away
# mid-dial cancels it (its attempt's socket is closed);
# an idle connection is taken again without a new dial, and is refused
# (closed) once a reload takes its address out of the allowlist.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Socket::INET;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_REUSEADDR inet_aton pack_sockaddr_in);
use Time::HiRes qw(time sleep);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(21);

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin',
                                       addr => '127.0.0.2');
# more origins, for the happy-eyeballs names (127.0.0.3 refuses, .4 does
# not answer; the resolver hands IPv4 addresses over first, in an order of
# its own, then IPv6 ones)
my $origin6 = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin6',
                                        addr => '127.0.0.6');
my $origin_v6 = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'v6',
                                          addr => '::1');
# 127.0.0.4:origin accepts nothing: a full backlog of one drops new SYNs,
# so a connect there neither succeeds nor fails for a while
socket(my $hang, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
setsockopt($hang, SOL_SOCKET, SO_REUSEADDR, 1);
bind($hang, pack_sockaddr_in($o, inet_aton('127.0.0.4'))) or die "bind 127.0.0.4:$o: $!";
listen($hang, 0) or die "listen: $!";
my @fill;
for (1 .. 2) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.4', PeerPort => $o,
                                  Blocking => 0);
    push @fill, $s if $s;
}
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), ttl => 0,
    zone => {
        'good.up.test'  => ['A 127.0.0.2'],
        'mixed.up.test' => ['A 127.0.0.2', 'A 127.0.0.1'],
        'fast.up.test'  => ['A 127.0.0.3', 'A 127.0.0.6'],
        'eye.up.test'   => ['A 127.0.0.4', 'AAAA ::1'],
        'hang.up.test'  => ['A 127.0.0.4'],
    });

sub conf {
    my ($allow2) = @_;
    my $a2 = $allow2 ? '"127.0.0.2:%%PORT_origin%%", ' : '';
    return <<"EOF2";
kapd: { load = ["test_hooks"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info"; };
network: { allow = ["*.up.test", $a2"127.0.0.4:%%PORT_origin%%",
                    "127.0.0.3:%%PORT_origin%%", "127.0.0.6:%%PORT_origin%%",
                    "[::1]:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "decline"; };
EOF2
}
$t->write_conf(conf(1));
$t->run;

sub cmd {
    my ($s, $line, $tmo) = @_;
    my $t0 = time;
    my $r = line_cmd($s, $line, $tmo // 10) // '';
    return wantarray ? ($r, time - $t0) : $r;
}
sub dial {
    my $s = tcp_connect($t->port('hooks')) or return ('', 0);
    my @r = cmd($s, "DIAL $_[0] $o");
    close $s;
    return @r;
}

# -- an allowed name ------------------------------------------------------------
my $c0 = $origin->connections;
my ($r) = dial('good.up.test');
is($r, 'DIALED 127.0.0.2', 'an allowed name: dialled');
ok(wait_until(sub { $origin->connections == $c0 + 1 }, 5),
   'the origin saw the connection');

# -- one address in the deny set: refused, nothing dialled -------------------------
$c0 = $origin->connections;
($r) = dial('mixed.up.test');
like($r, qr/^DIAL-DENY 403 127\.0\.0\.1 \S/,
     'a denied address next to an allowed one: 403, the address, a reason');
my @ev = $t->wait_audit(sub { grep { ($_->{kind} // '') eq 'addr'
                                     && ($_->{subject} // '') eq '127.0.0.1' } @_ }, 3);
my ($ev) = grep { ($_->{subject} // '') eq '127.0.0.1' } @ev;
ok($ev && $ev->{action} eq 'denied' && ($ev->{module} // '') eq 'test_hooks',
   'audited once by the core, as the calling module\'s question');
sleep 0.3;
is($origin->connections, $c0, 'nothing dialled, not even the allowed address');

# -- resolution failures -------------------------------------------------------------
($r) = dial('nx.up.test');
like($r, qr/^DIAL-ERROR 502 cannot resolve nx\.up\.test: NXDOMAIN/, 'NXDOMAIN: 502');
$dns->set_silent(1);
my $took;
($r, $took) = dial('silent.up.test');
like($r, qr/^DIAL-ERROR 504 cannot resolve silent\.up\.test: timeout/,
     'a resolver that does not answer: 504');
$dns->set_silent(0);

# -- happy eyeballs -----------------------------------------------------------------
# Waiting out the 250 ms delay after a refusal would make every dial take
# 250 ms or more; a busy machine can make any one dial slow, so the
# fastest of five is what is compared (a bug cannot make that one fast).
my @took;
my %got;
for (1 .. 5) {
    ($r, $took) = dial('fast.up.test');
    $got{$r}++;
    push @took, $took;
}
my ($fastest) = sort { $a <=> $b } @took;
is_deeply(\%got, { 'DIALED 127.0.0.6' => 5 }, 'a refused address gives way to the next');
ok($fastest < 0.2, sprintf('at once, not after the 250 ms delay (fastest of five %.3f s)', $fastest));
@took = ();
%got = ();
for (1 .. 3) {
    ($r, $took) = dial('eye.up.test');
    $got{$r}++;
    push @took, $took;
}
($fastest) = sort { $a <=> $b } @took;
is_deeply(\%got, { 'DIALED ::1' => 3 }, 'a first address that does not answer gives way to the next');
ok($fastest >= 0.24 && $fastest < 2, sprintf('after 250 ms (fastest of three %.3f s)', $fastest));

# -- a client gone mid-dial: cancelled ----------------------------------------------------
# kapd's connection attempts to 127.0.0.4 (where SYNs go unanswered)
sub kapd_attempts {
    my $pid = $t->pid or return -1;
    my $out = `ss -Htnp state syn-sent dst 127.0.0.4 2>/dev/null`;
    return scalar grep { /pid=$pid,/ } split /\n/, $out;
}
{
    my $s = tcp_connect($t->port('hooks'));
    print $s "DIAL hang.up.test $o\n";
    ok(wait_until(sub { kapd_attempts() == 1 }, 5),
       'a dial that hangs: one attempt in SYN-SENT');
    close $s;
    ok(wait_until(sub { kapd_attempts() == 0 }, 5),
       'the client gone: the dial is cancelled, its socket closed');
}
$c0 = $origin->connections;
my ($r2) = dial('good.up.test');
is($r2, 'DIALED 127.0.0.2', 'and kapd goes on dialling');
wait_until(sub { $origin->connections == $c0 + 1 }, 5);

# -- idle connections ----------------------------------------------------------------
{
    my $s = tcp_connect($t->port('hooks'));
    $c0 = $origin->connections;
    is(cmd($s, "DIAL good.up.test $o"), 'DIALED 127.0.0.2', 'dialled ...');
    wait_until(sub { $origin->connections == $c0 + 1 }, 5);
    is(cmd($s, 'IDLE-PUT 30'), 'PUT', '... and kept idle');
    close $s;
    $c0 = $origin->connections;
    $s = tcp_connect($t->port('hooks'));
    is(cmd($s, "IDLE-TAKE good.up.test $o"), 'TOOK 127.0.0.2',
       'taken again for the same host and port');
    is(cmd($s, 'IDLE-PUT 30'), 'PUT', 'and kept again');
    close $s;
    is($origin->connections, $c0, 'without a new connection to the origin');

    $t->write_conf(conf(0));
    like($t->reload // '', qr/reloaded/, 'reload: 127.0.0.2 no longer allowed');
    $s = tcp_connect($t->port('hooks'));
    is(cmd($s, "IDLE-TAKE good.up.test $o"), 'NONE',
       'the idle connection is refused now (its address is asked again)');
    close $s;
}

close $_ for @fill;
$t->done_testing;
