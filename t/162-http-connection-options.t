#!/usr/bin/perl
# 162-http-connection-options.t -- adversarial: plain-HTTP forwarding and
# the fields a client (or an origin) names in Connection, and Host fields
# that are present but empty.
#
# RFC 9110 7.6.1: a proxy removes the fields a Connection header names.
# A naive proxy that honours "Connection: content-length" still frames the
# body by the Content-Length it read, but sends the head WITHOUT it: the
# origin then reads the body as a second request (request smuggling past
# the Host == URI check, DESIGN §6 "Plain HTTP").  "Connection: host"
# makes the origin see no Host at all, and an empty "Host:" field would
# reach the origin as is: both are Host/URI disagreements that DESIGN §6
# refuses.  In the other direction, an origin that names Content-Length
# in Connection must not leave the agent with an unframed keep-alive
# response.
#
# Invariant checked for every case: whatever reaches the origin is
# exactly the requests the client made, each with one Host field equal to
# the absolute URI's authority; the hidden request never arrives.

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
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin',
    addr => '127.0.0.2',
    handler => sub {
        my ($req) = @_;
        # /hop-cl: the origin names its own Content-Length in Connection
        return (200, ['Connection' => 'content-length'], 'hop-by-hop-body')
            if $req->{target} =~ m{^/hop-cl};
        return (200, [], undef);
    });
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.example' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";

