#!/usr/bin/perl
# 165-abandon-reload.t -- adversarial: the agent walks away from requests
# at every stage while the configuration is reloaded under them.
#
# The lifetime bugs a proxy has (a callback for a connection that is gone,
# a generation freed while a resolution or a dial still points at it, a
# descriptor never closed) show only when a client gives up half-way.
# Here clients close (or reset) their connection while kapd is waiting
# for the resolver (plain HTTP, CONNECT, DNS over UDP and TCP), while a
# dial is still in progress (an allowed address nobody answers), during
# the first-bytes check, mid-tunnel and mid-response; and kapd is reloaded
# with a changed configuration while all of that is in flight.  kapd must
# stay up, clean under ASan (the harness checks), answer normally
# afterwards, and hold no more descriptors than before once the dust has
# settled.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::RawDNS;
use Test::Kapd::FakeHTTP;
use Test::Kapd::Hello qw(hello);
use IO::Socket::INET;
use Net::DNS;
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);

# a neighbour nobody answers: a connect to 10.9.0.5 stays in progress
for my $cmd (['ip', 'link', 'add', 'gw0', 'type', 'veth', 'peer', 'name', 'gw1'],
             ['ip', 'addr', 'add', '10.9.0.2/24', 'dev', 'gw0'],
             ['ip', 'link', 'set', 'gw0', 'up'],
             ['ip', 'link', 'set', 'gw1', 'up']) {
    system(@$cmd) == 0 or plan(skip_all => "cannot run '@$cmd' in the test namespace");
}

my $o = $t->port('origin');
my $e = $t->port('echo');
Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
my $echo = Test::Kapd::Hello->echo($t, '127.0.0.2', $e);
# A for fast.example and *.slow.example (127.0.0.2) and hole.example
# (10.9.0.5), no AAAA; slow names are answered 0.8 s late: requests wait
# for the resolver long enough to be abandoned there
my %addr = ('fast.example' => '127.0.0.2', 'hole.example' => '10.9.0.5');
sub answer {
    my ($m) = @_;
    my ($qend, $name) = Test::Kapd::RawDNS::question_end($m) or return undef;
    my $qtype = unpack('n', substr($m, $qend - 4, 2));
    my $ip = $addr{$name} // ($name =~ /\.slow\.example$/ ? '127.0.0.2' : undef);
    my $an = $ip && $qtype == 1
        ? "\xc0\x0c" . pack('nnNn', 1, 1, 60, 4) . pack('C4', split /\./, $ip) : '';
    return pack('n6', unpack('n', $m), 0x8180 | ($ip ? 0 : 3), 1, $an ? 1 : 0, 0, 0)
           . substr($m, 12, $qend - 12) . $an;
}
my $dns = Test::Kapd::RawDNS->new($t, port => $t->port('up'), reply => \&answer,
    delay => sub { (Test::Kapd::RawDNS::question_end($_[0]))[1] =~ /slow/ ? 0.8 : 0 });

sub conf {
    my ($extra) = @_;
    return <<"EOF";
kapd: { load = ["http_connect", "dns"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; reload_check = 0; };
network: {
    allow = ["*.slow.example:%%PORT_origin%%", "*.slow.example", "fast.example:%%PORT_origin%%",
             "fast.example:%%PORT_echo%%", "hole.example:%%PORT_origin%%",
             "127.0.0.2:%%PORT_origin%%", "127.0.0.2:%%PORT_echo%%", "10.9.0.5:%%PORT_origin%%" $extra];
};
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 3; };
audit_log: { path = "audit.jsonl"; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; connect_timeout = 4; handshake_timeout = 2; };
EOF
}
$t->write_conf(conf(''));
$t->run;
my $proxy = $t->port('proxy');
my $dport = $t->port('dns');

sub nfds { opendir(my $d, '/proc/' . $t->pid . '/fd') or return -1;
           scalar grep { /^\d+$/ } readdir $d }
sub rst { my ($s) = @_; setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)); close $s }
sub send_all { my ($s, $d) = @_;
               while (length $d) { my $n = syswrite($s, $d) or last; substr($d, 0, $n) = '' } }
sub get_ok {
    my ($host, $port) = @_;
    my $p = http_parse(http_raw($proxy, "GET http://$host:$port/ok HTTP/1.1\r\nHost: $host:$port\r\n"
                                . "Connection: close\r\n\r\n", timeout => 6));
    diag('GET http://' . "$host:$port/ok: " . ($p ? "status $p->{status}" : 'no answer'))
        unless $p && $p->{status} == 200;
    return $p && $p->{status} == 200;
}

