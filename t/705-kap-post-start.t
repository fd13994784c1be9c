#!/usr/bin/perl
# 705-kap-post-start.t -- contrib/kap/kap-post-start (the app container's
# postStartCommand) never fails a start: run as an unprivileged user with
# no sudo, no npm and no network tools on PATH, each step it cannot do is
# one warning and the exit status is 0; it reads the choices from
# KAP_SETUP_CONF (or .devcontainer/kap-setup.conf of its working
# directory); a tool already installed is not installed again; Claude
# Code's first-run screen is marked done.  Nothing outside the test's
# directory is written (the user cannot), and nothing is downloaded.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use File::Path qw(make_path);

my $t = Test::Kapd->new;
my $script = $t->srcdir . '/contrib/kap/kap-post-start';
plan(skip_all => 'needs root to run it as another user (setpriv)') if $> != 0;
my ($setpriv) = grep { -x } qw(/usr/bin/setpriv /bin/setpriv);
plan(skip_all => 'setpriv (util-linux) not installed') unless $setpriv;

my $dir = $t->testdir;
my ($uid, $gid) = (65534, 65534);
# a copy the user can read (the source tree may sit in a 0700 home, as
# /root/kap does in the fresh-machine check)
spew("$dir/kap-post-start", slurp($script));
chmod 0755, "$dir/kap-post-start";
$script = "$dir/kap-post-start";
# the few tools the script uses, and nothing else: no npm, apt, sudo
my $bin = "$dir/bin";
make_path($bin);
for my $tool (qw(sh sed tr grep tail cat id tee env)) {
    my ($p) = grep { -x } map { "$_/$tool" } qw(/usr/bin /bin);
    symlink($p, "$bin/$tool") or die "$tool: $!";
}

# post_start(HOME-name, conf-text-or-undef, extra PATH dir): rc, out, err
sub post_start {
    my ($name, $conf, $extra) = @_;
    my $home = "$dir/$name";
    make_path("$home/proj/.devcontainer");
    spew("$home/proj/.devcontainer/kap-setup.conf", $conf) if defined $conf;
    chown $uid, $gid, $home;
    my ($out, $err) = ("$dir/$name.out", "$dir/$name.err");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        chdir "$home/proj" or exit 127;
        %ENV = (HOME => $home, PATH => join(':', grep { defined } $extra, $bin),
                HTTPS_PROXY => 'http://127.0.0.1:9', https_proxy => 'http://127.0.0.1:9');
        exec($setpriv, "--reuid=$uid", "--regid=$gid", '--clear-groups', '--',
             "$bin/sh", $script) or exit 127;
    }
    waitpid($pid, 0);
    return { rc => $? >> 8, out => slurp($out), err => slurp($err), home => $home };
}

my $r = post_start('none', undef);
is($r->{rc}, 0, 'no kap-setup.conf: exit 0');
is($r->{err}, "kap-post-start: cannot write /etc/profile.d/kap-path.sh (neither root nor sudo): "
   . "login shells do not get /opt/kap/bin on PATH\n", '... one warning: no root for profile.d');

$r = post_start('all', "# chosen\nclaude_code = yes\ncodex = yes\ngh = yes\n");
is($r->{rc}, 0, 'every install asked for and none possible: exit 0');
like($r->{err}, qr/^kap-post-start: installing nodejs and npm \(Debian packages\) for \@anthropic-ai\/claude-code\n/m,
     'Claude Code: npm first');
like($r->{err}, qr/^kap-post-start: cannot install npm \(apt failed, or no root\): \@anthropic-ai\/claude-code not installed$/m,
     '... and why it is not installed');
like($r->{err}, qr/^kap-post-start: cannot install npm .*: \@openai\/codex not installed$/m, 'Codex: the same');
like($r->{err}, qr/^kap-post-start: apt-get install gh failed/m, 'gh: apt failed, said');
is(slurp("$r->{home}/.claude.json"), "{\"hasCompletedOnboarding\": true}\n",
   'Claude Code\'s first-run screen marked done');

# tools that are there already: nothing to install
my $have = "$dir/have";
make_path($have);
for my $tool (qw(claude codex gh)) {
    spew("$have/$tool", "#!/bin/sh\nexit 0\n");
    chmod 0755, "$have/$tool";
}
$r = post_start('have', "claude_code = yes\ncodex = yes\ngh = yes\n", $have);
is($r->{rc}, 0, 'tools present: exit 0');
unlike($r->{err}, qr/install/, '... nothing installed');

# the last line wins; "no" installs nothing
$r = post_start('no', "claude_code = yes\nclaude_code = no\ngh = no\n");
unlike($r->{err}, qr/install/, 'claude_code = no (the last line) and gh = no: nothing installed');
ok(!-e "$r->{home}/.claude.json", '... and no ~/.claude.json');

$t->done_testing;
