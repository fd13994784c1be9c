#!/usr/bin/perl
# 155-proxy-abuse.t -- adversarial: resource abuse against http_connect.
#
# Slowloris (many connections dribbling a header byte at a time) while a
# normal client is served promptly and the slow ones are cut at
# header_timeout; idle connections cut at idle_timeout; oversized request
# line (414), header section (431), too many fields; per-client and global
# connection limits; a huge body announced to a denied host is not read;
# a client that does not read a large response does not make kapd buffer
# it.  kapd must be alive and serving afterwards, with no [alert]/[crit]
# (checked by the harness).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin',
                                       addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.example' => ['A 127.0.0.2'],
    'denied.example'  => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: {
    listen = ["127.0.0.1:%%PORT_proxy%%"];
    max_header_size = "4k";
    header_timeout = 3;
    idle_timeout = 4;
    max_per_client = 40;
    max_connections = 60;
};
EOF
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";

# a connection to the proxy from another loopback source address
sub connect_from {
    my ($src) = @_;
    return IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $proxy,
        LocalHost => $src, Proto => 'tcp', Timeout => kapd_tmo(5));
}

# get_ok(name, held => [sockets]): a request is served; with held, it is
# served while every one of those connections is still open at kapd (none
# cut or answered yet): kapd serves others while they hang, rather than
# after it has dealt with them.  No wall-clock bound: the held
# connections' own timeouts are the clock.
sub get_ok {
    my ($name, %o) = @_;
    my $t0 = time;
    my $r = http_parse(http_raw($o{from} ? connect_from($o{from}) : $proxy,
        "GET http://$A/ok HTTP/1.1\r\nHost: $A\r\nConnection: close\r\n\r\n"));
    my $dt = time - $t0;
    is($r && $r->{status}, 200, sprintf("$name: served (%.3fs)", $dt));
    return unless $o{held};
    my @cut = IO::Select->new(@{$o{held}})->can_read(0);
    is(scalar @cut, 0, sprintf("$name: while the %d held connections are still open",
                               scalar @{$o{held}}));
}

# once held connections are closed, a request is served again (polled)
sub served_again {
    my ($name) = @_;
    ok(wait_until(sub {
        my $x = http_parse(http_raw($proxy, "GET http://$A/again HTTP/1.1\r\nHost: $A\r\n"
                                     . "Connection: close\r\n\r\n", timeout => 2));
        $x && $x->{status} == 200;
    }, kapd_tmo(5)), "$name: served again once the connections are closed");
}

# connections kapd still holds on its proxy port (established, or closed
# by the client but not yet by kapd)
sub kapd_clients {
    my $out = `ss -Htn state established state close-wait sport = :$proxy 2>/dev/null`;
    return scalar grep { /\S/ } split /\n/, $out;
}

sub closed_within {
    my ($s, $tmo) = @_;
    return wait_until(sub {
        return 0 unless IO::Select->new($s)->can_read(0.05);
        my $n = sysread($s, my $buf, 4096);
        return !$n;     # EOF or error
    }, $tmo);
}

