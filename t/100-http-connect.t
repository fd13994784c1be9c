#!/usr/bin/perl
# 100-http-connect.t -- the http_connect module, plain HTTP forwarding:
# allowed and denied names (exact, wildcard, deny override, case, trailing
# dot), the 403 text, header forwarding minus hop-by-hop fields, Host/URI
# agreement, smuggling attempts and oversized heads refused by the strict
# parser, pipelining mixing allowed and denied requests, chunked bodies
# both ways, upstream keep-alive reuse, and the audit log.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use JSON::PP;
use IO::Socket::IP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $oport = $t->port('origin');
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.example'     => ['A 127.0.0.2'],
    'www.wild.example'    => ['A 127.0.0.2'],
    'deep.a.wild.example' => ['A 127.0.0.2'],
    'no.wild.example'     => ['A 127.0.0.2'],
    'wild.example'        => ['A 127.0.0.2'],
    'denied.example'      => ['A 127.0.0.2'],
});
my $origin = Test::Kapd::FakeHTTP->new($t, port => $oport, name => 'origin',
    addr => '127.0.0.2', handler => sub {
        my ($req) = @_;
        return (200, [], 'x' x $1) if $req->{target} =~ m{^/bytes/(\d+)};
        return;
    });

# a raw origin for chunked responses (FakeHTTP always sends Content-Length)
my $cport = $t->port('chunked');
my $cls = IO::Socket::IP->new(LocalHost => '127.0.0.2', LocalPort => $cport,
    Listen => 16, ReuseAddr => 1) or die "listen: $!";
$t->run_daemon(sub {
    while (my $c = $cls->accept) {
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            my $n = sysread($c, $buf, 4096, length $buf) or last;
        }
        syswrite($c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            . "Connection: close\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n"
            . "0\r\nX-Trailer: 1\r\n\r\n");
        close $c;
    }
});
close $cls;

# an origin that answers the first request of each connection and closes
# on the second one without answering (the keep-alive close race)
my $fport = $t->port('flaky');
my $fls = IO::Socket::IP->new(LocalHost => '127.0.0.2', LocalPort => $fport,
    Listen => 16, ReuseAddr => 1) or die "listen: $!";
