#!/usr/bin/perl
# 014-curl-stream.t -- kap_curl_stream() (core/include/kapd/kap_curl.h)
# end to end, through the test_hooks line protocol ("STREAM url [timeout
# [mode [max_bytes]]]", "RESUME", "GO").
#
# An origin on 127.0.0.2 (FakeHTTP, bodies in pieces over time) is
# streamed through kapd.  Checked: the head and the first event reach the
# module before the origin has finished; the timeout covers only the time
# to the head, so an idle SSE stream with gaps longer than it is not cut,
# while an origin that never answers is; backpressure: a paused stream
# stops kapd reading the origin (its writes block far short of the body)
# and nothing more is handed over until the module resumes; a module that
# stops (KAP_ERROR) or closes its connection inside the body callback ends
# the transfer and the upstream connection; a body cut short is an error
# after the head; the address questions, the pinning and no-redirects
# apply to a stream exactly as to a whole fetch; the body limit.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use Time::HiRes qw(sleep time);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(40);

my $o = $t->port('origin');
# the head timeout and the gaps of the slow stream, scaled for slow builds
my $u = kapd_tmo(1);
my $bulk = 48 * 1024 * 1024;
my $progress = $t->testdir . '/bulk.progress';
my $sse = ['Content-Type' => 'text/event-stream'];
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin',
    addr => '127.0.0.2',
    handler => sub {
        my ($req) = @_;
        my $tg = $req->{target};
        return (200, $sse, ["data: one\n\n", { sleep => 1.5 * $u },
                            "data: two\n\n", { sleep => 1.5 * $u },
                            "data: three\n\n"]) if $tg eq '/sse';
        return (200, $sse, ["data: a\n\n", { sleep => 0.3 }, "data: b\n\n",
                            { sleep => 0.3 }, "data: c\n\n", { hang => 1 }])
            if $tg eq '/forever';
        return (200, $sse, ["data: a\n\n", { sleep => 0.2 }, { close => 1 }])
            if $tg eq '/cut';
        return (200, [], [{ bulk => $bulk, progress => $progress }])
            if $tg eq '/bulk';
        return (200, [], 'x' x $1) if $tg =~ m{^/bytes/(\d+)$};
        return (204, [], '') if $tg eq '/empty';
        return (200, $sse, ["data: one\n\n", { sleep => 0.1 },
                            "data: two\n\n"]) if $tg eq '/quick';
        if ($tg eq '/slow-head') { sleep 30; return () }
        return (302, [Location => "http://ok.curl.test:$o/sse"], "moved\n")
            if $tg eq '/redirect';
        return ();
    });
my $bad = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'bad',
                                    addr => '127.0.0.1');
# a TLS origin that would take HTTP/2 if it were offered
my $tls = Test::Kapd::FakeHTTP->new($t, port => $t->port('tls'),
    name => 'tls', addr => '127.0.0.2', tls => 1,
    cert_names => ['ok.curl.test'], alpn => ['h2', 'http/1.1'],
    handler => sub { return (200, $sse, ["data: tls\n\n"]) });
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), ttl => 0,
    zone => {
        'ok.curl.test' => ['A 127.0.0.2'],
        'lo.curl.test' => ['A 127.0.0.1'],
    });

