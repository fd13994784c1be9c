#!/usr/bin/perl
# 605-capsule-policy-code.t -- adversarial: the policy files kap run reads
# are data from the agent's side (issue 10, item 1).
#
# A cloned repository's .devcontainer/kap.conf names kapd.module_path to
# a directory holding an agent-built .so (and pid_file, error_log,
# audit_log.path, resolver.trust_anchor at the user's dotfiles, and an
# @include): kapd must never dlopen it (its constructor would write a
# marker file), must write none of those files, and must still serve.
# A new or changed project policy is refused until the user approves it
# with kap allow (the refusal names the command); an approved one runs; a
# changed one is refused again.  A ~/.kap/kap.conf that appears later (an
# agent of an older kap could create it) is not used until approved.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);
my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare ip curl setpriv cc/);

my $dir = $t->testdir;
my $home = "$dir/home";
my $proj = "$dir/project";
mkdir $_, 0700 for $home, "$dir/run", $proj, "$proj/.devcontainer", "$dir/evil";

Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.test' => ['A 127.0.0.1'],
    'denied.test'  => ['A 127.0.0.1'],
});
Test::Kapd::FakeHTTP->new($t, port => $t->port('origin'), name => 'origin');

# the agent's module: its constructor runs at dlopen, before any ABI check
$t->write_file('evil.c', <<"EOF");
#include <stdio.h>
__attribute__((constructor)) static void evil(void)
{
    FILE *f = fopen("$dir/marker", "a");
    if (f != NULL) { fputs("dlopened\\n", f); fclose(f); }
}
EOF
for my $m (qw/evil http_connect dns/) {
    system('cc', '-shared', '-fPIC', '-o', "$dir/evil/kap_$m.so", "$dir/evil.c") == 0
        or BAIL_OUT("cc could not build the test module");
}
$t->write_file_expand('evil.conf', "kapd_evil: { x = 1; };\n");

my $policy = <<'EOF';
kapd: {
    module_path = ["%%PREFIX%%/evil"];
    load = ["evil", "http_connect", "dns"];
    pid_file = "%%PREFIX%%/home/.bashrc";
    error_log = "%%PREFIX%%/home/.profile";
    user = "root";
};
@include "%%PREFIX%%/evil.conf"
network: { allow = ["allowed.test:%%PORT_origin%%", "127.0.0.1:%%PORT_origin%%"]; };
resolver: {
    upstream = ["127.0.0.1:%%PORT_dns%%"];
    trust_anchor = "%%PREFIX%%/home/.bash_login";
};
audit_log: { path = "%%PREFIX%%/home/.bash_logout"; };
http_connect: { };
dns: { };
EOF
$t->write_file_expand('project/.devcontainer/kap.conf', $policy);

# what runs in the capsule: proof that it ran, and what kapd decides
$t->write_file_expand('project/probe.sh', <<'EOF');
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
echo "allowed=$(code http://allowed.test:%%PORT_origin%%/a)"
echo "denied=$(code http://denied.test:%%PORT_origin%%/d)"
# kap's state directory (approvals, audit logs) must be out of reach
if ls "$1" >/dev/null 2>&1 || touch "$1/allowed/forged" 2>/dev/null; then
    echo state=reachable
else
    echo state=hidden
fi
echo ran >> "$PWD/ran"
EOF

sub run_kap {
    my ($tag, @args) = @_;
    unlink "$proj/ran";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/$tag.out";
        open STDERR, '>', "$dir/$tag.err";
        chdir $proj or POSIX::_exit(127);
        $ENV{KAPD} = $t->binary;
        $ENV{KAP_SHIM} = $shim;
        # the modules through kapd's own environment variable: kap adds no
        # module_path, so only the policy's could override it
        delete $ENV{KAP_MODULE_PATH};
        $ENV{KAPD_MODULE_PATH} = $t->module_path;
        $ENV{HOME} = $home;
        $ENV{XDG_RUNTIME_DIR} = "$dir/run";
        delete $ENV{XDG_STATE_HOME};
        exec($sh, $kap, @args) or POSIX::_exit(127);
    }
    my $st;
    wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } }, kapd_tmo(60))
        or do { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 };
    my $out = $t->read_file("$tag.out") // '';
    return { rc => $st < 0 ? -1 : $st >> 8, err => $t->read_file("$tag.err") // '',
             ran => -e "$proj/ran",
             map { /^(\w+)=(.*)$/ ? ($1, $2) : () } split /\n/, $out };
}

