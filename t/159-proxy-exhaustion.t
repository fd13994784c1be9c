#!/usr/bin/perl
# 159-proxy-exhaustion.t -- adversarial: running kapd out of descriptors,
# and pipelining without reading.
#
# 1. kapd's open-files limit is lowered (prlimit) and the agent opens more
#    connections than it allows: kapd must not spin on accept (EMFILE), must
#    not crash, and must serve again once the connections are closed.
# 2. The client pipelines thousands of requests and reads none of the
#    answers: kapd must stop reading (backpressure) instead of buffering the
#    responses, and stay bounded in memory.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Select;
use Time::HiRes qw(time sleep);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);
system('sh', '-c', 'command -v prlimit >/dev/null') == 0
    or plan(skip_all => 'prlimit not found');

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.example' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; idle_timeout = 30; };
EOF
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";
my $pid = $t->pid;

sub get_status {
    my $p = http_parse(http_raw($proxy, "GET http://$A/x HTTP/1.1\r\nHost: $A\r\n"
                                . "Connection: close\r\n\r\n", timeout => 3));
    return $p ? $p->{status} : 'none';
}
sub cpu_ticks {
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\)\s//r);
    return $f[11] + $f[12];     # utime + stime
}
sub rss { open my $fh, '<', "/proc/$pid/status" or return 0;
          while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ } 0 }

is(get_status(), 200, 'control');

# -- descriptor exhaustion ---------------------------------------------------------------------
{
    my $nfd = () = glob("/proc/$pid/fd/*");
    my $lim = $nfd + 40;
    my ($soft) = `prlimit --pid=$pid --nofile --noheadings --output=SOFT` =~ /(\d+)/;
    is(system('prlimit', "--pid=$pid", "--nofile=$lim:"), 0,
       "kapd open-files limit lowered to $lim");
    my @held = grep { defined } map { tcp_connect($proxy, 1) } 1 .. 120;
    ok(@held >= 100, 'the agent holds ' . scalar(@held) . ' connections (kernel backlog included)');
    my $hz = 100;
    my $c0 = cpu_ticks();
    sleep(1.5);
    my $busy = (cpu_ticks() - $c0) / $hz;
    ok($busy < 0.5, sprintf('at the descriptor limit kapd does not spin (%.2fs CPU in 1.5s)', $busy));
    ok($t->is_running, 'kapd still running at the limit');
    ok($t->wait_log(qr/Too many open files|EMFILE|descriptor/i, 3),
       'kapd noticed the descriptor limit (logged)');
    close $_ for @held;
    ok(wait_until(sub { get_status() eq '200' }, kapd_tmo(10)),
       'served again once the connections are closed');
    system('prlimit', "--pid=$pid", '--nofile=' . ($soft // 1024) . ':');
}

# -- pipelining without reading -----------------------------------------------------------------
{
    my $rss0 = rss();
    my $s = tcp_connect($proxy);
    # 2 kB per request: 20000 of them are far more than the socket buffers
    my $req = "GET http://$A/bytes/20000 HTTP/1.1\r\nHost: $A\r\nX-Pad: "
              . ('p' x 2000) . "\r\n\r\n";
    my $sent = 0;
    my $t0 = time;
    $s->blocking(0);
    # write as long as kapd reads (bounded by time); never read
    while (time - $t0 < kapd_tmo(4) && $sent < 20000) {
        my $n = syswrite($s, $req);
        if (!defined $n) { sleep(0.05); next }
        $sent++;
    }
    my $max = rss();
    ok($sent < 20000, "kapd stopped reading pipelined requests ($sent accepted)");
    ok($max - $rss0 < 32768, sprintf('unread pipelined answers: kapd RSS grew by %d kB', $max - $rss0));
    close $s;
}

ok(wait_until(sub { get_status() eq '200' }, kapd_tmo(5)), 'kapd still serves');
$t->done_testing;
