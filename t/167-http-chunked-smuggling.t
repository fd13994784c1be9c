#!/usr/bin/perl
# 167-http-chunked-smuggling.t -- adversarial: request smuggling through
# the chunked body of a forwarded request (chunk sizes, extensions, the
# CRLFs around data, trailers).
#
# DESIGN §6 "no smuggling"; t/153 covers the head (CL+TE, obs-fold, TE
# spellings).  kapd relays a chunked body as it parses it, so the origin
# must see exactly the framing kapd saw: every spelling a lenient parser
# reads one way and a strict one another (bare LF, BWS before ';', "0x",
# signs, overlong sizes, a LF-only last chunk, obs-fold or bare CR in a
# trailer, data longer than its size) is cut off where kapd stops
# understanding it.  The head has already gone upstream then, so the
# agent gets a 4xx or just a close -- but the request hidden behind the
# bad framing never reaches the origin, and kapd stays up.  Controls:
# extensions, a trailer, and many small chunks pass intact.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.example' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; header_timeout = 3; idle_timeout = 3; };
EOF
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";
my $head = "POST http://$A/c HTTP/1.1\r\nHost: $A\r\nTransfer-Encoding: chunked\r\n\r\n";
my $smug = "GET /smuggled HTTP/1.1\r\nHost: $A\r\n\r\n";

sub smuggled { scalar grep { ($_->{target} // '') =~ /smuggled/ } @{$origin->requests} }

# send, read until EOF or the deadline; returns (statuses, closed?)
sub exchange {
    my ($req) = @_;
    my $s = tcp_connect($proxy) or return ([], 0);
    my $d = $req;
    while (length $d) { my $n = syswrite($s, $d) or last; substr($d, 0, $n) = '' }
    my ($resp, $closed) = ('', 0);
    my $deadline = time + kapd_tmo(5);
    my $sel = IO::Select->new($s);
    while (time < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, my $buf, 65536);
        if (!$n) { $closed = 1; last }
        $resp .= $buf;
    }
    close $s;
    return ([$resp =~ m{(?:^|\n)HTTP/1\.\d (\d{3}) }g], $closed);
}

sub cut {
    my ($body, $name) = @_;
    my $before = smuggled();
    my ($st, $closed) = exchange($head . $body . $smug);
    ok(!grep({ $_ eq '200' } @$st), "$name: no 200 (@$st)");
    ok($closed, "$name: connection closed");
    wait_until(sub { smuggled() > $before }, 0.3);
    is(smuggled() - $before, 0, "$name: the hidden request never reached the origin");
}

sub passes {
    my ($body, $want, $name) = @_;
    my $n = $origin->count;
    my ($st) = exchange($head =~ s/\r\n\r\n\z/\r\nConnection: close\r\n\r\n/r . $body);
    is($st->[0] // 'none', 200, "$name: forwarded");
    ok(wait_until(sub { $origin->count > $n }, kapd_tmo(3)), "$name: the origin got it");
    is($origin->requests->[-1]{body} // '', $want, "$name: body intact");
}

# -- controls ---------------------------------------------------------------------------------
passes("5\r\nhello\r\n0\r\n\r\n", 'hello', 'plain chunks');
passes("5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n", 'hello', 'chunk extensions');
passes("5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n", 'hello', 'a trailer field');
passes(join('', map { "1\r\n$_\r\n" } split //, 'abcdefghij') . "0\r\n\r\n", 'abcdefghij',
       'ten 1-byte chunks');
passes("000000000000005\r\nhello\r\n0\r\n\r\n", 'hello', 'a size with leading zeros (15 digits)');

# -- framing a lenient parser reads another way ------------------------------------------------------
my $tail = "0\r\n\r\n";
cut("5\nhello\r\n$tail",                  'bare LF after the size');
cut("5\r\nhello\n$tail",                  'bare LF after the data');
cut("5\r\nhelloXX\r\n$tail",              'data longer than its size');
cut("5\r\nhell\r\n$tail",                 'data shorter than its size');
cut("5 \r\nhello\r\n$tail",               'space after the size');
cut("5 ;x\r\nhello\r\n$tail",             'BWS before an extension');
cut(" 5\r\nhello\r\n$tail",               'space before the size');
cut("0x5\r\nhello\r\n$tail",              '0x prefix');
cut("+5\r\nhello\r\n$tail",               'plus sign');
cut("-5\r\nhello\r\n$tail",               'minus sign');
cut("5g\r\nhello\r\n$tail",               'non-hex digit');
cut("\r\nhello\r\n$tail",                 'empty size');
cut("10000000000000005\r\nhello\r\n$tail", 'size of 17 hex digits (wraps to 5 in 64 bits)');
cut("5;x\rhello\r\n$tail",                'bare CR in an extension');
cut("5;x\0y\r\nhello\r\n$tail",           'NUL in an extension');
cut("5;" . ('e' x 2000) . "\r\nhello\r\n$tail", 'extension of 2000 bytes');
cut("5\r\nhello\r\n0\n\r\n",              'LF-only last chunk');
cut("5\r\nhello\r\n0\r\n\n",              'LF-only end of trailers');
cut("5\r\nhello\r\n0\r\nX-A: 1\r\n folded\r\n\r\n", 'obs-fold in a trailer');
cut("5\r\nhello\r\n0\r\nX-A: 1\rX-B: 2\r\n\r\n",    'bare CR in a trailer');
cut("5\r\nhello\r\n0\r\n: novalue\r\n\r\n",         'trailer without a name');
cut("5\r\nhello\r\n0\r\nX A: 1\r\n\r\n",            'space in a trailer name');
cut("5\r\nhello\r\n0\r\n" . ("X-T: " . ('t' x 100) . "\r\n") x 100 . "\r\n",
    'trailer section over its limit');

is(smuggled(), 0, 'no hidden request ever reached the origin');
passes("5\r\nhello\r\n0\r\n\r\n", 'hello', 'kapd still serves');
$t->done_testing;
