#!/usr/bin/perl
# 403-cli-gh.t -- the real gh through the cli module, against a loopback
# fake of the GitHub API (gh's enterprise mode: GH_HOST at a TLS fake on
# 127.0.0.1, its certificate in SSL_CERT_FILE, GH_REPO naming the repo,
# all in the tool's configured env): first posted to kapd directly, then
# inside a `kap run` capsule through the gh shim.  `gh pr list` prints
# the fake's pull request and exits 0, `gh issue view 99` (a GraphQL
# error) exits 1, `gh pr merge 7` is denied (126) and never reaches the
# fake, and the fake saw the token kapd holds, while `gh auth token` in
# the capsule prints only the credential proxy's per-call dummy (kapd
# dials the API itself: the fake's address is in the network allowlist).
# Skipped without gh or without the gh profile built from it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeHTTP;
use Test::Kapd::Cli qw(cli_call);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/cli/);
my $prof = $t->builddir . '/modules/cli/gh.prof';
plan(skip_all => 'no gh profile (gh was not installed at build time)')
    unless -s $prof && grep { -x "$_/gh" } split /:/, $ENV{PATH};
$t->plan(18);
my $dir = $t->testdir;
my $token = 'gh-enterprise-token-ABCDEF0123456789';
my $gport = $t->port('github');

my $gh = Test::Kapd::FakeHTTP->new($t, port => $gport, name => 'github',
    tls => 1, cert_names => ['127.0.0.1'], handler => sub {
        my ($req) = @_;
        my $body = $req->{body} // '';
        my $out = $body =~ /issue/i
            ? { errors => [{ type => 'NOT_FOUND',
                             message => 'Could not resolve to an issue with the number of 99.' }] }
            : { data => { repository => { pullRequests => {
                  totalCount => 1, pageInfo => { hasNextPage => JSON::PP::false, endCursor => '' },
                  nodes => [{ number => 7, title => 'Fix the thing', state => 'OPEN',
                              url => "https://127.0.0.1:$gport/o/r/pull/7",
                              headRefName => 'fix', isDraft => JSON::PP::false,
                              isCrossRepository => JSON::PP::false,
                              createdAt => '2026-01-01T00:00:00Z',
                              headRepositoryOwner => { id => 'x', login => 'o' } }] } } } };
        return (200, [], encode_json($out));
    });
chmod 0644, "$dir/github.crt";

my $tools = <<"EOF2";
    tools = (
        { name = "gh"; profile = "$prof";
          env = [ "GH_ENTERPRISE_TOKEN=$token", "GH_HOST=127.0.0.1:$gport",
                  "GH_REPO=127.0.0.1:$gport/o/r", "SSL_CERT_FILE=$dir/github.crt" ];
          allow = [ "pr list", "issue view *", "auth token --hostname=127.0.0.1:$gport",
                    "api repos/o/r/issues --method=POST --input=-" ];
          deny = [ "pr merge" ]; }
    );
EOF2

