#!/usr/bin/perl
# 004-signals.t -- TERM with an idle connection open: kapd closes it and
# exits 0 within the shutdown grace; a second TERM stops at once; USR1
# reopens the error log; -d daemonizes and writes the pid file (and a
# second -d refuses while the first runs).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(19);

sub conf {
    my ($grace, $extra) = @_;
    $extra //= '';
    return <<"EOF";
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    shutdown_grace = $grace;
    $extra
};
network: { allow = ["github.com"]; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "allow"; };
EOF
}

sub eof_within {
    my ($s, $tmo) = @_;
    return wait_until(sub {
        my $sel = IO::Select->new($s);
        return 0 unless $sel->can_read(0.1);
        my $n = sysread($s, my $buf, 4096);
        return defined $n && $n == 0 ? 1 : ($n ? 0 : 1);
    }, $tmo);
}

# -- TERM with an idle connection: closed within the grace, exit 0 ------------
$t->write_conf(conf(2));
$t->run;
my $s = tcp_connect($t->port('hooks'));
like($s ? line_cmd($s, 'GEN') // '' : '', qr/^\d+$/, 'idle connection open');
my $t0 = time;
$t->kill('TERM');
my $st = $t->wait_exit(10);
my $took = time - $t0;
ok(defined $st, 'TERM: kapd exits');
is($t->exit_code, 0, 'TERM: exit code 0');
ok($took < 2 + 3, sprintf('TERM: exit within the grace (%.1fs)', $took));
ok($s && eof_within($s, 1), 'TERM: the idle connection was closed');
$t->stop;

# -- a second TERM stops at once ------------------------------------------------
$t->write_conf(conf(60));
$t->run;
$s = tcp_connect($t->port('hooks'));
line_cmd($s, 'GEN') if $s;
my $from = $t->error_log_size;
$t0 = time;
$t->kill('TERM');
# wait until the first TERM is being handled (grace started), then again
# (two signals sent at once would merge into one)
$t->wait_log(qr/shutting down|grace/i, 5, $from);
$t->kill('TERM');
$st = $t->wait_exit(10);
$took = time - $t0;
ok(defined $st && $took < 10, sprintf('second TERM: exits at once (%.1fs, grace 60s)', $took));
is($t->exit_code, 0, 'second TERM: exit code 0');
$t->stop;

# -- INT is a graceful stop too ----------------------------------------------------
$t->write_conf(conf(2));
$t->run;
$t->kill('INT');
ok(defined $t->wait_exit(10), 'INT: kapd exits');
is($t->exit_code, 0, 'INT: exit code 0');
$t->stop;

# -- USR1 reopens the error log ----------------------------------------------------
$t->write_conf(conf(2));
$t->run;
my $log = $t->error_log_path;
rename $log, "$log.old" or die "rename: $!";
ok(!-e $log, 'error.log renamed away');
$t->kill('USR1');
ok(wait_until(sub { -e $log }, kapd_tmo(5)), 'USR1: a new error.log is created');
my $old_size = -s "$log.old";
my $line = $t->reload;
like($line // '', qr/reloaded/, 'new lines go to the new error.log');
is(-s "$log.old", $old_size, 'and not to the renamed file');
$t->stop;

# -- -d daemonizes and writes the pid file ------------------------------------------
$t->write_conf(conf(2, 'pid_file = "kapd.pid";'));
my $pidf = $t->path('kapd.pid');
my $r = $t->kapd_cmd('-d', '-c', $t->conf_path, '-p', $t->testdir);
is($r->{rc}, 0, '-d: the starting process exits 0') or diag($r->{all});
my $dpid;
ok(wait_until(sub {
    my $c = $t->read_file('kapd.pid') // '';
    ($dpid) = $c =~ /^(\d+)\s*$/;
    $dpid && kill(0, $dpid);
}, kapd_tmo(10)), '-d: pid file written with a live pid');
push @{$t->{daemons}}, $dpid if $dpid;      # killed at the end whatever happens
ok(wait_until(sub { my $c = tcp_connect($t->port('hooks'), 1); $c }, kapd_tmo(10)),
   '-d: the daemon serves');
my $r2 = $t->kapd_cmd('-d', '-c', $t->conf_path, '-p', $t->testdir);
isnt($r2->{rc}, 0, '-d: a second instance refuses (already running)')
    or diag($r2->{all});
is($t->read_file('kapd.pid') =~ /^(\d+)/ ? $1 : 0, $dpid, '-d: the pid file still names the first');
kill 'TERM', $dpid if $dpid;
ok($dpid && wait_until(sub { !kill(0, $dpid) }, kapd_tmo(10)), '-d: the daemon exits on TERM');