sub reqs_since { my ($n) = @_; my @r = @{$origin->requests}; my @s = @r[$n .. $#r]; return @s }   # a count in scalar context
sub hosts_of {
    my ($r) = @_;
    map { $_->[1] } grep { lc $_->[0] eq 'host' } @{$r->{headers}};
}

# send one request on a fresh connection, read until EOF or timeout;
# returns (first status or 'none', raw)
sub exchange {
    my ($req, $tmo) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', '');
    my $raw = http_raw($s, $req, timeout => $tmo // 4);
    close $s;
    my $p = http_parse($raw);
    return ($p ? $p->{status} : 'none', $raw // '');
}

# every request the origin got since $n names the URI's authority, once
sub origin_saw_only {
    my ($n, $want_targets, $name) = @_;
    # the origin logs asynchronously: wait for the expected count (and a
    # moment more for an unexpected extra one)
    wait_until(sub { reqs_since($n) >= @$want_targets }, kapd_tmo(3));
    wait_until(sub { reqs_since($n) > @$want_targets }, 0.3);
    my @r = reqs_since($n);
    is(join(' ', map { $_->{target} } @r), join(' ', @$want_targets),
       "$name: the origin got exactly the client's request(s)");
    my @badhost = grep { my @h = hosts_of($_); @h != 1 || lc $h[0] ne lc $A } @r;
    is(scalar @badhost, 0, "$name: each with one Host equal to the URI authority")
        or diag(join "\n", map { "$_->{target}: Host=[" . join('|', hosts_of($_)) . ']' } @badhost);
    return @r;
}

my $smug = "GET /smuggled HTTP/1.1\r\nHost: evil.test\r\n\r\n";

# -- control --------------------------------------------------------------------------
{
    my $n = $origin->count;
    my ($st) = exchange("GET http://$A/control HTTP/1.1\r\nHost: $A\r\nConnection: close\r\n\r\n");
    is($st, 200, 'control: a plain request is forwarded');
    origin_saw_only($n, ['/control'], 'control');
}

# -- Connection naming Content-Length: the body must not become a request -----------------
for my $c (['content-length',          'Connection: content-length'],
           ['Content-Length',          'Connection: Content-Length'],
           ['close, content-length',   'Connection: close, content-length'],
           ['keep-alive ,CONTENT-LENGTH', 'Connection list with odd spacing and case']) {
    my ($conn, $name) = @$c;
    my $n = $origin->count;
    my ($st) = exchange("POST http://$A/post HTTP/1.1\r\nHost: $A\r\nConnection: $conn\r\n"
                        . "Content-Length: " . length($smug) . "\r\n\r\n$smug");
    like($st, qr/^(200|400)$/, "$name: answered ($st)");
    my @r = origin_saw_only($n, $st eq '200' ? ['/post'] : [], $name);
    is($r[0]{body}, $smug, "$name: the body reached the origin as the POST's body")
        if $st eq '200' && @r;
}
{
    # the same in a second Connection field
    my $n = $origin->count;
    my ($st) = exchange("POST http://$A/post HTTP/1.1\r\nHost: $A\r\nConnection: keep-alive\r\n"
                        . "Connection: content-length\r\nContent-Length: " . length($smug)
                        . "\r\n\r\n$smug");
    like($st, qr/^(200|400)$/, "second Connection field naming Content-Length: answered ($st)");
    origin_saw_only($n, $st eq '200' ? ['/post'] : [], 'second Connection field');
}
{
    # chunked body, Connection naming Transfer-Encoding: still one request
    my $ch = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $smug, $smug);
    my $n = $origin->count;
    my ($st) = exchange("POST http://$A/chunked HTTP/1.1\r\nHost: $A\r\n"
                        . "Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n$ch");
    like($st, qr/^(200|400)$/, "Connection naming Transfer-Encoding: answered ($st)");
    my @r = origin_saw_only($n, $st eq '200' ? ['/chunked'] : [],
                            'Connection naming Transfer-Encoding');
    is($r[0]{body}, $smug, 'Connection naming Transfer-Encoding: body intact')
        if $st eq '200' && @r;
}

# -- Host stripped or empty ------------------------------------------------------------------
for my $c (["Host: $A\r\nConnection: host",       'Connection: host'],
           ["Host: $A\r\nConnection: close, Host", 'Connection: close, Host'],
           ["Host:",                               'empty Host field'],
           ["Host:   \t ",                         'Host field of blanks only'],
           ["Connection: host",                    'HTTP/1.1 without Host, Connection: host']) {
    my ($h, $name) = @$c;
    my $n = $origin->count;
    my ($st) = exchange("GET http://$A/h HTTP/1.1\r\n$h\r\n\r\n");
    like($st, qr/^(200|400)$/, "$name: answered ($st)");
    origin_saw_only($n, $st eq '200' ? ['/h'] : [], $name);
}
{
    # HTTP/1.0 without Host: kapd supplies the URI's authority
    my $n = $origin->count;
    my ($st) = exchange("GET http://$A/h10 HTTP/1.0\r\n\r\n");
    is($st, 200, 'HTTP/1.0 without Host: forwarded');
    origin_saw_only($n, ['/h10'], 'HTTP/1.0 without Host');
    $n = $origin->count;
    ($st) = exchange("GET http://$A/h10 HTTP/1.0\r\nConnection: host\r\n\r\n");
    like($st, qr/^(200|400)$/, "HTTP/1.0, Connection: host: answered ($st)");
    origin_saw_only($n, $st eq '200' ? ['/h10'] : [], 'HTTP/1.0, Connection: host');
    $n = $origin->count;
    ($st) = exchange("GET http://$A/h10 HTTP/1.0\r\nHost: evil.test\r\n\r\n");
    is($st, 400, 'HTTP/1.0 with a Host that is not the URI authority: 400');
    origin_saw_only($n, [], 'HTTP/1.0 with another Host');
}

# -- a keep-alive client after a smuggling attempt is not answered from it ------------------
{
    my $s = tcp_connect($proxy);
    my $r1 = http_raw($s, "POST http://$A/ka1 HTTP/1.1\r\nHost: $A\r\nConnection: content-length\r\n"
                      . "Content-Length: " . length($smug) . "\r\n\r\n$smug", one => 1, timeout => 4);
    my $r2 = http_raw($s, "GET http://$A/ka2 HTTP/1.1\r\nHost: $A\r\nConnection: close\r\n\r\n",
                      timeout => 4);
    close $s;
    my $p2 = http_parse($r2);
    unlike($p2 ? $p2->{body} : '', qr{"/smuggled"}, 'keep-alive: the next answer is not the smuggled one');
    my $p3 = http_parse(http_raw($proxy, "GET http://$A/other HTTP/1.1\r\nHost: $A\r\n"
                                 . "Connection: close\r\n\r\n"));
    like($p3 ? $p3->{body} : '', qr{"/other"}, 'another client gets its own answer');
}

# -- an origin naming Content-Length in Connection --------------------------------------------
{
    # the agent's keep-alive connection must still be able to frame the
    # answer: a Content-Length (or chunked) it can use, or a close
    my $s = tcp_connect($proxy);
    syswrite($s, "GET http://$A/hop-cl HTTP/1.1\r\nHost: $A\r\n\r\n");
    my ($raw, $closed) = ('', 0);
    my $deadline = time + kapd_tmo(3);
    my $sel = IO::Select->new($s);
    while (time < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, $raw, 65536, length $raw);
        if (!$n) { $closed = 1; last }
        my $p = http_parse($raw);
        last if $p && defined $p->{headers}{'content-length'}
                && length($p->{body}) >= $p->{headers}{'content-length'};
    }
    close $s;
    my $p = http_parse($raw);
    is($p && $p->{status}, 200, 'origin naming Content-Length in Connection: 200');
    my $framed = $p && ((defined $p->{headers}{'content-length'}
                         && $p->{headers}{'content-length'} == length 'hop-by-hop-body')
                        || ($p->{headers}{'transfer-encoding'} // '') =~ /chunked/i
                        || $closed);
    ok($framed, 'origin naming Content-Length in Connection: the answer is framed '
       . '(Content-Length, chunked or a close)')
        or diag($raw);
    is($p ? $p->{body} : '', 'hop-by-hop-body', '... and complete');
}

is(scalar(grep { $_->{target} =~ /smuggled/ } @{$origin->requests}), 0,
   'no smuggled request ever reached the origin');
my ($st) = exchange("GET http://$A/last HTTP/1.1\r\nHost: $A\r\nConnection: close\r\n\r\n");
is($st, 200, 'kapd still serves');

$t->done_testing;