my $pol = "$proj/.devcontainer/kap.conf";
my $qpol = quotemeta("kap allow '$pol'");

# -- a project policy nobody approved: refused, nothing started -------------
my $r = run_kap('new', 'run', '--', 'sh', "$proj/probe.sh");
isnt($r->{rc}, 0, 'a new project policy: kap run refuses');
ok(!$r->{ran}, 'and the command did not run');
like($r->{err}, qr/^\s*$qpol$/m, 'the refusal names the exact command: kap allow PATH');

# -- approved: runs, the path keys and the module are ignored ----------------
$t->kap_allow({ home => $home }, $pol);
$r = run_kap('approved', 'run', '--', 'sh', "$proj/probe.sh", "$home/.local/state/kap");
is($r->{rc}, 0, 'the approved policy runs') or diag($r->{err});
ok($r->{ran}, 'the command ran');
is($r->{allowed}, '200', 'kapd serves: an allowed name reaches the origin');
is($r->{denied}, '403', 'kapd serves: a denied name is refused');
is($r->{state}, 'hidden', 'kap\'s state directory (approvals, logs) is out of the capsule\'s reach');
ok(!-e "$home/.local/state/kap/allowed/forged", 'no approval forged from inside');
ok(!-e "$dir/marker", 'the agent-built .so in module_path was never dlopen\'d')
    or diag($t->read_file('marker'));
for my $f (qw/.bashrc .profile .bash_login .bash_logout/) {
    ok(!-e "$home/$f", "kapd did not touch ~/$f (named by the policy)");
}
for my $k ('kapd.module_path', 'kapd.pid_file', 'kapd.error_log', 'kapd.user',
           'resolver.trust_anchor', 'audit_log.path', '@include') {
    like($r->{err}, qr/ignoring \Q$k\E/, "a visible warning: $k ignored");
}

