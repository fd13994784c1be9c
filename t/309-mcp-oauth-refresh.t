#!/usr/bin/perl
# 309-mcp-oauth-refresh.t -- kapd's mcp module in front of an OAuth
# registration (written by kap-mcp's flow against Test::Kapd::FakeOAuth):
# the token injected; when the server refuses it (401) the agent gets 503
# with Retry-After while kapd runs `kap-mcp refresh` as a child, and the
# retry goes out with the new token; a refreshed token within 60 s of
# expiry starts one more refresh in the background while the request
# goes on with the token it has, then the next request carries the new
# one; no token in the error log or the audit.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::FakeOAuth;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('mcp');
my $k = Test::KapInit->new($t);
plan(skip_all => 'kap-mcp not built') unless -x $t->builddir . '/kap-mcp';
plan(skip_all => 'no curl for the browser stand-in') unless -x '/usr/bin/curl';
$t->plan(15);
my $dir = $t->testdir;
my $auth = "$dir/auth";

my $o = Test::Kapd::FakeOAuth->new($t, addr => '127.0.0.2', ttl => 3600);
spew("$dir/open.sh", "#!/bin/sh\nexec /usr/bin/curl -sS -L --noproxy '*' --max-redirs 2 -o /dev/null \"\$1\"\n");
chmod 0755, "$dir/open.sh";
my $r = $k->run({ env => { KAP_OPEN => "$dir/open.sh", KAP_AUTH_DIR => $auth,
                           KAP_MCP_TIMEOUT => 20 } },
                $t->builddir . '/kap-mcp', 'add', 'docs', $o->url);
is($r->{rc}, 0, 'registered with OAuth') or diag($r->{err});
sub token { (decode_json(slurp("$auth/docs.json"))->{headers}{Authorization} // '') =~ s/^Bearer //r }
# the token of the last request to the MCP endpoint (kap-mcp's own token
# requests go to the same server)
sub sent {
    my ($req) = grep { $_->{target} =~ m{^/mcp} } reverse @{$o->requests};
    my %h = map { lc $_->[0] => $_->[1] } @{$req->{headers} // []};
    return ($h{authorization} // '') =~ s/^Bearer //r;
}
sub grants { $o->state->{grants}{refresh_token} // 0 }

$ENV{KAP_MCP} = $t->builddir . '/kap-mcp';
$t->write_conf(<<"EOF");
kapd: {
    load = ["mcp"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: { allow = ["127.0.0.2:%%PORT_oauth%%"]; };
audit_log: { path = "audit.jsonl"; };
mcp: {
    listen = "127.0.0.1:%%PORT_kap%%";
    auth_dir = "$auth";
    servers = ( { name = "docs"; allow = ["*"]; } );
};
EOF
$t->run;
my $kap = '127.0.0.1:' . $t->port('kap');

sub call {
    my $raw = http_get('/docs', addr => $kap, host => $kap, method => 'POST',
        body => '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t"}}}',
        headers => ['Content-Type: application/json',
                    'Accept: application/json, text/event-stream'],
        timeout => 10) // '';
    return http_parse($raw) // { status => 0, headers => {}, body => '' };
}

my $tok0 = token();
$r = call();
is($r->{status}, 200, 'through kapd with the registered token: 200');
is(sent(), $tok0, 'the token injected');

# -- the server refuses the token: 503, a refresh, the retry works --------------------
$o->set(ttl => 30);            # the next token is near expiry already
$o->revoke;
$r = call();
is($r->{status}, 503, 'a refused token: 503 while kapd refreshes it');
is($r->{headers}{'retry-after'}, '1', 'with Retry-After');
like($r->{body}, qr/refreshing it; retry/, 'the JSON says to retry');
ok(wait_until(sub { grants($o) == 1 }, 10), 'kap-mcp refresh ran once');
ok($t->wait_log(qr/server docs: OAuth token refreshed/, 10), 'kapd read the new token');
my $tok1 = token();
isnt($tok1, $tok0, 'the registration holds a new token');
$o->set(ttl => 3600);          # tokens from now on are long-lived
$r = call();
is($r->{status}, 200, 'the retry: 200');
is(sent(), $tok1, 'with the new token');

# -- near expiry: the retry above started a background refresh ---------------------------
ok(wait_until(sub { grants($o) == 2 }, 10), 'a token within 60 s of expiry: refreshed in the background');
ok(wait_until(sub { my @n = ($t->error_log // '') =~ /OAuth token refreshed/g; @n >= 2 }, 10), 'and read');
$r = call();
ok($r->{status} == 200 && sent() eq token() && sent() ne $tok1, 'the next request carries the newest token');

my $logs = ($t->error_log // '') . (slurp($t->path('audit.jsonl')) // '');
my @toks = keys %{$o->state->{tokens}};
ok(!grep({ index($logs, $_) >= 0 } @toks), 'no token in the error log or the audit');
$t->done_testing;
