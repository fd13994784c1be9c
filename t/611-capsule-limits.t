#!/usr/bin/perl
# 611-capsule-limits.t -- issue 10 item 7: the smaller holes of the `kap
# run` capsule.  From inside: an AF_VSOCK socket cannot be created (vsock
# is not isolated by network namespaces), TIOCSTI is refused by seccomp, a
# fork bomb stops at the capsule's process limit within seconds, the SysV
# IPC, UTS and cgroup namespaces are the capsule's own, descriptors kap
# inherited (fds 5 and 12) are not open in the command, a unix socket in the real
# ~/.ssh (an ssh ControlMaster) is not reachable.  Outside: nothing is
# left behind in the runtime base (no mode-0500 directory either).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t);
my $dir = $t->testdir;
use IO::Socket::UNIX;

$t->plan(18);

# a stand-in ssh ControlMaster socket in the real home
mkdir "$dir/home/.ssh", 0700;
my $cm = IO::Socket::UNIX->new(Local => "$dir/home/.ssh/cm.sock", Listen => 5)
    or die "listen: $!";

$t->write_file('probe.sh', <<'EOS');
perl -MSocket -e 'if (socket(my $s, 40, SOCK_STREAM, 0)) { print "vsock=created\n" }
    else { print "vsock=", ($!{EPERM} ? "EPERM" : "$!"), "\n" }'
perl -e 'my $c = "x"; if (ioctl(STDIN, 0x5412, $c)) { print "tiocsti=ok\n" }
    else { print "tiocsti=", ($!{EPERM} ? "EPERM" : "$!"), "\n" }'
for n in ipc uts cgroup net pid; do echo "ns_$n=$(readlink /proc/self/ns/$n)"; done
for fd in 5 12; do
    if [ -e /proc/self/fd/$fd ]; then echo fd$fd=open; else echo fd$fd=closed; fi
done
perl -MIO::Socket::UNIX -e 'print "cm=", (IO::Socket::UNIX->new(Peer => $ARGV[0]) ? "reached" : "unreachable"), "\n"' "$1"
perl bomb.pl
EOS
$t->write_file('bomb.pl', <<'EOS');
# fork until fork fails (or 20 s); children sleep; report how far it got
use strict; use warnings; use POSIX (); use Time::HiRes qw(time);
my ($t0, $n, @kids) = (time, 0);
while (time - $t0 < 20) {
    my $p = fork;
    last unless defined $p;
    if ($p == 0) { sleep 60; POSIX::_exit(0) }
    $n++;
    push @kids, $p;
}
my $eagain = $!{EAGAIN} ? 1 : 0;
printf "bomb_forks=%d\nbomb_secs=%.1f\nbomb_eagain=%d\n", $n, time - $t0, $eagain;
kill 'KILL', @kids;
waitpid($_, 0) for @kids;
EOS

my $r = $c->run({ tag => 'probe', fd5 => "$dir/policy.conf", timeout => 90 },
                '-c', "$dir/policy.conf", '--', 'sh', "$dir/probe.sh", "$dir/home/.ssh/cm.sock");
is($r->{rc}, 0, 'kap run ran the probes') or diag($r->{err});
my $v = Test::Kapd::Capsule::kv($r->{out});
is($v->{vsock}, 'EPERM', 'socket(AF_VSOCK) is refused with EPERM');
is($v->{tiocsti}, 'EPERM', 'ioctl(TIOCSTI) is refused with EPERM (seccomp, before any tty check)');
for my $ns (qw(ipc uts cgroup)) {
    my $mine = readlink("/proc/self/ns/$ns") // 'none';
    ok(($v->{"ns_$ns"} // '') =~ /^$ns:\[\d+\]$/ && $v->{"ns_$ns"} ne $mine,
       "the capsule has its own $ns namespace ($v->{\"ns_$ns\"} vs $mine)");
}
is(($v->{fd5} // '') . ' ' . ($v->{fd12} // ''), 'closed closed',
   'descriptors kap inherited (fds 5 and 12) are not open in the command');
is($v->{cm}, 'unreachable', 'a unix socket in the real ~/.ssh is not reachable');
ok(($v->{bomb_forks} // 0) > 10 && $v->{bomb_forks} <= 1100,
   "a fork bomb stops at the capsule's process limit ($v->{bomb_forks} forks)");
is($v->{bomb_eagain}, 1, 'fork fails with EAGAIN');
# the bomb ends by itself, long before the run's 90 s timeout would end
# it (the limit, not the clock, stops it: its time only says it did not
# hang; 15 s was missed under a load of 9 on two cores)
ok(defined $v->{bomb_secs} && $v->{bomb_secs} < kapd_tmo(60),
   "it ends by itself ($v->{bomb_secs} s)");
# the host can still start processes
is(system('true'), 0, 'the host still forks');

# SIGTERM to kap reaches the command (which may clean up); SIGKILL to kap
# takes the whole capsule with it (parent-death signals)
sub procs { my ($m) = @_; return grep { /\Q$m\E/ } split /\n/, `ps -eo args` }
my $pid = $c->run({ tag => 'term', bg => 1 }, '-c', "$dir/policy.conf", '--', 'sh', '-c',
                  'trap "echo got-term > term.txt; exit 3" TERM; echo up > up.txt; sleep 31.25 & wait');
ok(wait_until(sub { -e "$dir/up.txt" }, kapd_tmo(20)), 'a capsule runs');
kill 'TERM', $pid;
my $st;
wait_until(sub { waitpid($pid, POSIX::WNOHANG()) == $pid and do { $st = $?; 1 } }, kapd_tmo(20));
ok(defined $st && ($st >> 8) == 143 && ($t->read_file('term.txt') // '') eq "got-term\n",
   'SIGTERM to kap: the command gets it, kap exits 143');
$pid = $c->run({ tag => 'kill', bg => 1 }, '-c', "$dir/policy.conf", '--', 'sh', '-c',
               'echo up > up2.txt; sleep 31.5');
ok(wait_until(sub { -e "$dir/up2.txt" }, kapd_tmo(20)), 'another capsule runs');
kill 'KILL', $pid;
waitpid($pid, 0);
ok(wait_until(sub { !procs('sleep 31.5') && !procs("$dir/run/kap/") }, kapd_tmo(10)),
   'SIGKILL to kap: the command, the bridge and kapd die with it')
    or diag(join "\n", procs('sleep 31.5'), procs("$dir/run/kap/"));

# (a SIGKILLed kap cannot remove its runtime directory: the next kap run does)
$c->run({ tag => 'sweep' }, '-c', "$dir/policy.conf", '--', 'true');
my @left = glob("$dir/run/kap/* $dir/run/kap/.[!.]*");
is(scalar @left, 0, 'nothing left in the runtime base') or diag(join ' ', @left);
my @d0500 = grep { -d $_ && ((stat $_)[2] & 07777) == 0500 } glob("$dir/run/* $dir/run/kap/* $dir/run/kap/*/*");
is(scalar @d0500, 0, 'no mode-0500 directory left behind') or diag(join ' ', @d0500);
$t->done_testing;
