#!/usr/bin/perl
# 309-mcp-oauth-refresh.t -- kapd's mcp module in front of an OAuth
# registration (written by kap-mcp's flow against Test::Kapd::FakeOAuth):
# the token injected; when the server refuses it (401) kapd runs
# `kap-mcp refresh` as a child and sends the request again, once, with the
# new token (the agent sees only the 200); a refreshed token within 60 s
# of expiry starts one more refresh in the background while the request
# goes on with the token it has, then the next request carries the new
# one; when the refresh fails the agent gets 503 with Retry-After; no
# token in the error log or the audit.
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
$t->plan(19);
my $dir = $t->testdir;
my $auth = "$dir/auth";

my $o = Test::Kapd::FakeOAuth->new($t, addr => '127.0.0.2', ttl => 3600);
my $r = $o->register($k, 'docs', $auth);
is($r->{rc}, 0, 'registered with OAuth') or diag($r->{err});
sub token { $o->registered_token('docs', $auth) }
# the token of the last request to the MCP endpoint (kap-mcp's own token
# requests go to the same server)
sub sent {
    my ($req) = grep { $_->{target} =~ m{^/mcp} } reverse @{$o->requests};
    my %h = map { lc $_->[0] => $_->[1] } @{$req->{headers} // []};
    return ($h{authorization} // '') =~ s/^Bearer //r;
}
sub grants { $o->refresh_grants }

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

# -- the server refuses the token: a refresh, the request sent again -------------------
sub mcp_requests { scalar grep { $_->{target} =~ m{^/mcp} } @{$o->requests} }
my $n0 = mcp_requests();
$o->set(ttl => 30);            # the next token is near expiry already
$o->revoke;
$r = call();
is($r->{status}, 200, 'a refused token: kapd refreshed it and sent the request again: 200')
    or diag($r->{body});
is(grants($o), 1, 'kap-mcp refresh ran once, before the answer');
like($t->error_log // '', qr/server docs: OAuth token refreshed/, 'kapd read the new token');
like($t->error_log // '', qr/server docs: sending the request again/, 'and said it sends the request again');
my $tok1 = token();
isnt($tok1, $tok0, 'the registration holds a new token');
is(sent(), $tok1, 'the request went out again with it');
is(mcp_requests(), $n0 + 2, 'the agent\'s request reached the server twice (refused, then replayed), no more');

# -- near expiry: the replay started a background refresh ---------------------------
ok(wait_until(sub { grants($o) == 2 }, 10), 'a token within 60 s of expiry: refreshed in the background');
ok(wait_until(sub { my @n = ($t->error_log // '') =~ /OAuth token refreshed/g; @n >= 2 }, 10), 'and read');
$o->set(ttl => 3600);          # tokens from now on are long-lived
my $tok2 = token();
$r = call();
ok($r->{status} == 200 && sent() eq $tok2 && $tok2 ne $tok1, 'the next request carries the newest token');
ok(wait_until(sub { grants($o) == 3 }, 10), 'and, that one near expiry too, started one more refresh');
ok(wait_until(sub { my @n = ($t->error_log // '') =~ /OAuth token refreshed/g; @n >= 3 }, 10), 'read');

# -- the refresh fails: 503 with Retry-After --------------------------------------------
my $reg = decode_json(slurp("$auth/docs.json"));
$reg->{oauth}{refresh_token} = 'not-a-refresh-token';
spew("$auth/docs.json.new", encode_json($reg));
chmod 0600, "$auth/docs.json.new";
rename "$auth/docs.json.new", "$auth/docs.json" or die "rename: $!";
$o->revoke;
$r = call();
is($r->{status}, 503, 'a refused token that cannot be refreshed: 503');
is($r->{headers}{'retry-after'}, '1', 'with Retry-After');
like($r->{body}, qr/the refresh failed/, 'the JSON says the refresh failed');

my $logs = ($t->error_log // '') . (slurp($t->path('audit.jsonl')) // '');
my @toks = keys %{$o->state->{tokens}};
ok(!grep({ index($logs, $_) >= 0 } @toks), 'no token in the error log or the audit');
$t->done_testing;
