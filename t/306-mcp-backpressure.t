#!/usr/bin/perl
# 306-mcp-backpressure.t -- a slow agent reading an event stream through
# kapd's mcp module, over real sockets: the upstream streams a 512 MiB
# reply of SSE events as fast as TCP lets it; the agent reads the head
# and a little, then stops.  kapd stops reading the upstream (the
# upstream's writes stall at a bounded number of bytes, far from the
# end) and its memory stays bounded; when the agent reads again the
# upstream goes on.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeHTTP;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('mcp');
$t->plan(8);

my $TOTAL = 512 * 1024 * 1024;
my $progress = $t->path('progress');
my $pad = 'p' x 900;
my $event = qq(data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"$pad"}}\n\n);
my $up = Test::Kapd::FakeHTTP->new($t, port => $t->port('mcp'), name => 'up',
    addr => '127.0.0.2', handler => sub {
        return (200, ['Content-Type' => 'text/event-stream'],
                [{ bulk => $TOTAL, fill => $event, progress => $progress }]);
    });
$t->write_conf(<<'EOF2');
kapd: { load = ["mcp"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info"; };
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
audit_log: { path = "audit.jsonl"; };
mcp: {
    listen = "127.0.0.1:%%PORT_kap%%";
    servers = ( { name = "up"; url = "http://127.0.0.2:%%PORT_mcp%%/mcp"; allow = ["*"]; } );
};
EOF2
$t->run;

sub rss_kb {
    open my $f, '<', "/proc/" . $t->pid . "/status" or return 0;
    while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}
sub written { open my $f, '<', $progress or return 0; my $n = <$f> // 0; chomp $n; $n + 0 }
# the upstream's writes have stalled: no progress for 2 s
sub stalled {
    my ($last, $since) = (-1, time);
    return wait_until(sub {
        my $w = written();
        ($last, $since) = ($w, time) if $w != $last;
        return $w > 0 && time - $since >= 2;
    }, kapd_tmo(60), 0.2);
}

my $rss0 = rss_kb();
my $body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"stream","arguments":{}}}';
my $s = tcp_connect('127.0.0.1:' . $t->port('kap')) or die "connect: $!";
syswrite($s, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             . "Accept: application/json, text/event-stream\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body");
my $got = '';
my $sel = IO::Select->new($s);
sub read_some {
    my ($want) = @_;
    my $n0 = length $got;
    my $deadline = time + kapd_tmo(30);
    while (length($got) - $n0 < $want && time < $deadline) {
        next unless $sel->can_read(1);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $got .= $buf;
    }
    return length($got) - $n0;
}
read_some(64 * 1024);
like($got, qr{^HTTP/1\.1 200 .*?\r\n\r\n}s, 'the agent gets the head');
like($got, qr{Content-Type: text/event-stream}i, 'an event stream');
like($got, qr/notifications\/message/, 'and the first events, filtered through');

# the agent stops reading
ok(stalled(), 'the upstream\'s writes stall while the agent does not read');
my $w1 = written();
ok($w1 < 96 * 1024 * 1024, "kapd stopped reading the upstream: $w1 of $TOTAL bytes written");
my $grow = rss_kb() - $rss0;
ok($grow < 48 * 1024, "kapd's memory stays bounded (grew by $grow KiB)");

# the agent reads again: the upstream goes on
my $more = read_some(32 * 1024 * 1024);
ok($more >= 32 * 1024 * 1024, "the agent reads on ($more bytes)");
ok(wait_until(sub { written() > $w1 }, kapd_tmo(10)), 'and the upstream writes again');
close $s;
$t->finish;
