#!/usr/bin/perl
# 252-dns-transport.t -- adversarial: the DNS forwarder under transport
# abuse.
#
# Upstream silent or SERVFAILing -> SERVFAIL within a bounded time (no hung
# client, no pile-up); TCP with many pipelined queries, allowed, denied and
# malformed mixed, every one answered with its own ID; TCP idle and
# dribbling connections cut at tcp_idle_timeout; big answers truncated
# over UDP at edns_size (TC=1) and complete over TCP; AXFR/IXFR refused
# over TCP; a query flood from one client rate-limited while another
# client is still answered, and the dropped queries never reach the
# upstream.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use IO::Socket::INET;
use IO::Socket::IP;
use IO::Select;
use Net::DNS;
use POSIX ();
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('dns');

my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), zone => {
    'allowed.test'   => ['A 192.0.2.1'],
    'big.wild.test'  => [map { "A 192.0.2.$_" } 1 .. 120],
    'slow.wild.test' => 'silent',
    'fail.wild.test' => 'SERVFAIL',
    'refused.wild.test' => 'REFUSED',
    map({ ("n$_.wild.test" => ["A 192.0.2.$_"]) } 1 .. 40),
});

$t->write_conf(<<'EOF');
kapd: { load = ["dns"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
network: { allow = ["allowed.test", "*.wild.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: {
    listen = ["127.0.0.1:%%PORT_dns%%"];
    rate_limit = 50;
    burst = 50;
    tcp_idle_timeout = 2;
};
EOF
$t->run;
my $port = $t->port('dns');

sub q1 { my ($n, $ty, %o) = @_; dns_query($n, $ty, port => $port, %o) }
sub rcode { my ($p) = @_; $p ? $p->header->rcode : 'TIMEOUT' }

# one UDP query, one send, waiting up to $tmo for the answer (Net::DNS's
# resolver gives up after its retrans interval whatever udp_timeout says)
sub udp_once {
    my ($name, $type, $tmo) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'udp') or return undef;
    my $q = Net::DNS::Packet->new($name, $type);
    $s->send($q->data);
    return undef unless IO::Select->new($s)->can_read(kapd_tmo($tmo));
    $s->recv(my $r, 65535);
    return Net::DNS::Packet->new(\$r);
}

# -- upstream silent / failing ---------------------------------------------------------
for my $tcp (0, 1) {
    my $tr = $tcp ? 'TCP' : 'UDP';
    my $t0 = time;
    my $p = $tcp ? q1('slow.wild.test', 'A', timeout => 8, tcp => 1)
                 : udp_once('slow.wild.test', 'A', 8);
    my $dt = time - $t0;
    is(rcode($p), 'SERVFAIL', "$tr: silent upstream: SERVFAIL");
    ok($dt < kapd_tmo(5), sprintf("$tr: silent upstream: answered in %.1fs (resolver timeout 2s)", $dt));
}
is(rcode(q1('fail.wild.test', 'A')), 'SERVFAIL', 'upstream SERVFAIL: SERVFAIL');
like(rcode(q1('refused.wild.test', 'A')), qr/^(SERVFAIL|REFUSED)$/, 'upstream REFUSED: SERVFAIL or REFUSED');
{
    # 30 clients asking the silent name at once: all get an answer in bounded time
    my @s = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                        Proto => 'udp') } 1 .. 30;
    my $i = 0;
    for my $s (@s) {
        my $q = Net::DNS::Packet->new("slow.wild.test", 'A');
        $q->header->id(1000 + $i++);
        $s->send($q->data);
    }
    my %got;
    my $t0 = time;
    my $sel = IO::Select->new(@s);
    while (keys %got < @s && time - $t0 < kapd_tmo(8)) {
        for my $s ($sel->can_read(0.2)) {
            $s->recv(my $r, 65535);
            my $p = Net::DNS::Packet->new(\$r) or next;
            $got{$p->header->id} = $p->header->rcode;
            $sel->remove($s);
        }
    }
    is(scalar(keys %got), 30, sprintf('30 concurrent queries to a silent upstream all answered (%.1fs)', time - $t0));
    is(scalar(grep { $_ ne 'SERVFAIL' } values %got), 0, '... all SERVFAIL');
}
is(rcode(q1('allowed.test', 'A')), 'NOERROR', 'a normal query after the silent ones');

