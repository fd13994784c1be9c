#!/usr/bin/perl
# 613-capsule-agent-work.t -- issue 10: an agent's normal work inside a
# `kap run` capsule still works with the deny-by-default filesystem.
#
# In a project with a git repository: edit a file, build with make and with
# cc, run the result and a test script, `git commit` (as the user of
# ~/.gitconfig, shown read-only), `git init` and commit a new repository in
# the project; write its own configuration (~/.claude/settings.json, seeded
# from the real one), which the next run in the same project finds while
# the real one is unchanged.  As root and, where the kernel allows it, as
# an unprivileged user.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t, 'git', 'make', 'cc');
my $dir = $t->testdir;

$t->plan(2 * 10);

my $work = <<'EOS';
cd "$1" || exit 9
sed -i 's/Hello/Hello, capsule/' hello.c && echo edit=ok
make -s >/dev/null 2>&1 && echo "run=$(./hello)"
cc -o hello2 hello.c && echo "cc=$(./hello2)"
sh test.sh && echo test=ok
git add -A && git commit -qm "agent commit" && echo commit=ok
mkdir newrepo && cd newrepo && git init -q && echo x > f && git add f \
    && git commit -qm first && echo init=ok && cd ..
echo "seeded=$(cat ~/.claude/settings.json)"
echo '{"theme": "dark"}' > ~/.claude/settings.json && echo config=ok
EOS

sub work {
    my ($who, %o) = @_;
    my ($home, $proj) = ($o{home}, "$dir/$who-proj");
    my $git = 'git -c user.name=u -c user.email=u@u.invalid -c init.defaultBranch=main';
    mkdir "$home/.claude";
    $t->write_file(substr("$home/.claude/settings.json", length($dir) + 1), "{\"theme\": \"light\"}\n");
    $t->write_file(substr("$home/.gitconfig", length($dir) + 1),
                   "[user]\n\tname = Agent User\n\temail = agent\@example.invalid\n");
    $t->write_file("$who-proj/hello.c", "#include <stdio.h>\nint main(void) { puts(\"Hello\"); return 0; }\n");
    $t->write_file("$who-proj/Makefile", "hello: hello.c\n\tcc -o hello hello.c\n");
    $t->write_file("$who-proj/test.sh", "test \"\$(./hello)\" = 'Hello, capsule'\n");
    $t->write_file("$who-proj/.gitignore", "hello\nhello2\n.work.sh\n");
    $t->write_file("$who-proj/.work.sh", $work);
    system("cd $proj && $git init -q && $git add . && $git commit -qm init") == 0 or die 'git';
    system('chown', '-R', "$o{as}:$o{as}", $proj, $home) if $o{as};
    my $r = $c->run({ %o, tag => "$who-1", cwd => $proj }, '-c', "$dir/policy.conf", '--',
                    'sh', "$proj/.work.sh", $proj);
    my $v = Test::Kapd::Capsule::kv($r->{out});
    is($r->{rc}, 0, "$who: kap run ran the agent's work") or diag($r->{err});
    like($t->read_file("$who-proj/hello.c"), qr/Hello, capsule/, "$who: edited a project file");
    is($v->{run}, 'Hello, capsule', "$who: built it with make and ran it");
    is($v->{cc}, 'Hello, capsule', "$who: built it with cc");
    is($v->{test}, 'ok', "$who: ran a test");
    my $log = `cd $proj && git -c safe.directory='*' log -1 --format='%an %s' 2>&1`;
    is($log, "Agent User agent commit\n", "$who: committed with git, as the user of ~/.gitconfig");
    is($v->{init}, 'ok', "$who: git init and commit of a new repository in the project");
    is($v->{seeded}, '{"theme": "light"}', "$who: its configuration was seeded from the real one");
    $r = $c->run({ %o, tag => "$who-2", cwd => $proj }, '-c', "$dir/policy.conf", '--',
                 'cat', "$home/.claude/settings.json");
    is($r->{out}, "{\"theme\": \"dark\"}\n", "$who: what it wrote there persists to the next run");
    is($t->read_file(substr("$home/.claude/settings.json", length($dir) + 1)),
       "{\"theme\": \"light\"}\n", "$who: the real one is unchanged");
}

work('root', home => "$dir/home");
SKIP: {
    my $uid = 65534;
    my $probe = `setpriv --reuid=$uid --regid=$uid --clear-groups -- unshare --user --map-root-user --net true 2>&1`;
    skip "unprivileged user namespaces unavailable: $probe", 10 if $?;
    skip "build tree not readable by uid $uid", 10
        if system('setpriv', "--reuid=$uid", "--regid=$uid", '--clear-groups', '--', 'sh', '-c',
                  "test -r '$dir/policy.conf' && test -x '" . $t->binary . "'");
    mkdir "$dir/home-nobody", 0700;
    mkdir "$dir/run-nobody", 0700;
    chown $uid, $uid, "$dir/run-nobody";
    work('nobody', as => $uid, home => "$dir/home-nobody", xdg => "$dir/run-nobody");
}
$t->done_testing;
