#!/usr/bin/perl
# 254-dns-upstream-spoof.t -- adversarial: a hostile or spoofed upstream.
#
# kapd's resolver matches upstream replies on socket, ID and question.  A
# hand-written upstream answers some names with a reply for another
# question, with the wrong ID, with QR clear, from another source port
# (what an off-path spoofer can send), or with extra records for other
# names; the agent must never get the planted addresses (6.6.6.x), nothing
# may be cached under another name, and a genuine reply that follows a
# spoofed one is still taken.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Socket::INET;
use IO::Select;
use Net::DNS;
use POSIX ();
use Time::HiRes qw(time sleep);

my $t = Test::Kapd->new->has_kapd->has_module('dns');

my $up = $t->port('up');
my $spoof_port = $t->port('spoof');
my $log = $t->testdir . '/up.log';

sub mkrr { Net::DNS::RR->new($_[0]) }

# the reply (or replies) for one query: list of [socket-kind, packet bytes]
sub replies {
    my ($q, $tcp) = @_;
    my ($qq) = $q->question;
    my $name = lc $qq->qname;
    # (Net::DNS's reply() starts out as FORMERR)
    my $plain = sub { my ($ip) = @_; my $p = $q->reply; $p->header->aa(1);
                      $p->header->rcode('NOERROR');
                      $p->push(answer => mkrr("$name. 60 IN A $ip")) if $qq->qtype eq 'A';
                      $p };
    if ($name eq 'wrongq.wild.test') {
        my $p = Net::DNS::Packet->new('allowed.test', 'A');
        $p->header->id($q->header->id);
        $p->header->qr(1);
        $p->header->rcode('NOERROR');
        $p->push(answer => mkrr('allowed.test. 60 IN A 6.6.6.1'));
        return (['up', $p->data]);
    }
    if ($name eq 'wrongid.wild.test') {
        my $p = $plain->('6.6.6.2');
        $p->header->id(($q->header->id + 1) & 0xffff);
        return (['up', $p->data]);
    }
    if ($name eq 'qr0.wild.test') {
        my $p = $plain->('6.6.6.3');
        $p->header->qr(0);
        return (['up', $p->data]);
    }
    if ($name eq 'otherport.wild.test') {
        return (['spoof', $plain->('6.6.6.4')->data]);
    }
    if ($name eq 'late.wild.test') {
        return (['spoof', $plain->('6.6.6.5')->data], ['up', $plain->('192.0.2.20')->data]);
    }
    if ($name eq 'extra.wild.test') {
        my $p = $plain->('192.0.2.21');
        $p->push(answer => mkrr('allowed.test. 60 IN A 6.6.6.6'));
        $p->push(additional => mkrr('allowed.test. 60 IN A 6.6.6.6'));
        $p->push(authority => mkrr('wild.test. 60 IN NS ns.evil.test'));
        return (['up', $p->data]);
    }
    if ($name eq 'tc.wild.test') {
        return (['up', $plain->('192.0.2.23')->data]) if $tcp;
        my $p = $plain->('6.6.6.10');
        $p->header->tc(1);
        return (['up', $p->data]);
    }
    if ($name eq 'allowed.test') {
        return (['up', $plain->('192.0.2.1')->data]);
    }
    if ($name eq 'ok.wild.test') {
        return (['up', $plain->('192.0.2.22')->data]);
    }
    my $p = $q->reply;
    $p->header->rcode('NXDOMAIN');
    return (['up', $p->data]);
}

my $usock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $up,
                                  Proto => 'udp') or die "udp $up: $!";
my $ssock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $spoof_port,
                                  Proto => 'udp') or die "udp $spoof_port: $!";
my $tls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $up, Proto => 'tcp',
                                Listen => 16, ReuseAddr => 1) or die "tcp $up: $!";
$t->run_daemon(sub {
    my $sel = IO::Select->new($usock, $tls);
    while (1) {
        for my $s ($sel->can_read(1)) {
            if ($s == $tls) {
                my $c = $tls->accept or next;
                my $pid = fork;
                next if !defined $pid || $pid;
                while (1) {
                    my $n = sysread($c, my $l, 2);
                    POSIX::_exit(0) unless $n && $n == 2;
                    sysread($c, my $m, unpack('n', $l));
                    my $q = Net::DNS::Packet->new(\$m) or POSIX::_exit(0);
                    for my $r (replies($q, 1)) {
                        syswrite($c, pack('n', length $r->[1]) . $r->[1]) if $r->[0] eq 'up';
                    }
                }
            }
            my $peer = $usock->recv(my $m, 65535);
            my $q = Net::DNS::Packet->new(\$m) or next;
            if (open my $fh, '>>', $log) { print $fh lc(($q->question)[0]->qname), "\n"; close $fh }
            for my $r (replies($q)) {
                ($r->[0] eq 'up' ? $usock : $ssock)->send($r->[1], 0, $peer);
                sleep(0.05);
            }
        }
    }
});

$t->write_conf(<<'EOF');
kapd: { load = ["dns"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
network: { allow = ["allowed.test", "*.wild.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
$t->run;
my $port = $t->port('dns');

# one UDP query, waiting long enough for kapd's fallbacks
sub ask {
    my ($name, $type) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'udp');
    my $q = Net::DNS::Packet->new($name, $type // 'A');
    $s->send($q->data);
    return undef unless IO::Select->new($s)->can_read(kapd_tmo(8));
    $s->recv(my $r, 65535);
    return Net::DNS::Packet->new(\$r);
}
sub addrs { my ($p) = @_; $p ? join(' ', sort map { $_->address } grep { $_->type eq 'A' } $p->answer) : '' }
sub all_rr { my ($p) = @_; $p ? join("\n", map { $_->string } $p->answer, $p->authority, $p->additional) : '' }

is(addrs(ask('ok.wild.test')), '192.0.2.22', 'control: a genuine answer');

for my $c (['wrongq.wild.test', 'reply for another question'],
           ['wrongid.wild.test', 'reply with another ID'],
           ['qr0.wild.test', 'reply with QR clear'],
           ['otherport.wild.test', 'reply from another source port (off-path spoof)']) {
    my ($n, $name) = @$c;
    my $t0 = time;
    my $p = ask($n);
    unlike(all_rr($p), qr/6\.6\.6\./, "$name: the planted address is not taken");
    ok(!$p || $p->header->rcode ne 'NOERROR' || !$p->answer,
       "$name: no answer (" . ($p ? $p->header->rcode : 'no reply') . ')');
}
{
    my $p = ask('late.wild.test');
    is(addrs($p), '192.0.2.20', 'a spoofed reply then the genuine one: the genuine one is taken');
}
{
    my $p = ask('extra.wild.test');
    is(addrs($p), '192.0.2.21', 'extra records for other names: only the asked name');
    unlike(all_rr($p), qr/6\.6\.6\.|evil/, 'extra records: nothing planted passed on');
}
{
    my $p = ask('tc.wild.test');
    is(addrs($p), '192.0.2.23', 'TC=1 over UDP: the TCP answer is used, not the truncated one');
}
# nothing was cached under another name
is(addrs(ask('allowed.test')), '192.0.2.1', 'allowed.test not poisoned by any of it');
my $again = ask('wrongq.wild.test');
unlike(all_rr($again), qr/6\.6\.6\./, 'asked again: still nothing planted');

ok($t->is_running, 'kapd alive');
$t->done_testing;
