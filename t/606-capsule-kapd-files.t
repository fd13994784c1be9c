#!/usr/bin/perl
# 606-capsule-kapd-files.t -- adversarial: kapd writes where the capsule
# tells it (issue 10, item 2).
#
# Whoever can write the directory of kapd's audit log (an agent, if the log
# is in its reach) replaces the log by a symbolic link (or a hard link) to
# a file in $HOME, then makes kapd rotate (enough denied requests) or
# reopen (SIGUSR1): the target must stay unchanged, kapd must log an error
# and keep serving.  A FIFO or a directory in place of the log, and a
# symbolic link in place of the error log, are refused.  kap why-denied
# must print no raw control byte whatever the log holds, read the session
# kap run recorded (not the newest file), and suggest only what would
# change the decision.  A unix datagram DNS listener answers only peers
# under its own directory.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use POSIX ();

my $t = Test::Kapd->new->has_kapd->has_module(qw/test_hooks dns/);
my $dir = $t->testdir;
my $home = "$dir/home";
mkdir $home, 0700;
my $bashrc = "# the user's own .bashrc\n";
$t->write_file('home/.bashrc', $bashrc);
$t->write_file('home/.profile', "# the user's own .profile\n");

$t->write_conf(<<'EOF');
kapd: {
    load = ["test_hooks", "dns"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "logs/error.log";
};
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "deny"; kinds = ["test"]; };
audit_log: { path = "logs/audit.jsonl"; max_size = "1k"; keep = 2; };
network: { allow = ["allowed.test"]; };
dns: {
    listen_udp = ["unix:%%PREFIX%%/rt/dns.sock"];
    listen_tcp = ["unix:%%PREFIX%%/rt/dns-tcp.sock"];
};
EOF
mkdir "$dir/$_", 0700 for qw/logs rt other/;
$t->run;

