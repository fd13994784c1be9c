#!/usr/bin/perl
# 406-cli-stdin.t -- stdin streamed to a proxy-mode tool while it runs
# (docs/cli-protocol.md, "Streamed stdin"), through the real kap-shim
# (shim role, KAP_CLI_ADDR) and through a raw socket.
#
# Shown: the tool answers line 1 before line 2 has been sent (streaming,
# not a pipe that works once stdin is closed); 64 MiB through a cat-like
# tool arrive whole while kapd's RSS stays bounded; a tool that never
# reads stdin, with a writer pushing 64 MiB, holds the writer back
# (kapd's backpressure reaches it) without kapd growing, and still ends
# with its exit status while the shim's stdin is still open; a stdin that
# stays open does not hold the output or the exit; the EOF reaches the
# tool; the wire: 101 and frames both ways, a denial after the 101, a
# bad stdin frame ends the call (process group killed, audited), an
# Upgrade to anything else is a 400.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use File::Copy qw(copy);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use IO::Select;
use JSON::PP;
use POSIX qw(WNOHANG :errno_h);
use Digest::MD5;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('cli');
my $shim = $t->builddir . '/kap-shim';
plan(skip_all => "kap-shim not built ($shim)") unless -x $shim;
$t->plan(31);

mkdir $t->path('bin'), 0755;
copy($t->srcdir . '/t/tools/fake-cli', $t->path('bin/fake')) or die $!;
chmod 0755, $t->path('bin/fake');
copy($t->srcdir . '/t/tools/fake-cli.prof', $t->path('fake.prof')) or die $!;
mkdir $t->path('homes'), 0700;
my $log = $t->path('calls.log');

