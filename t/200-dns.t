#!/usr/bin/perl
# 200-dns.t -- the dns module against a fake authoritative DNS through the
# shared resolver: allowed and denied names for A, AAAA, TXT, MX, CNAME
# chains; ANY, AXFR, PTR, HTTPS type rules; 0x20 case; subdomain of an
# exact rule denied; rebinding answers filtered; TCP with pipelined
# queries; truncation then TCP; upstream silent -> SERVFAIL, no hang;
# every denial audited; the fake DNS never sees a denied query.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use IO::Socket::INET;
use IO::Select;
use Net::DNS;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('dns');
$t->plan(52);

my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), zone => {
    'allowed.test'     => ['A 192.0.2.1', 'AAAA 2001:db8::1',
                           'TXT "hello"', 'MX 10 mail.allowed.test'],
    'www.allowed.test' => ['A 192.0.2.9'],
    'cname.wild.test'  => ['CNAME hop.wild.test'],
    'hop.wild.test'    => ['CNAME allowed.test'],
    'denied.test'      => ['A 192.0.2.2', 'TXT "secret"'],
    'rebind.wild.test' => ['A 127.0.0.1', 'A 192.0.2.3', 'A 169.254.169.254',
                           'A 10.1.2.3'],
    'big.wild.test'    => [map { "A 192.0.2.$_" } 1 .. 60],
    'slow.wild.test'   => 'silent',
    'fail.wild.test'   => 'SERVFAIL',
    '7.0.18.198.in-addr.arpa' => ['PTR host.allowed.test'],
    '8.0.18.198.in-addr.arpa' => ['PTR other.test'],
});

