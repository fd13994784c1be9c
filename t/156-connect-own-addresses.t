#!/usr/bin/perl
# 156-connect-own-addresses.t -- adversarial: reaching the sidecar itself
# or the host through the default gateway (the Docker bridge gateway).
#
# bypass-classes.md #6 (host.docker.internal, bridge IP reaching the
# host's sshd), DESIGN §6 (the sidecar's own and the Docker gateway's
# addresses are in the deny set), kapd_network.c: own interface addresses
# and default gateways are refused unless allow lists that single
# address -- a wider CIDR that merely covers them is not enough.
#
# The test namespace gets a veth pair gw0/gw1 (gw0 10.9.0.2/24, nobody
# answers behind it) with a
# default route via 10.9.0.1, and 10.0.0.1/32 and 10.0.0.2/32 on lo; the
# allowlist has the CIDR 10.0.0.0/8 plus a single-address rule for
# 10.0.0.2.  Must be set up before kapd starts (it reads addresses and
# routes when it builds a configuration).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

for my $cmd (['ip', 'link', 'add', 'gw0', 'type', 'veth', 'peer', 'name', 'gw1'],
             ['ip', 'addr', 'add', '10.9.0.2/24', 'dev', 'gw0'],
             ['ip', 'link', 'set', 'gw0', 'up'],
             ['ip', 'link', 'set', 'gw1', 'up'],
             ['ip', 'route', 'add', 'default', 'via', '10.9.0.1'],
             ['ip', 'addr', 'add', '10.0.0.1/32', 'dev', 'lo'],
             ['ip', 'addr', 'add', '10.0.0.2/32', 'dev', 'lo']) {
    system(@$cmd) == 0 or plan(skip_all => "cannot run '@$cmd' in the test namespace");
}

my $o = $t->port('origin');
my $own1 = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'own1', addr => '10.0.0.1');
my $own2 = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'own2', addr => '10.0.0.2');
my $gwh  = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'gwhost', addr => '10.9.0.2');
my $ctl  = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'ctl', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'ok.own.example'    => ['A 127.0.0.2'],
    'self.own.example'  => ['A 10.0.0.1'],
    'self2.own.example' => ['A 10.0.0.2'],
    'gw.own.example'    => ['A 10.9.0.1'],
    'host.own.example'  => ['A 10.9.0.2'],
    'host.docker.internal' => ['A 10.9.0.1'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["*.own.example:%%PORT_origin%%", "host.docker.internal:%%PORT_origin%%",
             "10.0.0.0/8:%%PORT_origin%%", "10.0.0.2:%%PORT_origin%%",
             "127.0.0.2:%%PORT_origin%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; connect_timeout = 3; };
EOF
$t->run;
my $proxy = $t->port('proxy');

sub ask {
    my ($target) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', 0);
    my $lport = $s->sockport;
    my $t0 = time;
    my $resp = http_raw($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n",
                        timeout => 6, one => 1, method => 'CONNECT');
    my $dt = time - $t0;
    close $s;
    my $p = http_parse($resp);
    return ($p ? $p->{status} : 'none', $lport, $dt);
}

sub audited {
    my ($lport) = @_;
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($e) = $m->($t->wait_audit($m, 3));
    return $e;
}

sub conns { $own1->connections + $gwh->connections }

my ($st) = ask("ok.own.example:$o");
is($st, 200, 'control: a name with a listed address');
($st) = ask("self2.own.example:$o");
is($st, 200, 'an own address listed as a single address is allowed on purpose');
($st) = ask("10.0.0.2:$o");
is($st, 200, '... and as a literal');

for my $c (["self.own.example:$o", 'name -> own address covered only by a CIDR', qr/own|this host/i],
           ["10.0.0.1:$o",         'literal own address covered only by a CIDR', qr/own|this host/i],
           ["host.own.example:$o", 'name -> own address on another interface', qr/own|this host/i],
           ["gw.own.example:$o",   'name -> the default gateway (the host)', qr/gateway|host/i],
           ["host.docker.internal:$o", 'host.docker.internal -> the gateway', qr/gateway|host/i],
           ["10.9.0.1:$o",         'literal default gateway', qr/gateway|host/i]) {
    my ($target, $name, $why) = @$c;
    my $before = conns();
    my ($s2, $lport, $dt) = ask($target);
    like($s2, qr/^(403|502)$/, "$name: refused ($s2)");
    ok($dt < kapd_tmo(2), sprintf("$name: answered before any connect timeout (%.2fs)", $dt));
    # an origin logs its connections asynchronously: give a dial a moment
    my $dialled = wait_until(sub { conns() > $before }, $s2 eq '200' ? 2 : 0.3);
    ok(!$dialled, "$name: not dialled");
    my $e = audited($lport);
    like($e ? $e->{reason} // '' : '', $why, "$name: audited, reason says why");
}
($st) = ask("ok.own.example:$o");
is($st, 200, 'kapd still serves');

$t->done_testing;
