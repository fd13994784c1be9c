#!/usr/bin/perl
# 701-kap-shim-connect-sshd.t -- a whole SSH session through the SSH
# bridge: the real OpenSSH client with `ProxyCommand kap-shim connect %h
# %p`, kapd's http_connect, and a real SSH server (dropbear, from
# dropbear-bin: a binary with no system service) on 127.0.0.2.  A
# command's exit status comes back; 4 MiB go through remote `cat` in both
# directions at once (SSH's own flow control over the bridge: no
# deadlock, no lost or changed byte); a second session works after the
# first; a port not in network.allow fails with the 403 line on ssh's
# stderr.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Digest::SHA qw(sha256_hex);
use POSIX qw(_exit);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);
my $shim = $t->builddir . '/kap-shim';
plan(skip_all => "kap-shim not built ($shim)") unless -x $shim;
my %tool;
for my $name (qw(ssh ssh-keygen dropbear dropbearkey mount)) {
    ($tool{$name}) = grep { -x } map { "$_/$name" } split(/:/, $ENV{PATH}), '/usr/sbin';
    plan(skip_all => "$name not installed (openssh-client, dropbear-bin)")
        unless $tool{$name};
}

my $dir = $t->testdir;
system("'$tool{dropbearkey}' -t ed25519 -f '$dir/host_key' >/dev/null 2>&1") == 0
    or die 'dropbearkey failed';
system($tool{'ssh-keygen'}, '-q', '-t', 'ed25519', '-N', '', '-C', 'kap-test',
       '-f', "$dir/id") == 0 or die 'ssh-keygen failed';

# dropbear reads ~/.ssh/authorized_keys of the user and has no option for
# another file: the test's own home is bind-mounted over ours, in the
# private mount namespace the harness made (the real one is untouched)
my ($user, $home) = (getpwuid($>))[0, 7];
mkdir "$dir/home", 0700;
mkdir "$dir/home/.ssh", 0700;
$t->write_file('home/.ssh/authorized_keys', $t->read_file('id.pub'));
chmod 0600, "$dir/home/.ssh/authorized_keys", "$dir/id";
# The SSH server finds authorized_keys in the home of the user it runs as:
# a bind mount over that home, in a mount namespace of the server's own
# (over the whole test's, it would also hide a build tree under $home).
my $unshare = (grep { -x } map { "$_/unshare" } split(/:/, $ENV{PATH}), '/usr/bin')[0]
    or plan(skip_all => 'unshare not installed (util-linux)');

my $sport = $t->port('sshd');
$t->run_daemon(sub {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', "$dir/dropbear.log";
    open STDERR, '>&', \*STDOUT;
    exec($unshare, '--mount', '--propagation', 'private', '--',
         'sh', '-c',
         'mount --bind "$1" "$2" || exit 1; shift 2; exec "$@"', 'sh',
         "$dir/home", $home,
         $tool{dropbear}, '-F', '-E', '-s', '-m', '-p', "127.0.0.2:$sport",
         '-r', "$dir/host_key", '-P', "$dir/dropbear.pid") or _exit(127);
});
ok(wait_until(sub { tcp_connect("127.0.0.2:$sport", 1) }, kapd_tmo(10)), 'SSH server listens')
    or diag($t->read_file('dropbear.log'));

Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'ssh.example' => ['A 127.0.0.2'],
});
$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["ssh.example:%%PORT_sshd%%", "127.0.0.2:%%PORT_sshd%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
$t->run;
my $proxy = "http://127.0.0.1:" . $t->port('proxy');

# ssh(port, command, stdin file): (exit code, stdout, stderr)
sub ssh {
    my ($port, $cmd, $in) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', $in // '/dev/null' or _exit(127);
        open STDOUT, '>', "$dir/ssh.out" or _exit(127);
        open STDERR, '>', "$dir/ssh.err" or _exit(127);
        delete @ENV{qw(https_proxy HTTP_PROXY http_proxy SSH_AUTH_SOCK)};
        $ENV{HTTPS_PROXY} = $proxy;
        exec('timeout', kapd_tmo(60), $tool{ssh}, '-F', '/dev/null', '-i', "$dir/id",
             '-p', $port, '-o', "ProxyCommand=$shim connect %h %p",
             '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
             '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
             '-o', 'LogLevel=ERROR', "$user\@ssh.example", $cmd) or _exit(127);
    }
    waitpid($pid, 0);
    return ($? >> 8, $t->read_file('ssh.out') // '', $t->read_file('ssh.err') // '');
}

my ($rc, $out, $err) = ssh($sport, 'echo hello from sshd; exit 7');
is($rc, 7, 'ssh through kap-shim connect and kapd: the remote exit status') or diag($err);
is($out, "hello from sshd\n", 'the remote output');

# 4 MiB through `cat` and back: SSH's flow control over the bridge
srand(11);
my $blob = join '', map { chr(int rand 256) } 1 .. 65536;
$blob = $blob x 64;
$t->write_file('blob', $blob);
($rc, $out, $err) = ssh($sport, 'cat', "$dir/blob");
is($rc, 0, '4 MiB through remote cat: exit 0') or diag($err);
is(length $out, length $blob, '4 MiB through remote cat: every byte came back');
is(sha256_hex($out), sha256_hex($blob), '4 MiB through remote cat: unchanged');

($rc, $out, $err) = ssh($sport, 'head -c 1000000 /dev/zero | wc -c');
is($out, "1000000\n", 'a second session: 1 MB from the server side');

# a port kapd does not allow: ssh fails, kap-shim's line says why
my $other = $t->port('other');
($rc, $out, $err) = ssh($other, 'true');
is($rc, 255, 'port not allowed: ssh fails (255)');
like($err, qr/403.*add "ssh\.example:$other" to network\.allow/,
     'port not allowed: kap-shim connect names the 403 and the entry to add');

ok(scalar $t->wait_audit(sub { grep { ($_->{subject} // '') eq 'ssh.example'
                                      && ($_->{port} // 0) == $sport } @_ }),
   'the SSH tunnels are in the audit log');

$t->done_testing;