$t->write_conf(<<'EOF');
kapd: {
    load = ["dns"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
network: {
    allow = ["allowed.test", "*.wild.test", "198.18.0.7"];
    deny = ["bad.wild.test"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: {
    listen = ["127.0.0.1:%%PORT_dns%%"];
    rate_limit = 0;
};
EOF
$t->run;

my $port = $t->port('dns');

sub q1 { my ($n, $ty, %o) = @_; dns_query($n, $ty, port => $port, %o) }
sub rcode { my ($p) = @_; $p ? $p->header->rcode : 'TIMEOUT' }
sub addrs {
    my ($p, $ty) = @_;
    return '' unless $p;
    join ' ', sort map { $_->can('address') ? $_->address : () }
        grep { $_->type eq ($ty // 'A') } $p->answer;
}

# -- allowed ---------------------------------------------------------------------
my $p = q1('allowed.test', 'A');
is(rcode($p), 'NOERROR', 'A allowed: NOERROR');
is(addrs($p), '192.0.2.1', 'A allowed: the address');
$p = q1('allowed.test', 'AAAA');
like(addrs($p, 'AAAA'), qr/^2001:db8:0*:0*:0*:0*:0*:0*1$|^2001:db8::1$/,
     'AAAA allowed');
$p = q1('allowed.test', 'TXT');
is($p && ($p->answer)[0] ? ($p->answer)[0]->txtdata : '', 'hello', 'TXT allowed');
$p = q1('allowed.test', 'MX');
is($p && ($p->answer)[0] ? ($p->answer)[0]->exchange : '', 'mail.allowed.test',
   'MX allowed');
$p = q1('cname.wild.test', 'A');
is(scalar(grep { $_->type eq 'CNAME' } $p ? $p->answer : ()), 2,
   'CNAME chain: both CNAMEs');
is(addrs($p), '192.0.2.1', 'CNAME chain: final address');

# -- 0x20 ------------------------------------------------------------------------
$p = q1('AlLoWeD.TeSt', 'A');
is(rcode($p), 'NOERROR', 'mixed case allowed');
is($p ? ($p->question)[0]->qname : '', 'AlLoWeD.TeSt', 'question case preserved');

ok(scalar $t->wait_audit(sub { grep { ($_->{event} // '') eq 'dns_answer'
        && ($_->{subject} // '') eq 'AlLoWeD.TeSt' && $_->{cached} } @_ }),
   'the repeated question was answered from the cache');
ok(($p->answer)[0] && ($p->answer)[0]->ttl <= 60, 'cached TTL not above the original');

# -- denied ----------------------------------------------------------------------
my $before = $dns->count;
for my $ty (qw(A AAAA TXT MX)) {
    is(rcode(q1('denied.test', $ty)), 'NXDOMAIN', "$ty denied: NXDOMAIN");
}
$p = q1('denied.test', 'A');
ok($p && !$p->answer && !$p->authority, 'denial is empty (no SOA)');
is(rcode(q1('www.allowed.test', 'A')), 'NXDOMAIN',
   'subdomain of an exact rule denied');
is(rcode(q1('bad.wild.test', 'A')), 'NXDOMAIN', 'deny rule wins over *.');
is($dns->count('denied.test') + $dns->count('www.allowed.test')
   + $dns->count('bad.wild.test'), 0, 'fake DNS never saw a denied name');

# -- type rules --------------------------------------------------------------------
is(rcode(q1('allowed.test', 'ANY')), 'REFUSED', 'ANY refused');
$p = q1('allowed.test', 'HTTPS');
ok($p && rcode($p) eq 'NOERROR' && !$p->answer, 'HTTPS: NODATA by default');
is($dns->count('allowed.test', 'HTTPS') + $dns->count('allowed.test', 'ANY'),
   0, 'ANY and HTTPS never forwarded');
is(rcode(q1('denied.test', 'HTTPS')), 'NXDOMAIN', 'HTTPS of a denied name: NXDOMAIN');
$p = q1('7.0.18.198.in-addr.arpa', 'PTR');
is($p && ($p->answer)[0] ? ($p->answer)[0]->ptrdname : '', 'host.allowed.test',
   'PTR of an allowed address');
is(rcode(q1('8.0.18.198.in-addr.arpa', 'PTR')), 'NXDOMAIN',
   'PTR of another address denied');
is($dns->count('8.0.18.198.in-addr.arpa'), 0, 'denied PTR not forwarded');
$p = q1('allowed.test', 'AXFR', tcp => 1);
is(rcode($p), 'REFUSED', 'AXFR over TCP refused');
is(rcode(q1('allowed.test', 'A', class => 'CH')), 'REFUSED', 'class CH refused');

# -- rebinding ------------------------------------------------------------------------
$p = q1('rebind.wild.test', 'A');
is(addrs($p), '192.0.2.3', 'rebinding: private addresses filtered');
ok(scalar $t->wait_audit(sub { grep { ($_->{event} // '') eq 'dns_rebinding' } @_ }),
   'rebinding audited');

# -- truncation then TCP ----------------------------------------------------------------
$p = q1('big.wild.test', 'A', igntc => 1);
ok($p && $p->header->tc, 'big answer over UDP: TC');
$p = q1('big.wild.test', 'A');    # Net::DNS retries over TCP on TC
is(scalar(grep { $_->type eq 'A' } $p ? $p->answer : ()), 60,
   'big answer: retried over TCP, 60 records');

# -- upstream failures -----------------------------------------------------------------
my $t0 = time;
is(rc_of(raw_udp(Net::DNS::Packet->new('slow.wild.test', 'A')->data, 6)), 2,
   'silent upstream: SERVFAIL');
ok(time - $t0 < kapd_tmo(5), 'SERVFAIL within the resolver timeout');
is(rcode(q1('fail.wild.test', 'A')), 'SERVFAIL', 'upstream SERVFAIL passed on');

# -- TCP: several queries on one connection, pipelined ----------------------------------
{
    my $s = tcp_connect($port);
    ok($s, 'TCP connect');
    my @names = qw(allowed.test denied.test cname.wild.test allowed.test);
    my %want;
    my $id = 100;
    my $out = '';
    for my $n (@names) {
        my $q = Net::DNS::Packet->new($n, 'A');
        $q->header->id(++$id);
        $q->header->rd(1);
        my $d = $q->data;
        $out .= pack('n', length $d) . $d;
        $want{$id} = $n;
    }
    syswrite($s, $out);
    my %got;
    my $buf = '';
    my $deadline = time + kapd_tmo(5);
    while (keys %got < @names && time < $deadline) {
        last unless IO::Select->new($s)->can_read($deadline - time);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
        while (length $buf >= 2) {
            my $l = unpack('n', $buf);
            last if length $buf < 2 + $l;
            my $r = Net::DNS::Packet->new(\substr($buf, 2, $l));
            substr($buf, 0, 2 + $l) = '';
            $got{$r->header->id} = $r->header->rcode if $r;
        }
    }
    is(scalar(keys %got), 4, 'TCP: four pipelined answers on one connection');
    is($got{102} // '', 'NXDOMAIN', 'TCP: the denied one is NXDOMAIN');
    is($got{101} // '', 'NOERROR', 'TCP: the allowed one is NOERROR');
    close $s;
}

# -- malformed queries (raw UDP) ----------------------------------------------------------
sub raw_udp {
    my ($data, $tmo) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'udp') or return undef;
    $s->send($data);
    return undef unless IO::Select->new($s)->can_read(kapd_tmo($tmo // 2));
    my $r;
    $s->recv($r, 65535);
    return $r;
}
sub hdr { pack('n6', @_) }
sub qname { join('', map { chr(length $_) . $_ } split /\./, $_[0]) . "\0" }
sub rc_of { my ($r) = @_; defined $r && length $r >= 4 ? (unpack('C', substr($r, 3, 1)) & 0xf) : -1 }

my $qbody = qname('exfil.denied.test') . pack('n2', 1, 1);
is(rc_of(raw_udp(hdr(1, 0x0100, 2, 0, 0, 0) . $qbody . $qbody)), 1,
   'QDCOUNT 2: FORMERR');
is(rc_of(raw_udp(hdr(2, 0x0100, 1, 0, 0, 0) . "\x05exfil\xc0\x0c" . pack('n2', 1, 1))),
   1, 'compression pointer in question: FORMERR');
is(rc_of(raw_udp(hdr(3, 0x0100, 1, 0, 0, 0) . $qbody . "garbage")), 1,
   'trailing garbage: FORMERR');
is(rc_of(raw_udp(hdr(4, 0x0100, 1, 0, 0, 0) . substr($qbody, 0, 7))), 1,
   'truncated question: FORMERR');
is(rc_of(raw_udp(hdr(5, 0x2800, 1, 0, 0, 0) . $qbody)), 4, 'opcode UPDATE: NOTIMP');
ok(!defined raw_udp(hdr(6, 0x8100, 1, 0, 0, 0) . $qbody, 0.5), 'QR set: no reply');
ok(!defined raw_udp("\x00\x07\x01", 0.5), 'short packet: no reply');
is(rc_of(raw_udp(hdr(8, 0x0100, 1, 0, 0, 1) . $qbody . "\0" . pack('nnNn', 41, 1232, 0x00010000, 0))),
   0, 'EDNS version 1: BADVERS (low bits 0)');
is(rc_of(raw_udp(hdr(9, 0x0100, 1, 0, 0, 0) . "\x03a\xffb\x04test\0" . pack('n2', 1, 1))),
   5, 'binary label: REFUSED');
is($dns->count('exfil.denied.test'), 0, 'no malformed query reached the fake DNS');
is(rcode(q1('allowed.test', 'A')), 'NOERROR', 'kapd alive after malformed input');

# -- audit ---------------------------------------------------------------------------------
my @a = $t->wait_audit(sub {
    grep { ($_->{subject} // '') eq 'denied.test' && ($_->{action} // '') eq 'denied' } @_
});
ok(scalar(grep { ($_->{subject} // '') eq 'denied.test' && ($_->{action} // '') eq 'denied'
           && ($_->{kind} // '') eq 'dns' } @a), 'denial in the JSONL audit');
ok(scalar(grep { ($_->{reason} // '') =~ /compression/ } @a), 'FORMERR audited with its reason');

$t->finish;
