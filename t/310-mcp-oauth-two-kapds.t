#!/usr/bin/perl
# 310-mcp-oauth-two-kapds.t -- two kapds (two projects, one user) in
# front of the same OAuth registration in one auth_dir, and the server
# refuses the token both hold (401) at the same moment.  Each kapd runs
# `kap-mcp refresh NAME --stale DIGEST`; the registration's lock lets one
# refresh while the other waits, and the other then finds a token that is
# not the one refused and uses it instead of refreshing again.  The fake
# authorization server rotates refresh tokens (a used one dies), so a
# second refresh with the same refresh token would fail and show as a
# 503: exactly one refresh grant, both agents get 200, both replays
# carry the one new token, and the registration file holds it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::FakeOAuth;
use JSON::PP;
use POSIX qw(_exit);

my $t = Test::Kapd->new->has_kapd->has_module('mcp');
my $u = Test::Kapd->new->has_kapd->has_module('mcp');
my $k = Test::KapInit->new($t);
plan(skip_all => 'kap-mcp not built') unless -x $t->builddir . '/kap-mcp';
plan(skip_all => 'no curl for the browser stand-in') unless -x '/usr/bin/curl';
$t->plan(11);
my $dir = $t->testdir;
my $auth = "$dir/auth";

my $o = Test::Kapd::FakeOAuth->new($t, addr => '127.0.0.2', ttl => 3600);
my $r = $o->register($k, 'docs', $auth);
is($r->{rc}, 0, 'registered with OAuth') or diag($r->{err});
sub token { $o->registered_token('docs', $auth) }
sub grants { $o->refresh_grants }
# the tokens of the requests to the MCP endpoint, oldest first
sub mcp_tokens {
    map {
        my %h = map { lc $_->[0] => $_->[1] } @{$_->{headers} // []};
        ($h{authorization} // '') =~ s/^Bearer //r
    } grep { $_->{target} =~ m{^/mcp} } @{$o->requests};
}

$ENV{KAP_MCP} = $t->builddir . '/kap-mcp';
my $oport = $t->port('oauth');
for my $d ($t, $u) {
    $d->write_conf(<<"EOF");
kapd: {
    load = ["mcp"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: { allow = ["127.0.0.2:$oport"]; };
audit_log: { path = "audit.jsonl"; };
mcp: {
    listen = "127.0.0.1:%%PORT_kap%%";
    auth_dir = "$auth";
    servers = ( { name = "docs"; allow = ["*"]; } );
};
EOF
    $d->run;
}
my @kap = map { '127.0.0.1:' . $_->port('kap') } $t, $u;

sub call {
    my ($addr) = @_;
    my $raw = http_get('/docs', addr => $addr, host => $addr, method => 'POST',
        body => '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t"}}}',
        headers => ['Content-Type: application/json',
                    'Accept: application/json, text/event-stream'],
        timeout => 20) // '';
    return http_parse($raw) // { status => 0, headers => {}, body => '' };
}

my $tok0 = token();
is_deeply([map { call($_)->{status} } @kap], [200, 200],
          'both kapds inject the registered token: 200, 200');

# -- the token refused for both at once ----------------------------------------
$o->revoke;
my $n0 = () = mcp_tokens();
my %kid;
for my $i (0, 1) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $res = call($kap[$i]);
        spew("$dir/status.$i", "$res->{status}\n$res->{body}");
        _exit(0);
    }
    $kid{$pid} = $i;
}
waitpid($_, 0) for keys %kid;
my @st = map { (split /\n/, slurp("$dir/status.$_") // "0\n", 2) } 0, 1;
is($st[0], 200, 'the first kapd\'s agent gets 200') or diag($st[1]);
is($st[2], 200, 'the second kapd\'s agent gets 200') or diag($st[3]);
is(grants(), 1, 'one refresh grant for the two refusals (the other kapd waited and used it)');
my $tok1 = token();
isnt($tok1, $tok0, 'the registration holds a new token');
my @after = (mcp_tokens())[$n0 .. (() = mcp_tokens()) - 1];
is(scalar(grep { $_ eq $tok1 } @after), 2, 'both replays carried the new token')
    or diag(join ' ', map { $_ eq $tok1 ? 'new' : $_ eq $tok0 ? 'old' : 'other' } @after);
like($t->error_log // '', qr/server docs: OAuth token refreshed/, 'the first kapd read the new token');
like($u->error_log // '', qr/server docs: OAuth token refreshed/, 'the second kapd read it too');

# -- afterwards both go on with it, no more refreshes ----------------------------
is_deeply([map { call($_)->{status} } @kap], [200, 200], 'the next requests: 200, 200');
my $logs = join '', map { ($_->error_log // '') . (slurp($_->path('audit.jsonl')) // '') } $t, $u;
ok(grants() == 1 && !grep({ index($logs, $_) >= 0 } keys %{$o->state->{tokens}}),
   'still one refresh; no token in either kapd\'s error log or audit');
$u->stop;
$t->done_testing;
