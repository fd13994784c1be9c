#!/usr/bin/perl
# 150-connect-literals.t -- adversarial: CONNECT (and absolute-form GET)
# to IP literals in every spelling, and broken CONNECT authorities.
#
# bypass-classes.md #3 (IP-literal CONNECT), #5 (IPv6 paths), #6 (metadata
# address); DESIGN §6: "IP-literal targets denied unless the literal or its
# CIDR is listed".  The test namespace gets 169.254.169.254 and 10.0.0.1
# on its loopback so a fake origin can listen there and count every
# connection kapd makes: a refused target must see none.  Every refusal
# must be in the audit JSONL with a reason (matched by the client's
# source port).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

# extra loopback addresses inside the private namespace (a global IPv6
# one too: with global IPv4 addresses present, getaddrinfo's AI_ADDRCONFIG
# would otherwise refuse "::1")
for my $a ('169.254.169.254/32', '10.0.0.1/32', 'fd00::1/128') {
    system('ip', 'addr', 'add', $a, 'dev', 'lo', ($a =~ /:/ ? 'nodad' : ()))
        == 0
        or plan(skip_all => "cannot add $a to lo in the test namespace");
}

my $o = $t->port('origin');
my %origin;
for my $a ('127.0.0.1', '169.254.169.254', '10.0.0.1', '::1', 'fd00::1',
           '127.0.0.2') {
    (my $n = "o-$a") =~ s/[^\w-]/_/g;
    $origin{$a} = Test::Kapd::FakeHTTP->new($t, port => $o, name => $n,
                                            addr => $a);
}
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'github.com' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["github.com:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
$t->run;
my $proxy = $t->port('proxy');

sub conns { my $n = 0; $n += $_->connections for values %origin; $n }

# send a raw request; returns (status or 'none', local port of the client)
sub ask {
    my ($req) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', 0);
    my $lport = $s->sockport;
    my $resp = http_raw($s, $req, timeout => 5);
    close $s;
    my $p = http_parse($resp);
    return ($p ? $p->{status} : 'none', $lport);
}

# the audit line of the refusal of the client on local port $lport
sub audited {
    my ($lport) = @_;
    my ($e) = grep {
        ($_->{client} // '') =~ /:\Q$lport\E\]?$/
        && ($_->{action} // '') eq 'denied'
    } $t->wait_audit(sub {
        grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
               && ($_->{action} // '') eq 'denied' } @_
    }, 3);
    return $e;
}

sub refused {
    my ($req, $name, %o) = @_;
    my $before = conns();
    my ($st, $lport) = ask($req);
    my $want = $o{want} // qr/^(400|403)$/;
    like($st, $want, "$name: refused ($st)");
    # origins log asynchronously: give a (wrong) dial a moment to show
    my $seen = wait_until(sub { conns() > $before }, $st eq '200' ? 2 : 0.2);
    ok(!$seen, "$name: no origin saw a connection");
    my $e = audited($lport);
    ok($e && length($e->{reason} // ''), "$name: denial audited with a reason")
        or diag("no audit line for client port $lport");
}

# -- positive control: the listed literal and the allowed name work --------
my ($st) = ask("CONNECT 127.0.0.2:$o HTTP/1.1\r\nHost: 127.0.0.2:$o\r\n\r\n");
is($st, 200, 'control: a listed IP literal is allowed');
($st) = ask("CONNECT github.com:$o HTTP/1.1\r\nHost: github.com:$o\r\n\r\n");
is($st, 200, 'control: an allowed name is allowed');
ok(wait_until(sub { $origin{'127.0.0.2'}->connections >= 2 }, kapd_tmo(3)),
   'control: the listed origin saw the connections');

# -- a listed literal only on its port ---------------------------------------------
refused("CONNECT 127.0.0.2:22 HTTP/1.1\r\nHost: 127.0.0.2:22\r\n\r\n",
        'listed literal on another port', want => qr/^403$/);
refused("CONNECT 127.0.0.2:443 HTTP/1.1\r\nHost: 127.0.0.2:443\r\n\r\n",
        'listed literal on 443', want => qr/^403$/);

# -- IP literals in every spelling ------------------------------------------------
my @lit = (
    ['127.0.0.1',          'dotted loopback'],
    ['127.1',              'short form 127.1'],
    ['0x7f000001',         'hex integer'],
    ['0x7f.0.0.1',         'hex first octet'],
    ['2130706433',         'decimal integer'],
    ['0177.0.0.1',         'octal first octet'],
    ['017700000001',       'octal integer'],
    ['127.000.000.001',    'zero-padded octets'],
    ['[::1]',              'IPv6 loopback'],
    ['[::ffff:127.0.0.1]', 'IPv4-mapped IPv6 loopback'],
    ['[::ffff:7f00:1]',    'IPv4-mapped IPv6, hex'],
    ['[0:0:0:0:0:ffff:7f00:1]', 'IPv4-mapped IPv6, long form'],
    ['[::127.0.0.1]',      'IPv4-compatible IPv6'],
    ['[64:ff9b::7f00:1]',  'NAT64 of loopback'],
    ['169.254.169.254',    'metadata address'],
    ['2852039166',         'metadata address as a decimal integer'],
    ['0xa9fea9fe',         'metadata address as hex'],
    ['[::ffff:169.254.169.254]', 'metadata address IPv4-mapped'],
    ['10.0.0.1',           'RFC 1918'],
    ['167772161',          'RFC 1918 as a decimal integer'],
    ['0.0.0.0',            'unspecified address'],
    ['0',                  'unspecified as "0"'],
    ['[::]',               'IPv6 unspecified'],
    ['[fe80::1%25eth0]',   'link-local with zone id (%25)'],
    ['[fe80::1%eth0]',     'link-local with raw zone id'],
    ['[fe80::1]',          'link-local'],
    ['[fd00::1]',          'ULA'],
    ['127.0.0.1.',         'dotted loopback with a trailing dot'],
    ['[127.0.0.1]',        'IPv4 in brackets'],
    ['localhost',          'localhost'],
);
for my $l (@lit) {
    my ($h, $name) = @$l;
    refused("CONNECT $h:$o HTTP/1.1\r\nHost: $h:$o\r\n\r\n", "CONNECT $name ($h)");
}
for my $h ('127.1', '2130706433', '[::ffff:127.0.0.1]', '169.254.169.254') {
    refused("GET http://$h:$o/latest/meta-data/ HTTP/1.1\r\nHost: $h:$o\r\n"
            . "Connection: close\r\n\r\n", "GET absolute-form to $h");
}
# the metadata service on port 80, the way a client really asks it
refused("GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n"
        . "Host: 169.254.169.254\r\nConnection: close\r\n\r\n",
        'GET metadata on port 80');

# -- broken CONNECT authorities ------------------------------------------------------
for my $c (
    ['github.com',              'CONNECT without a port'],
    ['github.com:',             'CONNECT with an empty port'],
    ['github.com:0',            'port 0'],
    ['github.com:65536',        'port 65536'],
    ["github.com:" . (65536 + $o), 'port that wraps to the allowed one mod 65536'],
    ['github.com:-1',           'port -1'],
    ['github.com:+' . $o,       'port with a leading +'],
    ['github.com:0x' . sprintf('%x', $o), 'port in hex'],
    ["github.com:$o/path",      'CONNECT with a path'],
    ["http://github.com:$o/",   'CONNECT with an absolute URI'],
    ["github.com:$o:$o",        'two ports'],
    ["user\@github.com:$o",     'CONNECT with userinfo'],
    ["github.com\@127.0.0.1:$o", 'CONNECT userinfo naming a literal'],
    ["*:$o",                    'CONNECT to "*"'],
    [":$o",                     'CONNECT with an empty host'],
) {
    my ($auth, $name) = @$c;
    refused("CONNECT $auth HTTP/1.1\r\nHost: github.com\r\n\r\n", $name,
            want => qr/^(400|403)$/);
}
{
    # a space inside the port: the request line itself is malformed
    my ($st2) = ask("CONNECT github.com: $o HTTP/1.1\r\nHost: github.com\r\n\r\n");
    like($st2, qr/^(400|403)$/, 'port " NNN" refused');
}
ok(conns() == 2, 'no origin saw anything but the two control tunnels')
    or diag('connections: ' . conns());

# -- kapd alive and serving ------------------------------------------------------------
($st) = ask("CONNECT github.com:$o HTTP/1.1\r\nHost: github.com:$o\r\n\r\n");
is($st, 200, 'kapd still serves an allowed CONNECT after everything');

$t->done_testing;
