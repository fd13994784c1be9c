#!/usr/bin/perl
# 405-cli-gh-token.t -- the gh token never enters the child: the real gh
# in proxy mode runs with a per-call dummy in its token variables and
# its API requests going to kapd's credential socket, where kapd puts
# the real token in and forwards them over HTTPS to a loopback TLS fake
# of the GitHub API (gh's enterprise mode).  `gh pr list` works and the
# fake saw the real token; `gh auth token`, `--jq '$ENV.GH_...'` and an
# environment dump sent through `gh api -F env=@/proc/self/environ`
# (the fake echoes the body) show only the dummy; on the socket, a
# wrong, missing or expired dummy, a foreign Host, a malformed request
# line and another method are refused; the token is in neither kapd's
# log nor its audit; the settings that cannot work are refused.  Skipped without gh or without the gh profile.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeHTTP;
use Test::Kapd::Cli qw(cli_call);
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/cli/);
my $prof = $t->builddir . '/modules/cli/gh.prof';
plan(skip_all => 'no gh profile (gh was not installed at build time)')
    unless -s $prof && grep { -x "$_/gh" } split /:/, $ENV{PATH};
$t->plan(33);
my $dir = $t->testdir;
my $token = 'gh-enterprise-token-REAL-5f1e2d3c4b5a6978';
my $gport = $t->port('github');
my $ghost = "127.0.0.1:$gport";

