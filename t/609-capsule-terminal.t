#!/usr/bin/perl
# 609-capsule-terminal.t -- issue 10, item 5 ("terminal injection") and
# "Private terminal": the command in a `kap run` capsule must not be able
# to type into the user's terminal.
#
# Before: the command shared the user's terminal and session, so
# ioctl(TIOCSTI) on fd 0 (or on /dev/tty when fds 0-2 were redirected)
# pushed a line into the terminal's input queue, and the user's shell ran
# it after `kap` returned (dev.tty.legacy_tiocsti = 1 on many kernels).
# Now the command runs in its own session on a pty that kap-shim relays:
# its controlling terminal is that pty, it holds no descriptor to the
# user's terminal, and TIOCSTI on anything else fails (EPERM: not the
# caller's controlling terminal).
#
# Each case runs `kap run` from a shell that is the session leader of a
# pty this test holds (the "user's terminal").  After kap returns, the
# outer shell reads lines from its terminal until the test types
# SENTINEL: a line injected from inside the capsule arrives before it.
# Also checked: the command sees a terminal, the window size and its
# changes reach it, Ctrl-C reaches it, exit statuses pass through
# (7 -> 7, SIGTERM -> 143), 400 KB of output arrive intact, stdin from a
# pipe still works, the user's terminal modes are restored (also when kap
# is killed with SIGTERM or SIGKILL), Ctrl-Z and kill -TSTP keep the
# command stopped until fg, and with fds 0-2 redirected the command has no
# controlling terminal at all.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Fcntl qw(O_RDWR O_NOCTTY);
use Errno qw(EIO EINTR EAGAIN);
use POSIX qw(WNOHANG _exit setsid);
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);
my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare ip setpriv cc stty perl/);
plan(skip_all => 'no /dev/ptmx (pseudo-terminals)') unless -c '/dev/ptmx';