# -- TCP: pipelined queries, mixed ------------------------------------------------------------
{
    my $s = tcp_connect($port);
    my (%want, $out);
    my $id = 2000;
    my @names = ((map { "n$_.wild.test" } 1 .. 20), 'denied.test', 'allowed.test',
                 'x.denied.test', 'big.wild.test');
    for my $n (@names) {
        my $q = Net::DNS::Packet->new($n, 'A');
        $q->header->id(++$id);
        $q->header->rd(1);
        my $d = $q->data;
        $out .= pack('n', length $d) . $d;
        $want{$id} = $n;
    }
    # and one malformed message in the middle of the stream
    my $bad = pack('n6', 2999, 0x0100, 2, 0, 0, 0) . "\x01a\0" . pack('n2', 1, 1);
    $out .= pack('n', length $bad) . $bad;
    syswrite($s, $out);
    my (%got, $buf);
    $buf = '';
    my $deadline = time + kapd_tmo(6);
    while (keys %got < keys(%want) + 1 && time < $deadline) {
        last unless IO::Select->new($s)->can_read($deadline - time);
        my $n = sysread($s, $buf, 65536, length $buf) or last;
        while (length $buf >= 2) {
            my $l = unpack('n', $buf);
            last if length $buf < 2 + $l;
            my $msg = substr($buf, 2, $l);
            substr($buf, 0, 2 + $l) = '';
            my $id2 = unpack('n', $msg);
            $got{$id2} = unpack('C', substr($msg, 3, 1)) & 0xf;
        }
    }
    my @lost = grep { !exists $got{$_} } sort keys %want;
    is(scalar @lost, 0, 'TCP: every pipelined query answered')
        or diag('missing: ' . join ', ', map { $want{$_} } @lost);
    is(scalar(grep { $want{$_} =~ /^n\d+\.wild/ && ($got{$_} // -1) != 0 } keys %want), 0,
       'TCP: the allowed ones NOERROR');
    is(scalar(grep { $want{$_} =~ /denied/ && ($got{$_} // -1) != 3 } keys %want), 0,
       'TCP: the denied ones NXDOMAIN');
    ok(!exists $got{2999} || $got{2999} == 1, 'TCP: the malformed one FORMERR (or dropped)');
    close $s;
}

# -- TCP idle and dribbling connections --------------------------------------------------------
sub closed_within {
    my ($s, $tmo) = @_;
    my $t0 = time;
    my $c = wait_until(sub {
        return 0 unless IO::Select->new($s)->can_read(0.05);
        my $n = sysread($s, my $b, 4096);
        return !$n;
    }, $tmo);
    return $c ? time - $t0 : undef;
}
{
    my $s = tcp_connect($port);
    my $dt = closed_within($s, kapd_tmo(6));
    ok(defined $dt && $dt < kapd_tmo(4), 'TCP: silent connection cut at tcp_idle_timeout'
       . (defined $dt ? sprintf(' (%.1fs)', $dt) : ''));
    $s = tcp_connect($port);
    syswrite($s, "\x00");           # half a length prefix, then nothing
    $dt = closed_within($s, kapd_tmo(6));
    ok(defined $dt && $dt < kapd_tmo(4), 'TCP: half a length prefix: cut');
    # a dribbler: one byte every 0.5 s of a 40-byte message
    $s = tcp_connect($port);
    my $q = Net::DNS::Packet->new('allowed.test', 'A')->data;
    my $msg = pack('n', length $q) . $q;
    my $t0 = time;
    my $cut;
    for my $i (0 .. length($msg) - 1) {
        last unless syswrite($s, substr($msg, $i, 1));
        if (IO::Select->new($s)->can_read(0.5)) {
            my $n = sysread($s, my $b, 4096);
            if (!$n) { $cut = time - $t0; last }
        }
    }
    ok(defined $cut && $cut < kapd_tmo(8), 'TCP: a dribbling client is cut'
       . (defined $cut ? sprintf(' (%.1fs)', $cut) : ' (never)'));
}

# -- many idle TCP connections from one client ------------------------------------------------------
{
    my @held = grep { defined } map { tcp_connect($port, 1) } 1 .. 300;
    ok(@held >= 250, 'TCP: the agent holds ' . scalar(@held) . ' idle DNS connections');
    my $t0 = time;
    is(rcode(q1('allowed.test', 'A')), 'NOERROR', 'TCP exhaustion: UDP still answered');
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        LocalHost => '127.0.0.9', Proto => 'tcp', Timeout => 2);
    my $q = Net::DNS::Packet->new('allowed.test', 'A');
    $q->header->id(77);
    my $d = $q->data;
    my $buf = '';
    if ($s) {
        syswrite($s, pack('n', length $d) . $d);
        wait_until(sub {
            IO::Select->new($s)->can_read(0.05) or return 0;
            sysread($s, $buf, 65536, length $buf) or return 1;
            length $buf >= 2 && length $buf >= 2 + unpack('n', $buf);
        }, kapd_tmo(2));
    }
    ok(length $buf > 2 && unpack('n', substr($buf, 2)) == 77,
       'TCP exhaustion: another client is still answered over TCP');
    ok(time - $t0 < kapd_tmo(2), 'TCP exhaustion: ... promptly');
    close $_ for @held;
}

# -- thousands of pipelined TCP queries, never reading the answers --------------------------------
{
    my $pid = $t->pid;
    my $rss = sub { open my $fh, '<', "/proc/$pid/status" or return 0;
                    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ } 0 };
    my $rss0 = $rss->();
    my $q = Net::DNS::Packet->new('big.wild.test', 'A')->data;   # ~2 kB answers
    my $msg = pack('n', length $q) . $q;
    # a child writes (blocking) as long as kapd reads; it never reads
    my $s = tcp_connect($port);
    my $writer = fork;
    if (defined $writer && $writer == 0) {
        my $chunk = $msg x 1000;
        for (1 .. 200) { syswrite($s, $chunk) or last }
        POSIX::_exit(0);
    }
    my $max = $rss0;
    my $t0 = time;
    while (time - $t0 < kapd_tmo(3)) {
        my $r = $rss->();
        $max = $r if $r > $max;
        Time::HiRes::sleep(0.1);
    }
    kill 'KILL', $writer if $writer;
    waitpid($writer, 0) if $writer;
    close $s;
    ok($max - $rss0 < 32768, sprintf('TCP pipelining without reading: kapd RSS grew by %d kB', $max - $rss0));
    is(rcode(q1('allowed.test', 'A')), 'NOERROR', '... another client is still answered');
}

# -- truncation ---------------------------------------------------------------------------------
{
    my $p = q1('big.wild.test', 'A', igntc => 1);
    ok($p && $p->header->tc, 'UDP, no EDNS: 120 records: TC=1');
    ok($p && length($p->data) <= 512, 'UDP, no EDNS: reply within 512 bytes');
    $p = q1('big.wild.test', 'A', igntc => 1, bufsize => 4096);
    ok($p && $p->header->tc, 'UDP, EDNS 4096: still TC (edns_size caps at 1232)');
    ok($p && length($p->data) <= 1232, 'UDP, EDNS 4096: reply within 1232 bytes');
    $p = q1('big.wild.test', 'A');      # Net::DNS retries over TCP
    is(scalar(grep { $_->type eq 'A' } $p ? $p->answer : ()), 120, 'TC then TCP: all 120 records');
    $p = q1('big.wild.test', 'A', tcp => 1);
    ok($p && !$p->header->tc, 'TCP: no TC');
}

# -- zone transfers over TCP ------------------------------------------------------------------------
for my $ty (qw(AXFR IXFR)) {
    my $before = $dns->count;
    my $p = q1('allowed.test', $ty, tcp => 1);
    like(rcode($p), qr/^(REFUSED|NOTIMP)$/, "$ty over TCP refused");
    is($dns->count - $before, 0, "$ty never forwarded");
}

# -- a flood from one client is rate limited; another client is still served ------------------------
{
    my $flood = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        LocalHost => '127.0.0.9', Proto => 'udp') or die "udp from 127.0.0.9: $!";
    my $before = $dns->count;
    my $n = 600;
    for my $i (1 .. $n) {
        my $q = Net::DNS::Packet->new("flood$i.wild.test", 'A');
        $q->header->id($i);
        $flood->send($q->data);
    }
    my $replies = 0;
    my $t0 = time;
    while (time - $t0 < kapd_tmo(4)) {
        last unless IO::Select->new($flood)->can_read(1);
        $flood->recv(my $r, 65535);
        $replies++;
    }
    my $fwd = $dns->count - $before;
    ok($replies < $n / 2, "flood: at most about burst+rate answered ($replies of $n)");
    ok($fwd < $n / 2, "flood: the dropped queries never reached the upstream ($fwd forwarded)");
    my $t1 = time;
    is(rcode(q1('allowed.test', 'A')), 'NOERROR', 'flood: another client is still answered');
    ok(time - $t1 < kapd_tmo(1), 'flood: ... promptly');
    ok(scalar $t->wait_audit(sub {
        grep { ($_->{reason} // '') =~ /rate/i } @_ }), 'flood: rate limiting audited');
}

is(rcode(q1('allowed.test', 'A')), 'NOERROR', 'kapd alive and answering');
$t->done_testing;
