#!/usr/bin/perl
# 607-capsule-fs.t -- issue 10 item 3: what the command in a `kap run`
# capsule writes never runs later outside it.  Read-only bind mounts of a
# list of files were bypassed by renaming the parent (.git, ~/.config,
# .devcontainer) and putting a copy in place, by .git/commondir, submodule
# gitdirs, worktrees, running from a subdirectory, writing an include
# target (of ~/.gitconfig or of .git/config) or a symlinked dotfile's target, and many files were not covered
# at all (~/.bash_aliases, ~/.local/bin, .pth files, ~/.config/git/config,
# ~/.claude/settings.json, authorized_keys ...).
#
# Now writes are an allow-list: the project and a private capsule home.
# From a subdirectory of a project (with a submodule and, outside it, a
# worktree), the agent tries all of the above.  Afterwards the real home
# is byte for byte what it was, .git, its hooks, config, commondir, the
# submodule's gitdir and .git file and the policy are unchanged, nothing
# was renamed, and git still works inside.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;
use File::Find;
use Digest::SHA qw(sha256_hex);

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t, 'git');
my $dir = $t->testdir;
my $P = "$dir/proj";
my $H = "$dir/home";

$t->plan(21);

sub sh { system('sh', '-c', "@_ >/dev/null 2>&1") == 0 or die "setup failed: @_" }
my $git = 'git -c user.name=t -c user.email=t@t.invalid -c protocol.file.allow=always'
    . ' -c init.defaultBranch=main';

# the real home: start-up files, a symlinked dotfile, git's configuration
# with an include, the agent's own settings
$t->write_file('home/.bashrc', "# the user's bashrc\n");
$t->write_file('home/dotfiles/vimrc', "\" the user's vimrc\n");
symlink "$H/dotfiles/vimrc", "$H/.vimrc";
$t->write_file('home/.gitconfig', "[user]\n\tname = t\n\temail = t\@t.invalid\n"
               . "[include]\n\tpath = ~/.gitconfig.local\n");
$t->write_file('home/.config/systemd/user/keep.service', "[Unit]\n");
$t->write_file('home/.claude/settings.json', "{\"hooks\": {}}\n");
mkdir "$H/.local"; mkdir "$H/.local/state";       # kap's state goes there

# the project: a repository with a hook, a submodule, a worktree outside
$t->write_file('subsrc/lib.c', "int lib;\n");
sh("cd $dir/subsrc && $git init -q && $git add . && $git commit -qm lib");
$t->write_file('proj/src/main.c', "int main(void) { return 0; }\n");
$t->write_file('proj/.devcontainer/kap.conf', $t->read_file('policy.conf'));
sh("cd $P && $git init -q && $git add . && $git commit -qm init"
   . " && $git submodule -q add $dir/subsrc sub && $git commit -qm sub"
   . " && $git worktree add -q $dir/wt");
$t->write_file('proj/.git/hooks/pre-commit', "#!/bin/sh\nexit 0\n");
# an include target in the work tree: configuration, like .git/config
$t->write_file('proj/.gitinclude', "[user]\n\tname = t\n");
sh("cd $P && git config --add include.path ../.gitinclude");
chmod 0755, "$P/.git/hooks/pre-commit";

