#!/usr/bin/perl
# 164-connect-first-bytes.t -- adversarial: first bytes in a CONNECT
# tunnel under the DEFAULT sni setting (t/154 runs sni = "require"), and
# SNI spellings t/154 does not try.
#
# bypass-classes.md #4 (SNI != CONNECT host), #3 (IP-literal CONNECT);
# kap.conf(5): SNI must equal the CONNECT host, "sni" defaults to require
# on port 443 and if-present elsewhere, and an IP-literal target that is
# explicitly allowed may omit SNI -- but a listed literal with an SNI
# naming another host is fronting like any other.  SNI spellings: one
# trailing dot is the same name, anything else that differs is not
# (two dots, a leading dot, a NUL, an empty name, a name of another
# name_type, full-width and ideographic dots, an A-label look-alike).
# Hellos a real browser sends (GREASE extensions, early-data records
# after the hello) must pass; draft ECH code points are refused like the
# final one.  A refused tunnel must get ZERO bytes to the upstream.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::Hello qw(ext sni_ext hello_body records hello first_bytes);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $e = $t->port('echo');
my $echo = Test::Kapd::Hello->echo($t, '127.0.0.2', $e, 443);
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'github.com' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["github.com:%%PORT_echo%%", "github.com:443",
             "127.0.0.2:%%PORT_echo%%", "127.0.0.2:443"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; handshake_timeout = 2; };
EOF
$t->run;
my $proxy = $t->port('proxy');

# open a tunnel, send $data, read until EOF or until it all came back
sub try_tunnel {
    my ($target, $data) = @_;
    my ($s, $r) = connect_tunnel($proxy, $target);
    return ('none', '', 1, 0) unless $s && $r && $r->{status} == 200;
    my $lport = $s->sockport;
    my ($got, $closed) = first_bytes($s, $data);
    close $s;
    return (200, $got, $closed, $lport);
}

sub passes {
    my ($target, $data, $name) = @_;
    my ($st, $got) = try_tunnel($target, $data);
    is($st, 200, "$name: tunnel opened");
    is(length $got, length $data, "$name: passes (echoed back)");
}

