#!/usr/bin/perl
# 011-curl.t -- kap_curl (core/include/kapd/kap_curl.h) end to end, through
# the test_hooks line protocol ("FETCH url [max_bytes [ca_file]]").
#
# kap_curl resolves with kapd's resolver (FakeDNS upstream), asks a
# KAP_REQ_ADDR question for every address and pins libcurl to the allowed
# ones.  Origins: "good" on 127.0.0.2 (listed on purpose in network.allow
# with its port), "bad" on 127.0.0.1 at the same port (never listed: it
# must never see a connection), a slow one, and two TLS ones.  Checked: an
# allowed name is fetched (status, body, headers); a name that resolves to
# 127.0.0.1, alone or next to an allowed address, is refused with the
# address and the reason, audited, and never dialled; literals go through
# the same question; a redirect is an answer, never followed; only http
# and https (ftp, file, gopher, dict refused), https verified against the
# given CA; the body limit; a client that goes away mid-fetch releases the
# transfer and its upstream connection; 40 concurrent fetches; and a
# reload retires the old generation's multi handle with its idle
# connections.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Select;
use Time::HiRes qw(sleep time);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(47);

my $o = $t->port('origin');
my $good = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'good',
    addr => '127.0.0.2',
    handler => sub {
        my ($req) = @_;
        my $tg = $req->{target};
        return (302, [Location => "http://ok.curl.test:$o/target"], "moved\n")
            if $tg eq '/redirect';
        return (301, [Location => "http://lo.curl.test:$o/"], "moved\n")
            if $tg eq '/redirect-lo';
        return (200, [], 'x' x $1) if $tg =~ m{^/bytes/(\d+)$};
        return ();
    });
my $bad = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'bad',
                                    addr => '127.0.0.1');
my $slow = Test::Kapd::FakeHTTP->new($t, port => $t->port('slow'),
    name => 'slow', addr => '127.0.0.2',
    handler => sub { sleep 20; return () });
my $tls = Test::Kapd::FakeHTTP->new($t, port => $t->port('tls'),
    name => 'tls', addr => '127.0.0.2', tls => 1,
    cert_names => ['tls.curl.test']);
my $tls2 = Test::Kapd::FakeHTTP->new($t, port => $t->port('tls2'),
    name => 'tls2', addr => '127.0.0.2', tls => 1,
    cert_names => ['tls.curl.test']);

my $three = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'three',
                                      addr => '127.0.0.3');
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), ttl => 0,
    zone => {
        'ok.curl.test'    => ['A 127.0.0.2'],
        'tls.curl.test'   => ['A 127.0.0.2'],
        'lo.curl.test'    => ['A 127.0.0.1'],
        'mixed.curl.test' => ['A 127.0.0.2', 'A 127.0.0.1'],
    });