sub snapshot {
    my ($root) = @_;
    my %s;
    find({ no_chdir => 1, wanted => sub {
        my $k = substr($File::Find::name, length $root);
        # kap's own state directory (audit logs, capsule homes) is kap's
        if ($k =~ m{^/\.local/state/kap(/|$)}) { $File::Find::prune = 1; return }
        $s{$k} = -l $_ ? 'L' . readlink($_) : -d _ ? 'D' : 'F' . sha256_hex(do {
            open my $f, '<', $_; local $/; <$f> // '' });
    } }, $root);
    return \%s;
}
my $home0 = snapshot($H);
my %f0 = map { $_ => $t->read_file($_) } ('proj/.git/hooks/pre-commit', 'proj/.git/config',
    'proj/.gitinclude',
    'proj/.devcontainer/kap.conf', 'proj/.git/modules/sub/config', 'proj/sub/.git', 'wt/.git',
    'proj/.git/worktrees/wt/commondir');
ok(-d "$P/.git/modules/sub/hooks" && -f "$P/sub/.git" && -f "$dir/wt/.git",
   'set-up: a submodule and a worktree');

$t->write_file('proj/.attack.sh', <<'EOS');
P=$1
git -C "$P" status --short >/dev/null 2>&1 && echo git=ok
# rename the parent, put a copy in its place
mv "$P/.git" "$P/.git-moved" 2>/dev/null && cp -r "$P/.git-moved" "$P/.git" \
    && echo 'echo pwned' > "$P/.git/hooks/pre-commit"
mv "$P/.devcontainer" "$P/.devcontainer-moved" 2>/dev/null && mkdir "$P/.devcontainer" \
    && echo 'network: { allow = ["*"]; };' > "$P/.devcontainer/kap.conf"
mv "$HOME/.config" "$HOME/.config-moved" 2>/dev/null
# .git's code-bearing parts, where git looks for more of them
echo 'echo pwned' >> "$P/.git/hooks/pre-commit"
printf '[core]\n\thooksPath = %s/evil\n' "$P" >> "$P/.git/config"
echo "$P/evil" > "$P/.git/commondir"
printf '[core]\n\thooksPath = %s/evil\n' "$P" >> "$P/.gitinclude"
echo '* filter=evil' > "$P/.git/info/attributes"
echo 'echo pwned' > "$P/.git/hooks/post-checkout"
# the submodule's gitdir and its .git file
echo 'echo pwned' >> "$P/.git/modules/sub/hooks/post-checkout"
printf '[core]\n\tfsmonitor = evil\n' >> "$P/.git/modules/sub/config"
echo "gitdir: $P/evil" > "$P/sub/.git"
# the policy
echo 'network: { allow = ["*"]; };' >> "$P/.devcontainer/kap.conf"
# what runs later in the home: existing, missing, symlinked, included
for f in .bashrc .bash_aliases .bash_profile .profile .tmux.conf .local/bin/git \
         .local/lib/python3/site-packages/evil.pth .config/git/config \
         .config/systemd/user/keep.service .claude/settings.json \
         .ssh/authorized_keys .gitconfig.local .vimrc .kube/config .npmrc; do
    mkdir -p "$HOME/${f%/*}" 2>/dev/null
    echo 'echo pwned' >> "$HOME/$f" 2>/dev/null
done
echo 'echo pwned' >> "$HOME/dotfiles/vimrc" 2>/dev/null
cat "$HOME/.claude/settings.json" | head -1 | sed 's/^/claude=/'
EOS
my $r = $c->run({ tag => 'attack', cwd => "$P/src" },
                '-c', "$P/.devcontainer/kap.conf", '--', 'sh', "$P/.attack.sh", $P);
is($r->{rc}, 0, 'kap run from a subdirectory of the project ran the attack') or diag($r->{err});
my $v = Test::Kapd::Capsule::kv($r->{out});

is_deeply(snapshot($H), $home0, 'the real home is unchanged (files, links, the symlinked dotfile\'s target)');
ok(!-e "$P/.git-moved" && !-e "$P/.devcontainer-moved" && !-e "$H/.config-moved",
   '.git, .devcontainer and ~/.config could not be renamed');
is($t->read_file('proj/.git/hooks/pre-commit'), $f0{'proj/.git/hooks/pre-commit'}, '.git/hooks unchanged');
ok(!-e "$P/.git/hooks/post-checkout", 'no hook added');
is($t->read_file('proj/.git/config'), $f0{'proj/.git/config'}, '.git/config unchanged');
is($t->read_file('proj/.gitinclude'), $f0{'proj/.gitinclude'}, 'the file .git/config includes unchanged');
ok(!-e "$P/.git/commondir", '.git/commondir not created (or removed after the run)');
ok(!-e "$P/.git/info/attributes", '.git/info unchanged');
is($t->read_file('proj/.git/modules/sub/config'), $f0{'proj/.git/modules/sub/config'},
   "the submodule's gitdir config unchanged");
ok(!-e "$P/.git/modules/sub/hooks/post-checkout", "the submodule's gitdir hooks unchanged");
is($t->read_file('proj/sub/.git'), $f0{'proj/sub/.git'}, "the submodule's .git file unchanged");
is($t->read_file('proj/.devcontainer/kap.conf'), $f0{'proj/.devcontainer/kap.conf'},
   'the policy unchanged');
is($v->{git}, 'ok', 'git still works inside');
is($v->{claude}, '{"hooks": {}}', "the agent's settings are its copy in the capsule home (seeded)");

# from the worktree (outside the project): its gitdir and the common dir
$t->write_file('wt/.attack.sh', <<'EOS');
G=$(git rev-parse --path-format=absolute --git-dir)
C=$(git rev-parse --path-format=absolute --git-common-dir)
git status --short >/dev/null 2>&1 && echo git=ok
echo "$C/../evil" > "$G/commondir" 2>/dev/null
echo 'echo pwned' >> "$C/hooks/pre-commit" 2>/dev/null
echo 'gitdir: /evil' > .git 2>/dev/null
exit 0
EOS
$r = $c->run({ tag => 'wt', cwd => "$dir/wt" },
             '-c', "$dir/policy.conf", '--', 'sh', "$dir/wt/.attack.sh");
is($r->{rc}, 0, 'kap run in the worktree ran') or diag($r->{err});
is($t->read_file('proj/.git/worktrees/wt/commondir'), $f0{'proj/.git/worktrees/wt/commondir'},
   "the worktree's commondir unchanged");
ok($t->read_file('wt/.git') eq $f0{'wt/.git'}
   && $t->read_file('proj/.git/hooks/pre-commit') eq $f0{'proj/.git/hooks/pre-commit'},
   "the worktree's .git file and the common dir's hooks unchanged");
like($r->{out}, qr/^git=ok$/m, 'git works in the worktree');

# a symlink the agent leaves in its capsule home, on the way to a home_ro
# entry, is not followed by the next run (it would lead into the host's
# filesystem while the capsule is built)
mkdir "$dir/escape";
$r = $c->run({ tag => 'plant-link', cwd => $P }, '-c', "$dir/policy.conf", '--',
             'sh', '-c', 'rm -rf "$HOME/.config" && ln -s "$1" "$HOME/.config" && echo planted',
             'sh', "$dir/escape");
$t->write_file('home/.config/git/config', "[core]\n");
my $r2 = $c->run({ tag => 'after-link', cwd => $P }, '-c', "$dir/policy.conf", '--', 'true');
ok($r->{out} =~ /planted/ && $r2->{rc} == 0 && !-e "$dir/escape/git",
   'a symlink left in the capsule home is not followed by the next run')
    or diag("$r->{out} $r->{err} / $r2->{rc} $r2->{err}");
$t->done_testing;
