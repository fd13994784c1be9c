#!/usr/bin/perl
# 601-capsule-tools.t -- the pieces of `kap run` that need no kapd:
# kap-shim's bridge (TCP and UDP relayed to unix sockets, half-close, many
# clients, per-client UDP sessions, refusal when kapd is absent, cleanup),
# the config rewrite, `kap why-denied` over a JSONL file, help/version.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM SOCK_DGRAM SHUT_WR);

my $t = Test::Kapd->new;
my $B = $t->builddir;
my $shim = "$B/kap-shim";
my $kap = "$B/kap";
plan(skip_all => "kap-shim not built ($shim)") unless -x $shim;
plan(skip_all => "kap script not built ($kap)") unless -f $kap;
my $sh = (grep { -x "$_/dash" } split /:/, $ENV{PATH}) ? 'dash' : 'sh';

$t->plan(27);
my $dir = $t->testdir;

# -- fake kapd endpoints: a unix stream "upper-caser" and a dgram echo ------
my $ssock = "$dir/proxy.sock";
my $dsock = "$dir/dns.sock";
my $ls = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $ssock, Listen => 64)
    or die "listen $ssock: $!";
my $ds = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $dsock)
    or die "bind $dsock: $!";
$t->run_daemon(sub {
    $SIG{CHLD} = 'IGNORE';
    while (my $c = $ls->accept) {
        my $pid = fork;
        next if $pid;
        while (1) {
            my $n = sysread($c, my $buf, 65536);
            last unless $n;
            my $o = uc $buf;
            while (length $o) {
                my $w = syswrite($c, $o) or exit 0;
                substr($o, 0, $w) = '';
            }
        }
        # after the client's EOF: say goodbye, then close
        syswrite($c, "BYE\n");
        exit 0;
    }
});
$t->run_daemon(sub {
    while (1) {
        my $peer = recv($ds, my $buf, 65536, 0);
        next unless defined $peer;
        send($ds, "R:$buf", 0, $peer);
    }
});
close $ls;
close $ds;

# -- the bridge -------------------------------------------------------------
my $port = $t->port('bridge');
my $noport = $t->port('nokapd');     # before the fork: ports are per process
pipe(my $rd, my $wr) or die "pipe: $!";
my $bpid = fork // die "fork: $!";
if ($bpid == 0) {
    close $rd;
    open STDERR, ">>", "$dir/stderr-bridge";   # scanned for sanitizer reports
    # the ready fd must survive exec
    my $fd = fileno($wr);
    use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC);
    fcntl($wr, F_SETFD, 0);
    exec($shim, 'bridge', '--tcp', "127.0.0.1:$port=$ssock",
         '--udp', "127.0.0.1:$port=$dsock", '--tcp', "127.0.0.1:$noport=$dir/absent.sock", '--ready-fd', $fd) or exit 127;
}
close $wr;
my $ready = '';
IO::Select->new($rd)->can_read(kapd_tmo(10)) and sysread($rd, $ready, 100);
is($ready, "ready\n", 'bridge reports ready on --ready-fd after binding');

# TCP: a big payload, then half-close: the reply and the "BYE" after EOF
my $c = tcp_connect($port);
my $payload = join '', map { chr(97 + $_ % 26) } 1 .. 1_000_000;
my $got = '';
{
    my $out = $payload;
    my $sel = IO::Select->new($c);
    my $deadline = time + kapd_tmo(20);
    $c->blocking(0);
    my $shut = 0;
    while (time < $deadline) {
        if (length $out) {
            my $w = syswrite($c, $out, 65536);
            substr($out, 0, $w) = '' if $w;
        } elsif (!$shut) {
            shutdown($c, SHUT_WR);
            $shut = 1;
        }
        next unless $sel->can_read(0.05);
        my $n = sysread($c, my $buf, 65536);
        last if defined $n && $n == 0;
        $got .= $buf if $n;
    }
}
is(length $got, length($payload) + 4, '1 MB relayed through the bridge and back');
ok($got eq uc($payload) . "BYE\n", 'byte for byte, and the half-close reaches kapd');

