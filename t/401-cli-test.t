#!/usr/bin/perl
# 401-cli-test.t -- `kap cli test [-c FILE] TOOL -- ARGS...`
# (contrib/kap/kap-cli.sh, kap-cli-test): the verdict, the rule that
# decided (with its file:line) and the canonical argv, from the policy
# file and the profile alone -- the tool is not installed and no kapd
# runs; exit 0 when the call would run, 126 with the daemon's one denial
# line when it would not, 2 for an unknown tool or a rule the profile
# cannot read; the policy file is found as kap run finds it; the real gh
# profile (when gh was installed at build time) answers too.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use File::Copy qw(copy);
use File::Path qw(make_path);

my $t = Test::Kapd->new;
my $k = Test::KapInit->new($t);
my $helper = $t->builddir . '/kap-cli-test';
plan(skip_all => 'kap-cli-test not built') unless -x $helper;
$t->plan(33);
my $dir = $t->testdir;
copy($t->srcdir . '/t/tools/fake-cli.prof', "$dir/fake.prof") or die $!;
my $ghprof = $t->builddir . '/modules/cli/gh.prof';

my $conf = <<"EOF2";
cli: {
    tools = (
        { name = "fake"; path = "/nonexistent/fake"; profile = "fake.prof";
          allow = [ "echo **", "exit *" ];
          deny = [ "echo bad" ]; ask = [ "kill *" ]; },
        { name = "gh"; profile = "$ghprof";
          allow = [ "pr list", "issue view *" ]; deny = [ "pr merge" ]; },
        { name = "aws"; mode = "direct"; }
    );
};
EOF2
spew("$dir/kap.conf", $conf);

sub ct { return $k->kap({ env => { KAP_CLI_TEST => $helper } }, 'cli', 'test', @_) }

my $r = ct('-c', "$dir/kap.conf", 'fake', '--', '-v', 'echo', '-n', 'x', 'a b');
is($r->{rc}, 0, 'an allowed call: exit 0') or diag($r->{err});
like($r->{out}, qr/^argv:\s+fake echo --verbose --name=x 'a b'$/m,
     'the canonical argv (short flags named, the word with a blank quoted)');
like($r->{out}, qr/^verdict:\s+allow$/m, 'verdict allow');
like($r->{out}, qr/^rule:\s+echo \*\*\s+\(\Q$dir\E\/kap\.conf:4\)$/m,
     'the rule and where it is written');

$r = ct('-c', "$dir/kap.conf", 'fake', 'echo', 'bad', 'x');
is($r->{rc}, 126, 'a deny rule: 126');
like($r->{out}, qr/^reason:\s+deny-rule: echo bad$/m, 'the reason');
like($r->{out}, qr/^rule:\s+echo bad\s+\(\Q$dir\E\/kap\.conf:5\)$/m, 'the deny rule');
like($r->{out}, qr/^kap: fake echo bad x: denied: deny-rule: echo bad$/m,
     "the daemon's denial line, word for word");

$r = ct('-c', "$dir/kap.conf", 'fake', 'kill', 'TERM');
is($r->{rc}, 3, 'an ask rule: 3');
like($r->{out}, qr/^verdict:\s+ask$/m, 'verdict ask');
like($r->{out}, qr/^rule:\s+kill \*\s+\(\Q$dir\E\/kap\.conf:5\)$/m, 'the ask rule and where');

$r = ct('-c', "$dir/kap.conf", 'fake', '--', 'env', 'x');
is($r->{rc}, 126, 'no allow rule: 126');
like($r->{out}, qr/^allow:\s+"env x"/m, 'a rule that would allow it');
like($r->{out}, qr/^kap: fake env x: denied: no-allow-rule \(a rule that would allow it: "env x"\)$/m,
     'in the same words as the daemon');

$r = ct('-c', "$dir/kap.conf", 'fake', '--', '--user', 'x', 'echo');
is($r->{rc}, 126, 'an unknown global flag: 126');
like($r->{out}, qr/^reason:\s+unknown-global-flag --user$/m, 'says so');
$r = ct('-c', "$dir/kap.conf", 'fake', '--', 'secret');
is($r->{rc}, 126, 'a sensitive command');

$r = ct('-c', "$dir/kap.conf", 'aws', '--', 's3', 'ls');
is($r->{rc}, 0, 'a direct-mode tool: 0');
like($r->{out}, qr/direct.*no rules apply/, 'says why');

$r = ct('-c', "$dir/kap.conf", 'nope', '--', 'x');
is($r->{rc}, 2, 'an unknown tool: 2');
like($r->{err}, qr/no tool "nope"/, 'says so');

spew("$dir/bad.conf", $conf =~ s/"exit \*"/"exit --zzz"/r);
$r = ct('-c', "$dir/bad.conf", 'fake', '--', 'exit', '1');
is($r->{rc}, 2, 'a rule the profile cannot read: 2');
like($r->{err}, qr/\Q$dir\E\/bad\.conf:4: allow rule "exit --zzz"/, 'at file:line');

# the policy file found as kap run finds it
make_path("$dir/proj/.devcontainer", "$dir/proj/sub");
spew("$dir/proj/.devcontainer/kap.conf", $conf =~ s/"fake\.prof"/"$dir\/fake.prof"/r);
$r = $k->kap({ cwd => "$dir/proj/sub", env => { KAP_CLI_TEST => $helper } },
             'cli', 'test', 'fake', '--', 'exit', '3');
is($r->{rc}, 0, "the project's .devcontainer/kap.conf is found") or diag($r->{err});

$r = $k->kap({ env => { KAP_CLI_TEST => $helper } }, 'cli', 'frob');
is($r->{rc}, 2, 'an unknown subcommand: 2');

SKIP: {
    skip 'gh was not installed at build time: no gh profile', 8
        unless -s $ghprof;
    $r = ct('-c', "$dir/kap.conf", 'gh', '--', 'pr', 'ls');
    is($r->{rc}, 0, 'gh pr ls: allowed (an alias)');
    like($r->{out}, qr/^argv:\s+gh pr list$/m, 'run as gh pr list');
    $r = ct('-c', "$dir/kap.conf", 'gh', '--', 'pr', 'merge', '5');
    is($r->{rc}, 126, 'gh pr merge: denied');
    like($r->{out}, qr/^kap: gh pr merge 5: denied: deny-rule: pr merge$/m, 'the line');
    $r = ct('-c', "$dir/kap.conf", 'gh', '--', 'auth', 'token');
    is($r->{rc}, 126, 'gh auth token: denied');
    $r = ct('-c', "$dir/kap.conf", 'gh', '--', '--user', 'x', 'pr', 'list');
    is($r->{rc}, 126, 'gh --user x pr list: denied');
    like($r->{out}, qr/unknown-global-flag --user/, 'as an unknown global flag');
    $r = ct('-c', "$dir/kap.conf", 'gh', '--', 'issue', 'view', '12');
    is($r->{rc}, 0, 'gh issue view 12: allowed');
}
$t->finish;