my $s = tcp_connect('127.0.0.1:' . $t->port('hooks'), 5) or BAIL_OUT('no test_hooks');
sub check { line_cmd($s, "CHECK $_[0]", 10) // '' }
sub errlog { $t->read_file('logs/error.log') // '' }

like(check('d0.test'), qr/^DENY/, 'kapd answers');
ok(wait_until(sub { -s "$dir/logs/audit.jsonl" }, kapd_tmo(5)), 'the audit log is written');

# -- a symbolic link in place of the log, then a rotation ----------------------
unlink "$dir/logs/audit.jsonl";
symlink("$home/.bashrc", "$dir/logs/audit.jsonl") or die "symlink: $!";
check("d$_.test") for 1 .. 40;               # > 1k: at least one rotation
like(check('after-rotation.test'), qr/^DENY/, 'kapd keeps serving after the rotation');
is($t->read_file('home/.bashrc'), $bashrc, 'the symlink\'s target (~/.bashrc) is unchanged');
ok(-f "$dir/logs/audit.jsonl" && !-l "$dir/logs/audit.jsonl",
   'a new regular log file took the symlink\'s place');
ok(wait_until(sub { ($t->read_file('logs/audit.jsonl') // '') =~ /after-rotation/ }, kapd_tmo(5)),
   'and receives the lines');

# -- a racer that keeps a symbolic link at the log's name during rotations ---------
# (rename(2) replaces whatever is there at once: between kapd's renames and
# its new open there is nearly always the link)
my $racer = fork // die "fork: $!";
if ($racer == 0) {
    my $end = time + kapd_tmo(20);
    while (time < $end) {
        symlink("$home/.bashrc", "$dir/logs/.race") or next;
        rename("$dir/logs/.race", "$dir/logs/audit.jsonl");
    }
    POSIX::_exit(0);
}
check("r$_.test") for 1 .. 200;                # several rotations
like(check('after-race.test'), qr/^DENY/, 'kapd keeps serving while a link is planted at every rotation');
kill 'KILL', $racer;
waitpid($racer, 0);
is($t->read_file('home/.bashrc'), $bashrc, '~/.bashrc unchanged by the rotations');
unlink "$dir/logs/audit.jsonl", "$dir/logs/.race";
check('reset.test') for 1 .. 30;               # rotate back onto a regular file

# -- SIGUSR1 (reopen) with a symbolic link in place --------------------------------
unlink "$dir/logs/audit.jsonl";
symlink("$home/.bashrc", "$dir/logs/audit.jsonl") or die "symlink: $!";
my $from = length errlog();
$t->kill('USR1');
ok(wait_until(sub { substr(errlog(), $from) =~ /cannot reopen "[^"]*audit\.jsonl": a symbolic link \(refused\)/ },
              kapd_tmo(10)), 'a reopen onto a symbolic link is refused and logged')
    or diag(substr(errlog(), $from));
like(check('after-reopen.test'), qr/^DENY/, 'kapd keeps serving after the refused reopen');
is($t->read_file('home/.bashrc'), $bashrc, '~/.bashrc still unchanged');

# -- a hard link in place ------------------------------------------------------------
unlink "$dir/logs/audit.jsonl";
my $hard = link("$home/.profile", "$dir/logs/audit.jsonl");
SKIP: {
    skip "hard link not possible here: $!", 2 unless $hard;
    $from = length errlog();
    $t->kill('USR1');
    ok(wait_until(sub { substr(errlog(), $from) =~ /has other hard links \(refused\)/ }, kapd_tmo(10)),
       'a reopen onto a hard link is refused');
    check("h$_.test") for 1 .. 40;
    is($t->read_file('home/.profile'), "# the user's own .profile\n",
       'the hard link\'s other name (~/.profile) is unchanged after a rotation');
}

# -- the error log: a symbolic link in place, then SIGUSR1 ---------------------------
rename "$dir/logs/error.log", "$dir/logs/error.log.old";
symlink("$home/.bashrc", "$dir/logs/error.log") or die "symlink: $!";
$t->kill('USR1');
like(check('after-errlog.test'), qr/^DENY/, 'kapd keeps serving with a symlink in place of its error log');
ok(wait_until(sub { ($t->read_file('logs/error.log.old') // '') =~ /a symbolic link \(refused\); still writing to the old file/ },
              kapd_tmo(10)), 'the refused reopen is logged to the old error log');
is($t->read_file('home/.bashrc'), $bashrc, '~/.bashrc unchanged by the error log');
unlink "$dir/logs/error.log";
rename "$dir/logs/error.log.old", "$dir/logs/error.log";

# -- DNS over unix datagrams: replies only under the listener's directory ------------
sub dns_over {
    my ($path, $name) = @_;
    unlink $path;
    my $c = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path) or die "bind $path: $!";
    my $q = pack('n n n n n n', 0x1234, 0x0100, 1, 0, 0, 0)
          . join('', map { chr(length $_) . $_ } split /\./, $name) . "\0"
          . pack('n n', 1, 1);
    my $to = Socket::pack_sockaddr_un("$dir/rt/dns.sock");
    defined send($c, $q, 0, $to) or die "send: $!";
    my $sel = IO::Select->new($c);
    my $r = '';
    $r = '' unless $sel->can_read(kapd_tmo(2)) && defined recv($c, $r, 4096, 0);
    close $c;
    unlink $path;
    return length($r) >= 12 ? unpack('n', $r) : undef;
}
require IO::Select;
is(dns_over("$dir/rt/c1.sock", 'denied.test'), 0x1234, 'a peer under the runtime directory gets its reply');
$from = length errlog();
is(dns_over("$dir/other/c2.sock", 'denied.test'), undef, 'a peer bound elsewhere gets no reply');
ok(wait_until(sub { substr(errlog(), $from) =~ /from a peer outside \Q$dir\E\/rt .*dropped, not answered; \d+ so far/ },
              kapd_tmo(5)), 'the dropped datagram is logged and counted');
is(dns_over("$dir/rt/../other/c3.sock", 'denied.test'), undef, 'a path that climbs out with .. gets no reply');
like(check('still.test'), qr/^DENY/, 'kapd still serves');

$t->stop;

# -- what refuses to start ---------------------------------------------------------------
unlink glob("$dir/logs/audit.jsonl*");
require POSIX;
POSIX::mkfifo("$dir/logs/audit.jsonl", 0600) or die "mkfifo: $!";
$from = length errlog();
$t->try_run;    # the listener may be bound a moment before the audit sink fails
my $st_fifo = $t->wait_exit(20);
ok(defined $st_fifo && $st_fifo != 0, 'a FIFO in place of the audit log: kapd does not start');
like(substr(errlog(), $from), qr/cannot open "[^"]*audit\.jsonl": not a regular file \(refused\)/,
     'and says why');
unlink "$dir/logs/audit.jsonl";
mkdir "$dir/logs/audit.jsonl";
$from = length errlog();
$t->try_run;    # the listener may be bound a moment before the audit sink fails
my $st_dir = $t->wait_exit(20);
ok(defined $st_dir && $st_dir != 0, 'a directory in place of the audit log: kapd does not start');
like(substr(errlog(), $from), qr/audit\.jsonl": a directory \(refused\)/, 'and says why');
rmdir "$dir/logs/audit.jsonl";

# -- kap why-denied ------------------------------------------------------------------------
SKIP: {
    my $kap = $t->builddir . '/kap';
    skip "kap script not built ($kap)", 11 unless -f $kap;
    my $state = "$home/.local/state/kap";
    File::Path::make_path("$state/logs", { mode => 0700 });
    chmod 0700, "$home/.local", "$home/.local/state", $state, "$state/logs";
    sub why {
        my @args = @_;
        local $ENV{HOME} = $home;
        local $ENV{XDG_STATE_HOME};
        delete $ENV{XDG_STATE_HOME};
        open my $fh, '-|', 'sh', $kap, 'why-denied', @args or die "kap: $!";
        local $/;
        my $o = <$fh> // '';
        close $fh;
        return $o;
    }
    my $esc = "\e";
    # a log a capsule forged: raw ESC, OSC, CSI as C1 (UTF-8 and raw),
    # BEL, DEL, and JSON-escaped ESC
    $t->write_file('forged.txt', join '',
        qq({"ts":"2026-11-29T10:00:00Z","kind":"connect","subject":"\\u001b[2J\\u001b]0;pwned\\u0007","port":443,"action":"denied","reason":"not in network.allow"}\n),
        qq({"ts":"2026-11-29T10:00:01Z","kind":"connect","subject":"a${esc}[31mred\x07\x7f\xc2\x9b6n\x9b","port":443,"action":"denied","reason":"${esc}]0;x\x07"}\n));
    my $o = why('--log', "$dir/forged.txt");
    like($o, qr/red/, 'why-denied reads the forged log');
    ok($o !~ /[\x00-\x08\x0b-\x1f\x7f]/, 'no raw C0 control byte (ESC, BEL) nor DEL in its output');
    ok($o !~ /\xc2[\x80-\x9f]/ && $o !~ /(?:^|[\x00-\x7f])[\x80-\x9f]/m, 'no C1 control (UTF-8 or raw)');

    # suggestions: only what changes the decision
    $t->write_file('sugg.txt', join '',
        qq({"ts":"2026-11-29T10:00:00Z","kind":"connect","subject":"gist.github.com","port":443,"action":"denied","reason":"deny \\"gist.github.com\\" (kap.conf:3)"}\n),
        qq({"ts":"2026-11-29T10:00:01Z","kind":"connect","subject":"github.com","port":22,"action":"denied","reason":"port 22 not allowed for \\"github.com\\" (kap.conf:2)"}\n),
        qq({"ts":"2026-11-29T10:00:02Z","kind":"connect","subject":"new.test","port":443,"action":"denied","reason":"not in network.allow"}\n),
        qq({"ts":"2026-11-29T10:00:03Z","kind":"connect","subject":"meta.test","port":443,"action":"denied","reason":"meta.test resolves to 10.1.2.3 (in network.deny_addresses)"}\n),
        qq({"ts":"2026-11-29T10:00:04Z","kind":"dns","subject":"x.test","port":0,"action":"denied","reason":"zone transfers are refused"}\n));
    $o = why('--log', "$dir/sugg.txt");
    unlike($o, qr/network\.allow \+= "gist\.github\.com"/, 'no allow line for a name an explicit deny rule refuses');
    like($o, qr/-> denied by the rule deny "gist\.github\.com" \(kap\.conf:3\)/, 'it names the rule instead');
    like($o, qr/-> network\.allow \+= "github\.com:22"/, 'an allowed name on another port: name:port');
    like($o, qr/-> network\.allow \+= "new\.test"\n/, 'a name not listed: the allow line');
    like($o, qr/-> its address 10\.1\.2\.3 is in network\.deny_addresses/, 'a denied address rule is named');
    like($o, qr/-> no network\.allow line changes this \(zone transfers are refused\)/,
         'a refusal no allow rule decides gets no allow line');

    # the session kap run recorded, not the newest file a capsule touched
    $t->write_file("$state/logs/AAAA1111.jsonl",
        qq({"ts":"2026-11-29T10:00:00Z","kind":"connect","subject":"mine.test","port":443,"action":"denied","reason":"not in network.allow"}\n));
    $t->write_file("$state/logs/ZZZZ9999.jsonl",
        qq({"ts":"2026-11-29T11:00:00Z","kind":"connect","subject":"lure.test","port":443,"action":"denied","reason":"not in network.allow"}\n));
    $t->write_file("$state/last-session", "AAAA1111\n");
    utime(time + 60, time + 60, "$state/logs/ZZZZ9999.jsonl");
    $o = why();
    ok($o =~ /mine\.test/ && $o !~ /lure\.test/, 'why-denied reads the recorded session, not the newest file');
    $o = why('--session', 'ZZZZ9999');
    like($o, qr/lure\.test/, '--session ID reads that session');
}

unlink glob("$dir/logs/audit.jsonl*"), "$dir/forged.txt";
$t->done_testing;
