#!/usr/bin/perl
# 257-dns-edns-options.t -- adversarial: what of the agent's query bytes
# reaches the upstream besides the question.
#
# bypass-classes.md #1: DNS to an allowed resolver is a channel.  For an
# allowed name the question itself goes upstream by design, but nothing
# else the agent chose may ride along: EDNS options (an unknown option
# carrying data, EDNS Client Subnet naming an address, COOKIE, PADDING,
# NSID, CHAIN, keepalive), the query ID, the header's Z/AD/CD bits, or
# bytes hidden in the OPT record's TTL fields.  A denied name with the
# same options is not forwarded at all.  A raw upstream logs every query
# it receives (UDP and TCP) as hex; the marker bytes must never appear
# there, no query may carry an ECS option, and the agent still gets its
# answer with its own ID.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Select;
use IO::Socket::INET;
use Test::Kapd::RawDNS;

my $t = Test::Kapd->new->has_kapd->has_module('dns');

my $up = $t->port('up');
sub answer_for {
    my ($m) = @_;
    return undef if length $m < 12;
    my ($qend) = Test::Kapd::RawDNS::question_end($m) or return undef;
    my $qtype = unpack('n', substr($m, $qend - 4, 2));
    my $an = $qtype == 1 ? "\xc0\x0c" . pack('nnNn', 1, 1, 60, 4) . pack('C4', 192, 0, 2, 1) : '';
    return pack('n6', unpack('n', $m), 0x8180, 1, $an ? 1 : 0, 0, 0)
           . substr($m, 12, $qend - 12) . $an;
}
my $upstream = Test::Kapd::RawDNS->new($t, port => $up, reply => \&answer_for);

$t->write_conf(<<'EOF');
kapd: { load = ["dns"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
network: { allow = ["allowed.test", "*.wild.test", "192.0.2.1"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
$t->run;
my $port = $t->port('dns');

sub qname { join('', map { chr(length $_) . $_ } split /\./, $_[0]) . "\0" }
sub opt {
    my (%o) = @_;
    my $rd = join '', map { pack('nn', $_->[0], length $_->[1]) . $_->[1] } @{$o{opts} // []};
    # OPT: root owner, type 41, UDP size, TTL = ext-rcode/version/flags
    return "\0" . pack('nnNn', 41, 4096, $o{ttl} // 0, length $rd) . $rd;
}

my $udp = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'udp')
    or die "udp: $!";
sub ask {
    my ($pkt, $tcp) = @_;
    if ($tcp) {
        my $s = tcp_connect($port) or return undef;
        syswrite($s, pack('n', length $pkt) . $pkt);
        my $buf = '';
        wait_until(sub {
            IO::Select->new($s)->can_read(0.05) or return 0;
            sysread($s, $buf, 65536, length $buf) or return 1;
            length $buf >= 2 && length $buf >= 2 + unpack('n', $buf);
        }, kapd_tmo(4));
        close $s;
        return length $buf > 2 ? substr($buf, 2) : undef;
    }
    $udp->send($pkt);
    return undef unless IO::Select->new($udp)->can_read(kapd_tmo(4));
    $udp->recv(my $r, 65535);
    return $r;
}

my $MARK = 'EXFIL-7f3a9c-SECRET';
my @cases = (
    ['unknown option 65001 carrying data',  opt(opts => [[65001, $MARK]])],
    ['ECS naming an address',               opt(opts => [[8, pack('nCC', 1, 32, 0) . "\xde\xad\xbe\xef"]])],
    ['COOKIE',                              opt(opts => [[10, "\xc0\x0c\x1e\x5a\xfe\xed\xfa\xce"]])],
    ['PADDING with data',                   opt(opts => [[12, $MARK]])],
    ['NSID with data',                      opt(opts => [[3, $MARK]])],
    ['CHAIN',                               opt(opts => [[13, qname("$MARK.test")]])],
    ['edns-tcp-keepalive',                  opt(opts => [[11, pack('n', 0xbeef)]])],
    ['several options at once',             opt(opts => [[65001, $MARK], [8, pack('nCC', 1, 24, 0) . "\xde\xad\xbe"],
                                                         [65002, $MARK]])],
    ['bits hidden in the OPT TTL (flags Z)', opt(ttl => 0x00007e5a)],
);

my ($n, @agent_ids) = (0);
for my $c (@cases) {
    my ($name, $opt) = @$c;
    for my $tcp (0, 1) {
        my $via = $tcp ? 'TCP' : 'UDP';
        for my $q (['allowed.test', 1], ["x$n.wild.test", 1], ['allowed.test', 16]) {
            my ($qn, $qt) = @$q;
            my $id = 0xbe00 + ($n++ & 0xff);
            push @agent_ids, $id;
            # Z, AD and CD set in the header as well
            my $pkt = pack('n6', $id, 0x0100 | 0x0040 | 0x0020 | 0x0010, 1, 0, 0, 1)
                      . qname($qn) . pack('nn', $qt, 1) . $opt;
            my $r = ask($pkt, $tcp);
            ok(defined $r && unpack('n', $r) == $id && (unpack('C', substr($r, 3, 1)) & 0xf) == 0,
               "$name, $qn/$qt over $via: answered with the agent's ID");
        }
    }
}
# a denied name with the same options is never forwarded
for my $c (@cases) {
    my ($name, $opt) = @$c;
    my $pkt = pack('n6', 0x4444, 0x0100, 1, 0, 0, 1) . qname('evil.test') . pack('nn', 1, 1) . $opt;
    my $r = ask($pkt);
    ok(defined $r && (unpack('C', substr($r, 3, 1)) & 0xf) == 3, "$name, denied name: NXDOMAIN");
}

my @h = $upstream->queries_hex;
ok(@h >= 2, 'the upstream was asked (' . scalar(@h) . ' queries)');
my $markhex = unpack('H*', $MARK);
is(scalar(grep { index($_, $markhex) >= 0 } @h), 0, 'the marker bytes never reached the upstream');
is(scalar(grep { index($_, 'deadbe') >= 0 } @h), 0, 'the ECS address never reached the upstream');
is(scalar(grep { index($_, 'c00c1e5afeedface') >= 0 } @h), 0, "the agent's cookie never reached the upstream");
is(scalar(grep { index($_, unpack('H*', 'evil')) >= 0 } @h), 0, 'the denied name never reached the upstream');
{
    # kapd picks its own random IDs: a few may equal one of the agent's by
    # chance (about 54 x 54 / 65536 expected), passing them on would make
    # nearly every one equal
    my %ids = map { (sprintf('%04x', $_) => 1) } @agent_ids;
    my $same = grep { $ids{substr($_, 0, 4)} } @h;
    ok($same <= 3, "upstream queries do not carry the agent's query IDs ($same of "
       . scalar(@h) . ' do)');
}
{
    # no ECS option (code 8) inside any OPT record the upstream got
    my @ecs = grep {
        my $m = pack('H*', $_);
        my ($ar) = unpack('x10 n', $m);
        my $hit = 0;
        # the OPT record is the last record: find "00 0029" followed by
        # its fields, then walk its options
        if ($ar && $m =~ /\x00\x00\x29(.{6})(..)/s) {
            my $rdlen = unpack('n', $2);
            my $rd = substr($m, $+[0], $rdlen);
            while (length $rd >= 4) {
                my ($code, $len) = unpack('nn', $rd);
                $hit ||= $code == 8;
                substr($rd, 0, 4 + $len) = '';
            }
        }
        $hit;
    } @h;
    is(scalar @ecs, 0, 'no upstream query carries an EDNS Client Subnet option');
}
$t->done_testing;
