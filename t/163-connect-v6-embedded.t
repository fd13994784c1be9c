#!/usr/bin/perl
# 163-connect-v6-embedded.t -- adversarial: an allowed name whose AAAA
# record hides a denied IPv4 address inside an IPv6 one, or points at an
# IPv6 range that is private by definition.
#
# bypass-classes.md #5: IPv4 rules must also match the IPv4-mapped,
# -compatible and -translated forms, NAT64 64:ff9b::/96 and 6to4
# 2002::/16 (srt's list), and local-use NAT64 64:ff9b:1::/48 (which
# cannot be decoded, so it is denied whole); #6: the metadata address and
# loopback must not be reachable behind an allowed name.  t/152 covers the
# mapped and NAT64 forms of loopback; this file covers the rest, plus the
# deprecated site-local fec0::/10 (RFC 3879: still routed inside old
# intranets) and Teredo.
#
# These addresses are not routable inside the test namespace, so "kapd
# dialled it" shows as a 502 with no denial; a correct kapd refuses the
# answer before dialling and audits a denial naming the address.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $o = $t->port('origin');
my $good = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'good',
                                     addr => '127.0.0.2');

my @bad = (
    # name                 AAAA                       what it hides
    ['translated-lo',      '::ffff:0:7f00:1',         'IPv4-translated loopback'],
    ['translated-meta',    '::ffff:0:a9fe:a9fe',      'IPv4-translated metadata'],
    ['translated-10',      '::ffff:0:a00:1',          'IPv4-translated RFC 1918'],
    ['compat-meta',        '::a9fe:a9fe',             'IPv4-compatible metadata'],
    ['nat64-meta',         '64:ff9b::a9fe:a9fe',      'NAT64 metadata'],
    ['nat64-10',           '64:ff9b::a00:1',          'NAT64 RFC 1918'],
    ['nat64local',         '64:ff9b:1::a9fe:a9fe',    'local-use NAT64'],
    ['sixtofour-lo',       '2002:7f00:1::1',          '6to4 loopback'],
    ['sixtofour-meta',     '2002:a9fe:a9fe::1',       '6to4 metadata'],
    ['sixtofour-cgnat',    '2002:6440:1::1',          '6to4 CGNAT'],
    ['teredo',             '2001:0:a9fe:a9fe::1',     'Teredo'],
    ['sitelocal',          'fec0::1',                 'site-local (deprecated)'],
    ['sitelocal2',         'feff:ffff::1',            'site-local, top of the range'],
    ['discard',            '100::1',                  'discard-only'],
    ['mcast',              'ff05::2',                 'site multicast'],
);
my %zone = ('ok.v6.example' => ['A 127.0.0.2']);
$zone{"$_->[0].v6.example"} = ["AAAA $_->[1]"] for @bad;
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => \%zone, ttl => 0);

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["*.v6.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; connect_timeout = 2; };
EOF
$t->run;
my $proxy = $t->port('proxy');

sub ask {
    my ($req) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', 0);
    my $lport = $s->sockport;
    my $resp = http_raw($s, $req, timeout => 6);
    close $s;
    my $p = http_parse($resp);
    return ($p ? $p->{status} : 'none', $lport);
}

sub denial {
    my ($lport) = @_;
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($e) = $m->($t->wait_audit($m, 3));
    return $e;
}

my ($st) = ask("CONNECT ok.v6.example:$o HTTP/1.1\r\nHost: ok.v6.example:$o\r\n\r\n");
is($st, 200, 'control: an allowed name with an allowed address');

for my $b (@bad) {
    my ($n, $addr, $what) = @$b;
    my $host = "$n.v6.example";
    for my $form ('CONNECT', 'GET') {
        my $req = $form eq 'CONNECT'
            ? "CONNECT $host:$o HTTP/1.1\r\nHost: $host:$o\r\n\r\n"
            : "GET http://$host:$o/latest/meta-data/ HTTP/1.1\r\nHost: $host:$o\r\n"
              . "Connection: close\r\n\r\n";
        my ($s2, $lport) = ask($req);
        like($s2, qr/^(403|502)$/, "$form $host ($what, $addr): refused ($s2)");
        my $e = denial($lport);
        ok($e && ($e->{reason} // '') =~ /::|\d+\.\d+/,
           "$form $host: the answer was refused before any dial, audited with the address")
            or diag($e ? "reason: $e->{reason}" : 'no denial in the audit log');
    }
}

# IP literals of the same forms: not listed, so never dialled either
for my $b (@bad) {
    my ($n, $addr, $what) = @$b;
    my ($s2, $lport) = ask("CONNECT [$addr]:$o HTTP/1.1\r\nHost: [$addr]:$o\r\n\r\n");
    like($s2, qr/^(400|403)$/, "CONNECT literal [$addr] ($what): refused ($s2)");
    ok(denial($lport), "CONNECT literal [$addr]: denial audited");
}

($st) = ask("CONNECT ok.v6.example:$o HTTP/1.1\r\nHost: ok.v6.example:$o\r\n\r\n");
is($st, 200, 'kapd still serves after everything');
$t->done_testing;