$t->write_conf(<<'EOF');
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: { allow = ["*.curl.test", "127.0.0.2:%%PORT_origin%%",
                    "127.0.0.2:%%PORT_tls%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "decline"; };
EOF
$t->run;

my $base = "http://ok.curl.test:$o";

sub pending {
    my $s = tcp_connect($t->port('hooks')) or return -1;
    my $r = line_cmd($s, 'FETCHING', 5) // '';
    close $s;
    return $r =~ /^(\d+)/ ? $1 : -1;
}

sub origin_conns {
    my $out = `ss -Htn state established dst 127.0.0.2 dport = :$o 2>/dev/null`;
    return scalar grep { /\S/ } split /\n/, $out;
}

sub send_line {
    my ($s, $l) = @_;
    syswrite($s, "$l\n");
}

# every line until DONE or STREAM-ERROR (or the timeout), with arrival times
sub stream_lines {
    my ($s, $tmo) = @_;
    my @l;
    while (defined(my $l = read_line($s, $tmo))) {
        push @l, [time, $l];
        last if $l =~ /^(?:DONE|STREAM-ERROR|ERR) /;
    }
    return @l;
}

# -- events arrive as they are sent; the head timeout does not cut gaps -----
my $s = tcp_connect($t->port('hooks'));
my $t0 = time;
send_line($s, "STREAM $base/sse $u");
my @l = stream_lines($s, 10);
my @txt = map { $_->[1] } @l;
like($txt[0] // '', qr{^HEAD 200 \d+ text/event-stream$},
     'the head: status and Content-Type') or diag explain \@txt;
# the origin waits 1.5 units after each event: held back until the end,
# all three would arrive together; handed over as they come, the first
# arrives at least two gaps' worth (3 units, less slack) before the last
my ($first) = grep { $_->[1] =~ /^DATA \d+ data: one/ } @l;
my ($last) = grep { $_->[1] =~ /^DATA \d+ .*three/ } @l;
ok($first && $last && $last->[0] - $first->[0] >= 2 * $u,
   sprintf('the first event is handed over before the origin has finished (%.2f s before the last)',
           $first && $last ? $last->[0] - $first->[0] : -1));
is(join('', map { /^DATA \d+ (.*)$/ ? $1 : '' } @txt),
   'data: one..data: two..data: three..', 'every event, in order, nothing more');
like($txt[-1] // '', qr/^DONE 200 35$/,
     'done after gaps of 1.5 s with a 1 s timeout: an idle stream is not cut');
ok($l[-1][0] - $t0 >= 2.9 * $u, 'and it lasted as long as the origin took');
close $s;

# -- the timeout to the head --------------------------------------------------
$s = tcp_connect($t->port('hooks'));
$t0 = time;
send_line($s, "STREAM $base/slow-head $u");
@txt = map { $_->[1] } stream_lines($s, 10);
is_deeply(\@txt, ["STREAM-ERROR 0 timeout after $u s"],
          'no head within the timeout: an error, nothing handed over');
ok(time - $t0 >= 0.9 * $u, 'at the timeout, not before');
close $s;
ok(wait_until(sub { pending() == 0 }, kapd_tmo(3)), 'the transfer released');

# -- backpressure ------------------------------------------------------------
unlink $progress;
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/bulk 5 pause");
like(read_line($s, 10) // '', qr/^HEAD 200 /, 'bulk: the head (answered pause)');
my $read_progress = sub {
    open my $fh, '<', $progress or return 0;
    my $v = <$fh> // 0;
    chomp $v;
    return $v;
};
# the origin writes until TCP flow control stops it; wait until it is stuck
my ($last, $still) = (-1, 0);
wait_until(sub {
    my $p = $read_progress->();
    if ($p == $last) { $still++ } else { ($last, $still) = ($p, 0) }
    return $still >= 5;
}, kapd_tmo(20), 0.2);
my $stuck = $read_progress->();
ok($stuck > 0 && $stuck < $bulk / 2,
   "paused: the origin's writes block ($stuck of $bulk bytes written)");
is(read_line($s, 0.3), undef, 'paused: nothing handed over meanwhile');
send_line($s, 'RESUME');
like(read_line($s, 5) // '', qr/^DATA (\d+) x+$/, 'RESUME: one piece');
is(read_line($s, 0.3), undef, 'then paused again');
send_line($s, 'GO');
my $got = 0;
my $end = '';
while (defined(my $l = read_line($s, 30))) {
    if ($l =~ /^DATA (\d+) /) { $got += $1; next }
    $end = $l;
    last;
}
is($end, "DONE 200 $bulk", 'GO: the rest, to the last byte');
is($read_progress->(), $bulk, 'the origin wrote everything');
close $s;

# -- a paused stream whose client goes away -----------------------------------
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/forever 5 pause");
like(read_line($s, 5) // '', qr/^HEAD 200 /, 'paused stream: the head');
is(pending(), 1, 'one transfer pending');
close $s;
ok(wait_until(sub { pending() == 0 }, kapd_tmo(3)),
   'client gone while paused: the transfer released');
ok(wait_until(sub { origin_conns() == 0 }, kapd_tmo(3)),
   'and its upstream connection closed');

# -- the module stops, or closes its connection, inside the body callback ------
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/forever 5 stop");
@txt = map { $_->[1] } stream_lines($s, 5);
like(join('|', @txt), qr{^HEAD 200 \d+ text/event-stream\|DATA 9 data: a\.\.\|STREAM-ERROR 200 stopped by the caller$},
     'KAP_ERROR from the body callback: ends with an error');
close $s;
ok(wait_until(sub { origin_conns() == 0 }, kapd_tmo(3)),
   'and the upstream connection is closed');

$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/forever 5 close");
like(read_line($s, 5) // '', qr/^HEAD 200 /, 'close mode: the head');
like(read_line($s, 5) // '', qr/^DATA 9 /, 'the first piece');
is(read_line($s, 5), undef, 'then the module closed its connection');
ok(wait_until(sub { pending() == 0 && origin_conns() == 0 }, kapd_tmo(3)),
   'closed inside the callback: transfer and upstream released');
ok($t->is_running, 'kapd is still running');

# -- a body cut short -----------------------------------------------------------
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/cut 5");
@txt = map { $_->[1] } stream_lines($s, 5);
is($txt[1] // '', 'DATA 9 data: a..', 'cut: the piece before the cut');
like($txt[-1] // '', qr/^STREAM-ERROR 200 \S/,
     'the cut is an error, with the status already handed over');
close $s;

# -- the same rules as a whole fetch --------------------------------------------
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM http://lo.curl.test:$o/sse 5");
@txt = map { $_->[1] } stream_lines($s, 5);
like($txt[0] // '', qr/^STREAM-ERROR 0 address 127\.0\.0\.1 of lo\.curl\.test refused: \S/,
     'a name resolving to 127.0.0.1: refused before anything');
is($bad->connections, 0, 'the origin on 127.0.0.1 never saw a connection');
close $s;

$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM http://127.0.0.1:$o/sse 5");
like(read_line($s, 5) // '', qr/^STREAM-ERROR 0 address 127\.0\.0\.1 of 127\.0\.0\.1 refused/,
     'a literal 127.0.0.1: refused');
close $s;

my $n0 = $origin->count;
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/redirect 5");
@txt = map { $_->[1] } stream_lines($s, 5);
like($txt[0] // '', qr/^HEAD 302 /, 'a redirect is the answer');
like($txt[-1] // '', qr/^DONE 302 6$/, 'with its own body');
close $s;
sleep 0.3;    # a window for a fetch that must NOT happen (nothing to poll for)
is($origin->count, $n0 + 1, 'its Location is not fetched');

$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/bytes/5000 5 go 1000");
@txt = map { $_->[1] } stream_lines($s, 5);
like($txt[-1] // '', qr/^STREAM-ERROR 200 response body over the size limit/,
     'over max_body: an error');
close $s;
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/bytes/1000 5 go 1000");
@txt = map { $_->[1] } stream_lines($s, 5);
is($txt[-1] // '', 'DONE 200 1000', 'at max_body: done');
close $s;

# a head and no body (a pause asked at the head does not hold done back)
$s = tcp_connect($t->port('hooks'));
send_line($s, "STREAM $base/empty 5 pause");
@txt = map { $_->[1] } stream_lines($s, 5);
like(join('|', @txt), qr/^HEAD 204 \d+ application\/json\|DONE 204 0$/,
     'no body: the head, then done');
close $s;

# -- a stream is HTTP/1.1: pausing it must not hold back multiplexed transfers
$s = tcp_connect($t->port('hooks'));
send_line($s, 'STREAM https://ok.curl.test:' . $t->port('tls') . '/s 5 go 0 '
              . $tls->cert);
@txt = map { $_->[1] } stream_lines($s, 5);
is(join('|', @txt), 'HEAD 200 ' . ($txt[0] =~ /^HEAD 200 (\d+)/ ? $1 : '?')
                    . ' text/event-stream|DATA 11 data: tls..|DONE 200 11',
   'https stream: streamed');
is(($tls->requests->[-1] // {})->{alpn}, 'http/1.1',
   'over HTTP/1.1, though the origin takes h2');
close $s;

# -- a whole fetch still works the old way ------------------------------------------
$s = tcp_connect($t->port('hooks'));
like(line_cmd($s, "FETCH $base/quick", 10) // '',
     qr/^FETCHED 200 22 \d+ data: one\.\.data: two\.\.$/,
     'FETCH of a stream in pieces: the whole body at the end');
close $s;

$t->stop;