# ---- posted to kapd ----------------------------------------------------------
$t->write_conf(<<"EOF2");
kapd: { load = ["cli"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
network: { allow = ["127.0.0.1:$gport"]; };
cli: { listen = ["127.0.0.1:%%PORT_cli%%"];
$tools
};
EOF2
ok($t->try_run, 'kapd serves gh in proxy mode') or diag($t->{run_error});

sub call { return cli_call('127.0.0.1:' . $t->port('cli'), 'gh', [@_], timeout => 30) }
my $r = call('pr', 'list');
is($r->{exit}, 0, 'gh pr list: exit 0') or diag($r->{err});
like($r->{out}, qr/^7\tFix the thing\tfix\tOPEN/m, "the fake's pull request");
$r = call('issue', 'view', '99');
is($r->{exit}, 1, 'gh issue view 99 (a GraphQL error): exit 1');
like($r->{err}, qr/Could not resolve/, "gh's own error on stderr");
$r = call('pr', 'merge', '7');
is($r->{exit}, 126, 'gh pr merge: denied');
my @req = map { decode_json($_) } split /\n/, $t->read_file('fakehttp-github.requests') // '';
ok(@req && !grep({ ($_->{body} // '') =~ /merge/i } @req), 'the denied call never reached the API');
ok((grep { my $h = $_->{headers}; grep { lc $_->[0] eq 'authorization' && $_->[1] eq "token $token" } @$h } @req),
   'the API saw the token kapd holds');
$t->stop;

# ---- inside a kap run capsule ---------------------------------------------------
SKIP: {
    skip 'kap run capsules need root here (root-owned tool and profile)', 10 unless $> == 0;
    my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare/);
    $t->write_file('policy.conf', "kapd: { log_level = \"info\"; };\n"
        . "network: { allow = [\"127.0.0.1:$gport\"]; };\ncli: {\n$tools};\n");
    $t->write_file('capsule.sh', <<'EOF2');
gh pr list; echo "rc_list=$?"
gh issue view 99 2> issue.err; echo "rc_issue=$?"
gh pr merge 7 2> merge.err; echo "rc_merge=$?"
echo "merge_line=$(cat merge.err)"
echo "token_inside=${GH_ENTERPRISE_TOKEN:-none}"
echo "auth_token=$(gh auth token --hostname "$1")"
printf '{"title":"from-stdin"}' | gh api --input - repos/o/r/issues > api.out; echo "rc_api=$?"
EOF2
    mkdir "$dir/home", 0700;
    mkdir "$dir/run", 0700;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        chdir $dir or exit 127;
        open STDOUT, '>', "$dir/kap.out";
        open STDERR, '>', "$dir/kap.err";
        $ENV{KAPD} = $t->binary;
        $ENV{KAP_SHIM} = $shim;
        $ENV{KAP_CLI_TEST} = $t->builddir . '/kap-cli-test';
        $ENV{KAP_MODULE_PATH} = $t->module_path;
        $ENV{HOME} = "$dir/home";
        $ENV{XDG_RUNTIME_DIR} = "$dir/run";
        delete $ENV{XDG_STATE_HOME};
        exec($sh, $kap, 'run', '-c', 'policy.conf', '--', 'sh', "$dir/capsule.sh", "127.0.0.1:$gport") or exit 127;
    }
    my $st;
    wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } }, kapd_tmo(90))
        or do { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 };
    my $out = $t->read_file('kap.out') // '';
    my %kv = $out =~ /^(\w+)=(.*)$/mg;
    is($st, 0, 'kap run exits 0') or diag($t->read_file('kap.err'));
    like($out, qr/^7\tFix the thing/m, 'gh pr list in the capsule: the pull request');
    is($kv{rc_list}, 0, 'exit 0');
    is($kv{rc_issue}, 1, 'gh issue view 99: exit 1');
    is($kv{rc_merge}, 126, 'gh pr merge: 126');
    is($kv{token_inside}, 'none', 'no token in the capsule');
    like($kv{auth_token} // '', qr/^kapdummy_[0-9a-f]{32}$/,
         'gh auth token in the capsule: the per-call dummy of the credential proxy');
    # gh api --input -: the body is the shim's stdin, streamed to gh
    is($kv{rc_api}, 0, 'gh api --input - in the capsule: exit 0')
        or diag($t->read_file('kap.err'));
    my @r = map { decode_json($_) } split /\n/, $t->read_file('fakehttp-github.requests') // '';
    my ($post) = grep { ($_->{method} // '') eq 'POST' && ($_->{target} // '') =~ m{repos/o/r/issues} } @r;
    is(($post // {})->{body}, '{"title":"from-stdin"}', 'the API got the stdin as the body');
    like($t->read_file('api.out') // '', qr/pullRequests/, "and gh printed the answer");
}
$t->finish;
