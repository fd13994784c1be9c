#!/usr/bin/perl
# 300-mcp-proxy.t -- the mcp module as the agent sees it, in front of
# Test::Kapd::FakeMCP: the server's credential injected (the agent's
# Authorization dropped), kapd's own session ids, tools/list filtered as
# JSON and in every SSE framing, denied calls answered -32602 alone and
# in batches (never reaching the server), the exact re-serialised bytes
# forwarded, the first event of a slow call before the server is done,
# unknown server 404, unknown session 404, redirects not followed (502),
# a hanging server 504, a closed port 502, and the audit: one decision
# per tools/call with its rule, one event per exchange.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use JSON::PP;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('mcp');
$t->plan(70);

my $TOKEN = 'mcp-secret-Zq8Kd3LwPx71';
$ENV{KAP_TEST_MCP_TOKEN} = $TOKEN;

my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'gh',
                                  addr => '127.0.0.2',
                                  require => { Authorization => "Bearer $TOKEN" },
                                  slow_delay => 1.5);
my $closed = $t->port('closed');

$t->write_conf(<<'EOF');
kapd: {
    load = ["mcp"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: { allow = ["127.0.0.2:%%PORT_mcp%%", "127.0.0.2:%%PORT_closed%%"]; };
audit_log: { path = "audit.jsonl"; };
mcp: {
    listen = "127.0.0.1:%%PORT_kap%%";
    upstream_timeout = 2;
    servers = (
        { name = "gh"; url = "http://127.0.0.2:%%PORT_mcp%%/mcp";
          allow = ["get_*", "slow"]; deny = ["get_secret*"];
          headers = { Authorization = "Bearer ${KAP_TEST_MCP_TOKEN}"; }; },
        { name = "down"; url = "http://127.0.0.2:%%PORT_closed%%/mcp";
          allow = ["*"]; }
    );
};
EOF
$t->run;

my $kap = '127.0.0.1:' . $t->port('kap');
my $J = JSON::PP->new->canonical;
my @responses;

sub call {
    my (%o) = @_;
    my $body = $o{body} // (ref $o{msg} ? $J->encode($o{msg}) : undef);
    my @h = ('Content-Type: application/json',
             'Accept: application/json, text/event-stream',
             'Authorization: Bearer agent-token-must-not-pass');
    @h = () if $o{bare};
    push @h, "Mcp-Session-Id: $o{sid}" if $o{sid};
    push @h, @{$o{headers} // []};
    my $raw = http_get($o{path} // '/gh', addr => $o{addr} // $kap,
                       host => $kap, method => $o{method} // 'POST',
                       body => $body, headers => \@h,
                       timeout => $o{timeout} // 10) // '';
    push @responses, $raw;
    return http_parse($raw) // { status => 0, headers => {}, body => '' };
}

sub rpc { my ($id, $method, $params) = @_;
          return { jsonrpc => '2.0', id => $id, method => $method,
                   defined $params ? (params => $params) : () } }

sub names { [map { $_->{name} } @{$_[0]{result}{tools}}] }

# -- initialize: the credential, kapd's own session id -------------------------
my $r = call(msg => rpc(0, 'initialize', { protocolVersion => '2025-06-18',
                                           capabilities => {},
                                           clientInfo => { name => 't' } }));
is($r->{status}, 200, 'initialize through kapd: 200');
my $sid = $r->{headers}{'mcp-session-id'} // '';
like($sid, qr/^[0-9a-f]{32}$/, "kapd's own session id");
my ($upsid) = @{$m->sessions};
isnt($sid, $upsid, "the upstream's id is not shown");
my $req = $m->requests->[-1];
my %h = map { lc $_->[0] => $_->[1] } @{$req->{headers}};
is($h{authorization}, "Bearer $TOKEN", "the server's credential injected");
is(scalar(grep { lc $_->[0] eq 'authorization' } @{$req->{headers}}), 1,
   "the agent's Authorization dropped");

# -- tools/list filtered ---------------------------------------------------------
$m->set(tools => [@{Test::Kapd::FakeMCP::default_tools()},
                  { name => 'get_secret_key', description => 'x' },
                  { description => 'nameless' },
                  { name => 7 }]);
$r = call(msg => rpc(1, 'tools/list'), sid => $sid,
          headers => ['MCP-Protocol-Version: 2025-06-18']);
is($r->{status}, 200, 'tools/list: 200');
is_deeply(names(decode_json($r->{body})), ['get_issue'],
          'JSON: only the allowed tool');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON Content-Type');
%h = map { lc $_->[0] => $_->[1] } @{$m->requests->[-1]{headers}};
is($h{'mcp-session-id'}, $upsid, "upstream got its own session id");
is($h{'mcp-protocol-version'}, '2025-06-18', 'MCP-Protocol-Version forwarded');

for my $f (qw(lf crlf cr nospace multiline comments split)) {
    $m->set(reply => 'sse', framing => $f, split_delay => 0.01);
    $r = call(msg => rpc(2, 'tools/list'), sid => $sid);
    like($r->{headers}{'content-type'} // '', qr{^text/event-stream},
         "SSE $f: text/event-stream");
    my @msgs = Test::Kapd::FakeMCP::sse_messages($r->{body});
    is_deeply([map { @{names($_)} } grep { ref $_ } @msgs], ['get_issue'],
              "SSE $f: filtered");
}
# a list inside a batch, and the server's own messages passed on
$m->set(reply => 'json', framing => 'lf');
$r = call(sid => $sid, msg => [rpc(30, 'tools/list'),
                               rpc(31, 'ping')]);
my %bb = map { $_->{id} => $_ } @{decode_json($r->{body})};
is_deeply(names($bb{30}), ['get_issue'], 'a list inside a batch: filtered');
$m->set(reply => 'sse', before => [
    { jsonrpc => '2.0', method => 'notifications/tools/list_changed' },
    { jsonrpc => '2.0', id => 'srv-1', method => 'roots/list' }]);
$r = call(msg => rpc(32, 'tools/list'), sid => $sid);
is_deeply([map { $_->{method} // "reply $_->{id}" }
           Test::Kapd::FakeMCP::sse_messages($r->{body})],
          ['notifications/tools/list_changed', 'roots/list', 'reply 32'],
          'list_changed and a server-to-client request passed on');
$m->set(reply => 'json', framing => 'lf', before => [],
        tools => Test::Kapd::FakeMCP::default_tools());

# -- denied calls ---------------------------------------------------------------
my $n0 = $m->count;
$r = call(msg => rpc(3, 'tools/call', { name => 'delete_repo', arguments => {} }),
          sid => $sid);
is($r->{status}, 200, 'denied call: 200');
my $e = decode_json($r->{body});
is($e->{error}{code}, -32602, 'JSON-RPC -32602');
like($e->{error}{message}, qr/delete_repo/, 'naming the tool');
like($e->{error}{message}, qr/no allow rule matches/, 'and why');
is($m->count, $n0, 'never sent upstream');

$r = call(msg => rpc(4, 'tools/call', { name => 'get_secret_x', arguments => {} }),
          sid => $sid);
like(decode_json($r->{body})->{error}{message} // '', qr/get_secret\*/,
     'a deny rule is named');

$r = call(sid => $sid, msg => [
    rpc(5, 'tools/call', { name => 'get_issue', arguments => { n => 1 } }),
    rpc(6, 'tools/call', { name => 'delete_repo', arguments => {} })]);
my %byid = map { $_->{id} => $_ } @{decode_json($r->{body})};
is($byid{5}{result}{content}[0]{text}, 'called get_issue', 'batch: allowed answered');
is($byid{6}{error}{code}, -32602, 'batch: denied -32602');
is_deeply([@{$m->tool_calls}], ['get_issue'], 'only the allowed call went upstream');

$m->set(reply => 'sse');
$r = call(sid => $sid, msg => [
    rpc(7, 'tools/call', { name => 'get_issue', arguments => { n => 2 } }),
    rpc(8, 'tools/call', { name => 'delete_repo', arguments => {} })]);
%byid = map { ref $_ eq 'ARRAY' ? (map { $_->{id} => $_ } @$_) : ($_->{id} => $_) }
        Test::Kapd::FakeMCP::sse_messages($r->{body});
ok($byid{7}{result} && $byid{8}{error}, 'batch over SSE: both answered');
$m->set(reply => 'json');

# -- the forwarded bytes are kapd's printing ----------------------------------------
call(sid => $sid, body => qq({ "jsonrpc" : "2.0", "id":9,"method":"tools/list" }));
is($m->requests->[-1]{body}, '{"jsonrpc":"2.0","id":9,"method":"tools/list"}',
   'the re-serialised bytes went upstream');

# -- strict refusals, none upstream -----------------------------------------------------
$n0 = $m->count;
is(call(sid => $sid, body => $J->encode(rpc(10, 'ping')), bare => 1,
        headers => ['Content-Type: text/plain'])->{status}, 415, 'text/plain: 415');
is(call(sid => $sid, body => '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}')
   ->{status}, 400, 'duplicate keys: 400');
is(call(sid => $sid, body => '{"jsonrpc":"2.0","id":1,"method":"ping"} x')
   ->{status}, 400, 'trailing garbage: 400');
is(call(sid => $sid, path => '/gh?method=tools/call', body => '{}')->{status},
   400, 'a query string: 400');
is(call(sid => $sid, body => '[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]')
   ->{status}, 400, 'a nested batch: 400');
is($m->count, $n0, 'nothing of them reached the server');

# -- unknown server, sessions ----------------------------------------------------------
$r = call(path => '/nope', msg => rpc(11, 'ping'));
is($r->{status}, 404, 'unknown server: 404');
is_deeply(decode_json($r->{body})->{servers}, ['gh', 'down'],
          'naming the known ones');
is(call(msg => rpc(12, 'tools/list'), sid => 'f' x 32)->{status}, 404,
   'an unknown session: 404');
is(call(msg => rpc(12, 'tools/list'), sid => $upsid)->{status}, 404,
   "the upstream's own id is not a session here");
is(call(msg => rpc(12, 'tools/list'), sid => $sid, path => '/down')->{status},
   404, 'a session of another server: 404');
{
    # another client (another source address) presenting the session
    my $s = IO::Socket::INET->new(PeerAddr => $kap, LocalAddr => '127.0.0.3',
                                  Proto => 'tcp');
    my $body = $J->encode(rpc(13, 'tools/list'));
    my $raw = $s ? http_raw($s, "POST /gh HTTP/1.1\r\nHost: x\r\n"
        . "Content-Type: application/json\r\nMcp-Session-Id: $sid\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body")
        : '';
    is((http_parse($raw) // {})->{status}, 404,
       "another client presenting the session: 404");
}
# a second client gets its own upstream session
$r = call(addr => $kap, msg => rpc(14, 'initialize', { protocolVersion => '2025-06-18',
                                           capabilities => {},
                                           clientInfo => { name => 't2' } }));
my $sid2 = $r->{headers}{'mcp-session-id'} // '';
ok($sid2 ne '' && $sid2 ne $sid, 'a second initialize: another session');
is(scalar @{$m->sessions}, 2, 'and another upstream session');

# -- streaming: the first event before the server is done ------------------------------
{
    my $s = tcp_connect($kap);
    my $body = $J->encode(rpc(15, 'tools/call', { name => 'slow', arguments => {} }));
    my $t0 = time;
    syswrite($s, "POST /gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . "Accept: application/json, text/event-stream\r\nMcp-Session-Id: $sid\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
    my ($raw, $first) = ('', undef);
    my $sel = IO::Select->new($s);
    while ($sel->can_read(kapd_tmo(10))) {
        my $n = sysread($s, my $c, 65536) or last;
        $raw .= $c;
        $first //= time if $raw =~ /notifications\/progress/;
    }
    my $end = time;
    ok(defined $first && $first - $t0 < 1.2, 'slow: the progress event came at once');
    ok($end - $t0 >= 1.4, 'slow: the result after the delay');
    is_deeply([map { $_->{method} // "reply $_->{id}" }
               Test::Kapd::FakeMCP::sse_messages(http_parse($raw)->{body})],
              ['notifications/progress', 'reply 15'], 'slow: both events');
}

# -- GET stream filtered, DELETE ---------------------------------------------------------
$m->set(get_events => [{ jsonrpc => '2.0', id => 'x1',
                         result => { tools => Test::Kapd::FakeMCP::default_tools() } }]);
{
    my $s = tcp_connect($kap);
    syswrite($s, "GET /gh HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                 . "Mcp-Session-Id: $sid\r\n\r\n");
    my $raw = '';
    wait_until(sub {
        sysread($s, my $c, 65536) if IO::Select->new($s)->can_read(0.1);
        $raw .= $c // '';
        return $raw =~ /get_issue.*\n\n/s;
    }, kapd_tmo(5));
    like($raw, qr{^HTTP/1.1 200 .*text/event-stream}s, 'GET stream: 200 SSE');
    unlike($raw, qr/delete_repo/, 'GET stream: filtered');
    close $s;
}
is(call(method => 'DELETE', sid => $sid2, bare => 1)->{status}, 200,
   'DELETE passes');
is(call(msg => rpc(16, 'tools/list'), sid => $sid2)->{status}, 404,
   'the deleted session is gone');

# -- upstream failures --------------------------------------------------------------------
$m->set(redirect => 'http://127.0.0.2:1/elsewhere');
$r = call(msg => rpc(17, 'tools/list'), sid => $sid);
is($r->{status}, 502, 'a redirect: 502');
like($r->{body}, qr/redirect/, 'saying why');
$m->set(redirect => undef, hang => 1);
my $t0 = time;
$r = call(msg => rpc(18, 'tools/list'), sid => $sid, timeout => 15);
is($r->{status}, 504, 'a hanging server: 504');
ok(time - $t0 < 6, 'after upstream_timeout');
$m->set(hang => 0);
$r = call(path => '/down', msg => rpc(19, 'ping'));
is($r->{status}, 502, 'a closed port: 502');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'as JSON');
$m->set(require => { Authorization => 'Bearer other' });
is(call(msg => rpc(20, 'ping'), sid => $sid)->{status}, 502,
   'the server refusing the credential (401): 502');
$m->set(require => { Authorization => "Bearer $TOKEN" });

# -- audit ----------------------------------------------------------------------------------
my @a = $t->wait_audit(sub { grep { ($_->{event} // '') eq 'mcp_list' } @_ });
my @dec = grep { ($_->{event} // '') eq 'decision' && ($_->{kind} // '') eq 'mcp_call' } @a;
ok((grep { $_->{subject} eq 'delete_repo' && $_->{action} eq 'denied'
           && ($_->{reason} // '') eq 'no allow rule matches' } @dec),
   'audit: the denied call with its rule');
ok((grep { $_->{subject} eq 'get_issue' && $_->{action} eq 'allowed' } @dec),
   'audit: the allowed call');
my ($l) = grep { ($_->{event} // '') eq 'mcp_list' && ($_->{tools_removed} // 0) > 0 } @a;
ok($l && $l->{server} eq 'gh' && $l->{status} == 200 && defined $l->{duration}
   && $l->{bytes_out} > 0, 'audit: a list with server, status, duration, bytes');

# -- no secret anywhere ----------------------------------------------------------------------
my $all = join('', @responses) . ($t->read_file('error.log') // '')
          . ($t->read_file('audit.jsonl') // '');
unlike($all, qr/\Q$TOKEN\E/, 'the credential is in no response, log or audit line');
unlike($all, qr/\Q$upsid\E/, "nor the upstream's session id");

$t->finish;
