#!/usr/bin/perl
# 510-remote-ws.t -- WS /ws/logs of the remote module over real sockets:
# the RFC 6455 handshake (good and bad key, version, missing upgrade),
# auth by subprotocol (none, bad, revoked while open, token in the query
# refused), Origin, the catch-up window and live events (a request
# denied by http_connect in the same kapd, lines appended to a followed
# file), the denied filter, frames (unmasked, oversized, ping/pong,
# close), a slow reader closed with 1008 without kapd growing, and 200
# sockets open while a normal request is still served.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapWS;
use Digest::SHA qw(sha256_hex hmac_sha256_hex);
use IO::Select;
use IO::Socket::UNIX;
use Time::HiRes qw(time);
use JSON::PP;
use IO::Socket::INET;

my $t = Test::Kapd->new->has_kapd->has_module('remote')
                       ->has_module('http_connect')->has_module('channel');
my $sock = $t->path('channel.sock');
my $csecret = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
mkdir $t->path('secrets'), 0700;
$t->write_file('secrets/proj', "$csecret\n");
chmod 0600, $t->path('secrets/proj');

$t->write_conf(<<'EOF2');
kapd: {
    load = ["http_connect", "channel", "remote"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
    policy: { chain = ["network", "remote", "channel"]; };  # a human answers asks
};
channel: { listen = ["unix:%%PREFIX%%/channel.sock"]; secrets_dir = "%%PREFIX%%/secrets"; };
network: { allow = ["allowed.example:1"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
remote: {
    listen = ["127.0.0.1:%%PORT_remote%%"];
    state_dir = "state";
    follow = ["follow/hostile.ndjson"];
    auth_fail_limit = 1000;
    max_connections = 400;
    max_per_client = 400;
    ws_max_message = 1024;
    ws_queue_max = 262144;
    ws_ping_interval = "3s";
};
EOF2
mkdir $t->path('follow');
ok($t->try_run, 'kapd serves remote and http_connect') or diag($t->{run_error});
my $port = $t->port('remote');
my $state = $t->path('state');
Test::Kapd::wait_until(sub { -d "$state/devices" }, kapd_tmo(5));

sub http {
    my ($method, $path, %o) = @_;
    my @h = @{$o{headers} // []};
    push @h, "Authorization: Bearer $o{token}" if defined $o{token};
    my $raw = Test::Kapd::http_get($path, addr => "127.0.0.1:$port",
        method => $method, headers => \@h, body => $o{body});
    my $r = Test::Kapd::http_parse($raw) // { status => 0, body => '' };
    $r->{json} = eval { decode_json($r->{body}) };
    return $r;
}
sub paired {
    my ($name) = @_;
    my $s = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    umask 077;
    open my $fh, '>', "$state/pairing.tmp" or die $!;
    print $fh 'sha256:' . sha256_hex($s) . "\n";
    close $fh;
    rename "$state/pairing.tmp", "$state/pairing" or die $!;
    my $r = http('POST', '/api/pair', token => $s,
                 body => encode_json({ name => $name }));
    return ($r->{json}{token} // '', $r->{json}{device_id} // '');
}
my ($tok, $id) = paired('phone');
like($tok, qr/^[A-Za-z0-9_-]{43}$/, 'a device is paired');

# a line from the channel socket, with a deadline
sub chline {
    my ($s) = @_;
    my ($l, $c) = ('', '');
    my $sel = IO::Select->new($s);
    my $dl = time + kapd_tmo(10);
    while (time < $dl && $sel->can_read($dl - time)) {
        last unless sysread($s, $c, 1);
        return $l if $c eq "\n";
        $l .= $c;
    }
    return undef;
}

sub ws {
    my (%o) = @_;
    $o{protocols} = "kap.v1, kap.token.$tok" unless exists $o{protocols};
    return Test::KapWS->connect(port => $port, path => '/ws/logs', %o);
}

# ---- the handshake ----------------------------------------------------------
my $w = ws();
is($w->{status}, 101, 'a good handshake: 101');
is($w->{headers}{'sec-websocket-accept'}, $w->expected_accept,
   'Sec-WebSocket-Accept is the key\'s SHA-1 with the GUID');
is($w->{headers}{'sec-websocket-protocol'}, 'kap.v1',
   'the answer chooses kap.v1 only (the token is not echoed)');
is(lc($w->{headers}{upgrade} // ''), 'websocket', 'Upgrade: websocket');
my $hello = $w->recv_json_until(sub { 1 }, kapd_tmo(5));
is($hello && $hello->{type}, 'hello', 'the first message is the hello');
ok($w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5)),
   'then the live marker');
$w->close;

is(ws(key => 'c2hvcnQ=')->{status}, 400, 'a key of fewer than 16 bytes: 400');
is(ws(key => undef)->{status}, 400, 'no key: 400');
is(ws(key => 'AAAAAAAAAAAAAAAAAAAAAB==')->{status}, 400,
   'a key with stray bits: 400');
my $r = ws('sec-websocket-version' => 8);
is($r->{status}, 426, 'version 8: 426');
is($r->{headers}{'sec-websocket-version'}, '13', 'naming version 13');
$r = ws(upgrade => undef);
is($r->{status}, 426, 'no Upgrade field: 426 Upgrade Required');
is(ws(upgrade => 'h2c')->{status}, 400, 'Upgrade: h2c: 400');
is(ws(connection => 'keep-alive')->{status}, 400,
   'Connection without upgrade: 400');
is(http('POST', '/ws/logs', token => $tok)->{status}, 405,
   'POST /ws/logs: 405');

# ---- auth ---------------------------------------------------------------------
$r = ws(protocols => 'kap.v1');
is($r->{status}, 401, 'no token: 401');
is(ws(protocols => 'kap.v1, kap.token.' . ('A' x 43))->{status}, 401,
   'a wrong token: 401');
is(ws(protocols => "kap.token.$tok")->{status}, 400,
   'a token without kap.v1: 400');
is(Test::KapWS->connect(port => $port, path => "/ws/logs?token=$tok",
                        protocols => 'kap.v1')->{status}, 401,
   'a token in the query string is no token: 401');
like(Test::KapWS->connect(port => $port, path => "/ws/logs?token=$tok",
                          protocols => "kap.v1, kap.token.$tok")->{body},
     qr/never goes in the URL/, 'even with a good token beside it');
is(ws(protocols => undef, headers => ["Authorization: Bearer $tok"])->{status},
   400, 'Bearer without the kap.v1 subprotocol: 400');
is(ws(protocols => 'kap.v1', headers => ["Authorization: Bearer $tok"])->{status},
   101, 'Bearer with kap.v1 (a client that is not a browser): 101');
is(ws(origin => 'http://evil.example')->{status}, 403,
   'an Origin of another site: 403');
is(ws(origin => "http://127.0.0.1:$port")->{status}, 101,
   'the page\'s own Origin: 101');
is(ws(origin => "https://127.0.0.1:$port")->{status}, 403,
   'the page\'s host with another scheme: 403');
is(Test::KapWS->connect(port => $port, path => '/ws/nothing',
                        protocols => "kap.v1, kap.token.$tok")->{status}, 404,
   'an unknown stream: 404 (after auth)');
is(Test::KapWS->connect(port => $port, path => '/ws/nothing',
                        protocols => 'kap.v1')->{status}, 401,
   'an unknown stream without a token: 401 (nothing learnt)');
for my $q ('limit=0', 'limit=1001', 'since=-1', 'since=01', 'denied=2',
           'limit=5&limit=5', 'x=1', 'since=1&') {
    is(Test::KapWS->connect(port => $port, path => "/ws/logs?$q",
        protocols => "kap.v1, kap.token.$tok")->{status}, 400,
       "query $q: 400");
}

# ---- live events: a denial by http_connect in the same kapd ------------------
my $all = ws();
my $den = Test::KapWS->connect(port => $port, path => '/ws/logs?denied=1',
                               protocols => "kap.v1, kap.token.$tok");
ok($all->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5))
   && $den->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5)),
   'two sockets are live');
my $px = Test::Kapd::http_parse(Test::Kapd::http_get(
    'http://denied-live.example:80/', via => $t->port('proxy')));
is($px && $px->{status}, 403, 'http_connect denies a request');
my $ev = $all->recv_json_until(sub {
    $_[0]{type} eq 'event' && ($_[0]{event}{subject} // '') eq 'denied-live.example'
}, kapd_tmo(5));
ok($ev, 'the denial appears live on /ws/logs');
is($ev && $ev->{event}{action}, 'denied', 'as a denial');
is($ev && $ev->{event}{module}, 'http_connect', 'of http_connect');
my $seq = $ev ? $ev->{seq} : 0;
ok($den->recv_json_until(sub {
    $_[0]{type} eq 'event' && ($_[0]{event}{subject} // '') eq 'denied-live.example'
}, kapd_tmo(5)), 'and on the denied-only socket');

# ---- live events: lines appended to a followed file ---------------------------
my $ff = $t->path('follow/hostile.ndjson');
open my $fh, '>>', $ff or die $!;
$fh->autoflush(1);
print $fh qq({"ts":"2026-12-07T09:00:00.000001Z","module":"dns","action":"allowed","subject":"ok.example","capsule":"proj"}\n);
print $fh qq(not json\n);
print $fh qq({"ts":"2026-12-07T09:00:01.000001Z","module":"dns","action":"denied","subject":"<b>x</b>.example"}\n);
print $fh qq({"ts":"2026-12-07T09:00:02.000001Z","module":"dns","action":"denied","subj);
$ev = $all->recv_json_until(sub { ($_[0]{event}{subject} // '') eq 'ok.example' },
                            kapd_tmo(5));
ok($ev, 'a line appended to a followed file appears live');
is($ev && $ev->{event}{capsule}, 'proj', 'with its fields');
$ev = $all->recv_json_until(sub { ($_[0]{event}{subject} // '') eq '<b>x</b>.example' },
                            kapd_tmo(5));
ok($ev, 'the line after one that is not JSON too');
ok(!grep({ ($_->{event}{subject} // '') =~ /not json/ } @{$all->{seen}}),
   'the line that is not JSON is skipped');
print $fh qq(ect":"late.example"}\n);
ok($all->recv_json_until(sub { ($_[0]{event}{subject} // '') eq 'late.example' },
                         kapd_tmo(5)),
   'a line written in two parts arrives once it ends');
ok($den->recv_json_until(sub { ($_[0]{event}{subject} // '') eq 'late.example' },
                         kapd_tmo(5)), 'denied-only socket: sees the denial');
ok(!grep({ $_->{type} eq 'event' && ($_->{event}{action} // '') ne 'denied' }
          @{$den->{seen}}),
   'denied-only socket: saw nothing but denials');
close $fh;

# ---- catch-up -------------------------------------------------------------------
my $c = Test::KapWS->connect(port => $port, path => "/ws/logs?since=$seq",
                             protocols => "kap.v1, kap.token.$tok");
my $live = $c->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
my @ev = grep { $_->{type} eq 'event' } @{$c->{seen}};
is(scalar(@ev), 3, 'since=N: the events after N, then live');
is($ev[0] && $ev[0]{seq}, $seq + 1, 'in order, from N+1');
$c = Test::KapWS->connect(port => $port, path => '/ws/logs?limit=2',
                          protocols => "kap.v1, kap.token.$tok");
$c->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
@ev = grep { $_->{type} eq 'event' } @{$c->{seen}};
is(join(',', map { $_->{event}{subject} } @ev), '<b>x</b>.example,late.example',
   'limit=2: the newest two, oldest first');
$c = Test::KapWS->connect(port => $port, path => '/ws/logs?denied=1&limit=1000',
                          protocols => "kap.v1, kap.token.$tok");
$c->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
@ev = grep { $_->{type} eq 'event' } @{$c->{seen}};
is(scalar(@ev), 3, 'denied=1: only the three denials in the catch-up');
$c->close;

# ---- frames ------------------------------------------------------------------------
$w = ws();
$w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
$w->send_frame(9, 'are you there');
my $f = $w->recv(kapd_tmo(5));
is($f && $f->{op}, 10, 'a ping is answered with a pong');
is($f && $f->{data}, 'are you there', 'carrying the ping\'s data');
$w->send_frame(1, 'hel', fin => 0);
$w->send_frame(0, 'lo');
$w->send_frame(9, 'after fragments');
$f = $w->recv(kapd_tmo(5));
is($f && $f->{data}, 'after fragments',
   'a fragmented message is taken; the socket stays open');
$w->send_frame(1, 'x' x 2000);
$f = $w->recv(kapd_tmo(5));
is(Test::KapWS::close_code($f), 1009, 'a message over ws_max_message: close 1009');
ok($w->wait_eof(kapd_tmo(5)), 'and the connection ends');

$w = ws();
$w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
$w->send_frame(1, 'hello', mask => 0);
$f = $w->recv(kapd_tmo(5));
is(Test::KapWS::close_code($f), 1002, 'an unmasked client frame: close 1002');
ok($w->wait_eof(kapd_tmo(5)), 'and the connection ends');

$w = ws();
$w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
$w->send_frame(8, pack('n', 1000) . 'bye');
$f = $w->recv(kapd_tmo(5));
is(Test::KapWS::close_code($f), 1000, 'a close is answered with a close');
ok($w->wait_eof(kapd_tmo(5)), 'then kapd closes the connection');

$w = ws();
$w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
$w->{no_pong} = 1;
$f = $w->recv(kapd_tmo(8));
is($f && $f->{op}, 9, 'an idle socket gets a ping (ws_ping_interval)');
$w->send_frame(10, $f ? $f->{data} : '');
$f = $w->recv(kapd_tmo(15));
$f = $w->recv(kapd_tmo(15)) while $f && $f->{op} == 9;
is(Test::KapWS::close_code($f), 1001,
   'a socket that answers no pings is closed (1001)');

# ---- revoke closes an open socket ----------------------------------------------------
my ($tok2, $id2) = paired('tablet');
my $v = Test::KapWS->connect(port => $port, path => '/ws/logs',
                             protocols => "kap.v1, kap.token.$tok2");
$w = ws();
ok($v->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5))
   && $w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5)),
   'two devices have sockets open');
unlink "$state/devices/$id2", "$state/devices/$id2.seen";
my $vf = $v->recv(kapd_tmo(5));
$vf = $v->recv(kapd_tmo(5)) while $vf && $vf->{op} != 8;
is(Test::KapWS::close_code($vf), 1008, 'revoking a device closes its socket (1008)');
like($vf ? $vf->{data} : '', qr/revoked/, 'saying why');
is(Test::KapWS->connect(port => $port, path => '/ws/logs',
                        protocols => "kap.v1, kap.token.$tok2")->{status}, 401,
   'the revoked token opens no new socket');
$w->send_frame(9, 'still');
$f = $w->recv(kapd_tmo(5));
is($f && $f->{data}, 'still', 'the other device\'s socket stays open');
$w->close;
$v->close;

# ---- a slow reader is closed, kapd does not grow ------------------------------------
sub rss {
    my $s = $t->read_file("/proc/" . $t->pid . "/status") // '';
    return $s =~ /^VmRSS:\s+(\d+)/m ? $1 : 0;
}
my $slow = ws();
$slow->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5));
my $rss0 = rss();
my $logpos = length($t->read_file('error.log') // '');
open $fh, '>>', $ff or die $!;
my $pad = 'p' x 900;
for my $i (1 .. 20000) {
    print $fh qq({"module":"dns","action":"allowed","subject":"flood$i.example","pad":"$pad"}\n);
}
close $fh;
ok($t->wait_log(qr/closed: 1008 client too slow/, 60, $logpos),
   'a socket that does not read while 20 MB of events pass is closed');
my $rss1 = rss();
# ASan keeps freed memory in quarantine, valgrind in its own heap: only a
# plain build's RSS says what the queue bound holds
my $instrumented = $ENV{KAPD_VG_LOGDIR}
    || `ldd $t->{binary} 2>/dev/null` =~ /lib(asan|ubsan|tsan)/;
SKIP: {
    skip 'memory is not meaningful under a sanitizer or valgrind', 1 if $instrumented;
    cmp_ok($rss1 - $rss0, '<', 16 * 1024,
           "kapd grew by less than 16 MiB meanwhile ($rss0 -> $rss1 kB)");
}
my ($code, $read) = (undef, 0);
while (my $x = $slow->recv(kapd_tmo(10))) {
    if ($x->{op} == 8) { $code = Test::KapWS::close_code($x); last }
    $read++;
}
is($code, 1008, 'its last frame is a close with 1008');
ok($read < 20000, "after only part of the flood ($read events)");
$slow->close;
# denied only: the rest of the 20 MB flood that kapd is still reading
# would otherwise reach this socket faster than this test reads frames
$w = ws(path => '/ws/logs?denied=1');
ok($w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(10)),
   'a new socket opens after the flood');
open $fh, '>>', $ff or die $!;
print $fh qq({"module":"dns","action":"denied","subject":"after-flood.example"}\n);
close $fh;
ok($w->recv_json_until(sub { ($_[0]{event}{subject} // '') eq 'after-flood.example' },
                       kapd_tmo(30)), 'and gets live events (after the rest of the flood is read)');
$w->close;

# ---- a question pushed: "ask" when it starts waiting, "ask_answered" ----------------
# a capsule speaks the channel protocol (docs/design/channel.md) and asks
# about a name no rule answers; the page learns of it from the socket,
# not from polling /api/asks
$w = ws();
ok($w->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(10)), 'a socket for approvals');
my $ch = IO::Socket::UNIX->new(Peer => $sock);
ok($ch, 'a capsule connects to the channel') or diag("$sock: $!");
my $cn = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
print $ch qq({"type":"hello","v":1,"name":"proj","nonce":"$cn"}\n);
my ($hn) = (chline($ch) // '') =~ /"nonce":"([0-9a-f]{64})"/;
my $proof = hmac_sha256_hex("kap-channel capsule\n$hn\n$cn", $csecret);
print $ch qq({"type":"auth","proof":"$proof"}\n);
like(chline($ch) // '', qr/"type":"ready"/, 'and is ready');
my $t0 = time;
print $ch qq({"type":"ask","id":7,"kind":"http","subject":"pushed.example","port":443}\n);
$ev = $w->recv_json_until(sub { ($_[0]{event}{event} // '') eq 'ask' }, kapd_tmo(10));
ok($ev && $ev->{event}{subject} eq 'pushed.example' && $ev->{event}{port} == 443
   && $ev->{event}{ask} =~ /^[0-9a-f]{16}$/ && ($ev->{event}{capsule} // '') eq 'proj'
   && $ev->{event}{timeout} > 0, 'the socket gets an "ask" event with the id, subject and capsule')
    or diag(explain($ev));
my $aid = $ev ? $ev->{event}{ask} : 'x';
my $q = http('GET', '/api/asks', token => $tok)->{json}{asks} // [];
ok(@$q == 1 && $q->[0]{id} eq $aid && time - $t0 < 60,
   'while the question waits (GET /api/asks lists it)');
is(http('POST', "/api/asks/$aid", token => $tok, body => '{"answer":"once"}',
        headers => ['Content-Type: application/json'])->{status}, 200, 'a device answers it');
$ev = $w->recv_json_until(sub { ($_[0]{event}{event} // '') eq 'ask_answered' }, kapd_tmo(10));
ok($ev && $ev->{event}{ask} eq $aid && $ev->{event}{action} eq 'once'
   && $ev->{event}{device} eq $id, 'then an "ask_answered" event names the answer and the device');
like(chline($ch) // '', qr/"type":"answer","id":7,"verdict":"allow"/,
     'and the capsule gets the answer');
$w->close;
close $ch;

# ---- 200 sockets, and kapd still serves ------------------------------------------------
my @many;
for (1 .. 200) {
    my $m = ws();
    last unless $m->{status} == 101;
    push @many, $m;
}
is(scalar(@many), 200, '200 sockets open at once');
$r = http('GET', '/api/status', token => $tok);
is($r->{status}, 200, 'a normal request is served meanwhile');
$px = Test::Kapd::http_parse(Test::Kapd::http_get(
    'http://denied-many.example:80/', via => $t->port('proxy')));
my $n = 0;
for my $m (@many) {
    $n++ if $m->recv_json_until(sub {
        ($_[0]{event}{subject} // '') eq 'denied-many.example' }, kapd_tmo(5));
}
is($n, 200, 'a denial reaches all 200 sockets');
$_->close for @many;

$t->done_testing;
