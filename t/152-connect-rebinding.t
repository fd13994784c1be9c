#!/usr/bin/perl
# 152-connect-rebinding.t -- adversarial: DNS rebinding through the proxy.
#
# bypass-classes.md #6: an allowlisted name that resolves to loopback, the
# metadata service, RFC 1918, the unspecified address, IPv6 loopback or an
# IPv4-mapped loopback must not be dialled (DESIGN §6: every resolved
# address is checked against the deny set and kapd dials exactly the
# address it checked).  Fake origins listen on every one of those
# addresses inside the test namespace and count connections; each must
# stay at zero.  Also: mixed answers (an allowed address next to a denied
# one), network.deny_addresses beating an address allow rule (the Docker
# gateway case), and nip.io-style names.  Every refusal is audited with
# a reason that names the address.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

for my $a ('169.254.169.254/32', '10.0.0.1/32', '100.64.0.1/32',
           '192.168.1.1/32', '172.16.0.1/32', 'fd00::1/128', 'fe80::1/128') {
    system('ip', 'addr', 'add', $a, 'dev', 'lo', ($a =~ /:/ ? 'nodad' : ()))
        == 0 or plan(skip_all => "cannot add $a to lo in the test namespace");
}

my $o = $t->port('origin');
my %bad;   # origins that must never see a connection
for my $a ('127.0.0.1', '169.254.169.254', '10.0.0.1', '100.64.0.1',
           '192.168.1.1', '172.16.0.1', '::1', 'fd00::1', '127.0.0.6') {
    (my $n = "bad-$a") =~ s/[^\w-]/_/g;
    $bad{$a} = Test::Kapd::FakeHTTP->new($t, port => $o, name => $n, addr => $a);
}
my $good = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'good',
                                     addr => '127.0.0.2');

my %zone = (
    'ok.rebind.example'       => ['A 127.0.0.2'],
    'lo.rebind.example'       => ['A 127.0.0.1'],
    'lo2.rebind.example'      => ['A 127.1.2.3'],
    'meta.rebind.example'     => ['A 169.254.169.254'],
    'rfc1918.rebind.example'  => ['A 10.0.0.1'],
    'rfc1918b.rebind.example' => ['A 192.168.1.1'],
    'rfc1918c.rebind.example' => ['A 172.16.0.1'],
    'cgnat.rebind.example'    => ['A 100.64.0.1'],
    'zero.rebind.example'     => ['A 0.0.0.0'],
    'bcast.rebind.example'    => ['A 255.255.255.255'],
    'mcast.rebind.example'    => ['A 224.0.0.1'],
    'v6lo.rebind.example'     => ['AAAA ::1'],
    'v6mapped.rebind.example' => ['AAAA ::ffff:127.0.0.1'],
    'v6mapmeta.rebind.example'=> ['AAAA ::ffff:169.254.169.254'],
    'v6ula.rebind.example'    => ['AAAA fd00::1'],
    'v6ll.rebind.example'     => ['AAAA fe80::1'],
    'v6zero.rebind.example'   => ['AAAA ::'],
    'nat64.rebind.example'    => ['AAAA 64:ff9b::7f00:1'],
    '7f000001.rebind.example' => ['A 127.0.0.1'],
    'dual.rebind.example'     => ['A 127.0.0.2', 'AAAA ::1'],
    'mixed.rebind.example'    => ['A 127.0.0.2', 'A 127.0.0.1', 'A 10.0.0.1'],
    'mixed2.rebind.example'   => ['A 10.0.0.1', 'A 127.0.0.4'],
    'gw.rebind.example'       => ['A 127.0.0.6'],
    'cname.rebind.example'    => ['CNAME meta.rebind.example'],
    'many.rebind.example'     => ['A 127.0.0.2',
                                  (map { "A 127.0.9.$_" } 1 .. 28), 'A 10.0.0.1',
                                  (map { "A 127.0.8.$_" } 1 .. 20)],
);
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => \%zone,
                                   ttl => 0);

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["*.rebind.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%",
             "127.0.0.4:%%PORT_origin%%", "127.0.0.6:%%PORT_origin%%"];
    deny_addresses = ["127.0.0.6"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; connect_timeout = 3; };
EOF
$t->run;
my $proxy = $t->port('proxy');

sub bad_conns { my $n = 0; $n += $_->connections for values %bad; $n }

sub ask {
    my ($req) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', 0);
    my $lport = $s->sockport;
    my $resp = http_raw($s, $req, timeout => 8);
    close $s;
    my $p = http_parse($resp);
    return ($p ? $p->{status} : 'none', $lport);
}

sub audited {
    my ($lport) = @_;
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($e) = $m->($t->wait_audit($m, 3));
    return $e;
}

# -- control ------------------------------------------------------------------------
my ($st) = ask("CONNECT ok.rebind.example:$o HTTP/1.1\r\nHost: ok.rebind.example:$o\r\n\r\n");
is($st, 200, 'control: allowed name with an allowed address');

# -- every private answer refused before any connect ------------------------------
for my $n (qw(lo lo2 meta rfc1918 rfc1918b rfc1918c cgnat zero bcast mcast
              v6lo v6mapped v6mapmeta v6ula v6ll v6zero nat64 7f000001
              gw cname)) {
    my $host = "$n.rebind.example";
    for my $form ('CONNECT', 'GET') {
        my $req = $form eq 'CONNECT'
            ? "CONNECT $host:$o HTTP/1.1\r\nHost: $host:$o\r\n\r\n"
            : "GET http://$host:$o/latest/meta-data/ HTTP/1.1\r\nHost: $host:$o\r\n"
              . "Connection: close\r\n\r\n";
        my $before = bad_conns();
        my ($s2, $lport) = ask($req);
        like($s2, qr/^(502|403)$/, "$form $host: refused ($s2)");
        my $seen = wait_until(sub { bad_conns() > $before }, $s2 =~ /^2/ ? 2 : 0.2);
        ok(!$seen, "$form $host: no private origin dialled");
        my $e = audited($lport);
        ok($e && ($e->{reason} // '') =~ /\d|::/,
           "$form $host: audited with a reason naming the address")
            or diag(explain $e);
    }
}

# -- mixed answers: only checked addresses dialled ----------------------------------
for my $n (qw(dual mixed many)) {
    my $host = "$n.rebind.example";
    my $before = bad_conns();
    my ($s2) = ask("CONNECT $host:$o HTTP/1.1\r\nHost: $host:$o\r\n\r\n");
    like($s2, qr/^(200|502|403)$/, "$host (allowed + private answer): $s2");
    is(bad_conns() - $before, 0, "$host: no private address dialled");
}
{
    # the only allowed address refuses connections: the private one must
    # still not be tried as a fallback
    my $before = bad_conns();
    my ($s2) = ask("CONNECT mixed2.rebind.example:$o HTTP/1.1\r\n"
                   . "Host: mixed2.rebind.example:$o\r\n\r\n");
    like($s2, qr/^(502|504|403)$/, "mixed2 (private + dead allowed): $s2");
    is(bad_conns() - $before, 0, 'mixed2: the private address was not a fallback');
}

is(bad_conns(), 0, 'no private origin ever saw a connection')
    or diag(join ', ', map { "$_=" . $bad{$_}->connections } sort keys %bad);
($st) = ask("CONNECT ok.rebind.example:$o HTTP/1.1\r\nHost: ok.rebind.example:$o\r\n\r\n");
is($st, 200, 'kapd still serves after everything');

$t->done_testing;
