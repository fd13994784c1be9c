#!/usr/bin/perl
# 170-connect-idle-memory.t -- what an idle CONNECT tunnel costs kapd.
#
# DESIGN §7: an idle tunnel costs at most 4 KiB of kapd memory, so that
# 10 000 fit on one core.  Many tunnels are opened to an origin that
# completes TCP handshakes but never accepts (its backlog holds them), in
# two halves; kapd's VmRSS growth over the second half, divided by its
# tunnels, leaves out one-time costs (resolver context, libev arrays).
# Also: kapd raises its soft open-files limit to the hard one at start (a
# soft limit of 1024 would stop it at ~500 tunnels).
#
# Memory figures are meaningless under ASan or valgrind: there the bound
# is skipped, the tunnels are still opened and checked.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $HALF = 400;
# the test itself holds 2 * $HALF client sockets
my ($soft, $hard) = split ' ', `sh -c 'ulimit -Sn; ulimit -Hn' 2>/dev/null` =~ s/\n/ /r;
plan(skip_all => "open files limit too low for this test ($hard)")
    if defined $hard && $hard ne 'unlimited' && $hard < 4 * $HALF + 200;

my $o = $t->port('origin');
# an origin whose backlog completes the handshakes: nothing is accepted,
# so no test process per connection
my $origin = IO::Socket::IP->new(LocalHost => '127.0.0.2', LocalPort => $o,
    Proto => 'tcp', Listen => 4 * $HALF, ReuseAddr => 1)
    or BAIL_OUT("origin listen: $!");
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'idle.example' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; };
network: { allow = ["idle.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; idle_timeout = 120;
                handshake_timeout = 120; };
EOF
# kapd inherits a soft limit of 1024 (a common default) and must raise it
my $lowered = system('sh', '-c', "prlimit --pid $$ --nofile=1024: 2>/dev/null") == 0;
$t->run;
my $proxy = $t->port('proxy');
my $pid = $t->pid;

sub rss_kb {
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

# open n tunnels, 64 at a time; returns the sockets that got their 200
sub open_tunnels {
    my ($n) = @_;
    my (@ok, %buf, @pending);
    my $sel = IO::Select->new;
    my $started = 0;
    my $deadline = time + kapd_tmo(60);
    while ((@ok + $sel->count < $n || $sel->count) && time < $deadline) {
        while ($started < $n && $sel->count < 64) {
            my $s = tcp_connect($proxy) or last;
            syswrite($s, "CONNECT idle.example:$o HTTP/1.1\r\n"
                         . "Host: idle.example:$o\r\n\r\n");
            $sel->add($s);
            $buf{$s} = '';
            $started++;
        }
        for my $s ($sel->can_read(0.5)) {
            my $r = sysread($s, $buf{$s}, 4096, length $buf{$s});
            if (!$r) { $sel->remove($s); next }
            next unless $buf{$s} =~ /\r\n\r\n/;
            $sel->remove($s);
            push @ok, $s if $buf{$s} =~ m{^HTTP/1\.1 200 };
        }
        last if $started >= $n && !$sel->count;
    }
    return @ok;
}

my $nofile = do {
    open my $fh, '<', "/proc/$pid/limits" or die;
    my ($l) = grep { /^Max open files/ } <$fh>;
    ($l // '') =~ /^Max open files\s+(\S+)\s+(\S+)/ ? [$1, $2] : [0, 0];
};
SKIP: {
    skip 'prlimit could not lower the soft open-files limit', 1 unless $lowered;
    ok($nofile->[0] eq $nofile->[1] && $nofile->[0] ne '1024',
       "kapd raised its soft open-files limit from 1024 to the hard one "
       . "($nofile->[0] of $nofile->[1])");
}

my $rss0 = rss_kb();
my @a = open_tunnels($HALF);
is(scalar @a, $HALF, "first $HALF tunnels established");
my $rss1 = rss_kb();
my @b = open_tunnels($HALF);
is(scalar @b, $HALF, "second $HALF tunnels established");
my $rss2 = rss_kb();

my $per = ($rss2 - $rss1) * 1024 / $HALF;
my $avg = ($rss2 - $rss0) * 1024 / (2 * $HALF);
my $instrumented = $ENV{KAPD_VG_LOGDIR}
    || `ldd $t->{binary} 2>/dev/null` =~ /lib(asan|ubsan|tsan)/;
SKIP: {
    skip 'memory is not meaningful under a sanitizer or valgrind', 1
        if $instrumented;
    cmp_ok($per, '<=', 4096,
           sprintf('an idle tunnel costs %.0f bytes of kapd memory '
                   . '(average over %d: %.0f; DESIGN: <= 4096)',
                   $per, 2 * $HALF, $avg));
}

# every tunnel is alive: the last one still relays to the origin's backlog
my $s = $b[-1];
ok($s && syswrite($s, "ping\n"), 'an idle tunnel still accepts bytes');
close $_ for @a, @b;
close $origin;

# kapd is alive and answers
my $r = http_parse(http_raw($proxy, "CONNECT other.example:443 HTTP/1.1\r\n"
                            . "Host: other.example:443\r\n\r\n", timeout => 5));
is($r && $r->{status}, 403, 'kapd still answers after the tunnels closed');

$t->finish;
done_testing();
