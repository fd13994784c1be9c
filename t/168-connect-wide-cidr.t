#!/usr/bin/perl
# 168-connect-wide-cidr.t -- adversarial: an address rule much wider than
# the private range it happens to cover.
#
# kap.conf(5): the built-in deny set (loopback, link-local and the
# metadata address, RFC 1918, CGNAT, ...) applies "unless an address rule
# of allow covers the address (and port) on purpose".  A rule inside a
# denied range ("10.0.0.0/8", "192.168.1.0/24", "169.254.169.254") is on
# purpose; a wide public range that merely contains one ("128.0.0.0/1"
# holds 169.254.0.0/16, 172.16.0.0/12 and 192.168.0.0/16; "100.0.0.0/8"
# holds CGNAT; "0.0.0.0/5" holds 0.0.0.0/8) is not, and must not
# let a name -- or an IP literal -- reach the metadata service or the
# host's neighbours (bypass-classes.md #6, #12).
#
# The private addresses are not on any interface of the test namespace
# (an own address is refused for another reason, t/156), so a dial fails
# at once: what tells a refusal from a dial is the audited denial naming
# the address, which must come before any connect.  The rules inside a
# private range are the controls: no such denial for them.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $o = $t->port('origin');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'meta.cidr.example'   => ['A 169.254.169.254'],
    'docker.cidr.example' => ['A 172.17.0.2'],
    'cgnat.cidr.example'  => ['A 100.64.0.1'],
    'lan.cidr.example'    => ['A 192.168.2.1'],
    'zero.cidr.example'   => ['A 0.0.0.1'],
    'v6ll.cidr.example'   => ['AAAA fe80::1'],
    'ula.cidr.example'    => ['AAAA fd00::1'],
    'intra.cidr.example'  => ['A 10.0.0.1'],
    'inlan.cidr.example'  => ['A 192.168.1.1'],
    'meta32.cidr.example' => ['A 169.254.169.253'],
    'inula.cidr.example'  => ['AAAA fd12:3456::1'],
}, ttl => 0);

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["*.cidr.example:%%PORT_origin%%",
             "128.0.0.0/1:%%PORT_origin%%", "100.0.0.0/8:%%PORT_origin%%",
             "0.0.0.0/5:%%PORT_origin%%", "[fc00::]/6:%%PORT_origin%%",
             "[fe00::]/8:%%PORT_origin%%",
             "10.0.0.0/8:%%PORT_origin%%", "192.168.1.0/24:%%PORT_origin%%",
             "169.254.169.253:%%PORT_origin%%", "[fd12:3456::]/32:%%PORT_origin%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; connect_timeout = 2; };
EOF
$t->run;
my $proxy = $t->port('proxy');

sub ask {
    my ($target) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', 0);
    my $lport = $s->sockport;
    my $p = http_parse(http_raw($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n",
                                timeout => 6, one => 1, method => 'CONNECT'));
    close $s;
    return ($p ? $p->{status} : 'none', $lport);
}
sub denial {
    my ($lport, $tmo) = @_;
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($e) = $m->($t->wait_audit($m, $tmo));
    return $e;
}

for my $c (['meta.cidr.example',   '169.254.169.254 under 128.0.0.0/1'],
           ['docker.cidr.example', '172.17.0.2 under 128.0.0.0/1'],
           ['lan.cidr.example',    '192.168.2.1 under 128.0.0.0/1 (192.168.1.0/24 is listed, not .2)'],
           ['cgnat.cidr.example',  '100.64.0.1 under 100.0.0.0/8'],
           ['zero.cidr.example',   '0.0.0.1 under 0.0.0.0/5'],
           ['v6ll.cidr.example',   'fe80::1 under fe00::/8'],
           ['ula.cidr.example',    'fd00::1 under fc00::/6'],
           ['169.254.169.254',     'the metadata literal under 128.0.0.0/1'],
           ['172.17.0.2',          'a Docker-network literal under 128.0.0.0/1'],
           ['100.64.0.1',          'a CGNAT literal under 100.0.0.0/8'],
           ['0.0.0.1',             'a "this network" literal under 0.0.0.0/5'],
           ['[fd00::1]',           'a ULA literal under fc00::/6']) {
    my ($h, $name) = @$c;
    my ($st, $lport) = ask("$h:$o");
    like($st, qr/^(403|502)$/, "$name: refused ($st)");
    my $e = denial($lport, 3);
    ok($e && ($e->{reason} // '') =~ /\d\.\d|::/,
       "$name: refused before any dial, the audit names the address")
        or diag($e ? "reason: $e->{reason}" : 'no denial: kapd dialled it');
}

# controls: rules inside a private range open it on purpose
for my $c (['intra.cidr.example', '10.0.0.1 under 10.0.0.0/8'],
           ['inlan.cidr.example', '192.168.1.1 under 192.168.1.0/24'],
           ['meta32.cidr.example', '169.254.169.253 listed as a single address'],
           ['inula.cidr.example', 'fd12:3456::1 under fd12:3456::/32'],
           ['10.0.0.1',           'a 10/8 literal under 10.0.0.0/8']) {
    my ($h, $name) = @$c;
    my ($st, $lport) = ask("$h:$o");
    is($st, 502, "$name: dialled (nobody is there: 502)");
    ok(!denial($lport, 0.5), "$name: not refused by the address check");
}
$t->done_testing;