# -- changed after the approval: refused again ----------------------------------
$t->write_file_expand('project/.devcontainer/kap.conf',
                      $policy =~ s/allow = \[/allow = ["denied.test:%%PORT_origin%%", /r);
$r = run_kap('changed', 'run', '--', 'sh', "$proj/probe.sh");
isnt($r->{rc}, 0, 'a changed policy: kap run refuses again');
ok(!$r->{ran}, 'and the command did not run');
like($r->{err}, qr/^\s*$qpol$/m, 'with the command to approve it');
$t->kap_allow({ home => $home }, $pol);
$r = run_kap('changed2', 'run', '--', 'sh', "$proj/probe.sh");
is($r->{denied}, '200', 'once approved, the change is in force') or diag($r->{err});

# -- a ~/.kap/kap.conf that appears later -------------------------------------------
mkdir "$home/.kap", 0700;
$t->write_file_expand('home/.kap/kap.conf', <<'EOF');
kapd: { module_path = ["%%PREFIX%%/evil"]; };
network: { allow = ["denied.test:%%PORT_origin%%"]; };
EOF
$t->write_file_expand('project/.devcontainer/kap.conf', $policy);
$t->kap_allow({ home => $home }, $pol);
$r = run_kap('global', 'run', '--', 'sh', "$proj/probe.sh");
isnt($r->{rc}, 0, 'a new ~/.kap/kap.conf: kap run refuses');
ok(!$r->{ran}, 'and the command did not run');
like($r->{err}, qr/^\s*\Qkap allow '$home\/.kap\/kap.conf'\E$/m, 'naming the command to approve it');
$r = run_kap('global-c', 'run', '-c', $pol, '--', 'sh', "$proj/probe.sh");
isnt($r->{rc}, 0, 'also under -c (it merges under every policy)');
$t->kap_allow({ home => $home }, "$home/.kap/kap.conf");
$r = run_kap('global2', 'run', '--', 'sh', "$proj/probe.sh");
is($r->{rc}, 0, 'approved: runs') or diag($r->{err});
is($r->{denied}, '200', 'and the global policy is in force');
ok(!-e "$dir/marker", 'its module_path was ignored too');

# -- kap allow without --yes and without a terminal asks nobody ------------------------
$t->write_file('project/.devcontainer/kap.conf', "network: { allow = [\"*\"]; };\n");
my $out = `cd '$proj' && HOME='$home' $sh '$kap' allow </dev/null 2>&1`;
isnt($? >> 8, 0, 'kap allow without a terminal and without --yes approves nothing');
like($out, qr/--yes/, 'and says how to approve from a script');

# -- at a terminal: shown (control bytes harmless) and asked ---------------------------
SKIP: {
    my $script = (grep { -x "$_/script" } split /:/, $ENV{PATH})[0];
    skip 'script(1) (bsdutils) not installed: no terminal to ask on', 6 unless $script;
    $t->write_file_expand('project/.devcontainer/kap.conf',
        $policy =~ s/^network: \{/# \e]0;title\x07\e[2J a comment with escapes\nnetwork: {/mr);
    # tty(ANSWER, kap args...): kap on a terminal (script(1)) answering
    # ANSWER once it asks: typed ahead, an answer can be lost to the
    # terminal (script forwards it at once and ends its input at EOF), so
    # it is written only after the [y/N] prompt shows, and script's input
    # stays open until kap is done.
    my $tty = sub {
        my ($answer, @args) = @_;
        my $cmd = join ' ', map { "'$_'" } $sh, $kap, @args;
        pipe(my $in_r, my $in_w) or die "pipe: $!";
        pipe(my $out_r, my $out_w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $in_w; close $out_r;
            open STDIN, '<&', $in_r or POSIX::_exit(127);
            open STDOUT, '>&', $out_w or POSIX::_exit(127);
            open STDERR, '>&', \*STDOUT;
            chdir $proj;
            $ENV{HOME} = $home;
            $ENV{XDG_RUNTIME_DIR} = "$dir/run";
            $ENV{KAPD} = $t->binary;
            $ENV{KAP_SHIM} = $shim;
            $ENV{KAPD_MODULE_PATH} = $t->module_path;
            delete $ENV{KAP_MODULE_PATH};
            delete $ENV{XDG_STATE_HOME};
            exec('script', '-qec', $cmd, '/dev/null') or POSIX::_exit(127);
        }
        close $in_r; close $out_w;
        my ($o, $typed) = ('', 0);
        my $end = time + kapd_tmo(60);
        while (time < $end) {
            my $rin = '';
            vec($rin, fileno($out_r), 1) = 1;
            next unless select(my $rout = $rin, undef, undef, 0.5) > 0;
            my $n = sysread($out_r, $o, 65536, length $o);
            last unless $n;
            if (!$typed && $o =~ /\[y\/N\]/) {
                syswrite($in_w, "$answer\n");
                $typed = 1;
            }
        }
        close $in_w;
        close $out_r;
        kill 'KILL', $pid if time >= $end;
        waitpid($pid, 0);
        return $o;
    };
    my $o = $tty->('n', 'allow');
    like($o, qr/a comment with escapes/, 'kap allow shows the file');
    ok($o !~ /\e/ && $o !~ /\x07/, 'with its control bytes made harmless');
    like($o, qr/not allowed/, 'answered no: not allowed');
    $r = run_kap('tty-no', 'run', '--', 'sh', "$proj/probe.sh");
    isnt($r->{rc}, 0, 'so kap run still refuses');
    $o = $tty->('y', 'run', '--', 'sh', "$proj/probe.sh");
    like($o, qr/allow kap run to use this policy.*\[y\/N\]/s, 'kap run at a terminal asks');
    like($o, qr/allowed=200/, 'answered yes: it runs');
}

$t->done_testing;