$t->write_conf(<<"EOF");
kapd: {
    load = ["cli"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
audit_log: { path = "audit.jsonl"; };
cli: {
    listen = ["127.0.0.1:%%PORT_cli%%"];
    home_dir = "homes";
    tools = (
        { name = "fake"; path = "%%TESTDIR%%/bin/fake"; profile = "fake.prof";
          env = [ "FAKE_CLI_LOG=$log" ];
          allow = [ "lines", "cat", "noread *", "echo **", "sleep" ];
          deny = [ "echo bad" ];
          wall_time = "300s"; max_output = "100M"; concurrency = 4; }
    );
};
EOF
ok($t->try_run, 'kapd runs with a proxy-mode tool') or diag($t->{run_error});
my $port = $t->port('cli');
my $kpid = $t->pid;

sub rss_kb {
    open my $fh, '<', "/proc/$kpid/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

sub nonblock {
    my ($fh) = @_;
    my $fl = fcntl($fh, F_GETFL, 0) or die "fcntl: $!";
    fcntl($fh, F_SETFL, $fl | O_NONBLOCK) or die "fcntl: $!";
}

# shim(args, in => FH|PATH, out => PATH|undef): start kap-shim in its shim
# role; with out undef its stdout is a pipe (returned).  (pid, stdout fh)
sub shim {
    my ($args, %o) = @_;
    my ($or, $ow);
    pipe($or, $ow) or die "pipe: $!" unless defined $o{out};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        if (ref $o{in}) { open STDIN, '<&', $o{in} or exit 120 }
        else            { open STDIN, '<', $o{in} or exit 120 }
        if (defined $o{out}) { open STDOUT, '>', $o{out} or exit 120 }
        else                 { close $or; open STDOUT, '>&', $ow or exit 120 }
        open STDERR, '>>', $t->path('shim.err');
        $ENV{KAP_CLI_ADDR} = "127.0.0.1:$port";
        delete $ENV{KAP_CLI_SOCKET};
        exec($shim, 'cli', 'fake', @$args) or exit 127;
    }
    close $ow if $ow;
    close $o{in} if ref $o{in} && $o{close_in};
    return ($pid, $or);
}

# read from fh until the text matches re (or the deadline); all read
sub read_until {
    my ($fh, $buf, $re, $secs) = @_;
    my $sel = IO::Select->new($fh);
    wait_until(sub {
        if ($sel->can_read(0.05)) {
            my $n = sysread($fh, my $c, 65536);
            $$buf .= $c if $n;
        }
        return $$buf =~ $re;
    }, kapd_tmo($secs // 10));
    return $$buf =~ $re;
}

# the exit status of pid as a shell reports it, or -1 at the deadline
sub reap {
    my ($pid, $secs) = @_;
    my $st;
    my $done = wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } },
                          kapd_tmo($secs // 10));
    unless ($done) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        return -1;
    }
    return $st & 127 ? 128 + ($st & 127) : $st >> 8;
}

# ---- line 1 is answered before line 2 is sent -------------------------
{
    pipe(my $ir, my $iw) or die;
    my ($pid, $out) = shim(['lines'], in => $ir);
    close $ir;
    $iw->autoflush(1);
    my $got = '';
    print $iw "one\n";
    ok(read_until($out, \$got, qr/^got: one\n/m),
       'the tool answered line 1 while the shim still waited for line 2')
        or diag("got: [$got]");
    unlike($got, qr/two/, 'line 2 was not sent yet');
    print $iw "two\n";
    ok(read_until($out, \$got, qr/^got: two\n/m), 'then line 2') or diag($got);
    close $iw;                               # EOF: the tool's read ends
    is(reap($pid), 0, "stdin's EOF reached the tool: it exited 0");
    read_until($out, \$got, qr/\z(?!x)x/, 0.2);   # drain
    is($got, "got: one\ngot: two\n", 'exactly the two answers');
}

# ---- a stdin that stays open holds neither output nor exit ------------
{
    pipe(my $ir, my $iw) or die;             # never written, never closed
    my ($pid, $out) = shim(['echo', 'hi'], in => $ir);
    close $ir;
    my $got = '';
    ok(read_until($out, \$got, qr/^hi\n/m), 'output while stdin stays open');
    is(reap($pid), 0, 'and the shim exits with the tool');
    close $iw;
}

# ---- 64 MiB through cat; kapd's memory bounded -------------------------
my $big = 64 * 1024 * 1024;
{
    open my $fh, '>', $t->path('big.in') or die;
    my $block = join('', map { sprintf("%07d\n", $_) } 0 .. 8191);   # 64 KiB
    print $fh $block for 1 .. $big / length($block);
    close $fh;
    my $rss0 = rss_kb();
    my $max = $rss0;
    my ($pid) = shim(['cat'], in => $t->path('big.in'),
                     out => $t->path('big.out'));
    my $st;
    wait_until(sub {
        my $r = rss_kb();
        $max = $r if $r > $max;
        return waitpid($pid, WNOHANG) == $pid && do { $st = $?; 1 };
    }, kapd_tmo(120));
    is($st, 0, '64 MiB through cat: exit 0');
    is(-s $t->path('big.out'), $big, 'all 64 MiB came back');
    my $md5 = sub { open my $f, '<', $_[0] or return ''; binmode $f;
                    Digest::MD5->new->addfile($f)->hexdigest };
    is($md5->($t->path('big.out')), $md5->($t->path('big.in')),
       'byte for byte');
    ok($rss0 > 0 && $max - $rss0 < 16384,
       sprintf('kapd RSS grew by %d kB (< 16 MB) while 64 MiB went through',
               $max - $rss0));
    ok(wait_until(sub { grep { ($_->{event} // '') eq 'cli_exit'
                                   && ($_->{bytes_in} // 0) == $big }
                            $t->audit }, kapd_tmo(5)),
       'cli_exit: bytes_in is 64 MiB');
    unlink $t->path('big.in'), $t->path('big.out');
}

# ---- a tool that never reads stdin -------------------------------------
{
    unlink "$log.go";
    pipe(my $ir, my $iw) or die;
    my ($pid, $out) = shim(['noread', '3'], in => $ir);
    close $ir;
    my $got = '';
    ok(read_until($out, \$got, qr/^waiting\n/m), 'the tool runs');
    # push 64 MiB at the shim until nothing more goes in for a while
    nonblock($iw);
    my $chunk = 'z' x 65536;
    my ($sent, $last, $rss0) = (0, time, rss_kb());
    my $max = $rss0;
    my $t0 = time;
    while ($sent < $big && time - $last < 1 && time - $t0 < kapd_tmo(30)) {
        my $n = syswrite($iw, $chunk);
        if ($n) { $sent += $n; $last = time; next }
        die "write: $!" unless $! == EAGAIN;
        my $r = rss_kb();
        $max = $r if $r > $max;
        IO::Select->new()->can_read(0.02);
    }
    ok($sent < 16 * 1024 * 1024,
       sprintf('the writer is held back: %d bytes taken of 64 MiB', $sent));
    ok($max - $rss0 < 16384,
       sprintf('kapd did not buffer it: RSS grew by %d kB', $max - $rss0));
    open my $go, '>', "$log.go" or die;
    close $go;
    ok(read_until($out, \$got, qr/^done\n/m), 'the tool goes on');
    is(reap($pid), 3, 'and ends with its exit status, stdin still open');
    close $iw;
}

# ---- the wire ---------------------------------------------------------------
# open(args, extra head lines): a socket after the request; (sock, head)
sub upgrade {
    my ($args, $extra) = @_;
    my $body = encode_json({ args => $args });
    my $s = tcp_connect("127.0.0.1:$port") or die;
    syswrite($s, "POST /fake HTTP/1.1\r\nHost: x\r\n"
             . ($extra // "Connection: Upgrade\r\nUpgrade: kap-cli\r\n")
             . "Content-Length: " . length($body) . "\r\n\r\n$body");
    my $got = '';
    read_until($s, \$got, qr/\r\n\r\n/);
    my ($head, $rest) = split /\r\n\r\n/, $got, 2;
    return ($s, $head // '', $rest // '');
}

sub frames {
    my ($b) = @_;
    my %r = (out => '', err => '');
    while (length($b) >= 5) {
        my ($id, $n) = unpack('a1 N', $b);
        last if length($b) < 5 + $n;
        my $d = substr($b, 5, $n);
        substr($b, 0, 5 + $n) = '';
        $r{out} .= $d if $id eq "\x01";
        $r{err} .= $d if $id eq "\x02";
        $r{x} = $d if $id eq 'x';
    }
    return \%r;
}

sub fr { my ($d) = @_; return pack('a1 N', "\0", length $d) . $d }

{
    my ($s, $head, $rest) = upgrade(['cat']);
    like($head, qr{^HTTP/1\.1 101 }, 'Upgrade: kap-cli: 101');
    like($head, qr{^Upgrade: kap-cli\r?$}mi, 'to kap-cli');
    syswrite($s, fr("abc") . fr("def\n") . fr(''));
    read_until($s, \$rest, qr/x\0\0\0\x{08}0 exited/);
    my $f = frames($rest);
    is($f->{out}, "abcdef\n", 'stdin frames, then EOF: the tool read them');
    is($f->{x}, '0 exited', 'raw exit frame');
    my $n = sysread($s, my $c, 1);
    ok(defined $n && $n == 0, 'kapd closes after the exit frame');
}
{
    my ($s, $head, $rest) = upgrade(['echo', 'bad']);
    like($head, qr{^HTTP/1\.1 101 }, 'a denied call is upgraded too');
    read_until($s, \$rest, qr/x\0\0\0\x{0a}126 denied/);
    my $f = frames($rest);
    is($f->{x}, '126 denied', 'and ends 126 denied');
    like($f->{err}, qr/^kap: fake echo bad: denied: deny-rule: echo bad$/m,
         'with the one line');
}
{
    unlink "$log.bg";
    my ($s, $head, $rest) = upgrade(['sleep']);
    read_until($s, \$rest, qr/started/);
    my $bg;
    wait_until(sub { $bg = $t->read_file('calls.log.bg') and $bg =~ /^\d+/ }, kapd_tmo(5));
    ($bg) = ($bg // '') =~ /^(\d+)/;
    syswrite($s, "\x05\0\0\0\0");            # no such frame
    my $c = '';
    read_until($s, \$c, qr/\z(?!x)x/, 1);
    my $n = sysread($s, $c, 1);
    ok(!$n, 'a bad stdin frame: the connection is closed');
    ok($bg && wait_until(sub { !kill(0, $bg) }, kapd_tmo(5)),
       "and the tool's process group killed");
    ok(wait_until(sub { grep { ($_->{event} // '') eq 'cli_exit'
                                   && ($_->{action} // '') eq 'bad-stdin' }
                            $t->audit }, kapd_tmo(5)),
       'audited as bad-stdin');
}
{
    my ($s, $head) = upgrade(['cat'],
                             "Connection: Upgrade\r\nUpgrade: websocket\r\n");
    like($head, qr{^HTTP/1\.1 400 }, 'Upgrade: websocket is a 400');
}
like($t->read_file('shim.err') // '', qr/^\z/, 'the shim said nothing on stderr');
$t->finish;
