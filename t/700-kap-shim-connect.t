#!/usr/bin/perl
# 700-kap-shim-connect.t -- `kap-shim connect HOST PORT`, the SSH bridge
# (ssh's `ProxyCommand kap-shim connect %h %p`), through a real kapd
# http_connect and through a fake proxy for byte-exact edge cases:
# the server's banner arrives before the client sends anything; 1 MB
# echoed intact; stdin EOF half-closes (the server sees EOF and its last
# bytes still arrive; exit 0); bytes that share a read with the 200 head
# are not lost; a head split into single bytes; a real ssh client gets
# the banner with ProxyCommand kap-shim connect; a bracketed and a bare
# IPv6 literal; a denied host is exit 1 naming 403 and the network.allow
# entry to add; a closed port is exit 1 naming 502/504; a malformed
# answer is exit 1; no proxy variable (or a name instead of an address,
# or an https:// proxy) is a clear usage error, exit 2.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeBanner;
use IO::Handle;
use IO::Select;
use IO::Socket::IP;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);
my $shim = $t->builddir . '/kap-shim';
plan(skip_all => "kap-shim not built ($shim)") unless -x $shim;

my $banner = "SSH-2.0-FakeSSH_1.0\r\n";

# an SSH-like server on 127.0.0.2: banner at once, echo, and on the
# client's EOF one last line "BYE <bytes received>" before it closes
my $sport = $t->port('ssh');
my $sls = IO::Socket::IP->new(LocalHost => '127.0.0.2', LocalPort => $sport,
    Listen => 16, ReuseAddr => 1) or die "listen ssh: $!";
$t->run_daemon(sub {
    while (my $c = $sls->accept) {
        my $pid = fork // next;
        if ($pid) { close $c; next }
        syswrite($c, $banner);
        my $total = 0;
        while (1) {
            my $n = sysread($c, my $buf, 65536);
            last unless $n;
            $total += $n;
            my $off = 0;
            while ($off < $n) {
                my $w = syswrite($c, $buf, $n - $off, $off) or _exit(0);
                $off += $w;
            }
        }
        syswrite($c, "BYE $total\n");
        _exit(0);
    }
});
close $sls;

# an SSH-like server on ::1 (the IPv6 literal cases)
my $v6 = Test::Kapd::FakeBanner->new($t, port => $t->port('v6'), addr => '::1',
    name => 'v6', banner => $banner);

# a fake proxy for what kapd never does: the 200 head and the banner in one
# segment, a head sent byte by byte, a malformed answer
my $fport = $t->port('fakeproxy');
my $fls = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $fport,
    Listen => 16, ReuseAddr => 1) or die "listen fake proxy: $!";
