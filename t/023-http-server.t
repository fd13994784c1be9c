#!/usr/bin/perl
# 023-http-server.t -- the core's HTTP/1.1 server layer (kap_http_server.h)
# through the test module test_http, over real sockets.
#
# Keep-alive and pipelining (answers in request order, one answered later
# from a timer), request bodies by Content-Length and chunked, HEAD,
# local error pages in JSON (escaped) and their Connection rules, 400 for
# ambiguous framing, 413 over max_body with a lingering close (the client
# still sending its body reads the answer, no reset), 408 for a slow head,
# idle keep-alive closed quietly, header injection refused, chunked
# streaming, and the SSE writer: a reader that does not read holds the
# producer at the high-water mark (kapd's queue stays bounded) while
# other clients are served at once; when it reads, every event arrives
# whole and in order, a payload's line break included; a client that
# leaves mid-stream or before a late answer is noticed (on_abort).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('test_http');
$t->plan(45);

my $hw = 8192;
my $itmo = kapd_tmo(2);
$t->write_conf(<<"EOF");
kapd: {
    load = ["test_http"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
test_http: {
    listen = ["127.0.0.1:%%PORT_http%%"];
    errors = "json";
    header_timeout = 1;
    idle_timeout = $itmo;
    write_timeout = 30;
    max_body = 1000;
    high_water = $hw;
    max_per_client = 10;
};
EOF
ok($t->try_run, 'kapd serves test_http') or diag($t->{run_error});
my $port = $t->port('http');

sub send_all {
    my ($s, $data) = @_;
    while (length $data) {
        my $n = syswrite($s, $data);
        return 0 unless $n;
        substr($data, 0, $n) = '';
    }
    return 1;
}

# read until EOF or the deadline: [bytes, eof seen, reset seen]
sub read_all {
    my ($s, $tmo) = @_;
    my ($buf, $eof, $reset) = ('', 0, 0);
    my $deadline = time + kapd_tmo($tmo // 5);
    my $sel = IO::Select->new($s);
    while (time < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, $buf, 65536, length $buf);
        if (!defined $n) { $reset = 1; last; }
        if ($n == 0) { $eof = 1; last; }
    }
    return [$buf, $eof, $reset];
}

# read until n complete responses are in the buffer (or the deadline)
sub read_responses {
    my ($s, $n, $tmo) = @_;
    my $buf = '';
    my $deadline = time + kapd_tmo($tmo // 5);
    my $sel = IO::Select->new($s);
    while (time < $deadline) {
        my @r = split_responses($buf);
        return @r if @r >= $n;
        next unless $sel->can_read(0.1);
        my $got = sysread($s, $buf, 65536, length $buf);
        last unless $got;
    }
    return split_responses($buf);
}

# whole responses (Content-Length or chunked framed) at the front of buf
sub split_responses {
    my ($buf) = @_;
    my @out;
    while ($buf =~ /\A(HTTP\/1\.\d [^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n)/) {
        my $head = $1;
        my $rest = substr($buf, length $head);
        my $body;
        if ($head =~ /^Content-Length: (\d+)\r$/mi) {
            last if length($rest) < $1;
            $body = substr($rest, 0, $1);
            $rest = substr($rest, $1);
        } elsif ($head =~ /^Transfer-Encoding: chunked\r$/mi) {
            $body = '';
            my $ok = 0;
            while ($rest =~ s/\A([0-9a-f]+)\r\n//) {
                my $n = hex $1;
                if ($n == 0) { $ok = $rest =~ s/\A\r\n//; last; }
                $body .= substr($rest, 0, $n);
                substr($rest, 0, $n + 2) = '';
            }
            last unless $ok;
        } else {
            $body = '';
        }
        push @out, { head => $head, body => $body,
                     status => ($head =~ /^HTTP\/1\.\d (\d{3})/)[0] };
        $buf = $rest;
    }
    return @out;
}

sub stats {
    my $r = http_parse(http_raw($port, "GET /stats HTTP/1.1\r\nHost: x\r\n"
                                       . "Connection: close\r\n\r\n"));
    my %h = ($r ? $r->{body} : '') =~ /"(\w+)":(\d+)/g;
    return \%h;
}

# -- keep-alive, pipelining, late answers, bodies -------------------------------
my $s = tcp_connect($port);
send_all($s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
           . "GET /later/200 HTTP/1.1\r\nHost: x\r\n\r\n"
           . "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
           . "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           . "\r\n3\r\nfoo\r\n4\r\nbar!\r\n0\r\n\r\n");
my @r = read_responses($s, 4);
is(scalar(@r), 4, 'four pipelined answers on one connection');
is(join(',', map { $_->{body} } @r), "hello\n,later\n,abcde,foobar!",
   'in request order, the late one too; CL and chunked bodies read whole');
like($r[0]{head}, qr/^X-Test: 1\r$/m, 'a header the module added is sent');
like($r[0]{head}, qr/^Connection: keep-alive\r$/m, 'keep-alive said');
send_all($s, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
           . "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
my $last = read_all($s);
my ($hhead, $hrest) = split /\r\n\r\n/, $last->[0], 2;
ok($hhead =~ /\AHTTP\/1\.1 200 OK\r\n/ && $hhead =~ /^Content-Length: 6\r?$/m
   && ($hrest // '') =~ /\AHTTP\/1\.1 200 OK\r\n/,
   'HEAD: the head with the length, no body (the next answer follows it)');
ok($last->[1] && $last->[0] =~ /Connection: close\r\n\r\nhello\n\z/,
   'Connection: close from the client: answered, then EOF');
close $s;

# HTTP/1.0 without keep-alive: one answer, then EOF
$last = read_all(do {
    my $c = tcp_connect($port);
    send_all($c, "GET /hello HTTP/1.0\r\n\r\n");
    $c;
});
ok($last->[1] && $last->[0] =~ /^HTTP\/1\.1 200.*Connection: close\r\n/s,
   'HTTP/1.0 gets close');

# -- connection limits: the 11th connection from one client is refused ----------
{
    my @held = map { tcp_connect($port) } 1 .. 10;
    my $extra = tcp_connect($port);
    my $got = read_all($extra, 3);
    ok($got->[1] && $got->[0] =~ /^HTTP\/1\.1 429 .*too many connections from this client/s,
       'over max_per_client: 429, then closed at once')
        or diag("got '$got->[0]'");
    close $_ for @held, $extra;
    ok(Test::Kapd::wait_until(sub {
           my $r = http_raw($port, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
           defined $r && $r =~ /\r\n\r\nhello\n\z/ }, kapd_tmo(5)),
       'once they are closed, the client is served again');
}

# -- error pages ------------------------------------------------------------------
my $e = http_parse(http_raw($port, "GET /error/404 HTTP/1.1\r\nHost: x\r\n"
                                   . "Connection: close\r\n\r\n"));
is($e->{status}, 404, 'kap_http_error: the status');
is($e->{headers}{'content-type'}, 'application/json', 'JSON error format');
is($e->{body}, qq({"error":"test error \\"404\\"","status":404}\n),
   'the message escaped inside the JSON');
$s = tcp_connect($port);
send_all($s, "GET /error/404 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\n"
           . "Host: x\r\nConnection: close\r\n\r\n");
@r = read_responses($s, 2);
ok(@r == 2 && $r[0]{status} == 404 && $r[1]{body} eq "hello\n",
   'a 404 keeps the connection: the next request is answered');
close $s;
$s = tcp_connect($port);
send_all($s, "GET /error/400 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\n"
           . "Host: x\r\n\r\n");
$last = read_all($s);
ok($last->[1] && $last->[0] =~ /^HTTP\/1\.1 400 .*Connection: close/s
   && $last->[0] !~ /hello/, 'a 400 closes: the pipelined request is not run');
close $s;
$e = http_raw($port, "GET /nothere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
like($e, qr/^HTTP\/1\.1 404 Not Found\r\n/, 'an unknown route: 404');
my $inj = http_parse(http_raw($port, "GET /header-inject HTTP/1.1\r\nHost: x\r\n"
                                     . "Connection: close\r\n\r\n"));
is($inj->{body}, "refused\n",
   'a header value with CR LF and a framing header are refused');

# -- malformed and oversized requests ---------------------------------------------
$last = read_all(do {
    my $c = tcp_connect($port);
    send_all($c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
               . "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    $c;
});
ok($last->[1] && $last->[0] =~ /^HTTP\/1\.1 400 .*"status":400/s,
   'CL with TE: 400 in JSON, then EOF');
$last = read_all(do {
    my $c = tcp_connect($port);
    send_all($c, "GET /hello HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n");
    $c;
});
like($last->[0], qr/^HTTP\/1\.1 400 /, 'two Host fields: 400');

# 413 while the client is still sending: it reads the answer, no reset
$s = tcp_connect($port);
send_all($s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n");
my $sent = 0;
my $wsel = IO::Select->new($s);
my $deadline = time + kapd_tmo(3);
while ($sent < 200000 && time < $deadline) {
    next unless $wsel->can_write(0.1);
    my $n = syswrite($s, 'z' x 16384);
    last unless $n;
    $sent += $n;
}
$last = read_all($s);
ok($last->[0] =~ /^HTTP\/1\.1 413 .*request body too large/s && !$last->[2],
   '413 over max_body, read by a client still sending (lingering close)')
    or diag("reset=$last->[2] got: " . substr($last->[0], 0, 200));
close $s;

# chunked body over max_body: 413 too
$last = read_all(do {
    my $c = tcp_connect($port);
    send_all($c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
               . "\r\n\r\n" . ("100\r\n" . ('q' x 256) . "\r\n") x 5 . "0\r\n\r\n");
    $c;
});
like($last->[0], qr/^HTTP\/1\.1 413 /, 'a chunked body over max_body: 413');

# -- timeouts ------------------------------------------------------------------------
$s = tcp_connect($port);
send_all($s, "GET /hello HTTP/1.1\r\nHost: x\r\n");   # never ends its head
my $t0 = time;
$last = read_all($s, 5);
ok($last->[1] && $last->[0] =~ /^HTTP\/1\.1 408 /,
   'a head not finished within header_timeout: 408, then EOF');
close $s;
$s = tcp_connect($port);
send_all($s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
@r = read_responses($s, 1);
$t0 = time;
$last = read_all($s, 10);
my $took = time - $t0;
ok($last->[1] && $last->[0] eq '' && $took > $itmo * 0.8,
   'an idle keep-alive connection is closed quietly after idle_timeout')
    or diag("took $took, got '$last->[0]'");
close $s;

# -- chunked streaming -----------------------------------------------------------------
my $st = http_parse(http_raw($port, "GET /stream/1000 HTTP/1.1\r\nHost: x\r\n"
                                    . "Connection: close\r\n\r\n"));
is($st->{headers}{'transfer-encoding'}, 'chunked', 'a stream is chunked');
is($st->{body}, join('', map { "line $_\n" } 0 .. 999),
   '1000 streamed lines arrive whole and in order');
$st = http_raw($port, "GET /stream/3 HTTP/1.0\r\n\r\n");
ok($st =~ /\r\n\r\nline 0\nline 1\nline 2\n\z/ && $st !~ /chunked/i,
   'HTTP/1.0: the stream is delimited by the close');

# -- SSE with a slow reader -------------------------------------------------------------
# 20 MB: more than the kernel's socket buffers hold, so kapd must queue
my $n_ev = 20000;
my $size = 1000;
my $slow = tcp_connect($port);
send_all($slow, "GET /sse/$n_ev/$size HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
# the producer must stall: wait until kapd's queue has reached high water
my $stalled = Test::Kapd::wait_until(sub { stats()->{max_queued} >= $hw }, kapd_tmo(5));
ok($stalled, 'the producer filled the queue to high water');
my $before = stats();
# other clients are served meanwhile, at once
my $t1 = time;
my $h = http_parse(http_raw($port, "GET /hello HTTP/1.1\r\nHost: x\r\n"
                                   . "Connection: close\r\n\r\n"));
is($h->{body}, "hello\n", 'another client is served while the SSE reader sleeps');
my $after = stats();
is($after->{sse_done}, 0, 'the stream is not finished: the producer waits');
my $ev_len = length(qq({"i":9999,\n"pad":"")) + $size + 2;
ok($after->{max_queued} <= $hw + 2 * ($ev_len + 64),
   "kapd's queue stays at high water (+ one event), not 20 MB")
    or diag("max_queued $after->{max_queued}");
# now read everything
my $all = read_all($slow, 60);
ok($all->[1], 'the SSE stream ends');
my ($shead, $sbody) = split /\r\n\r\n/, $all->[0], 2;
like($shead, qr/^Content-Type: text\/event-stream\r$/m, 'SSE content type');
like($shead, qr/^Cache-Control: no-store\r$/m, 'SSE is not cached');
# undo the chunked framing, then parse events
my $events = '';
while ($sbody =~ s/\A([0-9a-f]+)\r\n//) {
    my $n = hex $1;
    last if $n == 0;
    $events .= substr($sbody, 0, $n);
    substr($sbody, 0, $n + 2) = '';
}
my @ev = split /\n\n/, $events;
is(scalar(@ev), $n_ev + 1, 'every event arrived');
my $good = 1;
for my $i (0 .. $n_ev - 1) {
    my $data = join("\n", map { s/^data: //r } grep { /^data: / } split /\n/, $ev[$i]);
    if ($data ne qq({"i":$i,\n"pad":") . ('x' x $size) . '"}') {
        $good = 0;
        diag("event $i: " . substr($ev[$i], 0, 80));
        last;
    }
}
ok($good, 'in order, whole, the line break inside a payload kept');
is($ev[-1], "event: end\nid: last\ndata: done", 'the last event has event and id');
ok(Test::Kapd::wait_until(sub { stats()->{sse_done} == 1 }, kapd_tmo(5)),
   'the producer finished');

# -- clients that leave ---------------------------------------------------------------
my $ab0 = stats()->{aborts};
$s = tcp_connect($port);
send_all($s, "GET /sse/100000/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
Test::Kapd::wait_until(sub { IO::Select->new($s)->can_read(0.05) }, kapd_tmo(5));
close $s;
ok(Test::Kapd::wait_until(sub { stats()->{aborts} == $ab0 + 1 }, kapd_tmo(5)),
   'a reader that leaves mid-stream: on_abort, the producer stops');
my $rq0 = stats()->{requests};
$s = tcp_connect($port);
send_all($s, "GET /later/3000 HTTP/1.1\r\nHost: x\r\n\r\n");
# each stats() counts itself: one more means /later has arrived
Test::Kapd::wait_until(sub { stats()->{requests} > $rq0 + 1 }, kapd_tmo(5));
close $s;
ok(Test::Kapd::wait_until(sub { stats()->{aborts} == $ab0 + 2 }, kapd_tmo(5)),
   'a client that leaves before a late answer: on_abort');
ok($t->is_running, 'kapd still runs');
$t->stop;
is($t->exit_code, 0, 'kapd exits cleanly');

# -- the same layer over TLS ------------------------------------------------------------
SKIP: {
    my ($rc) = Test::Kapd::_capture('sh', '-c', 'command -v openssl && command -v curl');
    skip 'openssl or curl is missing', 4 if $rc != 0;
    my $dir = $t->path('tls');
    mkdir $dir;
    mkdir "$dir/key", 0700;
    chmod 0700, "$dir/key";
    $t->write_file('tls/ext.cnf', "subjectAltName=IP:127.0.0.1\n");
    my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes');
    my ($r1, $o1) = Test::Kapd::_capture('openssl', 'req', '-x509', @ec, '-keyout',
        "$dir/ca.key", '-out', "$dir/ca.pem", '-days', '2', '-subj', '/CN=kap test CA');
    my ($r2, $o2) = Test::Kapd::_capture('openssl', 'req', @ec, '-keyout',
        "$dir/key/key.pem", '-out', "$dir/srv.csr", '-subj', '/CN=127.0.0.1');
    my ($r3, $o3) = Test::Kapd::_capture('openssl', 'x509', '-req', '-in', "$dir/srv.csr",
        '-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key", '-CAcreateserial', '-out',
        "$dir/cert.pem", '-days', '2', '-extfile', "$dir/ext.cnf");
    chmod 0600, "$dir/key/key.pem";
    $r1 + $r2 + $r3 == 0 or BAIL_OUT("openssl: $o1 $o2 $o3");
    $t->write_conf(<<"EOT", 'tls.conf');
kapd: {
    load = ["test_http"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
test_http: {
    listen = ["127.0.0.1:%%PORT_https%%"];
    cert = "tls/cert.pem";
    key = "tls/key/key.pem";
    high_water = $hw;
};
EOT
    ok($t->try_run(conf => 'tls.conf'), 'kapd serves test_http over TLS')
        or diag($t->{run_error});
    my $u = 'https://127.0.0.1:' . $t->port('https');
    # two requests on one TLS connection (curl reuses it), a POST body,
    # and 4 MB of SSE through TLS with the producer held at high water
    my (undef, $out) = Test::Kapd::_capture('curl', '-sS', '--max-time', kapd_tmo(30),
        '--cacert', "$dir/ca.pem", "$u/hello", "$u/later/50", '--next', '--cacert',
        "$dir/ca.pem", '--data-binary', 'tls body', '-H',
        'Content-Type: application/octet-stream', "$u/echo");
    is($out, "hello\nlater\ntls body", 'over TLS: keep-alive, a late answer, a body');
    my (undef, $sse) = Test::Kapd::_capture('curl', '-sS', '--max-time', kapd_tmo(60),
        '--cacert', "$dir/ca.pem", "$u/sse/4000/1000");
    my @tev = grep { /^data: \{"i":/ } split /\n/, $sse;
    ok(@tev == 4000 && $tev[-1] eq 'data: {"i":3999,', '4000 SSE events over TLS, in order')
        or diag(scalar(@tev) . ' events; ' . substr($sse, -200));
    $t->stop;
    is($t->exit_code, 0, 'kapd over TLS exits cleanly');
}
$t->finish;
