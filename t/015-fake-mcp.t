#!/usr/bin/perl
# 015-fake-mcp.t -- the harness's MCP server, Test::Kapd::FakeMCP, on its
# own (no kapd): the mcp module's tests believe what it says, so what it
# does is checked here first.  Streamable HTTP: initialize issues an
# Mcp-Session-Id that every later request needs; POST answered as JSON or
# as text/event-stream in every framing (each read back by a WHATWG-style
# SSE parser to the same message; "split" arrives over time); batches,
# notifications (202), messages before a reply, the slow tool, the GET
# stream, DELETE; every request recorded with its exact body bytes and
# headers; the required credential; redirect, hang, status and the
# protocol-version, Content-Type and Accept checks.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use JSON::PP;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->plan(51);

my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'gh',
                                  addr => '127.0.0.2');
my $addr = '127.0.0.2:' . $m->port;
is($m->url, "http://$addr/mcp", 'url');

my $J = JSON::PP->new->canonical;

# one request, the parsed response
sub call {
    my (%o) = @_;
    my $body = $o{body} // (ref $o{msg} ? $J->encode($o{msg}) : undef);
    my @h = ('Content-Type: application/json',
             'Accept: application/json, text/event-stream');
    @h = () if $o{bare};
    push @h, "Mcp-Session-Id: $o{sid}" if $o{sid};
    push @h, @{$o{headers} // []};
    my $raw = http_get($o{path} // '/mcp', addr => $addr, host => $addr,
                       method => $o{method} // 'POST', body => $body,
                       headers => \@h, timeout => $o{timeout} // 10);
    return http_parse($raw);
}

sub rpc { my ($id, $method, $params) = @_;
          return { jsonrpc => '2.0', id => $id, method => $method,
                   defined $params ? (params => $params) : () } }

# -- sessions -------------------------------------------------------------
my $r = call(msg => rpc(0, 'initialize', { protocolVersion => '2025-06-18',
                                           capabilities => {},
                                           clientInfo => { name => 't' } }));
is($r->{status}, 200, 'initialize: 200');
my $sid = $r->{headers}{'mcp-session-id'};
like($sid // '', qr/^fake-gh-\d+-[0-9a-f]{8}$/, 'an Mcp-Session-Id');
is(eval { decode_json($r->{body})->{result}{protocolVersion} }, '2025-06-18',
   'the asked protocol version');
is_deeply($m->sessions, [$sid], 'the session is live');

is(call(msg => rpc(1, 'tools/list'))->{status}, 400, 'no session id: 400');
is(call(msg => rpc(1, 'tools/list'), sid => 'nope')->{status}, 404,
   'unknown session id: 404');
$r = call(msg => rpc(1, 'tools/list'), sid => $sid,
          headers => ['MCP-Protocol-Version: 2025-06-18']);
is_deeply([map { $_->{name} } @{decode_json($r->{body})->{result}{tools}}],
          ['get_issue', 'delete_repo'], 'tools/list as JSON');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON Content-Type');
is(call(msg => rpc(1, 'tools/list'), sid => $sid,
        headers => ['MCP-Protocol-Version: 1999-01-01'])->{status}, 400,
   'an unsupported MCP-Protocol-Version: 400');

# -- SSE framings ------------------------------------------------------------
my $want = $J->encode({ jsonrpc => '2.0', id => 2,
                        result => { tools => Test::Kapd::FakeMCP::default_tools() } });
for my $f (qw(lf crlf cr nospace multiline comments)) {
    $m->set(reply => 'sse', framing => $f);
    $r = call(msg => rpc(2, 'tools/list'), sid => $sid);
    like($r->{headers}{'content-type'} // '', qr{^text/event-stream},
         "$f: text/event-stream");
    my @msgs = Test::Kapd::FakeMCP::sse_messages($r->{body});
    is(join('|', map { $J->encode($_) } @msgs), $want,
       "$f: one event, the same message");
}
like($r->{body}, qr/^: keep-alive\n/, 'comments: there are comment lines');
$m->set(framing => 'cr');
unlike(call(msg => rpc(2, 'tools/list'), sid => $sid)->{body}, qr/\n/,
       'cr: no LF anywhere');

# split: the event comes in 5-byte writes over time
$m->set(framing => 'split', split_delay => 0.02);
{
    my $s = tcp_connect($addr);
    my $body = $J->encode(rpc(3, 'tools/list'));
    syswrite($s, "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . "Accept: application/json, text/event-stream\r\nMcp-Session-Id: $sid\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
    my ($raw, $reads, $t0, $t1) = ('', 0);
    my $sel = IO::Select->new($s);
    while ($sel->can_read(kapd_tmo(10))) {
        my $n = sysread($s, my $c, 65536) or last;
        $t0 //= time;
        $t1 = time;
        $raw .= $c;
        $reads++;
    }
    ok($reads > 20, "split: many reads ($reads)");
    ok($t1 - $t0 > 0.3, 'over time');
    my $p = http_parse($raw);
    is(join('|', map { $J->encode($_) } Test::Kapd::FakeMCP::sse_messages($p->{body})),
       $J->encode({ jsonrpc => '2.0', id => 3,
                    result => { tools => Test::Kapd::FakeMCP::default_tools() } }),
       'split: the same message once put together');
}

# -- batches, notifications, messages before a reply -------------------------
$m->set(reply => 'json', framing => 'lf');
$r = call(sid => $sid, msg => [rpc(4, 'tools/list'),
    { jsonrpc => '2.0', method => 'notifications/initialized' },
    rpc(5, 'tools/call', { name => 'get_issue', arguments => { n => 1 } })]);
my $b = decode_json($r->{body});
is_deeply([map { $_->{id} } @$b], [4, 5], 'a batch: the replies to its requests');
is($b->[1]{result}{content}[0]{text}, 'called get_issue', 'tools/call answered');
is(call(sid => $sid, msg => { jsonrpc => '2.0',
                              method => 'notifications/initialized' })->{status},
   202, 'a notification alone: 202');

$m->set(reply => 'sse', before => [
    { jsonrpc => '2.0', method => 'notifications/tools/list_changed' },
    { jsonrpc => '2.0', id => 'srv-1', method => 'roots/list' }]);
$r = call(msg => rpc(6, 'tools/list'), sid => $sid);
is_deeply([map { $_->{method} // "reply $_->{id}" }
           Test::Kapd::FakeMCP::sse_messages($r->{body})],
          ['notifications/tools/list_changed', 'roots/list', 'reply 6'],
          'messages before the reply: list_changed and a server request');
$m->set(before => [], reply => 'json');

my $t0 = time;
$r = call(msg => rpc(7, 'tools/call', { name => 'slow' }), sid => $sid,
          timeout => 10);
is_deeply([map { $_->{method} // "reply $_->{id}" }
           Test::Kapd::FakeMCP::sse_messages($r->{body})],
          ['notifications/progress', 'reply 7'], 'slow: progress, then the result');
ok(time - $t0 >= 0.9, 'slow: after its delay');

# -- GET stream, DELETE ----------------------------------------------------------
is(call(method => 'GET', sid => $sid, bare => 1,
        headers => ['Accept: text/event-stream'])->{status}, 405,
   'GET without get_events: 405');
$m->set(get_events => [{ jsonrpc => '2.0',
                         method => 'notifications/tools/list_changed' }]);
{
    my $s = tcp_connect($addr);
    syswrite($s, "GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                 . "Mcp-Session-Id: $sid\r\n\r\n");
    my $raw = '';
    wait_until(sub {
        sysread($s, my $c, 65536) if IO::Select->new($s)->can_read(0.1);
        $raw .= $c // '';
        return $raw =~ /list_changed.*\n\n/s;
    }, kapd_tmo(5));
    like($raw, qr{^HTTP/1.1 200 .*text/event-stream}s, 'GET stream: 200 SSE');
    like($raw, qr{notifications/tools/list_changed}, 'with its event');
    ok(IO::Select->new($s)->can_read(0.3) ? 0 : 1, 'and it stays open');
    close $s;
}
is(call(method => 'DELETE', sid => $sid, bare => 1)->{status}, 200,
   'DELETE ends the session');
is_deeply($m->sessions, [], 'no session left');
is(call(msg => rpc(8, 'tools/list'), sid => $sid)->{status}, 404,
   'the ended session: 404');

# -- what was received ---------------------------------------------------------
my $odd = qq({ "jsonrpc" :"2.0","id":9 ,"method":"tools/call","params":{"name":"delete_repo"}}\n);
$m->set(sessions => 0);
call(body => $odd);
my $last = $m->requests->[-1];
is($last->{body}, $odd, 'the exact body bytes are recorded');
is($m->tool_calls->[-1], 'delete_repo', 'tool_calls names it');
ok((grep { ($_->{method} // '') eq 'initialize' } @{$m->rpc}), 'rpc() holds initialize');

$m->set(require => { Authorization => 'Bearer s3cret' });
is(call(msg => rpc(10, 'ping'))->{status}, 401, 'required header missing: 401');
is(call(msg => rpc(10, 'ping'), headers => ['Authorization: Bearer s3cret'])->{status},
   200, 'with it: 200');
my ($auth) = map { $_->[1] } grep { lc $_->[0] eq 'authorization' }
             @{$m->requests->[-1]{headers}};
is($auth, 'Bearer s3cret', 'the credential that arrived is recorded');
$m->set(require => {});

is(call(msg => rpc(11, 'ping'), bare => 1,
        headers => ['Content-Type: text/plain',
                    'Accept: application/json, text/event-stream'])->{status},
   415, 'Content-Type not JSON: 415');
is(call(msg => rpc(11, 'ping'), bare => 1,
        headers => ['Content-Type: application/json'])->{status},
   406, 'Accept without text/event-stream: 406');

# -- redirect, status, hang ----------------------------------------------------------
$m->set(redirect => 'http://127.0.0.1:1/elsewhere');
$r = call(msg => rpc(12, 'ping'));
is("$r->{status} " . ($r->{headers}{location} // ''),
   '307 http://127.0.0.1:1/elsewhere', 'redirect mode: 307 with Location');
$m->set(redirect => undef, status => 503);
is(call(msg => rpc(12, 'ping'))->{status}, 503, 'status mode');
$m->set(status => undef, hang => 1);
$t0 = time;
is(http_get('/mcp', addr => $addr, method => 'POST', body => '{}',
            timeout => 1), '', 'hang mode: no answer');

$t->finish;