# many clients at once
my @cs = map { tcp_connect($port) } 1 .. 50;
is(scalar(grep { defined } @cs), 50, '50 concurrent connections accepted');
my $okc = 0;
for my $i (0 .. $#cs) {
    $okc++ if line_cmd($cs[$i], "client$i") eq "CLIENT$i";
}
is($okc, 50, 'each relayed to its own kapd connection');
close $_ for @cs;

# UDP: two clients, each gets its own answers
my @us = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'udp') } 1 .. 2;
my @ans;
for my $i (0, 1) {
    send($us[$i], "q$i", 0);
}
for my $i (0, 1) {
    my $r = '';
    IO::Select->new($us[$i])->can_read(kapd_tmo(5)) and recv($us[$i], $r, 100, 0);
    push @ans, $r;
}
is_deeply(\@ans, ['R:q0', 'R:q1'], 'UDP datagrams relayed, replies to the right client');
send($us[0], "again", 0);
my $r2 = '';
IO::Select->new($us[0])->can_read(kapd_tmo(5)) and recv($us[0], $r2, 100, 0);
is($r2, 'R:again', 'a client keeps its session');
my @sess = glob("$dir/.b*");
is(scalar @sess, 2, 'one unix datagram socket per client, next to kapd\'s');

# kapd absent: the client is refused, not hung
# (the reset may already come during connect: that is a refusal too)
my $nc = tcp_connect($noport);
my $gone = $nc ? 0 : ($! =~ /reset|refused/i ? 1 : "connect: $!");
if ($nc) {
    IO::Select->new($nc)->can_read(kapd_tmo(5));
    my $n = sysread($nc, my $buf, 10);
    $gone = (!defined $n || $n == 0) ? 1 : 0;
}
diag("nokapd: $gone") unless $gone eq '1';
ok($gone eq '1', 'no kapd socket: the client connection is closed at once');

# a bad listener spec (port 0) fails cleanly
my $bad = system("$shim bridge --tcp 127.0.0.1:0=$ssock 2>/dev/null") >> 8;
is($bad, 2, 'bad listener spec: exit 2');
is(system("$shim bridge --tcp 127.0.0.1:$port=$ssock 2>/dev/null") >> 8, 1,
   'port in use: exit 1');

# TERM: exits 0 and removes its session sockets
kill 'TERM', $bpid;
my $st;
wait_until(sub { waitpid($bpid, WNOHANG) == $bpid and do { $st = $?; 1 } }, kapd_tmo(10));
is($st, 0, 'bridge exits 0 on SIGTERM');
is(scalar(() = glob("$dir/.b*")), 0, 'and removes its session sockets');

