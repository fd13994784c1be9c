#!/usr/bin/perl
# 256-dns-upstream-malformed.t -- adversarial: an upstream whose replies to
# allowed names are malformed in the ways a DNS parser can get wrong.
#
# kapd's resolver fast path hands the upstream's bytes for a dns-module
# question straight to the reply rebuilder (t/254 covers spoofed and
# mismatched replies; this file covers broken ones): compression pointers
# that loop, point to themselves or past the end, names longer than 255
# octets built from pointers, RDLENGTH past the end, counts larger than
# the records present, A/AAAA with the wrong RDLENGTH, CNAME loops, an
# OPT record in the answer, a reply cut in the middle of a record,
# addresses owned by another name than the one asked (or its CNAME), and
# TTLs with the top bit set (RFC 2181 8: to be read as zero).  Each
# planted address is a loopback one (127.6.6.x, ::1), so that a record
# the parser reads one way and the rebinding filter another would show;
# what the agent may get is SERVFAIL (or an answer holding only the
# genuine 192.0.2.x records), in bounded time,
# over UDP and TCP, and through the proxy a 502/504, never a dial.  kapd
# must stay up and clean under ASan (the harness checks its logs).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeHTTP;
use Test::Kapd::RawDNS;
use Net::DNS;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/dns http_connect/);

my $up = $t->port('up');
# an origin on an address the allowlist lists (127.0.0.3:443): reached
# only if kapd dialled an address it took from another owner's record
system('ip', 'addr', 'add', '127.0.0.3/32', 'dev', 'lo');
my $evil = Test::Kapd::FakeHTTP->new($t, port => 443, name => 'evil', addr => '127.0.0.3');

