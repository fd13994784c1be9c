#!/usr/bin/perl
# 616-capsule-mcp.t -- `kap run` with an mcp group: the capsule's kapd
# loads mcp (locked: the file is from the agent's side) on a unix socket
# the bridge brings to 127.0.0.1:3129 in the capsule; the server comes
# from its registration in the host's ~/.kap/auth, its ${VAR} header from
# the project's env file (~/.kap/envs/NAME/.env, as kap up's sidecar):
# the agent lists and calls the allowed tools and never sees the
# credential.  kap run writes the project's .mcp.json (an http entry per
# server, nothing secret; the file's other entries kept, stale ones of
# kapd's removed; a symbolic link planted there is left alone, never
# followed, and the entries are printed instead);
# a policy naming its own url or a ${VAR} header is refused with the
# line.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;
use Test::Kapd::FakeMCP;
use Digest::SHA qw(sha256_hex);
use JSON::PP;

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t, 'curl');
$t->has_module('mcp');
plan(skip_all => 'kap-mcp not built') unless -x $t->builddir . '/kap-mcp';
$t->plan(20);
my $dir = $t->testdir;
my $KEY = 'capsule-never-sees-this-Tz7Qm2';
my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'gh',
                                  addr => '127.0.0.2', sessions => 0,
                                  require => { 'X-Api-Key' => $KEY });
my $J = JSON::PP->new->canonical;

# the host: the registration, and the project's env file
my $proj = "$dir/my-proj";
mkdir $proj, 0755;
my $envdir = "$dir/home/.kap/envs/my-proj_kap" . substr(sha256_hex($proj), 0, 8);
for my $d ("$dir/home/.kap", "$dir/home/.kap/auth", "$dir/home/.kap/envs", $envdir) {
    mkdir $d, 0700; chmod 0700, $d;
}
chmod 0600, $t->write_file('home/.kap/auth/gh.json', $J->encode({
    upstream => $m->url, headers => { 'X-Api-Key' => '${GH_KEY}' } }));
chmod 0600, $t->write_file("$envdir/.env", "GH_KEY=$KEY\n");

sub policy {
    my ($server) = @_;
    return $t->expand(<<"EOF2");
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { };
dns: { };
mcp: {
    auth_dir = "/tmp";
    servers = ( $server );
};
EOF2
}
$t->write_file('my-proj/mcp.conf', policy('{ name = "gh"; allow = ["get_*"]; }'));
# the agent's own file: other servers kept, a stale one of kapd's removed
$t->write_file('my-proj/.mcp.json', $J->encode({ keep => 1, mcpServers => {
    other => { command => 'x' },
    old   => { type => 'http', url => 'http://127.0.0.1:3129/old' } } }));
$t->write_file('my-proj/probe.sh', <<'EOF2');
post() {
    curl -s --max-time 20 -X POST -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -d "$1" http://127.0.0.1:3129/gh
    echo
}
echo "list=$(post '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')"
echo "call=$(post '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_issue","arguments":{}}}')"
echo "deny=$(post '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_repo","arguments":{}}}')"
echo "key_env=${GH_KEY:-none}"
echo "auth_dir=$(ls ~/.kap/auth 2>&1 | tr '\n' ' ')"
EOF2

my $env = { KAP_MCP => $t->builddir . '/kap-mcp', GH_KEY => undef };
my $r = $c->run({ cwd => $proj, env => $env, tag => 'mcp' },
                '-c', "$proj/mcp.conf", '--', 'sh', 'probe.sh');
is($r->{rc}, 0, 'kap run with an mcp group: exit 0') or diag($r->{err});
my $kv = Test::Kapd::Capsule::kv($r->{out});
like($kv->{list} // '', qr/get_issue/, 'the agent lists the allowed tool at 127.0.0.1:3129/gh')
    or diag($r->{out}, $r->{err});
unlike($kv->{list} // '', qr/delete_repo/, 'and not the other one');
like($kv->{call} // '', qr/called get_issue/, 'an allowed call reaches the server');
like($kv->{deny} // '', qr/-32602/, 'a call allow does not name: -32602');
is($kv->{key_env}, 'none', 'the credential is not in the capsule');
unlike($r->{out}, qr/\Q$KEY\E/, 'nor in anything the agent saw');
unlike($kv->{auth_dir} // '', qr/gh\.json/, 'the registrations are not in the capsule');
my ($req) = grep { $_->{method} eq 'POST' } @{ $m->requests };
my ($hk) = map { $_->[1] } grep { lc $_->[0] eq 'x-api-key' } @{ $req ? $req->{headers} : [] };
is($hk, $KEY, "the server got the env file's value, injected by kapd");
like($r->{err}, qr/MCP server gh at http:\/\/127\.0\.0\.1:3129\/gh/, 'kap run says where');
like($r->{err}, qr/ignoring mcp\.auth_dir/, "the policy's auth_dir is ignored, with a warning");

my $mj = eval { decode_json($t->read_file('my-proj/.mcp.json')) } // {};
is_deeply($mj->{mcpServers}{gh}, { type => 'http', url => 'http://127.0.0.1:3129/gh' },
          '.mcp.json: an http entry for gh, no credential');
ok($mj->{keep} && $mj->{mcpServers}{other} && !$mj->{mcpServers}{old},
   '.mcp.json: the agent\'s other entries kept, a stale one of kapd\'s removed');
unlike($t->read_file('my-proj/.mcp.json'), qr/\Q$KEY\E|X-Api-Key/i, '.mcp.json holds no secret');

# a symbolic link planted at .mcp.json is never written through
unlink "$proj/.mcp.json";
$t->write_file('target.json', '{"mine":1}');
symlink("$dir/target.json", "$proj/.mcp.json") or die "symlink: $!";
$r = $c->run({ cwd => $proj, env => $env, tag => 'link' },
             '-c', "$proj/mcp.conf", '--', 'true');
ok(-l "$proj/.mcp.json" && $t->read_file('target.json') eq '{"mine":1}',
   'a planted symlink is left alone, its target untouched') or diag($r->{err});
like($r->{err}, qr/not writing \S+\.mcp\.json.*\n.*"url":"http:\/\/127\.0\.0\.1:3129\/gh"/,
     'the entries are printed instead');

# the policy file cannot name the url or a header: refused with its line
$t->write_file('my-proj/evil.conf',
               policy('{ name = "gh"; allow = ["*"]; url = "http://127.0.0.2:%%PORT_mcp%%/x"; }'));
# (the command waits for kapd at :3129, and kap run ends with kapd)
my @probe = ('curl', '-s', '--max-time', '20', '-o', '/dev/null', 'http://127.0.0.1:3129/gh');
$r = $c->run({ cwd => $proj, env => $env, tag => 'evil' },
             '-c', "$proj/evil.conf", '--', @probe);
isnt($r->{rc}, 0, 'a policy naming its own url: kap run fails');
like($r->{err}, qr/mcp\.locked.*no url.*kapd\.conf:7\b/s, 'saying why, with the line')
    or diag($r->{err});
$t->write_file('my-proj/evil.conf',
               policy('{ name = "gh"; allow = ["*"]; headers = { Authorization = "${HOME_SECRET}"; }; }'));
$r = $c->run({ cwd => $proj, env => { %$env, HOME_SECRET => 'hs-0123456789' }, tag => 'evil2' },
             '-c', "$proj/evil.conf", '--', @probe);
isnt($r->{rc}, 0, 'a policy with a ${VAR} header: kap run fails');
like($r->{err}, qr/mcp\.locked.*no headers.*kapd\.conf:7\b/s, 'saying why, with the line')
    or diag($r->{err});
$t->finish;
