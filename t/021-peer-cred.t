#!/usr/bin/perl
# 021-peer-cred.t -- a unix-socket connection carries its peer's
# credentials (SO_PEERCRED at accept: kap_conn.peer_uid/gid/pid), which
# the cli module will use to know which user asks; asked through the
# test module's PEER command, once as root and once from a process that
# switched to another uid.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use POSIX ();

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
plan(skip_all => 'needs root to connect as another uid') if $> != 0;
$t->plan(3);

# a directory another uid can reach (the test directory is 0700)
my $pub = tempdir('/tmp/kapd-peer-XXXXXX', CLEANUP => 1);
chmod 0755, $pub;
my $sock = "$pub/hooks.sock";
$t->write_conf(<<"EOF");
kapd: { load = ["test_hooks"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; unix_mode = "0666"; };
test_hooks: { listen = "unix:$sock"; };
EOF
$t->run;

sub peer {
    my $s = IO::Socket::UNIX->new(Peer => $sock) or return "connect: $!";
    return line_cmd($s, 'PEER', 5) // 'no answer';
}

my $me = $$;
like(peer(), qr/^PEER 1 uid=0 gid=0 pid=\Q$me\E\z/, 'root: uid 0, gid 0, and the pid of the connecting process');

pipe(my $r, my $w) or die "pipe: $!";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    close $r;
    POSIX::setgid(65534);
    POSIX::setuid(65534);
    print $w ($> == 65534 ? peer() : "setuid failed"), "\n";
    close $w;
    POSIX::_exit(0);
}
close $w;
my $got = <$r> // '';
chomp $got;
waitpid($pid, 0);
like($got, qr/^PEER 1 uid=65534 gid=65534 pid=\Q$pid\E\z/,
     'another uid: its uid, gid and pid');
unlike($got, qr/uid=0\b/, 'not the uid kapd runs as');
$t->done_testing;