my $gh = Test::Kapd::FakeHTTP->new($t, port => $gport, name => 'github',
    tls => 1, cert_names => ['127.0.0.1'], handler => sub {
        my ($req) = @_;
        my $tg = $req->{target};
        return (200, [], encode_json({ login => 'octo', id => 1 }))
            if $tg =~ m{^/api/v3/user\b};
        return (200, [], encode_json({ echo => $req->{body} // '' }))
            if $tg =~ m{^/api/v3/echo\b};
        return (200, [], [{ sleep => 4 }, encode_json({ slow => 1 })])
            if $tg =~ m{^/api/v3/slow\b};
        return (200, [], encode_json({ data => { repository => { pullRequests => {
            totalCount => 1, pageInfo => { hasNextPage => JSON::PP::false, endCursor => '' },
            nodes => [{ number => 7, title => 'Fix the thing', state => 'OPEN',
                        url => "https://$ghost/o/r/pull/7", headRefName => 'fix',
                        isDraft => JSON::PP::false, isCrossRepository => JSON::PP::false,
                        createdAt => '2026-01-01T00:00:00Z',
                        headRepositoryOwner => { id => 'x', login => 'o' } }] } } } }));
    });
chmod 0644, "$dir/github.crt";

$t->write_conf(<<"EOF2");
kapd: { load = ["cli"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log";
        log_level = "debug"; };
audit_log: { path = "audit.jsonl"; };
network: { allow = ["127.0.0.1:%%PORT_github%%"]; };
cli: { listen = ["127.0.0.1:%%PORT_cli%%"];
    tools = (
        { name = "gh"; profile = "$prof";
          env = [ "GH_ENTERPRISE_TOKEN=$token", "GH_HOST=$ghost",
                  "GH_REPO=$ghost/o/r", "SSL_CERT_FILE=$dir/github.crt" ];
          allow = [ "pr list", "auth token --hostname=$ghost", "api --method=GET --jq=* *",
                    "api --method=GET *",
                    "api --method=POST --field=env=\@/proc/self/environ *" ]; }
    );
};
EOF2
ok($t->try_run, 'kapd serves gh with its credential proxy') or diag($t->{run_error});
my $sock = "$dir/cli-gh.sock";
# readiness is the TCP port; the module makes the socket 0600 as the
# generation goes live, a moment later
my @st;
wait_until(sub { @st = stat $sock; @st && -S _ && ($st[2] & 07777) == 0600 }, kapd_tmo(5));
ok(@st && -S _ && ($st[2] & 07777) == 0600, 'the credential socket is 0600')
    or diag(sprintf('%o', $st[2] // 0));

sub call { return cli_call('127.0.0.1:' . $t->port('cli'), 'gh', [@_], timeout => 30) }
sub fake_requests {
    return map { decode_json($_) } split /\n/, $t->read_file('fakehttp-github.requests') // '';
}
sub auths { return map { my $h = $_->{headers}; map { lc $_->[0] eq 'authorization' ? $_->[1] : () } @$h } @_ }

# ---- gh works, the API sees the real token ------------------------------------------
my $r = call('pr', 'list');
is($r->{exit}, 0, 'gh pr list: exit 0') or diag($r->{err});
like($r->{out}, qr/^7\tFix the thing\tfix\tOPEN/m, "the fake's pull request");
my @a = auths(fake_requests());
ok(@a && !grep({ $_ ne "token $token" } @a), 'the API saw the real token, and only it')
    or diag(explain(\@a));

# ---- what the child can print ---------------------------------------------------
$r = call('auth', 'token', '--hostname', $ghost);
is($r->{exit}, 0, 'gh auth token: exit 0') or diag($r->{err});
like($r->{out}, qr/^kapdummy_[0-9a-f]{32}$/, 'gh auth token prints a dummy');
my $d1 = ($r->{out} =~ /(kapdummy_[0-9a-f]{32})/)[0] // '';
$r = call('api', '/user', '--jq', '$ENV.GH_ENTERPRISE_TOKEN');
is($r->{exit}, 0, "gh api --jq '\$ENV.GH_ENTERPRISE_TOKEN': exit 0") or diag($r->{err});
like($r->{out}, qr/^kapdummy_[0-9a-f]{32}$/, '$ENV in --jq holds a dummy');
isnt(($r->{out} =~ /(kapdummy_\w+)/)[0] // '', $d1, 'a fresh dummy per call');
$r = call('api', '/echo', '--method', 'POST', '-F', 'env=@/proc/self/environ');
is($r->{exit}, 0, 'gh api -F env=@/proc/self/environ: exit 0') or diag($r->{err});
like($r->{out}, qr/GH_ENTERPRISE_TOKEN=kapdummy_[0-9a-f]{32}/,
     "the child's environment came back through the fake: a dummy");
ok(!grep({ ($_->{body} // '') =~ /\Q$token\E/ || $_->{target} =~ /\Q$token\E/ } fake_requests())
   && $r->{out} !~ /\Q$token\E/, 'no request body or target carried the token, no output showed it');

# ---- the socket ------------------------------------------------------------------
sub sock_req {
    my ($raw) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $sock, Type => SOCK_STREAM) or return { status => 0 };
    return http_parse(http_raw($s, $raw, timeout => 10)) // { status => 0, body => '' };
}
sub get_user {
    my ($auth, $host) = @_;
    return sock_req("GET /api/v3/user HTTP/1.1\r\nHost: $host\r\n"
        . (defined $auth ? "Authorization: token $auth\r\n" : '') . "Connection: close\r\n\r\n");
}
is(get_user($d1, $ghost)->{status}, 401, 'the dummy of a call that ended: 401');

# a call that runs while the test uses its dummy
my $pid = fork // die "fork: $!";
if ($pid == 0) { my $x = call('api', '/slow'); exit($x->{exit} == 0 ? 0 : 1) }
my $live;
wait_until(sub {
    for my $e (glob '/proc/[0-9]*/environ') {
        open my $fh, '<', $e or next;
        local $/;
        my $env = <$fh> // '';
        return 1 if ($live) = $env =~ /\0GH_ENTERPRISE_TOKEN=(kapdummy_[0-9a-f]{32})\0/
                              and $env =~ /\0GH_HOST=\Q$ghost\E\0/;
    }
    0 }, kapd_tmo(10));
ok($live, "a running gh call's dummy");
$live //= 'none';
my $u = get_user($live, $ghost);
is($u->{status}, 200, 'the live dummy on the socket: forwarded') or diag($u->{body});
like($u->{body}, qr/"login":"octo"/, "the API's answer");
is(get_user('kapdummy_' . ('0' x 32), $ghost)->{status}, 401, 'a wrong dummy: 401');
is(get_user(undef, $ghost)->{status}, 401, 'no Authorization: 401');
is(get_user($token, $ghost)->{status}, 401, 'the real token itself: 401 (only dummies)');
my $f = get_user($live, 'evil.example.test');
is($f->{status}, 403, 'a foreign Host: 403');
like($f->{body}, qr/^\{"error":/, 'a JSON error');
is(sock_req("GET /api/v3/user HTTP/1.1 x\r\nHost: $ghost\r\nAuthorization: token $live\r\n\r\n")->{status},
   400, 'a malformed request line: 400');
is(sock_req("TRACE /api/v3/user HTTP/1.1\r\nHost: $ghost\r\nAuthorization: token $live\r\n"
            . "Connection: close\r\n\r\n")->{status}, 405, 'TRACE: 405');
waitpid($pid, 0);
is($?, 0, 'the slow call ended well');

# ---- logs and audit ------------------------------------------------------------------
my @au = $t->wait_audit(sub { grep { ($_->{event} // '') eq 'cli_credential'
                                     && ($_->{path} // '') eq '/api/v3/user' } @_ });
ok((grep { ($_->{event} // '') eq 'cli_credential' && ($_->{host} // '') eq $ghost
           && ($_->{method} // '') eq 'GET' && ($_->{status} // 0) == 200 } @au),
   'audit: each forwarded request with method, host, path and status')
    or diag(explain([grep { ($_->{event} // '') eq 'cli_credential' } @au]));
$t->stop;
my $logs = ($t->read_file('error.log') // '') . ($t->read_file('audit.jsonl') // '');
unlike($logs, qr/\Q$token\E/, "the token is in neither kapd's log nor its audit");

# ---- configuration -----------------------------------------------------------------
sub conf_error {
    my ($tool, $re, $name) = @_;
    $t->write_conf("kapd: { load = [\"cli\"]; module_path = [\"%%MODULE_PATH%%\"]; };\n"
                   . "cli: { listen = [\"127.0.0.1:%%PORT_cli%%\"]; tools = ( $tool ); };\n");
    my $r = $t->kapd_cmd('-t', '-c', $t->conf_path, '-p', $dir);
    isnt($r->{rc}, 0, "$name: refused");
    like($r->{all}, $re, "$name: the message") or diag($r->{all});
}
conf_error(qq({ name = "gh"; mode = "direct"; path = "/bin/true"; credential_proxy = true; }),
           qr/credential_proxy is for a proxy-mode tool with gh's profile/, 'a direct tool');
conf_error(qq({ name = "gh"; profile = "$prof"; allow = ["pr list"]; credential_proxy = true;
                env = [ "GH_HOST=$ghost" ]; }),
           qr/credential_proxy: the env holds no token/, 'no token');
conf_error(qq({ name = "gh"; profile = "$prof"; allow = ["pr list"]; credential_socket = "x.sock";
                credential_proxy = false; env = [ "GH_TOKEN=abcd1234" ]; }),
           qr/credential_socket without the credential proxy/, 'a socket without the proxy');
$t->finish;