sub qn { join('', map { chr(length $_) . $_ } split /\./, $_[0]) . "\0" }
sub rr_a { my ($owner, $ip, %o) = @_;
    $owner . pack('nnNn', $o{type} // 1, 1, $o{ttl} // 60, $o{rdlen} // 4)
    . pack('C4', split /\./, $ip) }

# per first label: (ANCOUNT, NSCOUNT, the bytes after the question);
# $qend is the offset just past the question
my %bad = (
    'selfptr'   => sub { my ($qend) = @_; (1, 0, pack('n', 0xc000 | $qend)
                         . pack('nnNn', 1, 1, 60, 4) . pack('C4', 127, 6, 6, 1)) },
    'loopptr'   => sub { my ($qend) = @_; (1, 0, "\x01a" . pack('n', 0xc000 | $qend)
                         . pack('nnNn', 1, 1, 60, 4) . pack('C4', 127, 6, 6, 2)) },
    'pastend'   => sub { (1, 0, pack('n', 0xffff) . pack('nnNn', 1, 1, 60, 4)
                         . pack('C4', 127, 6, 6, 3)) },
    'rdlen'     => sub { (1, 0, "\xc0\x0c" . pack('nnNn', 1, 1, 60, 200)
                         . pack('C4', 127, 6, 6, 4)) },
    'ancount'   => sub { (40, 0, rr_a("\xc0\x0c", '192.0.2.50')) },
    'a5'        => sub { (1, 0, "\xc0\x0c" . pack('nnNn', 1, 1, 60, 5)
                         . pack('C5', 127, 6, 6, 5, 0)) },
    'aaaa17'    => sub { (1, 0, "\xc0\x0c" . pack('nnNn', 28, 1, 60, 17)
                         . ("\0" x 15) . "\x01\x00") },
    'aaaa15'    => sub { (1, 0, "\xc0\x0c" . pack('nnNn', 28, 1, 60, 15) . ("\0" x 15)) },
    'a3'        => sub { (2, 0, "\xc0\x0c" . pack('nnNn', 1, 1, 60, 3)
                         . pack('C3', 127, 6, 6) . rr_a("\xc0\x0c", '127.6.6.6')) },
    'cnameptr'  => sub { my ($qend) = @_; (2, 0, "\xc0\x0c" . pack('nnNn', 5, 1, 60, 2)
                         . pack('n', 0xc000 | ($qend + 10))
                         . rr_a("\xc0\x0c", '127.6.6.7')) },
    'cnameself' => sub { (2, 0, "\xc0\x0c" . pack('nnNn', 5, 1, 60, 2) . "\xc0\x0c"
                         . rr_a("\xc0\x0c", '192.0.2.51')) },
    'optans'    => sub { (2, 0, "\x00" . pack('nnNn', 41, 4096, 0, 0)
                         . rr_a("\xc0\x0c", '192.0.2.52')) },
    'badlabel'  => sub { (1, 0, "\x41abc\x00" . pack('nnNn', 1, 1, 60, 4)
                         . pack('C4', 127, 6, 6, 8)) },
    'cut'       => sub { (1, 0, substr(rr_a("\xc0\x0c", '127.6.6.9'), 0, 9)) },
    'ttltop'    => sub { (1, 0, rr_a("\xc0\x0c", '192.0.2.53', ttl => 0xfffffff0)) },
    'longname'  => sub { my ($qend) = @_;
                         # a NULL record holds 6 segments of one 63-octet
                         # label, each pointing at the one before; an A
                         # record is owned by the last: a 384-octet name
                         my ($seg, $prev) = ('');
                         my $base = $qend + 2 + 10;
                         for my $k (0 .. 5) {
                             my $at = $base + length $seg;
                             $seg .= "\x3f" . ('x' x 63)
                                 . (defined $prev ? pack('n', 0xc000 | $prev) : "\xc0\x0c");
                             $prev = $at;
                         }
                         (2, 0, "\xc0\x0c" . pack('nnNn', 10, 1, 60, length $seg) . $seg
                          . pack('n', 0xc000 | $prev) . pack('nnNn', 1, 1, 60, 4)
                          . pack('C4', 127, 6, 6, 10)) },
    'authrdlen' => sub { (1, 1, rr_a("\xc0\x0c", '192.0.2.54')
                         . "\xc0\x0c" . pack('nnNn', 6, 1, 60, 60000) . "\x00") },
    # well-formed, but records of other owners: never used, never dialled
    'otherowner'=> sub { (2, 0, rr_a(qn('evil.test'), '127.0.0.3') . rr_a("\xc0\x0c", '192.0.2.9')) },
    'cnthird'   => sub { (2, 0, "\xc0\x0c" . pack('nnNn', 5, 1, 60, length qn('other.test'))
                         . qn('other.test') . rr_a(qn('third.test'), '127.0.0.3')) },
    'many'      => sub { (1500, 0, join '', map { rr_a("\xc0\x0c", '192.0.2.' . (1 + $_ % 200)) } 1 .. 1500) },
);

sub reply_for {
    my ($m) = @_;
    return undef if length $m < 12;
    my ($qend, $name) = Test::Kapd::RawDNS::question_end($m) or return undef;
    my ($first) = $name =~ /^([^.]+)\.wild\.test$/;
    my ($an, $ns, $body, $rcode) = (0, 0, '', 3);
    if ($first && $bad{$first}) {
        ($an, $ns, $body) = $bad{$first}->($qend);
        $rcode = 0;
    } elsif ($name eq 'allowed.test' || ($first // '') eq 'ok') {
        ($an, $body, $rcode) = (1, rr_a("\xc0\x0c", '192.0.2.1'), 0);
    }
    return pack('n6', unpack('n', $m), 0x8180 | $rcode, 1, $an, $ns, 0)
           . substr($m, 12, $qend - 12) . $body;
}
Test::Kapd::RawDNS->new($t, port => $up, reply => \&reply_for);

$t->write_conf(<<'EOF');
kapd: { load = ["dns", "http_connect"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
network: { allow = ["allowed.test", "*.wild.test", "127.0.0.3:443"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; connect_timeout = 2; };
EOF
$t->run;
my $port = $t->port('dns');

sub ask {
    my ($name, $type, %o) = @_;
    my $t0 = time;
    my $p = dns_query($name, $type, port => $port, timeout => 6, %o);
    return ($p, time - $t0);
}

my ($p) = ask('allowed.test', 'A');
is($p ? $p->header->rcode : 'TIMEOUT', 'NOERROR', 'control: allowed.test answered');

for my $n (sort keys %bad) {
    my $name = "$n.wild.test";
    for my $c (['A', 0], ['A', 1], ['AAAA', 0]) {
        my ($ty, $tcp) = @$c;
        my $via = "$ty" . ($tcp ? '/TCP' : '/UDP');
        my ($r, $dt) = ask($name, $ty, tcp => $tcp);
        my $rc = $r ? $r->header->rcode : 'TIMEOUT';
        like($rc, qr/^(SERVFAIL|NOERROR|NXDOMAIN)$/, "$name $via: answered ($rc)");
        ok($dt < kapd_tmo(5), sprintf("$name $via: within the resolver bound (%.1fs)", $dt));
        my @addr = $r ? map { $_->address } grep { $_->type =~ /^(A|AAAA)$/ } $r->answer : ();
        my @planted = grep { !/^192\.0\.2\.\d+$/ } @addr;
        is(scalar @planted, 0, "$name $via: no planted or malformed address passed")
            or diag("got: @addr");
        my @big = grep { $_->ttl >= 2**31 } $r ? $r->answer : ();
        is(scalar @big, 0, "$name $via: no TTL with the top bit set reaches the agent")
            or diag(join ' ', map { $_->ttl } @big);
    }
}

# the proxy: a name with a malformed answer is never dialled
{
    my $proxy = $t->port('proxy');
    for my $n (sort grep { $_ ne 'many' } keys %bad) {
        my $s = tcp_connect($proxy) or next;
        my $raw = http_raw($s, "CONNECT $n.wild.test:443 HTTP/1.1\r\nHost: $n.wild.test:443\r\n\r\n",
                           timeout => 8, one => 1, method => 'CONNECT');
        close $s;
        my $r = http_parse($raw);
        like($r ? $r->{status} : 'none', qr/^(502|503|504|403)$/,
             "CONNECT $n.wild.test: refused (" . ($r ? $r->{status} : 'none') . ')');
    }
}

is($evil->connections, 0, 'no address from another owner\'s record was ever dialled');

($p) = ask('allowed.test', 'A');
is($p ? $p->header->rcode : 'TIMEOUT', 'NOERROR', 'kapd alive and answering');
($p) = ask('ok.wild.test', 'A', tcp => 1);
is($p ? $p->header->rcode : 'TIMEOUT', 'NOERROR', 'kapd alive and answering over TCP');
ok($t->is_running, 'kapd still running');
$t->done_testing;