sub kapd_rss_kb {
    open my $fh, '<', "/proc/" . $t->pid . "/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

get_ok('control');

# -- slowloris ------------------------------------------------------------------------------
{
    my $head = "GET http://$A/slow HTTP/1.1\r\nHost: $A\r\nX-Pad: "
               . ('p' x 200) . "\r\n\r\n";
    my @slow = grep { defined } map { tcp_connect($proxy) } 1 .. 30;
    is(scalar @slow, 30, 'slowloris: 30 connections open');
    my %open = map { $_ => $_ } @slow;
    my $t0 = time;
    my $i = 0;
    my $served_during = 0;
    my $checked = 0;
    # one byte per connection every ~0.3 s for up to 8 s; a normal client
    # is served in the middle
    while (%open && time - $t0 < kapd_tmo(8)) {
        for my $k (keys %open) {
            my $s = $open{$k};
            my $ok = $i < length($head) ? syswrite($s, substr($head, $i, 1)) : 1;
            delete $open{$k} unless $ok;
        }
        $i++;
        if (!$checked && time - $t0 > 1) {
            $checked = 1;
            get_ok('normal client during slowloris', held => [values %open]);
        }
        # reap the ones kapd closed
        for my $s (IO::Select->new(values %open)->can_read(0.3)) {
            my $n = sysread($s, my $buf, 4096);
            delete $open{$s} if !$n || $buf =~ /^HTTP\/1\.1 4\d\d/;
        }
    }
    my $dt = time - $t0;
    is(scalar keys %open, 0, sprintf('slowloris: every slow connection cut (%.1fs)', $dt));
    ok($dt < kapd_tmo(6), 'slowloris: cut near header_timeout (3 s), not later');
    is(scalar(grep { ($_->{target} // '') =~ /slow/ } @{$origin->requests}), 0,
       'slowloris: no slow request was forwarded');
    close $_ for @slow;
}

# -- idle connection, never a byte ----------------------------------------------------------
{
    my $s = tcp_connect($proxy);
    my $t0 = time;
    ok(closed_within($s, kapd_tmo(8)), 'silent connection closed');
    ok(time - $t0 < kapd_tmo(6), sprintf('silent connection closed near idle_timeout (%.1fs)', time - $t0));
}

# -- oversized heads -------------------------------------------------------------------------
my @refused_ports;   # client ports of refusals that must be audited
sub status_of {
    my ($req) = @_;
    my $s = tcp_connect($proxy) or return 'noconnect';
    push @refused_ports, $s->sockport;
    my $p = http_parse(http_raw($s, $req, timeout => 5));
    return $p ? $p->{status} : 'none';
}
is(status_of("GET http://$A/" . ('a' x 8000) . " HTTP/1.1\r\nHost: $A\r\n\r\n"), 414,
   'request line over max_header_size: 414');
is(status_of("GET http://$A/" . ('a' x 200000) . " HTTP/1.1\r\nHost: $A\r\n\r\n"), 414,
   'request line of 200 kB: 414');
is(status_of("GET http://$A/ HTTP/1.1\r\nHost: $A\r\nX-Big: " . ('b' x 8000) . "\r\n\r\n"), 431,
   'one header field over the limit: 431');
is(status_of("GET http://$A/ HTTP/1.1\r\nHost: $A\r\n"
             . join('', map { "X-$_: " . ('v' x 60) . "\r\n" } 1 .. 200) . "\r\n"), 431,
   'header section over the limit: 431');
is(status_of("GET http://$A/ HTTP/1.1\r\nHost: $A\r\n"
             . join('', map { "X$_:1\r\n" } 1 .. 600) . "\r\n"), 431,
   'too many (small) header fields: 431');
is(status_of("GET http://$A/ HTTP/1.1\r\nHost: $A\r\n"
             . join('', map { "X: " . ('c' x 1000) . "\r\n" } 1 .. 2000)), 431,
   'endless header section (2 MB, never ends): 431');
like(status_of(('x' x 100000)), qr/^(414|400)$/, '100 kB without a space or newline: 414 or 400');

# -- per-client and global limits ---------------------------------------------------------------
# (a refusal above lingers until kapd reads the client's close, which can
# come after the accepts below in the same loop turn: one round trip first)
get_ok('a request before the limits');
{
    my @held = grep { defined } map { tcp_connect($proxy) } 1 .. 40;
    is(scalar @held, 40, 'per-client: 40 connections held');
    # another client address is not affected by the per-client limit (and
    # this round trip lets kapd accept the held ones first)
    get_ok('another client address while one is at its limit', from => '127.0.0.3',
           held => \@held);
    my $s = tcp_connect($proxy);
    push @refused_ports, $s->sockport if $s;
    my $r = $s ? http_raw($s, "GET http://$A/over HTTP/1.1\r\nHost: $A\r\n"
                          . "Connection: close\r\n\r\n", timeout => 5) : '';
    my $p = http_parse($r);
    ok(!$p || $p->{status} =~ /^(429|503)$/,
       'per-client: the 41st connection is refused (' . ($p ? $p->{status} : 'closed') . ')');
    is(scalar(grep { ($_->{target} // '') eq '/over' } @{$origin->requests}), 0,
       'per-client: the request over the limit was not forwarded');
    close $_ for @held;
    served_again('per-client');
}
{
    # global limit: 25 + 25 from two addresses, one request from a third
    # one is served; then 10 more held (60 in all) and a fourth is refused
    my @held = grep { defined } (map({ tcp_connect($proxy) } 1 .. 25),
                                 map({ connect_from('127.0.0.3') } 1 .. 25));
    get_ok('global: below the limit from a third address', from => '127.0.0.4',
           held => \@held);
    push @held, grep { defined } map { connect_from('127.0.0.4') } 1 .. 10;
    is(scalar @held, 60, 'global: 60 connections held');
    my $s = connect_from('127.0.0.5');
    my $r = $s ? http_raw($s, "GET http://$A/global HTTP/1.1\r\nHost: $A\r\n"
                          . "Connection: close\r\n\r\n", timeout => 5) : '';
    my $p = http_parse($r);
    ok(!$p || $p->{status} =~ /^(429|503)$/,
       'global: a connection over max_connections is refused ('
       . ($p ? $p->{status} : 'closed') . ')');
    close $_ for @held;
    # (kapd sees the 60 closes a moment later: the next block needs a slot)
    served_again('global');
}

# -- a huge body announced to a denied host is not read ---------------------------------------------
{
    my $s = tcp_connect($proxy);
    syswrite($s, "POST http://denied.example:$o/up HTTP/1.1\r\nHost: denied.example:$o\r\n"
                 . "Content-Length: 1073741824\r\n\r\n" . ('z' x 65536));
    my $t0 = time;
    my $r = '';
    my $closed = wait_until(sub {
        return 0 unless IO::Select->new($s)->can_read(0.05);
        my $n = sysread($s, my $buf, 65536);
        $r .= $buf if $n;
        return !$n;
    }, kapd_tmo(5));
    like($r, qr{^HTTP/1\.1 403}, 'huge body to a denied host: 403');
    ok($closed && time - $t0 < kapd_tmo(3), 'huge body to a denied host: closed at once');
}

# -- a client that does not read a large response ----------------------------------------------------
{
    # the blocks above closed their connections; kapd reads those closes
    # in its own time, and this block needs a slot under max_connections
    ok(wait_until(sub { kapd_clients() == 0 }, kapd_tmo(10)),
       sprintf('kapd closed the connections of the blocks above (%d left)', kapd_clients()));
    my $rss0 = kapd_rss_kb();
    my $s = tcp_connect($proxy);
    syswrite($s, "GET http://$A/bytes/67108864 HTTP/1.1\r\nHost: $A\r\nConnection: close\r\n\r\n");
    # give the origin time to push (we read nothing); poll kapd's memory
    my $max = $rss0;
    my $t0 = time;
    while (time - $t0 < kapd_tmo(3)) {
        my $r = kapd_rss_kb();
        $max = $r if $r > $max;
        sleep(0.1);
    }
    ok($rss0 > 0 && $max - $rss0 < 16384,
       sprintf('unread 64 MB response: kapd RSS grew by %d kB (< 16 MB)', $max - $rss0));
    my $head = '';
    wait_until(sub {
        IO::Select->new($s)->can_read(0.1) or return 0;
        sysread($s, $head, 64, length $head);
        return length($head) >= 12;
    }, kapd_tmo(3));
    like($head, qr{^HTTP/1\.1 200}, 'unread 64 MB response: the transfer was live');
    close $s;
}

# -- every refusal above is in the audit log with a reason ---------------------------
{
    my @a = $t->audit;
    my @missing = grep { my $lp = $_;
        !grep { ($_->{client} // '') =~ /:\Q$lp\E\]?$/
                && ($_->{action} // '') eq 'denied'
                && length($_->{reason} // '') } @a } @refused_ports;
    is(scalar @missing, 0, 'oversize and over-limit refusals audited with a reason')
        or diag(scalar(@missing) . ' of ' . scalar(@refused_ports) . ' not audited');
}

get_ok('kapd alive and serving after everything');
ok($t->is_running, 'kapd is still running');

$t->done_testing;