my $dir = $t->testdir;
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {});
$t->write_file_expand('policy.conf', <<'EOF');
network: { allow = ["allowed.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { };
dns: { };
EOF
mkdir "$dir/home", 0700;
mkdir "$dir/run", 0700;

# -- the capsule's attacker and this test's ioctl numbers, compiled here --
$t->write_file('inject.c', <<'EOF');
/* inject: push "echo INJECTED-<route>" lines with TIOCSTI through every
 * terminal the process can reach; print route=result lines. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *push(int fd, const char *route)
{
    char line[64];
    int n = snprintf(line, sizeof line, "echo INJECTED-%s\n", route);
    if (!isatty(fd))
        return "notty";
    for (int i = 0; i < n; i++)
        if (ioctl(fd, TIOCSTI, &line[i]) < 0)
            return errno == EPERM ? "EPERM" : errno == EIO ? "EIO" : "error";
    return "ok";
}

int main(void)
{
    printf("fd0=%s\n", push(0, "fd0"));
    printf("fd1=%s\n", push(1, "fd1"));
    printf("fd2=%s\n", push(2, "fd2"));
    int t = open("/dev/tty", O_RDWR | O_NOCTTY);
    printf("devtty=%s\n", t < 0 ? (errno == ENXIO ? "ENXIO" : "noopen") : push(t, "devtty"));
    /* every other terminal that some process in reach holds open (the
     * command's own controlling terminal is its business) */
    unsigned long own = 0;                  /* tty_nr in /proc/self/stat */
    char sb[1024];
    FILE *sf = fopen("/proc/self/stat", "r");
    if (sf != NULL) {
        size_t n = fread(sb, 1, sizeof sb - 1, sf);
        sb[n] = '\0';
        fclose(sf);
        char *e = strrchr(sb, ')');
        if (e == NULL || sscanf(e + 1, " %*c %*d %*d %*d %lu", &own) != 1)
            own = 0;
    }
    dev_t owndev = makedev((own >> 8) & 0xfff, (own & 0xff) | ((own >> 12) & 0xfff00));
    int tried = 0, ok = 0;
    DIR *pd = opendir("/proc");
    struct dirent *p;
    while (pd != NULL && (p = readdir(pd)) != NULL) {
        if (p->d_name[0] < '0' || p->d_name[0] > '9')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/fd", p->d_name);
        DIR *fd = opendir(path);
        struct dirent *f;
        while (fd != NULL && (f = readdir(fd)) != NULL) {
            char fp[600];
            struct stat st;
            snprintf(fp, sizeof fp, "%s/%s", path, f->d_name);
            if (stat(fp, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev == owndev
                || st.st_rdev == makedev(5, 0))        /* /dev/tty: own too */
                continue;
            int x = open(fp, O_RDWR | O_NOCTTY | O_NONBLOCK);
            if (x < 0)
                continue;
            if (isatty(x)) {
                tried++;
                if (strcmp(push(x, "proc"), "ok") == 0)
                    ok++;
            }
            close(x);
        }
        if (fd != NULL)
            closedir(fd);
    }
    if (pd != NULL)
        closedir(pd);
    printf("proc=%d/%d\n", ok, tried);
    /* every other pseudo-terminal, opened by its name (the user's is
     * theirs: the capsule maps their uid) */
    tried = ok = 0;
    for (int i = 0; i < 256; i++) {
        char fp[64];
        struct stat st;
        snprintf(fp, sizeof fp, "/dev/pts/%d", i);
        if (stat(fp, &st) < 0 || st.st_rdev == owndev)
            continue;
        int x = open(fp, O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (x < 0)
            continue;
        tried++;
        if (strcmp(push(x, "devpts"), "ok") == 0)
            ok++;
        close(x);
    }
    printf("devpts=%d/%d\n", ok, tried);
    /* a process outside this session that holds the user's terminal
     * would do TIOCSTI for us if we could ptrace it */
    pid_t sid = getsid(0);
    tried = ok = 0;
    pd = opendir("/proc");
    while (pd != NULL && (p = readdir(pd)) != NULL) {
        pid_t pid = (pid_t)strtol(p->d_name, NULL, 10);
        if (pid <= 0 || pid == getpid() || getsid(pid) == sid)
            continue;
        tried++;
        if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
            ok++;
            ptrace(PTRACE_DETACH, pid, 0, 0);
        }
    }
    if (pd != NULL)
        closedir(pd);
    printf("ptrace=%d/%d\n", ok, tried);
    return 0;
}
EOF
$t->write_file('consts.c', <<'EOF');
#include <stdio.h>
#include <sys/ioctl.h>
int main(void)
{
    printf("%lu %lu %lu %lu\n", (unsigned long)TIOCSPTLCK, (unsigned long)TIOCGPTN,
           (unsigned long)TIOCSWINSZ, (unsigned long)TIOCSCTTY);
    return 0;
}
EOF
for my $p (qw/inject consts/) {
    my $out = `cc -std=c11 -O1 -o '$dir/$p' '$dir/$p.c' 2>&1`;
    BAIL_OUT("cc $p.c failed: $out") if $?;
}
my ($TIOCSPTLCK, $TIOCGPTN, $TIOCSWINSZ, $TIOCSCTTY) = split ' ', `'$dir/consts'`;
my $legacy = `cat /proc/sys/dev/tty/legacy_tiocsti 2>/dev/null` // '';
chomp $legacy;
my $tiocsti = $legacy ne '0';
diag("dev.tty.legacy_tiocsti = 0: TIOCSTI fails for everyone on this kernel; "
     . "the injection checks pass whatever kap does, the rest still count")
    unless $tiocsti;

# -- the user's terminal: a pty whose session leader runs a shell script --

sub set_winsize {
    my ($m, $rows, $cols) = @_;
    my $ws = pack('S4', $rows, $cols, 0, 0);
    ioctl($m, $TIOCSWINSZ, $ws) or die "TIOCSWINSZ: $!";
}

# term_start(script, rows, cols): `sh -c SCRIPT` on a new pty, in $dir,
# with kap's environment; returns a session {m, pid, buf}.
sub term_start {
    my ($script, $rows, $cols) = @_;
    sysopen(my $m, '/dev/ptmx', O_RDWR | O_NOCTTY) or die "/dev/ptmx: $!";
    my $unlock = pack('i', 0);
    ioctl($m, $TIOCSPTLCK, $unlock) or die "unlockpt: $!";
    my $n = pack('i', 0);
    ioctl($m, $TIOCGPTN, $n) or die "ptsname: $!";
    my $pts = '/dev/pts/' . unpack('i', $n);
    set_winsize($m, $rows // 24, $cols // 80);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $m;
        setsid() or _exit(120);
        sysopen(my $s, $pts, O_RDWR) or _exit(121);
        ioctl($s, $TIOCSCTTY, 0) or _exit(122);
        open STDIN, '<&', $s or _exit(123);
        open STDOUT, '>&', $s or _exit(123);
        open STDERR, '>&', $s or _exit(123);
        close $s;
        chdir $dir or _exit(124);
        $ENV{KAPD} = $t->binary;
        $ENV{KAP_SHIM} = $shim;
        $ENV{KAP_MODULE_PATH} = $t->module_path;
        $ENV{HOME} = "$dir/home";
        $ENV{XDG_RUNTIME_DIR} = "$dir/run";
        $ENV{KAP} = "$sh $kap run -c $dir/policy.conf --";
        $ENV{TERM} = 'xterm';
        delete $ENV{XDG_STATE_HOME};
        exec($sh, '-c', $script) or _exit(127);
    }
    return { m => $m, pid => $pid, buf => '', eof => 0 };
}

# term_read(s, timeout): read what the terminal shows, once; 0 at EOF.
sub term_read {
    my ($s, $tmo) = @_;
    return 0 if $s->{eof};
    my $rin = '';
    vec($rin, fileno($s->{m}), 1) = 1;
    my $nready = select(my $rout = $rin, undef, undef, $tmo);
    return 1 if $nready <= 0;
    my $r = sysread($s->{m}, $s->{buf}, 65536, length $s->{buf});
    if (!defined $r) {
        return 1 if $! == EINTR || $! == EAGAIN;
        $s->{eof} = 1 if $! == EIO;        # every holder of the slave is gone
        return 0;
    }
    $s->{eof} = 1 if $r == 0;
    return $r > 0;
}

# term_expect(s, re, timeout): read until the screen matches re.
sub term_expect {
    my ($s, $re, $tmo) = @_;
    my $end = time + kapd_tmo($tmo // 30);
    while (time < $end) {
        return 1 if $s->{buf} =~ $re;
        last unless term_read($s, 0.5) || $s->{buf} =~ $re;
    }
    return $s->{buf} =~ $re ? 1 : 0;
}

sub term_type { my ($s, $text) = @_; syswrite($s->{m}, $text) == length $text or die "type: $!" }

# term_settle(s): read what the terminal shows until it is quiet for 0.2 s
sub term_settle {
    my ($s) = @_;
    my $len;
    do { $len = length $s->{buf}; term_read($s, 0.2) } while length $s->{buf} > $len;
}

# term_canonical(s): whether the terminal is in canonical (not raw) mode
sub term_canonical {
    my ($s) = @_;
    my $tio = POSIX::Termios->new;
    $tio->getattr(fileno $s->{m}) or die "tcgetattr: $!";
    return ($tio->getlflag & POSIX::ICANON()) ? 1 : 0;
}

# /proc: the pids whose argv[0] is NAME (or ends in /NAME) and, given
# LAST, whose last argument is LAST
sub proc_argv {
    my ($pid) = @_;
    open(my $f, '<', "/proc/$pid/cmdline") or return ();
    local $/;
    my $a = <$f> // '';
    return split /\0/, $a;
}
sub all_pids {
    my ($name, $last) = @_;
    opendir(my $d, '/proc') or return ();
    my @p;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my @a = proc_argv($pid);
        next unless @a && ($a[0] eq $name || $a[0] =~ m{/\Q$name\E$});
        next if defined $last && $a[-1] ne $last;
        push @p, $pid;
    }
    return @p;
}
# /proc/PID/stat after the command name: state, ppid, ...
sub proc_stat {
    my ($pid) = @_;
    open(my $f, '<', "/proc/$pid/stat") or return ();
    my $l = <$f> // '';
    $l =~ s/^.*\)\s+//s or return ();
    return split ' ', $l;
}
sub proc_state { my @f = proc_stat($_[0]); return $f[0] // 'gone' }
sub proc_ppid { my @f = proc_stat($_[0]); return $f[1] // -1 }
# term_pid(s, name, last): the one such process below the session's shell
sub term_pid {
    my ($s, @what) = @_;
    my @p = grep {
        my ($p, $n) = ($_, 0);
        $p = proc_ppid($p) while $p > 1 && $p != $s->{pid} && ++$n < 20;
        $p == $s->{pid};
    } all_pids(@what);
    return @p == 1 ? $p[0] : undef;
}

# term_finish(s): read to the end; returns the shell's exit code.
sub term_finish {
    my ($s) = @_;
    my $end = time + kapd_tmo(30);
    1 while time < $end && term_read($s, 0.5) && !$s->{eof};
    my $st;
    wait_until(sub { waitpid($s->{pid}, WNOHANG) == $s->{pid} and do { $st = $?; 1 } }, kapd_tmo(10))
        or do { kill 'KILL', $s->{pid}; waitpid($s->{pid}, 0); $st = -1 };
    close $s->{m};
    return $st < 0 ? -1 : $st >> 8;
}

# the outer shell's tail: report kap's status, read lines typed on the
# terminal until SENTINEL
my $TAIL = <<'EOF';
echo "KAP-RC:$?"
while read -r line; do echo "GOT:[$line]"; [ "$line" = SENTINEL ] && break; done
echo END
EOF

# got_lines(s): type SENTINEL, return the lines the shell read
sub got_lines {
    my ($s) = @_;
    term_expect($s, qr/KAP-RC:\d+/) or return ('no KAP-RC');
    term_type($s, "SENTINEL\n");
    term_expect($s, qr/^END\r*$/m) or return ('no END');
    return $s->{buf} =~ /GOT:\[(.*?)\]/g;
}

# -- 1. TIOCSTI through fds 0-2, /dev/tty and /proc/*/fd ------------------
my $s = term_start(<<"EOF", 37, 111);
before=\$(stty -g)
\$KAP sh -c 'test -t 0 && echo IN-TTY0; test -t 1 && echo IN-TTY1; echo "IN-SIZE:\$(stty size)"; ./inject'
rc=\$?
after=\$(stty -g)
[ "\$before" = "\$after" ] && echo MODE-RESTORED || echo "MODE-CHANGED:\$before:\$after"
(exit \$rc)
$TAIL
EOF
my @got = got_lines($s);
my $rc = term_finish($s);
my $screen = $s->{buf};
my %inj = $screen =~ /^(fd[012]|devtty|proc|devpts|ptrace)=(\S+)\r*$/mg;
is_deeply(\@got, ['SENTINEL'], 'no line injected from the capsule reaches the user\'s shell')
    or diag("injector: " . join(' ', map { "$_=$inj{$_}" } sort keys %inj) . "\nscreen:\n$screen");
like($screen, qr/KAP-RC:0\b/, 'kap run -- ./inject exits 0');
like($screen, qr/^IN-TTY0\r*$/m, 'the command sees a terminal on stdin');
like($screen, qr/^IN-TTY1\r*$/m, 'and on stdout');
like($screen, qr/^IN-SIZE:37 111\r*$/m, 'with the window size of the user\'s terminal');
like($screen, qr/^MODE-RESTORED\r*$/m, 'the user\'s terminal modes are restored after kap returns');
SKIP: {
    skip 'TIOCSTI disabled on this kernel', 1 unless $tiocsti;
    like($inj{proc} // 'missing', qr{^0/\d+$},
         'no other terminal under /proc/*/fd accepts TIOCSTI from the command');
    like($inj{devpts} // 'missing', qr{^0/\d+$},
         'no other /dev/pts/N opened by name accepts TIOCSTI from the command');
}
like($inj{ptrace} // 'missing', qr{^0/\d+$},
     'no process outside the command\'s session (the relay, the capsule\'s init) can be ptraced');
is($rc, 0, 'the outer shell exits 0');

# -- 2. fds 0-2 redirected: no controlling terminal in the capsule --------
$s = term_start(<<"EOF");
\$KAP sh -c '(: </dev/tty) 2>/dev/null && echo HAS-CTTY || echo NO-CTTY; ./inject' </dev/null >notty.out 2>&1
$TAIL
EOF
@got = got_lines($s);
term_finish($s);
my $nt = $t->read_file('notty.out') // '';
is_deeply(\@got, ['SENTINEL'], 'fds redirected: no line injected through /dev/tty reaches the user\'s shell')
    or diag("capsule output:\n$nt");
like($nt, qr/^NO-CTTY$/m, 'fds redirected: the command has no controlling terminal');

# -- 3. exit statuses ---------------------------------------------------------
$s = term_start(<<'EOF');
$KAP sh -c 'exit 7'; echo "RC-A:$?"
$KAP sh -c 'kill -TERM $$'; echo "RC-B:$?"
$KAP sh -c 'kill -KILL $$'; echo "RC-C:$?"
EOF
term_finish($s);
like($s->{buf}, qr/RC-A:7\b/, 'exit 7 -> 7');
like($s->{buf}, qr/RC-B:143\b/, 'killed by SIGTERM -> 143');
like($s->{buf}, qr/RC-C:137\b/, 'killed by SIGKILL -> 137');

# -- 4. window size changes and Ctrl-C reach the command -------------------
$s = term_start(<<'EOF', 30, 90);
trap 'echo OUTER-INT' INT
$KAP sh -c 'echo "SIZE1:$(stty size)"; read x; echo "SIZE2:$(stty size)"; exec perl -e '"'"'$| = 1; $SIG{INT} = sub { print "GOT-SIGINT\n"; exit 5 }; print "READY\n"; sleep 60'"'"''
echo "KAP-RC:$?"
EOF
ok(term_expect($s, qr/SIZE1:30 90/), 'window size at start');
set_winsize($s->{m}, 50, 132);
term_type($s, "go\n");
ok(term_expect($s, qr/SIZE2:50 132/), 'a changed window size reaches the command')
    or diag($s->{buf});
ok(term_expect($s, qr/READY/), 'the command waits');
term_type($s, "\x03");
ok(term_expect($s, qr/GOT-SIGINT/), 'Ctrl-C on the user\'s terminal is SIGINT for the command');
term_finish($s);
like($s->{buf}, qr/KAP-RC:5\b/, 'and its exit status passes through');

# -- 4b. Ctrl-Z on the user's terminal (not raw: stdin is not a terminal)
# stops the command with kap's job, until fg -------------------------------
# In kap run the relay is pid 1 of the capsule's pid namespace, which the
# kernel does not stop: it used to stop the command and continue it at
# once, so the command ran on while the user's shell had the job stopped.
# The outer shell waits for a line before fg: meanwhile the command must
# be stopped (its /proc state) and must not have printed CONTINUED.
$s = term_start(<<'EOF');
set -m
$KAP perl -e '$| = 1; $SIG{CONT} = sub { print "CONTINUED\n" }; print "READY\n"; sleep 1 while 1' kap609-ctrlz </dev/null
echo "STOPPED-RC:$?"
read -r x
fg >/dev/null
echo "FG-RC:$?"
EOF
ok(term_expect($s, qr/READY/), 'a command runs with stdin redirected');
my $cmd;
wait_until(sub { $cmd = term_pid($s, 'perl', 'kap609-ctrlz') }, kapd_tmo(10));
ok($cmd, 'the command\'s process is found') or diag($s->{buf});
term_type($s, "\x1a");
ok(term_expect($s, qr/STOPPED-RC:148\b/), 'Ctrl-Z stops kap: the user\'s shell is back (148)')
    or diag($s->{buf});
ok(wait_until(sub { proc_state($cmd) eq 'T' }, kapd_tmo(10)),
   'the command is stopped while kap\'s job is') or diag('state ' . proc_state($cmd));
term_settle($s);
unlike($s->{buf}, qr/CONTINUED/, 'nothing continued the command before fg') or diag($s->{buf});
is(proc_state($cmd), 'T', 'and it is still stopped');
term_type($s, "fg\n");
my $stopped_at = index($s->{buf}, 'STOPPED-RC:148');
ok($stopped_at >= 0 && term_expect($s, qr/\A.{$stopped_at}STOPPED-RC:148.*CONTINUED/s),
   'fg: the command is continued after the stop was reported') or diag($s->{buf});
term_type($s, "\x03");
term_finish($s);
like($s->{buf}, qr/FG-RC:130\b/, 'Ctrl-C ends it: 130') or diag($s->{buf});

# -- 4b2. kill -TSTP to kap's job while the user's terminal is raw (stdin
# a terminal): the modes come back while it is stopped, raw again on fg ---
$s = term_start(<<'EOF');
set -m
before=$(stty -g)
$KAP perl -e '$| = 1; $SIG{CONT} = sub { print "CONTINUED\n" }; print "READY\n"; sleep 1 while 1' kap609-tstp
echo "STOPPED-RC:$?"
[ "$(stty -g)" = "$before" ] && echo STOPPED-MODE-RESTORED || echo STOPPED-MODE-RAW
read -r x
fg >/dev/null
echo "FG-RC:$?"
EOF
ok(term_expect($s, qr/READY/), 'TSTP: a command runs with stdin on the terminal');
ok(wait_until(sub { !term_canonical($s) }, kapd_tmo(10)), 'TSTP: the terminal is raw');
$cmd = undef;
wait_until(sub { $cmd = term_pid($s, 'perl', 'kap609-tstp') }, kapd_tmo(10));
my ($job) = grep { proc_ppid($_) == $s->{pid} } all_pids('kap-shim');
ok($cmd && $job, 'TSTP: the command and kap are found');
kill 'TSTP', -$job if $job;                # kill -TSTP %1 from another shell
ok(term_expect($s, qr/STOPPED-RC:148\b/), 'TSTP: kap\'s job stops (148)') or diag($s->{buf});
ok(term_expect($s, qr/^STOPPED-MODE-RESTORED\r*$/m),
   'TSTP: the user\'s shell has its terminal modes back meanwhile') or diag($s->{buf});
is(proc_state($cmd), 'T', 'TSTP: the command is stopped');
term_settle($s);
unlike($s->{buf}, qr/CONTINUED/, 'TSTP: nothing continued the command before fg');
term_type($s, "fg\n");
$stopped_at = index($s->{buf}, 'STOPPED-RC:148');
ok($stopped_at >= 0 && term_expect($s, qr/\A.{$stopped_at}STOPPED-RC:148.*CONTINUED/s),
   'TSTP: fg continues the command') or diag($s->{buf});
ok(wait_until(sub { !term_canonical($s) }, kapd_tmo(10)), 'TSTP: and the terminal is raw again');
term_type($s, "\x03");                      # a byte for the private pty now
term_finish($s);
like($s->{buf}, qr/FG-RC:130\b/, 'TSTP: Ctrl-C reaches the command: 130') or diag($s->{buf});

# -- 4c. kap killed from another terminal while the user's terminal is in
# raw mode: the modes come back --------------------------------------------
# kap (kap-shim capsule) kills the capsule with SIGKILL on SIGTERM, and
# everything in it dies with its parent; the relay takes its parent's
# death as the signal to restore the terminal first.  That happens as kap
# exits, not before: the outer shell polls for it with a deadline.
for my $sig (qw/TERM KILL/) {
    $s = term_start(<<'EOF');
before=$(stty -g)
$KAP perl -e '$| = 1; print "RUNNING\n"; sleep 1 while 1' kap609-kill
echo "KAP-RC:$?"
i=0
while [ "$(stty -g)" != "$before" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(stty -g)" = "$before" ] && echo MODE-RESTORED || echo "MODE-CHANGED:$before:$(stty -g)"
EOF
    ok(term_expect($s, qr/RUNNING/), "$sig: the command runs");
    ok(wait_until(sub { !term_canonical($s) }, kapd_tmo(10)),
       "$sig: the user's terminal is in raw mode meanwhile");
    my ($kp) = grep { proc_ppid($_) == $s->{pid} } all_pids('kap-shim');   # kap execs it
    ok($kp, "$sig: kap's process is found");
    kill $sig, $kp if $kp;
    term_finish($s);
    my $want = $sig eq 'TERM' ? 143 : 137;
    like($s->{buf}, qr/KAP-RC:$want\b/, "$sig: kap exits $want") or diag($s->{buf});
    like($s->{buf}, qr/^MODE-RESTORED\r*$/m, "$sig: the user's terminal modes are restored")
        or diag($s->{buf});
}

# -- 5. output arrives intact --------------------------------------------
$s = term_start(<<'EOF');
$KAP perl -e 'printf "%05d:%s\n", $_, "0123456789" x 9 for 1 .. 4000'
echo "KAP-RC:$?"
EOF
term_finish($s);
my @lines = $s->{buf} =~ /^(\d{5}):(?:0123456789){9}\r*$/mg;
is(scalar @lines, 4000, '4000 lines (388 KB) of output arrive')
    or diag(length($s->{buf}) . " bytes on screen");
is_deeply(\@lines, [map { sprintf '%05d', $_ } 1 .. 4000], 'complete and in order');
like($s->{buf}, qr/KAP-RC:0\b/, 'exit 0 after a large output');

# -- 6. stdin from a pipe, stdout into a pipe ------------------------------
$s = term_start(<<'EOF');
echo hi-from-pipe | $KAP sh -c 'test -t 0 || echo IN-PIPE0; test -t 1 && echo IN-TTY1; cat'
echo "RC-A:$?"
$KAP sh -c 'test -t 1 || echo OUT-PIPE1; test -t 0 && echo IN-TTY0; echo to-stderr >&2' | sed 's/^/piped:/'
echo "RC-B:$?"
EOF
term_finish($s);
like($s->{buf}, qr/^IN-PIPE0\r*$/m, 'stdin from a pipe stays a pipe');
like($s->{buf}, qr/^hi-from-pipe\r*$/m, 'and its data reaches the command, which sees EOF');
like($s->{buf}, qr/RC-A:0\b/, 'echo hi | kap run -- cat exits 0');
like($s->{buf}, qr/^piped:OUT-PIPE1\r*$/m, 'stdout into a pipe stays a pipe');
like($s->{buf}, qr/^piped:IN-TTY0\r*$/m, 'while stdin is still a terminal');
like($s->{buf}, qr/^to-stderr\r*$/m, 'stderr on the terminal is relayed');

# -- 7. kap-shim exec --pty as pid 1 of a pid namespace (the capsule's
# init): it reaps orphans, and the status is the command's --------------
SKIP: {
    my $probe = `unshare --pid --fork --mount-proc true 2>&1`;
    skip "no pid namespace here: $probe", 3 if $?;
    $s = term_start(<<'EOF');
unshare --pid --fork --mount-proc "$KAP_SHIM" exec --pty -- sh -c '
    echo "PID-OF-PARENT:$PPID"; test -t 0 && echo PID1-TTY
    sh -c "true & exit 0"               # an orphan for pid 1
    i=0
    while ps -eo stat= | grep -q "^Z" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    ps -eo stat= | grep -q "^Z" && echo ZOMBIE-LEFT || echo NO-ZOMBIE
    exit 6'
echo "RC:$?"
EOF
    term_finish($s);
    like($s->{buf}, qr/PID-OF-PARENT:1\r*\n(?:.*\n)?PID1-TTY/, 'pid 1: the command is its child, on a terminal')
        or diag($s->{buf});
    like($s->{buf}, qr/^NO-ZOMBIE\r*$/m, 'pid 1: orphans are reaped');
    like($s->{buf}, qr/RC:6\b/, 'pid 1: the command\'s exit status');
}

$t->done_testing;