$t->run_daemon(sub {
    my $n = 0;
    while (my $c = $fls->accept) {
        $n++;
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            sysread($c, $buf, 4096, length $buf) or last;
        }
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Conn: $n\r\n\r\nok");
        $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            sysread($c, $buf, 4096, length $buf) or last;
        }
        close $c;
    }
});
close $fls;

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["allowed.example:%%PORT_origin%%", "*.wild.example:%%PORT_origin%%",
             "127.0.0.2:%%PORT_origin%%", "allowed.example:%%PORT_chunked%%",
             "127.0.0.2:%%PORT_chunked%%", "allowed.example:%%PORT_flaky%%",
             "127.0.0.2:%%PORT_flaky%%"];
    deny = ["no.wild.example"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
audit_log: { path = "audit.jsonl"; };
http_connect: {
    listen = ["127.0.0.1:%%PORT_proxy%%"];
    max_header_size = "4k";
};
EOF
$t->run;
my $proxy = $t->port('proxy');

sub get {
    my ($url, @h) = @_;
    return http_parse(http_get($url, via => $proxy, headers => \@h));
}

# -- allowed / denied ---------------------------------------------------------
my $r = get("http://allowed.example:$oport/hello", 'X-Test: 1');
is($r && $r->{status}, 200, 'allowed name: 200 from the origin');
my $echo = $r && eval { decode_json($r->{body}) } || {};
is($echo->{target}, '/hello', 'origin got an origin-form target');
my %h = map { lc($_->[0]) => $_->[1] } @{$echo->{headers} // []};
is($h{host}, "allowed.example:$oport", 'Host forwarded as sent');
is($h{'x-test'}, '1', 'end-to-end header forwarded');

$r = get("http://denied.example:$oport/x");
is($r && $r->{status}, 403, 'name not on the allowlist: 403');
like($r && $r->{body}, qr/^kap: denied\.example is not on the allowlist \(denied by .+\)\.\nAdd it to network\.allow in kap\.conf, or see `kap why-denied`\.\n\z/,
     '403 body names the domain and how to allow it');
is($r && $r->{headers}{'content-type'}, 'text/plain; charset=utf-8', '403 is text/plain');

is(get("http://www.wild.example:$oport/")->{status}, 200, 'wildcard: subdomain');
is(get("http://deep.a.wild.example:$oport/")->{status}, 200, 'wildcard: deep subdomain');
is(get("http://wild.example:$oport/")->{status}, 403, 'wildcard does not match the apex');
is(get("http://no.wild.example:$oport/")->{status}, 403, 'deny overrides a wildcard allow');
$r = http_parse(http_raw($proxy, "GET http://ALLOWED.Example.:$oport/ HTTP/1.1\r\n"
    . "Host: allowed.example:$oport\r\nConnection: close\r\n\r\n"));
is($r && $r->{status}, 200, 'case and one trailing dot ignored');
is(get("http://allowed.example:1/")->{status}, 403, 'allowed name on an unlisted port');

# -- hop-by-hop fields --------------------------------------------------------
$r = get("http://allowed.example:$oport/hop", 'Connection: X-Secret',
         'X-Secret: s1', 'Proxy-Authorization: Basic Zm9vOmJhcg==',
         'Keep-Alive: 5', 'TE: trailers', 'Upgrade: h2c',
         'Proxy-Connection: keep-alive', 'X-Kept: yes');
$echo = $r && eval { decode_json($r->{body}) } || {};
%h = map { lc($_->[0]) => $_->[1] } @{$echo->{headers} // []};
ok(!grep({ exists $h{$_} } qw/x-secret proxy-authorization keep-alive te upgrade proxy-connection/),
   'hop-by-hop fields and fields named in Connection are removed');
is($h{'x-kept'}, 'yes', 'other fields are kept');

# -- Host/URI agreement and parser refusals -----------------------------------
sub raw_status {
    my ($req) = @_;
    my $resp = http_raw($proxy, $req, timeout => 5);
    my $p = http_parse($resp);
    return $p ? $p->{status} : 'none';
}
is(raw_status("GET http://allowed.example:$oport/ HTTP/1.1\r\nHost: denied.example\r\n\r\n"),
   400, 'Host differs from the URI host: 400');
is(raw_status("GET http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n"),
   400, 'Host differs from the URI port: 400');
is(raw_status("GET / HTTP/1.1\r\nHost: allowed.example\r\n\r\n"), 400,
   'origin-form request to the proxy: 400');
is(raw_status("POST http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\r\n"
    . "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400,
   'smuggling: CL + TE refused');
is(raw_status("POST http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\r\n"
    . "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400,
   'smuggling: duplicate Content-Length refused');
is(raw_status("POST http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\r\n"
    . "Content-Length: 1, 1\r\n\r\na"), 400, 'smuggling: Content-Length list refused');
is(raw_status("POST http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\r\n"
    . "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"), 400,
   'smuggling: chunked not final refused');
is(raw_status("GET http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\r\n"
    . "X-A: 1\r\n X-B: 2\r\n\r\n"), 400, 'obs-fold refused');
is(raw_status("GET http://allowed.example:$oport/ HTTP/1.1\r\nHost : allowed.example\r\n\r\n"),
   400, 'whitespace before the colon refused');
is(raw_status("GET http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\nX: 1\r\n\r\n"),
   400, 'bare LF refused');
is(raw_status("GET http://allowed.example:$oport/ HTTP/2.0\r\nHost: allowed.example\r\n\r\n"),
   505, 'HTTP/2.0 request line: 505');
is(raw_status("GET http://user:pw\@allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\r\n\r\n"),
   400, 'userinfo in the URI refused');
is(raw_status("GET https://allowed.example/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n"),
   501, 'https absolute-form: 501');
is(raw_status("GET http://allowed.example:$oport/" . ('a' x 5000) . " HTTP/1.1\r\n\r\n"),
   414, 'request line over the limit: 414');
is(raw_status("GET http://allowed.example:$oport/ HTTP/1.1\r\nHost: allowed.example:$oport\r\n"
    . join('', map { "X-$_: " . ('v' x 100) . "\r\n" } 1 .. 60) . "\r\n"), 431,
   'header section over the limit: 431');
ok(!grep({ ($_->{method} // '') eq 'POST' } requests()),
   'no refused POST reached the origin');

# -- bodies -------------------------------------------------------------------
$r = http_parse(http_raw($proxy, "POST http://allowed.example:$oport/post HTTP/1.1\r\n"
    . "Host: allowed.example:$oport\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    . "4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n"));
$echo = $r && eval { decode_json($r->{body}) } || {};
is($echo->{body}, 'wikipedia', 'chunked request body streamed to the origin');
$r = http_parse(http_get("http://allowed.example:$cport/chunked", via => $proxy));
is($r && $r->{body}, 'hello world', 'chunked response body relayed');
$r = http_raw($proxy, "GET http://allowed.example:$cport/chunked HTTP/1.0\r\n\r\n");
like($r // '', qr/\r\n\r\nhello world\z/, 'chunked response de-chunked for an HTTP/1.0 client');
$r = http_parse(http_get("http://allowed.example:$oport/bytes/200000", via => $proxy));
is(length($r && $r->{body} // ''), 200000, 'large response body streamed');

# -- pipelining, allowed and denied mixed ---------------------------------------
$r = http_raw($proxy,
      "GET http://allowed.example:$oport/p1 HTTP/1.1\r\nHost: allowed.example:$oport\r\n\r\n"
    . "GET http://denied.example:$oport/p2 HTTP/1.1\r\nHost: denied.example:$oport\r\n\r\n"
    . "GET http://allowed.example:$oport/p3 HTTP/1.1\r\nHost: allowed.example:$oport\r\n"
    . "Connection: close\r\n\r\n", timeout => 5);
my @st = ($r // '') =~ m{HTTP/1\.1 (\d{3}) }g;
is("@st", '200 403 200', 'pipelined requests answered in order: allowed, denied, allowed');
like($r // '', qr{"target":"/p3"}, 'the request after a denied one reached the origin');
ok(!grep({ ($_->{target} // '') eq '/p2' } requests()), 'the denied request did not');

# -- keep-alive reuse of the upstream -----------------------------------------------
my $s = tcp_connect($proxy);
my ($peer1, $peer2);
for my $i (1, 2) {
    my $resp = http_raw($s, "GET http://allowed.example:$oport/ka$i HTTP/1.1\r\n"
        . "Host: allowed.example:$oport\r\n\r\n", one => 1);
    my $p = http_parse($resp);
    my $e = $p && eval { decode_json($p->{body}) } || {};
    ($i == 1 ? $peer1 : $peer2) = $e->{peer};
}
ok($peer1 && $peer2 && $peer1 eq $peer2, 'upstream connection reused for keep-alive');
close $s;

# the pooled upstream closes when it is reused: the proxy dials again
$s = tcp_connect($proxy);
my @conn;
for my $i (1, 2) {
    my $p = http_parse(http_raw($s, "GET http://allowed.example:$fport/r$i HTTP/1.1\r\n"
        . "Host: allowed.example:$fport\r\n\r\n", one => 1));
    push @conn, $p ? "$p->{status}/" . ($p->{headers}{'x-conn'} // '') : 'none';
}
is("@conn", '200/1 200/2', 'closed pooled upstream: the request is retried on a new connection');
close $s;

# -- audit ------------------------------------------------------------------------
my @audit = audit();
my @den = grep { ($_->{action} // '') eq 'denied' } @audit;
ok(grep({ ($_->{subject} // '') eq 'denied.example' && ($_->{reason} // '') ne '' } @den),
   'denied name audited with a reason');
ok(grep({ ($_->{subject} // '') eq 'no.wild.example' } @den), 'deny-override audited');
ok(grep({ ($_->{reason} // '') =~ /Host header/ } @den), 'Host mismatch audited');
ok(!grep({ !defined $_->{reason} || $_->{reason} eq '' } @den),
   'every denial carries a reason');

$t->done_testing;

sub requests {
    my $c = $t->read_file('fakehttp-origin.requests') // '';
    return map { eval { decode_json($_) } || () } split /\n/, $c;
}

sub audit {
    my $c = $t->read_file('audit.jsonl') // '';
    return map { eval { decode_json($_) } || () } split /\n/, $c;
}
