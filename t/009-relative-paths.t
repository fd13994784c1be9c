#!/usr/bin/perl
# 009-relative-paths.t -- every relative path in the configuration (audit
# log, error log, pid file, @include, module_path) is resolved against the
# prefix: -p when given, else the directory of the main file -- never
# against kapd's working directory.  kapd is started from an empty
# directory with -c /abs/path/kap.conf; the files must land beside the
# configuration and nothing in the working directory, also after a
# reload.  Then with -p: they land under the prefix.  A relative -c names
# a file in the working directory (the command line's own convention).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(18);

my $dir = $t->testdir;
my $conf = "$dir/etc";
my $cwd = "$dir/cwd";
my $pfx = "$dir/prefix";
mkdir $_ or die "$_: $!" for $conf, $cwd, $pfx, "$pfx/logs", "$conf/logs";
# the modules, through a relative module_path (a link beside the config
# and one under the prefix)
symlink($t->module_path, "$conf/mods") or die "symlink: $!";
symlink($t->module_path, "$pfx/mods") or die "symlink: $!";

my $port = $t->port('hooks');
my $main = <<'CONF';
kapd: {
    load = ["test_hooks"];
    module_path = ["mods"];
    error_log = "logs/kapd.log";
    pid_file = "kapd.pid";
};
@include "inc.conf"
audit_log: { path = "logs/audit.jsonl"; };
CONF
my $inc = qq{test_hooks: { listen = "127.0.0.1:$port"; answer = "deny"; kinds = ["test"]; };\n};
$t->write_file("etc/kap.conf", $main);
$t->write_file("etc/inc.conf", $inc);

# start(cwd, args...): kapd in the foreground from cwd; its pid once the
# listener accepts, or undef when it exited
sub start {
    my ($wd, @args) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        chdir $wd or POSIX::_exit(127);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stdout.log";
        open STDERR, '>>', "$dir/stdout.log";
        exec($t->binary, @args) or POSIX::_exit(127);
    }
    my $gone = 0;
    wait_until(sub {
        if (waitpid($pid, WNOHANG) == $pid) { $gone = 1; return 1 }
        my $s = tcp_connect("127.0.0.1:$port", 1) or return 0;
        close $s;
        1;
    }, kapd_tmo(15));
    return $gone ? undef : $pid;
}

sub ask {
    my $s = tcp_connect("127.0.0.1:$port", 5) or return '';
    return line_cmd($s, 'CHECK some.test', 10) // '';
}

sub stop {
    my ($pid) = @_;
    return -1 unless $pid;
    kill 'TERM', $pid;
    wait_until(sub { waitpid($pid, WNOHANG) == $pid }, kapd_tmo(15))
        or do { kill 'KILL', $pid; waitpid($pid, 0) };
    return $? >> 8;
}

sub ls {
    opendir(my $d, $_[0]) or return '(none)';
    return join(' ', sort grep { !/^\.\.?$/ } readdir $d);
}

# -- -c /abs/path, no -p: the prefix is the config's directory -------------
my $pid = start($cwd, '-c', "$conf/kap.conf");
ok($pid, 'kapd started from an empty directory with -c /abs/kap.conf')
    or diag($t->read_file('stdout.log'));
like(ask(), qr/^DENY test_hooks/, 'the included file and the module (relative module_path) were used');
ok(wait_until(sub { -s "$conf/logs/kapd.log" }, kapd_tmo(5)), 'error_log "logs/kapd.log" lands under the config\'s directory');
is($t->read_file('etc/kapd.pid'), ($pid // 'none') . "\n", 'pid_file "kapd.pid" lands beside the config');
ok(wait_until(sub { (-s "$conf/logs/audit.jsonl" // 0) > 0 }, kapd_tmo(5)),
   'audit_log.path "logs/audit.jsonl" lands under the config\'s directory');
kill 'HUP', $pid if $pid;
ok(wait_until(sub { ($t->read_file('etc/logs/kapd.log') // '') =~ /reloaded|reload failed/ }, kapd_tmo(10))
   && ($t->read_file('etc/logs/kapd.log') // '') =~ /reloaded \(SIGHUP\)/,
   'a reload (SIGHUP) finds the same files');
like(ask(), qr/^DENY test_hooks/, 'still answering after the reload');
is(stop($pid), 0, 'kapd stopped');
ok(!-e "$conf/kapd.pid", 'the pid file is removed at exit');
is(ls($cwd), '', 'nothing landed in the working directory');

# -- -p prefix: relative paths under the prefix ----------------------------
$t->write_file("prefix/inc.conf", $inc);
$pid = start($cwd, '-c', "$conf/kap.conf", '-p', $pfx);
ok($pid, 'kapd started with -p') or diag($t->read_file('stdout.log'));
like(ask(), qr/^DENY test_hooks/, '-p: answers');
ok(-s "$pfx/logs/kapd.log" && -e "$pfx/kapd.pid", '-p: error log and pid file under the prefix');
ok(wait_until(sub { (-s "$pfx/logs/audit.jsonl" // 0) > 0 }, kapd_tmo(5)),
   '-p: the audit log under the prefix');
stop($pid);
is(ls($cwd), '', '-p: nothing landed in the working directory');

# -- a relative -c names the file in the working directory ---------------------
unlink "$conf/logs/kapd.log", "$conf/logs/audit.jsonl";
$pid = start($conf, '-c', 'kap.conf');
ok($pid, 'kapd started with a relative -c from the config\'s directory')
    or diag($t->read_file('stdout.log'));
ok(wait_until(sub { -s "$conf/logs/kapd.log" }, kapd_tmo(5)), 'relative -c: the files land beside the config');
stop($pid);

# -- kapd -t from elsewhere ----------------------------------------------------
my $pid2 = fork // die "fork: $!";
if ($pid2 == 0) {
    chdir $cwd or POSIX::_exit(127);
    open STDERR, '>', "$dir/t.err";
    open STDOUT, '>', '/dev/null';
    exec($t->binary, '-t', '-c', "$conf/kap.conf") or POSIX::_exit(127);
}
waitpid($pid2, 0);
is($? >> 8, 0, 'kapd -t from another directory finds the include and the modules')
    or diag($t->read_file('t.err'));
