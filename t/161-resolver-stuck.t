#!/usr/bin/perl
# 161-resolver-stuck.t -- adversarial: starving the shared resolver.
#
# The agent fires many CONNECTs (and DNS queries) for names whose upstream
# never answers.  Every one must get a bounded answer (502/504 for
# CONNECT, SERVFAIL for DNS, within the resolver timeout), never a 200,
# and meanwhile names already in the resolver's cache are still served at
# once, over the proxy and over DNS.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Select;
use IO::Socket::INET;
use Net::DNS;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), ttl => 300, zone => {
    'allowed.example' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF2');
kapd: { load = ["http_connect", "dns"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%",
                    "*.slow.example:%%PORT_origin%%", "*.slow.example"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF2
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";

# get_ok(name, stuck => [sockets]): served; with stuck, served while
# none of those CONNECTs has been answered yet (they wait for the
# resolver's 2 s timeout): kapd does not queue a cached name behind them.
sub get_ok {
    my ($name, %o) = @_;
    my $t0 = time;
    my $p = http_parse(http_raw($proxy, "GET http://$A/x HTTP/1.1\r\nHost: $A\r\n"
                                . "Connection: close\r\n\r\n", timeout => 5));
    my $dt = time - $t0;
    is($p && $p->{status}, 200, sprintf("$name: served (%.3fs)", $dt));
    return unless $o{stuck};
    my @answered = IO::Select->new(@{$o{stuck}})->can_read(0);
    is(scalar @answered, 0, "$name: while the stuck CONNECTs still wait");
}

get_ok('warm the resolver cache');
my $p = dns_query('allowed.example', 'A', port => $t->port('dns'));
is($p ? $p->header->rcode : 'TIMEOUT', 'NOERROR', 'warm the DNS answer');

$dns->set_silent(1);
my @stuck = grep { defined } map { tcp_connect($proxy) } 1 .. 200;
is(scalar @stuck, 200, '200 CONNECTs for names the upstream never answers');
syswrite($stuck[$_], "CONNECT s$_.slow.example:$o HTTP/1.1\r\nHost: s$_.slow.example:$o\r\n\r\n")
    for 0 .. $#stuck;
# and 150 DNS queries for such names (more would overflow our own UDP
# receive buffer with the answers)
my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('dns'), Proto => 'udp');
for my $i (1 .. 150) {
    my $q = Net::DNS::Packet->new("d$i.slow.example", 'A');
    $q->header->id($i);
    $u->send($q->data);
}

get_ok('meanwhile a cached name is served over the proxy', stuck => \@stuck);
{
    my $p2 = dns_query('allowed.example', 'A', port => $t->port('dns'));
    is($p2 ? $p2->header->rcode : 'TIMEOUT', 'NOERROR', 'meanwhile a cached name is answered over DNS');
    my @answered = IO::Select->new(@stuck)->can_read(0);
    is(scalar @answered, 0, '... while the stuck CONNECTs still wait');
}

my %left = map { $_ => $_ } @stuck;
my (%st, %drc);
my $t0 = time;
while ((%left || keys(%drc) < 150) && time - $t0 < kapd_tmo(12)) {
    for my $s (IO::Select->new(values(%left), $u)->can_read(0.2)) {
        if ($s == $u) {
            $u->recv(my $r, 65535);
            my $pk = Net::DNS::Packet->new(\$r) or next;
            $drc{$pk->header->id} = $pk->header->rcode;
            next;
        }
        my $n = sysread($s, my $buf, 4096);
        $st{$buf =~ m{^HTTP/1\.1 (\d{3})} ? $1 : 'closed'}++;
        delete $left{$s};
    }
}
my $dt = time - $t0;
is(scalar keys %left, 0, sprintf('every stuck CONNECT answered (%.1fs): %s', $dt,
   join(' ', map { "$_ x$st{$_}" } sort keys %st)));
ok(!grep({ !/^50[24]$/ } keys %st), 'stuck CONNECTs: 502 or 504, never 200');
is(scalar keys %drc, 150, 'every stuck DNS query answered');
ok(!grep({ $_ ne 'SERVFAIL' } values %drc), 'stuck DNS queries: SERVFAIL');
ok($dt < kapd_tmo(8), 'all within a few resolver timeouts');
close $_ for @stuck;
$dns->set_silent(0);

get_ok('after the storm');
$t->done_testing;