# warm up, then count descriptors
ok(get_ok('fast.example', $o), 'control: plain HTTP');
my ($ts, $tr) = connect_tunnel($proxy, "fast.example:$e");
is($tr && $tr->{status}, 200, 'control: CONNECT');
close $ts if $ts;
my $cp = dns_query('fast.example', 'A', port => $dport);
is($cp ? $cp->header->rcode : 'TIMEOUT', 'NOERROR', 'control: DNS');
sleep(0.5);
my $fds0 = nfds();
ok($fds0 > 0, "kapd holds $fds0 descriptors at rest");

my $n = 0;
my $gen = 0;
sub reload_changed {
    $gen++;
    $t->write_conf(conf(", \"gen$gen.example\""));
    return $t->reload // '';
}

# -- abandoned while the resolver works, reloads in between -----------------------------------
for my $round (1 .. 3) {
    my @c;
    for (1 .. 25) {
        $n++;
        my $s = tcp_connect($proxy) or next;
        send_all($s, "CONNECT s$n.slow.example:$e HTTP/1.1\r\nHost: s$n.slow.example:$e\r\n\r\n");
        push @c, $s;
        $n++;
        $s = tcp_connect($proxy) or next;
        send_all($s, "GET http://s$n.slow.example:$o/x HTTP/1.1\r\nHost: s$n.slow.example:$o\r\n\r\n");
        push @c, $s;
    }
    for (1 .. 10) {
        # DNS over TCP: five pipelined queries, then gone
        my $s = tcp_connect($dport) or next;
        for (1 .. 5) {
            $n++;
            my $q = Net::DNS::Packet->new("s$n.slow.example", 'A')->data;
            send_all($s, pack('n', length $q) . $q);
        }
        push @c, $s;
        # DNS over UDP from a socket that is closed before the answer
        $n++;
        my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $dport, Proto => 'udp');
        $u->send(Net::DNS::Packet->new("s$n.slow.example", 'A')->data) if $u;
        push @c, $u if $u;
    }
    sleep(0.2);
    # half closed at once, half reset
    my $i = 0;
    $i++ % 2 ? rst($_) : close($_) for @c;
    like(reload_changed(), qr/reloaded/, "round $round: reloaded with requests in flight");
}
ok(wait_until(sub { $dns->count >= 0.5 * $n }, kapd_tmo(8)),
   'the abandoned questions reached the resolver (' . $dns->count . ' queries)');

# -- abandoned while a dial is in progress -------------------------------------------------------
{
    my @c;
    for (1 .. 20) {
        my $s = tcp_connect($proxy) or next;
        send_all($s, $_ % 2 ? "CONNECT hole.example:$o HTTP/1.1\r\nHost: hole.example:$o\r\n\r\n"
                            : "GET http://10.9.0.5:$o/x HTTP/1.1\r\nHost: 10.9.0.5:$o\r\n\r\n");
        push @c, $s;
    }
    sleep(0.5);
    like(reload_changed(), qr/reloaded/, 'reloaded with dials in progress');
    rst($_) for @c;
}

# -- abandoned during the first-bytes check and mid-tunnel -------------------------------------------
{
    my @c;
    for my $k (1 .. 20) {
        my ($s, $r) = connect_tunnel($proxy, "fast.example:$e");
        next unless $s && $r && $r->{status} == 200;
        my $h = hello(sni => 'fast.example');
        send_all($s, $k % 2 ? substr($h, 0, 30) : $h . ('z' x 100000));
        push @c, $s;
    }
    is(scalar @c, 20, '20 tunnels opened');
    like(reload_changed(), qr/reloaded/, 'reloaded with tunnels open');
    rst($_) for @c;
}

# -- abandoned mid-response ----------------------------------------------------------------------
{
    my @c;
    for (1 .. 10) {
        my $s = tcp_connect($proxy) or next;
        send_all($s, "GET http://fast.example:$o/bytes/8388608 HTTP/1.1\r\nHost: fast.example:$o\r\n\r\n");
        push @c, $s;
    }
    sleep(0.3);
    rst($_) for @c;
}

# -- afterwards ---------------------------------------------------------------------------------------
ok($t->is_running, 'kapd survived');
ok(get_ok('fast.example', $o), 'plain HTTP served afterwards');
($ts, $tr) = connect_tunnel($proxy, "fast.example:$e");
is($tr && $tr->{status}, 200, 'CONNECT served afterwards');
close $ts if $ts;
$cp = dns_query('fast.example', 'A', port => $dport);
is($cp ? $cp->header->rcode : 'TIMEOUT', 'NOERROR', 'DNS served afterwards');
# every abandoned request ends within the resolver and connect timeouts
my $fds;
ok(wait_until(sub { $fds = nfds(); $fds <= $fds0 + 4 }, kapd_tmo(12)),
   "descriptors back to the resting level ($fds0 before, $fds after)");
$t->done_testing;
