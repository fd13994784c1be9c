#!/usr/bin/perl
# 153-http-smuggling.t -- adversarial: plain-HTTP forwarding attacks.
#
# DESIGN §6 "Plain HTTP": Host must agree with the absolute URI; no
# smuggling (CL+TE, duplicate CL, obs-fold refused).  Origin-form
# requests to the proxy are refused, never forwarded to some default
# host.  For every ambiguous framing: the answer is a 4xx, the connection
# is closed right after it (nothing after the head may be read as a next
# request), no smuggled request reaches the origin, the refusal is
# audited with a reason, and a fresh allowed request on a new connection
# still works.

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
                                       addr => '127.0.0.2');
my $other = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'other',
                                      addr => '127.0.0.3');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'other.example'   => ['A 127.0.0.3'],
    'allowed.example' => ['A 127.0.0.2'],
    'denied.example'  => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%",
                    "other.example:%%PORT_origin%%", "127.0.0.3:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";

sub targets { map { $_->{target} // '' } @{$origin->requests} }
sub smuggled { scalar grep { /smuggled/ } targets() }

# send, read the whole reply until EOF (or the deadline); returns
# (all statuses seen, closed?, client port, raw)
sub exchange {
    my ($req, $tmo) = @_;
    my $s = tcp_connect($proxy) or return ([], 0, 0, '');
    my $lport = $s->sockport;
    my $data = $req;
    while (length $data) {
        my $n = syswrite($s, $data);
        last unless $n;
        substr($data, 0, $n) = '';
    }
    my ($resp, $closed) = ('', 0);
    my $deadline = time + kapd_tmo($tmo // 4);
    my $sel = IO::Select->new($s);
    while (time < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, my $buf, 65536);
        if (!$n) { $closed = 1; last }
        $resp .= $buf;
    }
    close $s;
    my @st = $resp =~ m{(?:^|\n)HTTP/1\.\d (\d{3}) }g;
    return (\@st, $closed, $lport, $resp);
}

sub audited {
    my ($lport) = @_;
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($e) = $m->($t->wait_audit($m, 3));
    return $e;
}

sub fresh_ok {
    my ($name) = @_;
    my $p = http_parse(http_raw($proxy, "GET http://$A/fresh HTTP/1.1\r\nHost: $A\r\n"
                                . "Connection: close\r\n\r\n"));
    is($p && $p->{status}, 200, "$name: a fresh allowed request still works");
}

sub bad {
    my ($req, $name, %o) = @_;
    my $before = smuggled();
    my ($st, $closed, $lport) = exchange($req);
    like($st->[0] // 'none', $o{want} // qr/^4\d\d$|^501$/, "$name: refused (@$st)");
    ok(@$st == 1 || ($o{midstream} && @$st == 0),
       "$name: exactly one response" . ($o{midstream} ? ' (or none)' : ''));
    ok($closed, "$name: connection closed after the refusal");
    is(smuggled() - $before, 0, "$name: nothing smuggled reached the origin");
    if (!$o{midstream}) {
        my $e = audited($lport);
        ok($e && length($e->{reason} // ''), "$name: audited with a reason")
            or diag("no audit line for client port $lport");
    }
    fresh_ok($name);
}

my $smug = "GET http://$A/smuggled HTTP/1.1\r\nHost: $A\r\n\r\n";
my $post = "POST http://$A/p HTTP/1.1\r\nHost: $A\r\n";

# -- framing ambiguities --------------------------------------------------------------
bad($post . "Content-Length: " . length("0\r\n\r\n" . $smug)
    . "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$smug", 'CL + TE');
bad($post . "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n$smug",
    'TE + CL (other order)');
bad($post . "Content-Length: 0\r\nContent-Length: " . length($smug) . "\r\n\r\n$smug",
    'duplicate Content-Length (differing)');
bad($post . "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd$smug",
    'duplicate Content-Length (equal)');
bad($post . "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n$smug",
    'TE: chunked via obs-fold');
bad($post . "Transfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n$smug",
    'TE continued by obs-fold');
bad($post . "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n$smug",
    'Transfer-Encoding: xchunked');
bad($post . "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n$smug",
    'two Transfer-Encoding fields');
bad($post . "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n$smug",
    'chunked applied twice');
bad($post . "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n$smug",
    'space before the colon of TE');
bad($post . "Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n$smug",
    'vertical tab before chunked');
bad($post . "Content-Length: +" . length($smug) . "\r\n\r\n$smug",
    'Content-Length with a leading +');
bad($post . "Content-Length: -1\r\n\r\n$smug", 'negative Content-Length');
bad($post . "Content-Length: 0x10\r\n\r\n$smug", 'hex Content-Length');
bad($post . "Content-Length: 1 0\r\n\r\n$smug", 'Content-Length with inner space');
bad($post . "Content-Length: 99999999999999999999999\r\n\r\n$smug",
    'Content-Length overflowing 64 bits');
bad($post . "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n0\r\n\r\n$smug",
    'chunk size overflowing 64 bits (head already forwarded: 4xx or close)',
    want => qr/^(4\d\d|none)$/, midstream => 1);
bad($post . "Content\x00-Length: 5\r\n\r\nhello$smug", 'NUL in a field name');
bad($post . "X-A: a\rContent-Length: 5\r\n\r\nhello$smug", 'bare CR in a field');
bad("GET http://$A/g HTTP/1.0\r\nHost: $A\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$smug",
    'Transfer-Encoding in an HTTP/1.0 request');

# -- a second request hidden in the body of a denied one -------------------------------
{
    my $hidden = "POST http://denied.example:$o/d HTTP/1.1\r\nHost: denied.example:$o\r\n"
        . "Content-Length: " . length($smug) . "\r\n\r\n$smug";
    my $before = smuggled();
    my ($st, $closed, $lport) = exchange($hidden);
    is($st->[0] // 'none', 403, 'denied POST with a request in its body: 403');
    is(scalar @$st, 1, 'hidden request: exactly one response');
    is(smuggled() - $before, 0, 'the request in the body was not executed');
    ok(audited($lport), 'hidden request: denial audited');
    fresh_ok('hidden request');

    # the same, chunked
    my $ch = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $smug, $smug);
    ($st, $closed) = exchange("POST http://denied.example:$o/d HTTP/1.1\r\n"
        . "Host: denied.example:$o\r\nTransfer-Encoding: chunked\r\n\r\n$ch");
    is($st->[0] // 'none', 403, 'denied chunked POST with a request in its body: 403');
    is(smuggled() - $before, 0, 'the request in the chunked body was not executed');
}

# -- Host / URI / request-target forms ---------------------------------------------------
my @forms = (
    ["GET / HTTP/1.1\r\nHost: $A\r\n\r\n", 'origin-form to the proxy'],
    ["GET /smuggled HTTP/1.1\r\nHost: $A\r\n\r\n", 'origin-form naming an allowed Host'],
    ["OPTIONS * HTTP/1.1\r\nHost: $A\r\n\r\n", 'asterisk-form'],
    ["GET http://$A/x HTTP/1.1\r\nHost: denied.example:$o\r\n\r\n", 'Host names another (denied) host'],
    ["GET http://denied.example:$o/x HTTP/1.1\r\nHost: $A\r\n\r\n", 'URI denied, Host allowed'],
    ["GET http://$A/x HTTP/1.1\r\nHost: $A\r\nHost: denied.example:$o\r\n\r\n", 'two Host fields'],
    ["GET http://$A/x HTTP/1.1\r\nHost: $A, denied.example\r\n\r\n", 'Host with a list'],
    ["GET http://allowed.example\@denied.example:$o/x HTTP/1.1\r\nHost: denied.example:$o\r\n\r\n",
     'userinfo naming the allowed host'],
    ["GET http://denied.example:$o\@allowed.example:$o/x HTTP/1.1\r\nHost: $A\r\n\r\n",
     'userinfo naming the denied host'],
    ["GET ftp://$A/x HTTP/1.1\r\nHost: $A\r\n\r\n", 'ftp scheme'],
    ["GET http:///x HTTP/1.1\r\nHost: $A\r\n\r\n", 'absolute URI without a host'],
    ["GET  http://$A/x HTTP/1.1\r\nHost: $A\r\n\r\n", 'two spaces in the request line'],
    ["GET http://$A/x\tHTTP/1.1\r\nHost: $A\r\n\r\n", 'tab in the request line'],
    ["GET http://$A/x HTTP/1.1 \r\nHost: $A\r\n\r\n", 'trailing space in the request line'],
    ["G\x00ET http://$A/x HTTP/1.1\r\nHost: $A\r\n\r\n", 'NUL in the method'],
);
for my $f (@forms) {
    my ($req, $name) = @$f;
    my $before = $origin->count;
    my ($st, $closed, $lport) = exchange($req);
    like($st->[0] // 'none', qr/^(4\d\d|501)$/, "$name: refused (@$st)");
    is($origin->count - $before, 0, "$name: nothing forwarded");
    my $e = audited($lport);
    ok($e && length($e->{reason} // ''), "$name: audited with a reason")
        or diag("no audit line for client port $lport");
}

# -- keep-alive: each request goes to its own host's upstream connection ---------------
{
    my $s = tcp_connect($proxy);
    my @servers;
    for my $h ($A, "other.example:$o", $A, "other.example:$o") {
        my $p = http_parse(http_raw($s, "GET http://$h/ka HTTP/1.1\r\nHost: $h\r\n\r\n",
                                    one => 1));
        push @servers, $p ? $p->{headers}{'x-fake-server'} // '?' : 'none';
    }
    is("@servers", 'origin other origin other',
       'keep-alive across hosts: every request answered by its own host');
    close $s;
}

is(smuggled(), 0, 'no smuggled request ever reached the origin');
fresh_ok('after everything');

$t->done_testing;