# -- kap-shim dispatcher --------------------------------------------------------
like(`$shim version`, qr/^kap-shim \S+$/, 'kap-shim version');
is(system("$shim nosuchrole 2>/dev/null") >> 8, 2, 'unknown role: exit 2');
{
    local $SIG{INT} = 'IGNORE';
    my ($plain) = `grep SigIgn /proc/self/status` =~ /(\S+)$/;
    my ($reset) = `$shim exec -- grep SigIgn /proc/self/status` =~ /(\S+)$/;
    # only the SIGINT bit: glibc's reserved real-time signals (32, 33) may
    # be ignored by whoever started the test and cannot be reset
    my ($pl, $rs) = map { hex(substr($_ // '0', -8)) } $plain, $reset;
    ok(($pl & 2) && !($rs & 2),
       "exec role: an inherited ignored SIGINT is reset ($plain -> $reset)");
}

# -- kap: help, version, config rewrite ----------------------------------------
like(`$sh $kap version`, qr/^kap \S+$/, 'kap version');
like(`$sh $kap help run`, qr/usage: kap run/, 'kap help run');

$t->write_file('policy.conf', <<'EOF');
# a project policy with every tricky bit
network = {
    allow = ["example.com", "*.foo.org"]  // a { brace in a comment
    observe = false;
};
mcp: { servers = ( { name = "x"; allow = ["*"]; } ); };
kapd: { load = ["http_connect", "dns", "mcp"]; policy: { chain = ["network"]; default = "deny"; }
  log_level = "info"; /* a } brace
  in a comment */ error_log = "x.log"; }
http_connect: { listen = ["127.0.0.1:3128",
   "[::1]:3128"]; sni = "require"; };
dns: { listen = "127.0.0.1:53"; rate_limit = 50; };
EOF
my $rw = `$sh $kap __rewrite-conf $dir/policy.conf /RT /LOG/a.jsonl 1 /MP 2>$dir/rw.err`;
unlike($rw, qr/3128"|127\.0\.0\.1:53|x\.log/, 'rewrite: old listeners/logs gone');
like($rw, qr/^mcp: \{ servers = .*listen = \["unix:\/RT\/mcp\.sock"\]; locked = true; \};$/m,
     'rewrite: the mcp group kept, locked, on the runtime socket, on its own line');
like($rw, qr/listen = \["unix:\/RT\/proxy\.sock"\].*sni = "require"|sni = "require".*listen = \["unix:\/RT\/proxy\.sock"\]/s,
     'rewrite: http_connect keeps its settings, listens on the runtime socket');
ok($rw =~ /listen_udp = \["unix:\/RT\/dns\.sock"\];.*listen_tcp = \["unix:\/RT\/dns-tcp\.sock"\];/s
     && $rw =~ /rate_limit = 50/ && $rw !~ /observe =/
     && $rw =~ /load = \["http_connect", "dns", "mcp"\]/ && $rw =~ /module_path = \["\/MP"\]/
     && $rw =~ /path = "\/LOG\/a\.jsonl"/ && $rw =~ /a \{ brace in a comment/,
     'rewrite: dns sockets, network.observe dropped (kap run --observe passes kapd --observe), load, module_path, audit path; comments intact');

# a policy naming code or host paths: every such key and line is dropped,
# with a warning naming file:line; harmless defaults pass quietly
$t->write_file('paths.conf', <<'EOF');
kapd: { module_path = "/evil"; pid_file = "/home/u/.bashrc"; error_log = "stderr"; user = "root"; };
network: { allow = ["a.test"]; note = "x
  @include \"/evil.conf\"
"; };
resolver: { resolv_conf = "/etc/resolv.conf"; trust_anchor = "/home/u/.ssh/id_rsa"; };
audit_log: { path = "/home/u/.profile"; keep = 2; };
EOF
$rw = `$sh $kap __rewrite-conf $dir/paths.conf /RT /LOG/a.jsonl 0 '' 2>$dir/rw2.err`;
my $rwerr = $t->read_file('rw2.err') // '';
unlike($rw, qr{/evil|\.bashrc|"root"|id_rsa|\.profile|\@include},
       'rewrite: module_path, pid_file, user, trust_anchor, audit path, @include (even inside a string) dropped');
ok($rwerr =~ /paths\.conf: line 1: ignoring kapd\.module_path/ && $rwerr =~ /ignoring kapd\.pid_file/
   && $rwerr =~ /ignoring kapd\.user/ && $rwerr =~ /line 5: ignoring resolver\.trust_anchor/
   && $rwerr =~ /line 6: ignoring audit_log\.path/ && $rwerr =~ /line 3: ignoring \@include/,
   'rewrite: each drop is warned about with its line') or diag($rwerr);
ok($rwerr !~ /error_log|resolv_conf/ && $rw =~ /keep = 2/,
   'rewrite: harmless defaults (error_log "stderr", /etc/resolv.conf) pass quietly; other settings stay');

# -- kap why-denied ---------------------------------------------------------------
my $log = '';
for my $i (1 .. 120) {
    $log .= sprintf('{"ts":"2026-11-29T10:00:%02d.5Z","kind":"connect","subject":"d%d.test","port":%d,"action":"denied","reason":"not allowed"}' . "\n",
                    $i % 60, $i, $i == 120 ? 22 : 443);
}
$log .= '{"ts":"2026-11-29T10:01:00Z","kind":"dns","subject":"ok.test","port":0,"action":"allowed"}' . "\n";
$t->write_file('why.jsonl', $log);
my $why = `$sh $kap why-denied --log $dir/why.jsonl`;
my @lines = split /\n/, $why;
like($lines[0], qr/20 older denials not shown/, 'why-denied: only the last 100');
like($why, qr/10:00:00Z  connect  d120\.test:22  not allowed\n\s+-> network\.allow \+= "d120\.test:22"\n\z/,
     'why-denied: newest last, with the allow line (port kept when not 80/443)');
