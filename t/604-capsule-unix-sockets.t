#!/usr/bin/perl
# 604-capsule-unix-sockets.t -- adversarial: the agent in a `kap run`
# capsule leaves through a unix socket of a service outside it.
#
# kap(1): "a unix socket is a filesystem object, so it is reachable from
# another network namespace" -- that is how the bridge reaches kapd, and
# it holds for every other socket on the host filesystem too.  Services
# the user runs listen on such sockets and act with the user's network:
# the D-Bus session bus in $XDG_RUNTIME_DIR/bus (systemd-run --user starts
# any command outside the capsule), /var/run/docker.sock (a container
# with the host's network), gpg-agent/dirmngr (fetches keys from URLs).
# Here a stand-in service in $XDG_RUNTIME_DIR relays whatever connects to
# it to the origin, and a second one listens in /tmp; from inside the
# capsule the agent tries both (bypass-classes.md #7/#8: the only way out
# must be kapd).
#
# kap run hides them: the capsule's root is a fresh tmpfs with the system
# read-only, private /run, /tmp, /var/tmp and /dev/shm, the project and a
# private home; $XDG_RUNTIME_DIR and kap's runtime directory are not
# there, even under the project.  The mounts are locked (a nested user
# namespace, seccomp) so that the agent cannot unmount them.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);

my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare ip setpriv/);

my $dir = $t->testdir;
my $oport = $t->port('origin');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {});
my $origin = Test::Kapd::FakeHTTP->new($t, port => $oport, name => 'origin');
$t->write_file_expand('policy.conf', <<'EOF');
network: { allow = ["allowed.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { };
dns: { };
EOF

mkdir "$dir/run", 0700;
mkdir "$dir/home", 0700;
# stand-ins for the user's services: each relays one request to the origin
# (which the capsule cannot reach) and the answer back
my @socks = ("$dir/run/bus", "/tmp/kap-test-$$-docker.sock");
my $parent = $$;
END { unlink $socks[1] if $$ == $parent }
for my $path (@socks) {
    unlink $path;
    my $ls = IO::Socket::UNIX->new(Local => $path, Listen => 5) or die "listen $path: $!";
    $t->run_daemon(sub {
        while (1) {
            my $c = $ls->accept or next;
            my $req = '';
            while ($req !~ /\r\n\r\n/) { sysread($c, $req, 4096, length $req) or last }
            my $u = IO::Socket::INET->new("127.0.0.1:$oport") or next;
            syswrite($u, $req);
            while (sysread($u, my $b, 65536)) { syswrite($c, $b) }
            close $c;
        }
    });
    close $ls;
}

# in the project (the working directory): the capsule sees its own /tmp
# and its own home, so the script must live where the command can read it
$t->write_file('escape.pl', <<'EOF');
use strict; use warnings; use IO::Socket::UNIX;
for my $path (@ARGV) {
    my $s = IO::Socket::UNIX->new(Peer => $path);
    if (!$s) { print "$path=unreachable\n"; next }
    print $s "GET /escaped HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n";
    my $r = join '', <$s>;
    print "$path=", ($r =~ m{^HTTP/1\.1 (\d+)} ? $1 : 'noanswer'), "\n";
}
EOF

my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', "$dir/escape.out";
    open STDERR, '>', "$dir/escape.err";
    $ENV{KAPD} = $t->binary;
    $ENV{KAP_SHIM} = $shim;
    $ENV{KAP_MODULE_PATH} = $t->module_path;
    $ENV{HOME} = "$dir/home";
    $ENV{XDG_RUNTIME_DIR} = "$dir/run";
    delete $ENV{XDG_STATE_HOME};
    chdir $dir or exit 127;
    exec($sh, $kap, 'run', '-c', "$dir/policy.conf", '--', 'perl', "$dir/escape.pl", @socks)
        or exit 127;
}
my $st;
wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } }, kapd_tmo(60))
    or do { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 };
is($st, 0, 'kap run ran the command') or diag($t->read_file('escape.err'));
my %v = map { /^(.*)=(\w+)$/ ? ($1, $2) : () } split /\n/, $t->read_file('escape.out') // '';

{
    for my $path (@socks) {
        is($v{$path} // 'none', 'unreachable', "a service socket outside the capsule ($path) is not reachable");
    }
    is(scalar(grep { $_->{target} eq '/escaped' } @{$origin->requests}), 0,
       'nothing reached the origin except through kapd');
}
$t->done_testing;
