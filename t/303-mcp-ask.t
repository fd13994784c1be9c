#!/usr/bin/perl
# 303-mcp-ask.t -- ask instead of deny: a tool under an `ask` pattern is
# not decided by the mcp module; the call waits while a later policy hook
# answers (test_hooks stands in for the channel, where a human answers),
# and is forwarded only on allow.  A deny (the channel's answer, or its
# timeout) refuses the call without reaching the server; tools the
# patterns decide are not asked; an agent that goes away while its call
# waits sends nothing upstream.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('mcp')->has_module('test_hooks');
$t->plan(15);

my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'k',
                                  addr => '127.0.0.2', sessions => 0);

sub conf {
    my ($after) = @_;
    return <<"EOF";
kapd: {
    load = ["mcp", "test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
    policy: { chain = ["network", "mcp", "test_hooks"]; default = "deny"; };
};
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "wait"; wait = 1;
              after_wait = "$after"; kinds = ["mcp_call"]; };
mcp: {
    listen = "127.0.0.1:%%PORT_kap%%";
    servers = ( { name = "gh"; url = "http://127.0.0.2:%%PORT_mcp%%/mcp";
                  allow = ["get_*"]; ask = ["create_*"]; deny = ["create_repo"]; } );
};
EOF
}
$t->write_conf(conf('allow'));
$t->run;
my $kap = '127.0.0.1:' . $t->port('kap');
my $J = JSON::PP->new->canonical;

sub tcall {
    my ($tool) = @_;
    my $raw = http_get('/gh', addr => $kap, host => $kap, method => 'POST',
                       body => $J->encode({ jsonrpc => '2.0', id => 1,
                                            method => 'tools/call',
                                            params => { name => $tool,
                                                        arguments => {} } }),
                       headers => ['Content-Type: application/json',
                                   'Accept: application/json, text/event-stream'],
                       timeout => 10);
    return http_parse($raw) // { status => 0, body => '' };
}

my $t0 = time;
my $r = tcall('create_issue');
my $dt = time - $t0;
is($r->{status}, 200, 'an asked tool, answered allow: 200');
like($r->{body}, qr/called create_issue/, 'the server answered it');
ok($dt >= 0.9, 'after the answer came');
$t0 = time;
is(tcall('get_issue')->{status}, 200, 'an allowed tool');
ok(time - $t0 < 0.9, 'is not asked');
my $n = $m->count;
like(tcall('create_repo')->{body}, qr/-32602/, 'deny wins over ask');

$t->write_conf(conf('deny'));
like($t->reload // '', qr/reloaded/, 'the stand-in now says deny');
$r = tcall('create_issue');
is((eval { decode_json($r->{body}) } // {})->{error}{code}, -32602,
   'an asked tool, answered deny: JSON-RPC -32602');
like($r->{body}, qr/create_issue.*denied/, 'naming the tool');
{
    my $raw = http_get('/gh', addr => $kap, host => $kap, method => 'POST',
        body => $J->encode([
            { jsonrpc => '2.0', id => 7, method => 'tools/call',
              params => { name => 'create_issue', arguments => {} } },
            { jsonrpc => '2.0', id => 8, method => 'tools/call',
              params => { name => 'get_issue', arguments => {} } }]),
        headers => ['Content-Type: application/json',
                    'Accept: application/json, text/event-stream'], timeout => 10);
    my $list = eval { decode_json(http_parse($raw)->{body}) } // [];
    my %e = map { $_->{id} => $_->{error}{message} } @$list;
    ok(($e{7} // '') =~ /denied/ && ($e{8} // '') =~ /not sent/,
       'in a batch: the denied call and its neighbour both answered');
}
is($m->count, $n, 'nothing of them reached the server');

# the agent goes away while its call waits for an allow
$t->write_conf(conf('allow'));
like($t->reload // '', qr/reloaded/, 'the stand-in says allow again');
{
    my $s = tcp_connect($kap);
    my $body = $J->encode({ jsonrpc => '2.0', id => 5, method => 'tools/call',
                            params => { name => 'create_x', arguments => {} } });
    syswrite($s, "POST /gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 . "Content-Length: " . length($body) . "\r\n\r\n$body");
    close $s;
}
ok(!wait_until(sub { grep { $_ eq 'create_x' } @{$m->tool_calls} }, kapd_tmo(2.5)),
   'a call whose agent went away is never sent');
is(tcall('get_issue')->{status}, 200, 'kapd still answers');
my @a = $t->wait_audit(sub { grep { ($_->{event} // '') eq 'decision'
                                    && ($_->{subject} // '') eq 'create_issue'
                                    && ($_->{decided_by} // '') eq 'test_hooks' } @_ });
ok(scalar @a, 'the asked call is audited as decided by the asker');

$t->finish;