$t->run_daemon(sub {
    while (my $c = $fls->accept) {
        my $pid = fork // next;
        if ($pid) { close $c; next }
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            sysread($c, $head, 4096, length $head) or _exit(0);
        }
        my ($target) = $head =~ /^CONNECT (\S+) HTTP\/1\.1\r\n/;
        _exit(0) unless $head =~ /\r\nHost: \Q$target\E\r\n/;
        if ($target =~ /^together\./) {
            syswrite($c, "HTTP/1.1 200 Connection established\r\n\r\n$banner");
        } elsif ($target =~ /^trickle\./) {
            for my $ch (split //, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nX-A: b\r\n\r\n") {
                syswrite($c, $ch);
                select(undef, undef, undef, 0.002);
            }
            syswrite($c, $banner);
        } else {
            syswrite($c, "SSH-2.0-NotAProxy\r\n\r\n");
            _exit(0);
        }
        while (1) {                    # echo
            my $n = sysread($c, my $buf, 65536) or last;
            syswrite($c, $buf);
        }
        _exit(0);
    }
});
close $fls;

Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'ssh.example'    => ['A 127.0.0.2'],
    'closed.example' => ['A 127.0.0.2'],
    'denied.example' => ['A 127.0.0.2'],
});
$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["ssh.example:%%PORT_ssh%%", "127.0.0.2:%%PORT_ssh%%",
             "closed.example:%%PORT_closed%%", "127.0.0.2:%%PORT_closed%%",
             "[::1]:%%PORT_v6%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; connect_timeout = 3; };
EOF
$t->run;
my $proxy = "http://127.0.0.1:" . $t->port('proxy');

# ---- running kap-shim connect -------------------------------------------------

# start(env => {VAR => value}, args...): kap-shim connect with pipes on
# stdin, stdout and stderr; proxy variables not named are unset
sub start {
    my (%o) = @_;
    pipe(my $in_r, my $in_w) or die "pipe: $!";
    pipe(my $out_r, my $out_w) or die "pipe: $!";
    pipe(my $err_r, my $err_w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<&', $in_r or _exit(127);
        open STDOUT, '>&', $out_w or _exit(127);
        open STDERR, '>&', $err_w or _exit(127);
        delete @ENV{qw(HTTPS_PROXY https_proxy HTTP_PROXY http_proxy)};
        %ENV = (%ENV, %{$o{env} // {}});
        exec($shim, 'connect', @{$o{args}}) or _exit(127);
    }
    close $_ for $in_r, $out_w, $err_w;
    $_->blocking(0) for $in_w, $out_r, $err_r;
    return { pid => $pid, in => $in_w, out => $out_r, err => $err_r,
             stdout => '', stderr => '', out_eof => 0, err_eof => 0 };
}

# pump(p, until => sub, send => \$bytes, timeout => s): move bytes both ways
# until `until` says so (or the deadline); closes stdin once $send is empty
# when close => 1.  Returns the value of until.
sub pump {
    my ($p, %o) = @_;
    my $deadline = time + kapd_tmo($o{timeout} // 10);
    my $send = $o{send} // \'';
    my $sent = 0;
    while (1) {
        my $v = $o{until}->($p);
        return $v if $v;
        last if time >= $deadline;
        if ($o{close} && $p->{in} && $sent >= length $$send) {
            close $p->{in};
            $p->{in} = undef;
        }
        my $rs = IO::Select->new(grep { defined } ($p->{out_eof} ? () : $p->{out}),
                                 ($p->{err_eof} ? () : $p->{err}));
        my $ws = IO::Select->new(($p->{in} && $sent < length $$send) ? $p->{in} : ());
        my ($r, $w) = IO::Select->select($rs, $ws, undef, 0.05);
        for my $h (@{$w // []}) {
            my $n = syswrite($h, $$send, 65536, $sent);
            $sent += $n if $n;
        }
        for my $h (@{$r // []}) {
            my $n = sysread($h, my $buf, 65536);
            my $k = $h == $p->{out} ? 'out' : 'err';
            if (!defined $n) { next }
            if ($n == 0) { $p->{"${k}_eof"} = 1; next }
            $p->{$k eq 'out' ? 'stdout' : 'stderr'} .= $buf;
        }
    }
    return $o{until}->($p);
}

# finish(p): EOF on stdin, read to EOF, reap; returns the exit code (-1:
# still running at the deadline, then killed)
sub finish {
    my ($p, $tmo) = @_;
    if ($p->{in}) { close $p->{in}; $p->{in} = undef }
    pump($p, until => sub { $_[0]{out_eof} && $_[0]{err_eof} }, timeout => $tmo // 10);
    my $done = wait_until(sub { waitpid($p->{pid}, WNOHANG) == $p->{pid} }, kapd_tmo(5));
    unless ($done) { kill 'KILL', $p->{pid}; waitpid($p->{pid}, 0); return -1 }
    return $? >> 8;
}

# run(args, env): a whole run with stdin at EOF; (code, stdout, stderr)
sub run_shim {
    my ($args, $env) = @_;
    my $p = start(args => $args, env => $env // { HTTPS_PROXY => $proxy });
    my $rc = finish($p, 15);
    return ($rc, $p->{stdout}, $p->{stderr});
}

# ---- the server speaks first, a big echo, half-close ------------------------------

my $p = start(args => ['ssh.example', $sport], env => { HTTPS_PROXY => $proxy });
ok(pump($p, until => sub { $_[0]{stdout} eq $banner }),
   'banner arrives while the client has sent nothing');
is($p->{stderr}, '', 'nothing on stderr');

srand(7);
my $data = join '', map { chr(int rand 256) } 1 .. 4096;
$data = $data x 256;                                  # 1 MiB
my $want = $banner . $data;
ok(pump($p, send => \$data, timeout => 30,
        until => sub { length($_[0]{stdout}) >= length $want }),
   '1 MiB echoed back while stdin stays open');
ok($p->{stdout} eq $want, 'echoed bytes intact and in order');
ok(!$p->{out_eof}, 'tunnel still open while stdin is');

my $rc = finish($p);
is($rc, 0, 'stdin EOF: exit 0 once the server closed');
is(substr($p->{stdout}, length $want), "BYE " . length($data) . "\n",
   'stdin EOF half-closed the tunnel: the server saw EOF after every byte and its last line arrived');
is($p->{stderr}, '', 'clean close: nothing on stderr');

# lower-case https_proxy; EOF right after the banner
$p = start(args => ['ssh.example', $sport], env => { https_proxy => $proxy });
ok(pump($p, until => sub { $_[0]{stdout} eq $banner }), 'https_proxy: banner');
is(finish($p), 0, 'EOF after the banner: exit 0');
is($p->{stdout}, $banner . "BYE 0\n", 'EOF after the banner: the server saw EOF, its goodbye arrived');

# ---- a real ssh client with ProxyCommand ----------------------------------------------
# (the server here only echoes, so ssh stops at the key exchange; what
# counts is that the banner reached it through the bridge)
SKIP: {
    my ($ssh) = grep { -x } map { "$_/ssh" } split /:/, $ENV{PATH};
    skip 'ssh (openssh-client) not installed', 2 unless $ssh;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        $ENV{HTTPS_PROXY} = $proxy;
        exec($ssh, '-F', '/dev/null', '-v', '-p', $sport,
             '-o', "ProxyCommand=$shim connect %h %p", '-o', 'BatchMode=yes',
             '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
             '-o', 'ConnectTimeout=10', 'nobody@ssh.example', 'true') or _exit(127);
    }
    my $log = do { local $/; <$fh> } // '';
    close $fh;
    like($log, qr/Executing proxy command: exec \S*kap-shim connect ssh\.example $sport/,
         'ssh ran kap-shim connect as its ProxyCommand');
    like($log, qr/remote software version FakeSSH_1\.0/,
         'ssh got the server\'s banner through kap-shim connect and kapd')
        or diag($log);
}

# ---- IPv6 literals ---------------------------------------------------------------
$p = start(args => ['::1', $t->port('v6')], env => { HTTP_PROXY => $proxy });
ok(pump($p, until => sub { $_[0]{stdout} eq $banner }), 'bare IPv6 literal (HTTP_PROXY): banner');
$rc = finish($p);
is($rc, 0, 'bare IPv6 literal: exit 0');
$p = start(args => ['[::1]', $t->port('v6')], env => { http_proxy => $proxy });
my $hi = "hi\n";
# (the client waits for the banner: kapd refuses client-first bytes that
# are neither TLS, an SSH identification nor HTTP)
ok(pump($p, until => sub { $_[0]{stdout} eq $banner }),
   'bracketed IPv6 literal (http_proxy): banner');
ok(pump($p, send => \$hi, until => sub { $_[0]{stdout} eq "$banner$hi" }),
   'bracketed IPv6 literal: echo');
finish($p);
ok($t->wait_audit(sub { grep { ($_->{subject} // '') eq '::1' } @_ }),
   'kapd decided CONNECT [::1]:port (audit log)');

# ---- refusals -----------------------------------------------------------------------
my ($code, $out, $err) = run_shim(['denied.example', 22]);
is($code, 1, 'denied host: exit 1');
note($err);
like($err, qr/\b403\b/, 'denied host: the message names 403');
like($err, qr/add "denied\.example:22" to network\.allow/, 'denied host: the message names the entry to add');
is(($err =~ tr/\n//), 1, 'denied host: one line');
is($out, '', 'denied host: nothing on stdout');

($code, $out, $err) = run_shim(['closed.example', $t->port('closed')]);
is($code, 1, 'closed port: exit 1');
note($err);
like($err, qr/\b50[24]\b/, 'closed port: the message names 502 or 504');
like($err, qr/could not reach closed\.example:\d+/, 'closed port: says what was not reached');

($code, $out, $err) = run_shim(['ssh.example', $sport], {});
is($code, 2, 'no proxy variable: exit 2');
like($err, qr/HTTPS_PROXY .*is not set/, 'no proxy variable: says so');

($code, $out, $err) = run_shim(['ssh.example', $sport], { HTTPS_PROXY => 'http://kapd.example:3128' });
is($code, 2, 'proxy given by name: exit 2');
like($err, qr/IP address/, 'proxy given by name: wants an address');

($code, $out, $err) = run_shim(['ssh.example', $sport], { HTTPS_PROXY => 'https://127.0.0.1:1' });
is($code, 2, 'https:// proxy: exit 2');

($code, $out, $err) = run_shim(["bad\r\nhost", 22]);
is($code, 2, 'CR LF in the host: refused before anything is sent');

($code, $out, $err) = run_shim(['ssh.example', '0x16']);
is($code, 2, 'bad port: exit 2');

my $closed = $t->port('noproxy');
($code, $out, $err) = run_shim(['ssh.example', $sport], { HTTPS_PROXY => "http://127.0.0.1:$closed/" });
is($code, 1, 'proxy not listening: exit 1');
like($err, qr/cannot connect to the proxy 127\.0\.0\.1:$closed \(from HTTPS_PROXY\)/,
     'proxy not listening: names the proxy and the variable');

# ---- a fake proxy: bytes after the head, a trickled head, garbage ------------------
my $fake = "http://127.0.0.1:$fport";
$p = start(args => ['together.example', 22], env => { HTTPS_PROXY => $fake });
ok(pump($p, until => sub { $_[0]{stdout} eq $banner }),
   'banner in the same segment as the 200 head: not lost');
$rc = finish($p);
is($rc, 0, 'fake proxy: exit 0 on close');

# stdin at EOF before the tunnel is up: the half-close goes out at once
# and the server's bytes still arrive
($code, $out, $err) = run_shim(['together.example', 22], { HTTPS_PROXY => $fake });
is($code, 0, 'stdin empty from the start: exit 0');
is($out, $banner, 'stdin empty from the start: the banner still arrives');

$p = start(args => ['trickle.example', 22], env => { HTTPS_PROXY => $fake });
ok(pump($p, send => \$hi, until => sub { $_[0]{stdout} eq "$banner$hi" }),
   'a head sent byte by byte, after a 100 Continue: banner and echo');
finish($p);

($code, $out, $err) = run_shim(['garbage.example', 22], { HTTPS_PROXY => $fake });
is($code, 1, 'not an HTTP answer: exit 1');
like($err, qr/malformed answer/, 'not an HTTP answer: says so');
is($out, '', 'not an HTTP answer: nothing on stdout');

$t->done_testing;
