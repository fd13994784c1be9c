#!/usr/bin/perl
# 402-cli-capsule.t -- cli tools inside a `kap run` capsule: the policy's
# cli group is served by the private kapd (on a unix socket, "locked":
# the file is from the agent's side), the bridge brings it to
# 127.0.0.1:3130 in the capsule, and a shim named after each tool (a link
# to kap-shim, first on PATH) runs it through kapd: stdout and stderr as
# the tool wrote them, the exact exit status, stdin piped in, a denial as
# one line and 126, a death by signal as 128+n.  The tool (t/tools/
# fake-cli) runs outside the capsule, with the credential the capsule
# never sees; a tool path in a locked policy is refused.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use File::Copy qw(copy);
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns cli/);
my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare/);
plan(skip_all => 'kap-cli-test not built') unless -x $t->builddir . '/kap-cli-test';
# a locked cli group takes root-owned binaries and profiles only
plan(skip_all => 'needs root (root-owned tool and profile)') unless $> == 0;
$t->plan(17);
my $dir = $t->testdir;
mkdir "$dir/bin", 0755;
copy($t->srcdir . '/t/tools/fake-cli', "$dir/bin/fake") or die $!;
chmod 0755, "$dir/bin/fake";
copy($t->srcdir . '/t/tools/fake-cli.prof', "$dir/fake.prof") or die $!;
chmod 0644, "$dir/fake.prof";
chmod 0755, $dir;
my $secret = 'capsule-never-sees-this-0123456789';

sub policy {
    my ($extra) = @_;
    $extra //= '';
    return <<"EOF2";
kapd: { log_level = "info"; };
cli: {
    tools = (
        { name = "fake"; profile = "fake.prof"; $extra
          env = [ "FAKE_TOKEN=$secret", "FAKE_CLI_LOG=$dir/calls.log" ];
          allow = [ "echo **", "exit *", "cat", "kill *", "env" ];
          deny = [ "echo bad" ]; }
    );
};
EOF2
}
$t->write_file('policy.conf', policy());

$t->write_file('capsule.sh', <<'EOF');
# runs inside the capsule
echo "which=$(command -v fake)"
echo "token_inside=${FAKE_TOKEN:-none}"
fake echo hello world; echo "rc_echo=$?"
fake exit 7; echo "rc_exit=$?"
fake echo bad x 2> deny.err; echo "rc_deny=$?"
echo "deny_line=$(cat deny.err)"
printf 'piped-in\n' | fake cat; echo "rc_cat=$?"
fake kill TERM; echo "rc_kill=$?"
fake env | grep TOKEN_LEN
fake nope 2> /dev/null; echo "rc_unknown=$?"
exit 3
echo "which=$(command -v fake)"
echo "token_inside=${FAKE_TOKEN:-none}"
fake echo hello world; echo "rc_echo=$?"
fake exit 7; echo "rc_exit=$?"
fake echo bad x 2> deny.err; echo "rc_deny=$?"
echo "deny_line=$(cat deny.err)"
printf 'piped-in\n' | fake cat; echo "rc_cat=$?"
fake kill TERM; echo "rc_kill=$?"
fake env | grep TOKEN_LEN
fake nope 2> /dev/null; echo "rc_unknown=$?"
exit 3
EOF

sub run_kap {
    my ($o, @args) = @_;
    my $tag = $o->{tag} // 'kap';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        chdir $dir or exit 127;
        open STDOUT, '>', "$dir/$tag.out";
        open STDERR, '>', "$dir/$tag.err";
        $ENV{KAPD} = $t->binary;
        $ENV{KAP_SHIM} = $shim;
        $ENV{KAP_CLI_TEST} = $t->builddir . '/kap-cli-test';
        $ENV{KAP_MODULE_PATH} = $t->module_path;
        $ENV{HOME} = "$dir/home";
        $ENV{XDG_RUNTIME_DIR} = "$dir/run";
        $ENV{PATH} = "$dir/bin:$ENV{PATH}";     # kapd finds the tool here
        delete $ENV{FAKE_TOKEN};
        delete $ENV{XDG_STATE_HOME};
        exec($sh, $kap, @args) or exit 127;
    }
    my $st;
    my $done = wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } },
                          kapd_tmo(60));
    unless ($done) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $st = -1;
    }
    return { rc => $st < 0 ? -1 : ($st & 127 ? 128 + ($st & 127) : $st >> 8),
             out => $t->read_file("$tag.out") // '',
             err => $t->read_file("$tag.err") // '' };
}
mkdir "$dir/home", 0700;
mkdir "$dir/run", 0700;

my $r = run_kap({}, 'run', '-c', 'policy.conf', '--', 'sh', "$dir/capsule.sh");
is($r->{rc}, 3, "the command's exit status") or diag($r->{err});
my %kv = $r->{out} =~ /^(\w+)=(.*)$/mg;
is($kv{which}, '/run/kap/bin/fake', 'the shim is first on PATH');
is($kv{token_inside}, 'none', 'the credential is not in the capsule');
like($r->{out}, qr/^hello\|world$/m, 'the tool ran outside, its stdout came back');
is($kv{rc_echo}, 0, 'exit 0');
is($kv{rc_exit}, 7, 'the exact exit status (7)');
is($kv{rc_deny}, 126, 'a denied call: 126');
is($kv{deny_line}, 'kap: fake echo bad x: denied: deny-rule: echo bad',
   'and the one line on stderr');
like($r->{out}, qr/^piped-in$/m, 'stdin piped through');
is($kv{rc_cat}, 0, 'cat exit 0');
is($kv{rc_kill}, 143, 'a death by SIGTERM: 143 (the shim dies of it too)');
is($kv{TOKEN_LEN}, length $secret, 'the tool outside had the credential');
is($kv{rc_unknown}, 126, 'an unknown command: 126');
my @calls = split /^end\n/m, $t->read_file('calls.log') // '';
ok((grep { /^argv: \[echo\] \[hello\] \[world\]$/m } @calls), 'the fake recorded the canonical argv');
my ($c) = grep { /\[exit\] \[7\]/ } @calls;
like($c // '', qr{^cwd: /tmp/kapd-cli\.[^/]+/call-}m,
     'it ran in a per-call home outside the capsule');

# a tool path in the agent's-side policy is refused (it could name any
# program); kap run fails to start kapd and says why
$t->write_file('policy.conf', policy(qq{path = "$dir/bin/fake";}));
$r = run_kap({ tag => 'path' }, 'run', '-c', 'policy.conf', '--', 'sh', '-c',
            'fake exit 4');
isnt($r->{rc}, 0, 'a tool path under cli.locked: kap run fails');
like($r->{err}, qr/cli\.locked: a tool's path cannot be set/, 'says so')
    or diag($r->{err});
$t->finish;