my $conf = <<'EOF';
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: {
    allow = ["*.curl.test", "127.0.0.2:%%PORT_origin%%",
             "127.0.0.2:%%PORT_slow%%", "127.0.0.2:%%PORT_tls%%",
             "127.0.0.2:%%PORT_tls2%%", "127.0.0.3:%%PORT_origin%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "decline"; };
EOF
$t->write_conf($conf);
$t->run;

sub fetch {
    my ($args, $tmo) = @_;
    my $s = tcp_connect($t->port('hooks')) or return '';
    my $r = line_cmd($s, "FETCH $args", $tmo // 15) // '';
    close $s;
    return $r;
}

sub pending {
    my $s = tcp_connect($t->port('hooks')) or return -1;
    my $r = line_cmd($s, 'FETCHING', 5) // '';
    close $s;
    return $r =~ /^(\d+)/ ? $1 : -1;
}

# kapd's established TCP connections to 127.0.0.2:port
sub upstream_conns {
    my ($port) = @_;
    my $out = `ss -Htn state established dst 127.0.0.2 dport = :$port 2>/dev/null`;
    my @l = grep { /\S/ } split /\n/, $out;
    return scalar @l;
}

# -- an allowed name -----------------------------------------------------------
my $r = fetch("http://ok.curl.test:$o/hello");
my ($st, $len, $hlen, $snip) = $r =~ /^FETCHED (\d+) (\d+) (\d+) (.*)$/;
is($st, 200, 'allowed name: fetched') or diag($r);
like($snip // '', qr/"server":"good"/, 'body from the origin on 127.0.0.2');
like($snip // '', qr{"request_line":"GET /hello HTTP/1.1"}, 'the path asked');
ok(($hlen // 0) > 20, "headers delivered ($hlen bytes)");
my $req = $good->requests->[-1] // {};
my ($host) = map { $_->[1] } grep { lc $_->[0] eq 'host' } @{$req->{headers} // []};
is($host, "ok.curl.test:$o", 'Host header names the URL host');

# -- names and literals that lead to loopback ----------------------------------
$r = fetch("http://lo.curl.test:$o/");
like($r, qr/^FETCH-ERROR address 127\.0\.0\.1 of lo\.curl\.test refused: \S/,
     'name resolving to 127.0.0.1: refused with the address and a reason');
my ($ev) = grep { ($_->{kind} // '') eq 'addr' && ($_->{subject} // '') eq '127.0.0.1'
                  && ($_->{action} // '') eq 'denied' }
           $t->wait_audit(sub { grep { ($_->{kind} // '') eq 'addr' } @_ }, 3);
ok($ev, 'the addr refusal is audited');
is($ev && $ev->{module}, 'test_hooks', 'asked by the calling module');

my $n0 = $good->count;
$r = fetch("http://mixed.curl.test:$o/mixed");
like($r, qr/^FETCH-ERROR address 127\.0\.0\.1 of mixed\.curl\.test refused/,
     'a denied address next to an allowed one: every address asked, refused');
is($good->count, $n0, 'nothing dialled, not even the allowed address');

$r = fetch("http://127.0.0.1:$o/");
like($r, qr/^FETCH-ERROR address 127\.0\.0\.1 of 127\.0\.0\.1 refused/,
     'literal 127.0.0.1: refused');
$r = fetch("http://127.1:$o/");
like($r, qr/^FETCH-ERROR .*127\.0\.0\.1/, 'literal 127.1: refused as 127.0.0.1');
$r = fetch("http://127.0.0.2:$o/lit");
like($r, qr/^FETCHED 200 /, 'literal 127.0.0.2 (allowed with its port): fetched');
$r = fetch("http://ok.curl.test:" . ($o == 65535 ? 65534 : $o + 1) . "/");
like($r, qr/^FETCH-ERROR address 127\.0\.0\.2 of ok\.curl\.test refused/,
     'the allowed address at another port: refused');

# -- redirects ------------------------------------------------------------------
$n0 = $good->count;
$r = fetch("http://ok.curl.test:$o/redirect");
like($r, qr/^FETCHED 302 \d+ \d+ moved/, 'a redirect is the answer');
sleep 0.3;    # a window for a fetch that must NOT happen (nothing to poll for)
is($good->count, $n0 + 1, 'its Location is not fetched');
$r = fetch("http://ok.curl.test:$o/redirect-lo");
like($r, qr/^FETCHED 301 /, 'a redirect to a loopback name is the answer too');
is($bad->connections, 0, 'the origin on 127.0.0.1 never saw a connection');

# -- schemes --------------------------------------------------------------------
like(fetch("ftp://ok.curl.test:$o/x"),
     qr/^FETCH-ERROR scheme ftp is not allowed/, 'ftp:// refused');
like(fetch('file:///etc/passwd'), qr/^FETCH-ERROR scheme file is not allowed/,
     'file:// refused');
like(fetch("gopher://ok.curl.test:$o/"), qr/^FETCH-ERROR scheme gopher /,
     'gopher:// refused');
like(fetch("dict://ok.curl.test:$o/"), qr/^FETCH-ERROR scheme dict /,
     'dict:// refused');
like(fetch("ok.curl.test:$o/"), qr/^FETCH-ERROR /, 'no scheme: refused');
like(fetch("http://nx.curl.test:$o/"),
     qr/^FETCH-ERROR cannot resolve nx\.curl\.test: /, 'NXDOMAIN: an error');

# -- https ------------------------------------------------------------------------
$r = fetch("https://tls.curl.test:" . $t->port('tls') . "/sec 0 " . $tls->cert);
like($r, qr/^FETCHED 200 .*"sni":"tls\.curl\.test"/,
     'https with the origin\'s CA: fetched, SNI sent');
like(fetch("https://tls.curl.test:" . $t->port('tls2') . "/ 0 " . $tls->cert),
     qr/^FETCH-ERROR .*certificate/i, 'https: an untrusted certificate fails');

# -- limits -------------------------------------------------------------------------
like(fetch("http://ok.curl.test:$o/bytes/1000 1000"), qr/^FETCHED 200 1000 /,
     'body at the limit: fetched');
like(fetch("http://ok.curl.test:$o/bytes/5000 1000"),
     qr/^FETCH-ERROR response body over the size limit/,
     'body over the limit: an error');

# -- the client goes away mid-fetch ----------------------------------------------------
my $sp = $t->port('slow');
my $c = tcp_connect($t->port('hooks'));
syswrite($c, "FETCH http://ok.curl.test:$sp/slow\n");
ok(wait_until(sub { $slow->count >= 1 }, kapd_tmo(5)),
   'slow origin has the request');
is(pending(), 1, 'one transfer pending');
is(upstream_conns($sp), 1, 'kapd holds one connection to the slow origin');
close $c;
ok(wait_until(sub { pending() == 0 }, kapd_tmo(3)),
   'closing the client released the transfer');
ok(wait_until(sub { upstream_conns($sp) == 0 }, kapd_tmo(3)),
   'and closed its upstream connection');

# -- many at once ----------------------------------------------------------------------
my @socks;
for my $i (1 .. 40) {
    my $s = tcp_connect($t->port('hooks')) or last;
    syswrite($s, "FETCH http://ok.curl.test:$o/c/$i\n");
    push @socks, [$i, $s];
}
my $okn = 0;
for my $p (@socks) {
    my ($i, $s) = @$p;
    my $l = read_line($s, 20) // '';
    $okn++ if $l =~ m{^FETCHED 200 .*"GET /c/$i HTTP/1.1"};
    close $s;
}
is($okn, 40, '40 concurrent fetches, each with its own answer');

# -- a reload retires the old generation's multi and its idle connections -----------
ok(upstream_conns($o) >= 1, 'idle connections kept for reuse');
my $from = $t->error_log_size;
like($t->reload // '', qr/reloaded/, 'reload');
ok($t->wait_log(qr/generation 1 retired/, 5, $from) &&
   wait_until(sub { upstream_conns($o) == 0 }, kapd_tmo(3)),
   'old generation retired: its idle connections closed');
like(fetch("http://ok.curl.test:$o/again"), qr/^FETCHED 200 /,
     'the new generation fetches');

# -- the name moves: a cached connection to the old address is not reused ---------
$dns->stop;
$dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), ttl => 0,
    zone => { 'ok.curl.test' => ['A 127.0.0.3'] });
$n0 = $good->count;
$from = $t->error_log_size;
$r = fetch("http://ok.curl.test:$o/moved");
like($r, qr/^FETCHED 200 .*"server":"three"/,
     'after the DNS change: fetched from the new address');
is($good->count, $n0, 'the idle connection to the old address carried nothing');
ok($t->wait_log(qr/not to an allowed address of ok\.curl\.test.*new connection/,
                3, $from), 'the reused connection was refused before the request');

# -- an address question answered later (a hook that waits) ------------------------
(my $wconf = $conf) =~ s/answer = "decline"; \}/answer = "wait"; wait = 0.3; after_wait = "decline"; kinds = ["addr"]; }/;
$wconf =~ s/log_level = "info";/log_level = "info"; policy: { chain = ["test_hooks", "network"]; };/;
$t->write_conf($wconf);
like($t->reload // '', qr/reloaded/, 'reload: test_hooks waits on addr questions');
my $t0 = time;
like(fetch("http://ok.curl.test:$o/waited"), qr/^FETCHED 200 .*"server":"three"/,
     'a waiting hook that then declines: network allows, fetched');
ok(time - $t0 >= 0.25, 'after the wait');
$c = tcp_connect($t->port('hooks'));
syswrite($c, "FETCH http://ok.curl.test:$o/gone\n");
wait_until(sub { pending() >= 1 }, kapd_tmo(3));   # the fetch has started
close $c;
ok(wait_until(sub { pending() == 0 }, kapd_tmo(3)),
   'client gone while the question waits: released');
$wconf =~ s/after_wait = "decline"/after_wait = "deny"/;
$t->write_conf($wconf);
like($t->reload // '', qr/reloaded/, 'reload: the waiting hook then denies');
like(fetch("http://ok.curl.test:$o/denied"),
     qr/^FETCH-ERROR address 127\.0\.0\.3 of ok\.curl\.test refused: test deny/,
     'a later deny ends the fetch with its reason');

$t->stop;