sub refused {
    my ($target, $data, $name) = @_;
    my $before = $echo->bytes;
    my ($st, $got, $closed, $lport) = try_tunnel($target, $data);
    is($st, 200, "$name: tunnel opened (upstream first)");
    is(length $got, 0, "$name: nothing came back");
    ok($closed, "$name: connection closed");
    is($echo->bytes - $before, 0, "$name: no byte reached the upstream");
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($ev) = $m->($t->wait_audit($m, 3));
    ok($ev && length($ev->{reason} // ''), "$name: audited with a reason"
       . ($ev ? " ($ev->{reason})" : ''));
}

my $G = "github.com:$e";
my $G443 = 'github.com:443';
my $L = "127.0.0.2:$e";
my $L443 = '127.0.0.2:443';

# -- the default sni setting ---------------------------------------------------------------
passes($G443, hello(sni => 'github.com'), 'name on 443, matching SNI');
refused($G443, hello(exts => []), 'name on 443, no SNI (default: require on 443)');
passes($G, hello(exts => []), 'name on another port, no SNI (default: if-present)');
refused($G, hello(sni => 'evil.test'), 'name on another port, SNI mismatch');

# -- listed IP literals --------------------------------------------------------------------------
passes($L443, hello(exts => []), 'listed literal on 443, no SNI');
refused($L443, hello(sni => 'evil.test'), 'listed literal on 443, SNI naming another host');
refused($L443, hello(sni => 'github.com'), 'listed literal on 443, SNI naming an allowed host');
refused($L, hello(sni => 'evil.test'), 'listed literal, SNI naming another host');
refused($L, "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", 'listed literal, plain HTTP to another Host');

# -- SNI spellings ---------------------------------------------------------------------------------
passes($G443, hello(sni => 'github.com.'), 'SNI with one trailing dot');
passes($G443, hello(sni => 'GITHUB.com.'), 'SNI upper case with one trailing dot');
for my $c (['github.com..',            'two trailing dots'],
           ['.github.com',             'a leading dot'],
           ["github.com\0",            'a trailing NUL'],
           ["\0github.com",            'a leading NUL'],
           ['',                        'an empty name'],
           ["github\xe3\x80\x82com",   'an ideographic full stop (U+3002)'],
           ["github\xef\xbc\x8ecom",   'a full-width full stop (U+FF0E)'],
           ["github\xef\xbd\xa1com",   'a half-width ideographic full stop (U+FF61)'],
           ['xn--gthub-n4a.com',       'an A-label look-alike'],
           ['github%2ecom',            'a percent-encoded dot'],
           ['github.com:443',          'a port in the name'],
           ['github.com ',             'a trailing space'],
           ['*.github.com',            'a wildcard'],
           [('a' x 64) . '.github.com', 'a label of 64 octets']) {
    refused($G443, hello(exts => [sni_ext($c->[0])]), "SNI with $c->[1]");
}
refused($G443, hello(exts => [sni_ext([1, 'github.com'])]), 'SNI of name_type 1 only');
refused($G443, hello(exts => [sni_ext([0, 'github.com'], [1, 'evil.test'])]),
        'SNI with host_name and a name of another type');
refused($G443, hello(exts => [ext(0, pack('n', 0))]), 'SNI extension with an empty list');
refused($G443, hello(exts => [ext(0, '')]), 'SNI extension with no body');

# -- ECH code points, and what real browsers send ------------------------------------------------
for my $type (0xfe08, 0xfe0a, 0xfe0c) {
    refused($G443, hello(exts => [sni_ext('github.com'), ext($type, "\0" . ("\x5a" x 40))]),
            sprintf('ECH draft extension 0x%04x', $type));
}
passes($G443, hello(exts => [ext(0x0a0a, ''), sni_ext('github.com'), ext(0x3a3a, "\0")]),
       'GREASE extensions around a matching SNI');
passes($G443, hello(sni => 'github.com')
              . pack('C n n', 0x14, 0x0303, 1) . "\x01"               # ChangeCipherSpec
              . pack('C n n', 0x17, 0x0303, 32) . ("\x99" x 32),      # early data
       'matching hello followed by CCS and early data in the same write');
refused($G443, records(hello_body(sni => 'github.com', sid => "\x24" x 33)),
        'session id of 33 bytes');
{
    # a hello whose record also carries the start of another handshake
    # message: "data after ClientHello in its record"
    my $b = hello_body(sni => 'github.com') . "\x01\x00\x00\x10" . ("\x42" x 16);
    refused($G443, pack('C n n', 0x16, 0x0301, length $b) . $b,
            'another handshake message after the hello in its record');
}
{
    # the first hello is fine, a second one in another record names evil
    passes($G443, hello(sni => 'github.com') . hello(sni => 'evil.test'),
           'a second hello after a matching one is not parsed (relayed; the server aborts)');
}

# -- plain HTTP first ---------------------------------------------------------------------------
passes($G, "GET / HTTP/1.1\r\nHost: GITHUB.COM.\r\n\r\n", 'HTTP Host in upper case with a trailing dot');
refused($G, "GET / HTTP/1.0\r\n\r\n", 'HTTP/1.0 without Host');
refused($G, "GET / HTTP/1.1\r\nHost:\r\n\r\n", 'HTTP with an empty Host');
refused($G, "GET http://github.com.evil.test/ HTTP/1.1\r\nHost: github.com\r\n\r\n",
        'HTTP absolute URI naming another host');
refused($G, "GET / HTTP/1.1\r\nHost: github.com\@evil.test\r\n\r\n", 'HTTP Host with userinfo');
refused($G, "GET / HTTP/1.1\r\nHost: github.com\r\n Host: evil.test\r\n\r\n",
        'HTTP with an obs-folded second Host');

passes($G443, hello(sni => 'github.com'), 'kapd still serves after everything');
$t->done_testing;
