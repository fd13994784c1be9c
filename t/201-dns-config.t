#!/usr/bin/perl
# 201-dns-config.t -- the dns module's settings and lifecycle: a reload
# that changes the allowlist and the type rules takes effect for the next
# query; rebinding = "refuse"; ANY = "hinfo" (RFC 8482); HTTPS = "policy";
# PTR = "refuse"; observe mode answers and audits "observed"; the
# per-client rate limit drops a burst; the TCP idle timeout closes a
# silent connection; an upstream that went away gives SERVFAIL, no hang.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use IO::Select;
use Net::DNS;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('dns');
$t->plan(22);

my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), zone => {
    'one.test'    => ['A 192.0.2.1', 'HTTPS 1 . alpn=h2'],
    'two.test'    => ['A 192.0.2.2'],
    'rebind.test' => ['A 192.0.2.3', 'A 127.0.0.1'],
    '7.0.18.198.in-addr.arpa' => ['PTR one.test'],
});

sub conf {
    my ($allow, $dnsextra, $netextra) = @_;
    $dnsextra //= '';
    $netextra //= '';
    return <<"EOF";
kapd: {
    load = ["dns"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    policy = { $netextra };
};
network: { allow = [$allow]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 1; };
audit_log: { path = "audit.jsonl"; };
dns: {
    listen = ["127.0.0.1:%%PORT_dns%%"];
    tcp_idle_timeout = 1;
    $dnsextra
};
EOF
}

my $port = $t->port('dns');
sub q1 { my ($n, $ty, %o) = @_; dns_query($n, $ty, port => $port, %o) }
sub rcode { my ($p) = @_; $p ? $p->header->rcode : 'TIMEOUT' }

$t->write_conf(conf('"one.test"', 'rate_limit = 0;'));
$t->run;

is(rcode(q1('one.test', 'A')), 'NOERROR', 'gen 1: one.test allowed');
is(rcode(q1('two.test', 'A')), 'NXDOMAIN', 'gen 1: two.test denied');

# -- reload: new allowlist and type rules ------------------------------------------
$t->write_conf(conf('"two.test", "rebind.test", "198.18.0.7"',
    'rate_limit = 0; rebinding = "refuse";'
    . ' types = { ANY = "hinfo"; HTTPS = "policy"; PTR = "refuse"; };'));
like($t->reload // '', qr/reloaded/, 'reloaded');
is(rcode(q1('one.test', 'A')), 'NXDOMAIN', 'gen 2: one.test now denied');
is(rcode(q1('two.test', 'A')), 'NOERROR', 'gen 2: two.test now allowed');
is(rcode(q1('rebind.test', 'A')), 'REFUSED', 'rebinding = refuse: REFUSED');
my $p = q1('two.test', 'ANY');
ok($p && rcode($p) eq 'NOERROR' && ($p->answer)[0]
   && ($p->answer)[0]->type eq 'HINFO', 'ANY = hinfo: RFC 8482 answer');
is($dns->count('two.test', 'ANY'), 0, 'ANY never forwarded');
is(rcode(q1('7.0.18.198.in-addr.arpa', 'PTR')), 'REFUSED', 'PTR = refuse');

# -- a broken edit keeps generation 2 -------------------------------------------------
$t->write_conf(conf('"two.test"', 'types = { BOGUS = "refuse"; };'));
like($t->reload // '', qr/reload failed/, 'unknown type: reload failed');
is(rcode(q1('two.test', 'A')), 'NOERROR', 'old generation still serving');

# -- observe -------------------------------------------------------------------------
$t->write_conf(conf('"two.test"', 'rate_limit = 0;', 'observe = true;'));
like($t->reload // '', qr/reloaded/, 'reloaded with observe');
# DNS keeps filtering in observe mode (an open resolver is an exfiltration
# channel, and proxied clients never resolve for themselves) ...
my $before = $dns->count('one.test', 'A');
is(rcode(q1('one.test', 'A')), 'NXDOMAIN', 'observe: DNS still filters');
ok(scalar $t->wait_audit(sub { grep { ($_->{subject} // '') eq 'one.test'
        && ($_->{action} // '') eq 'denied'
        && ($_->{reason} // '') =~ /^observe mode: dns stays filtered: / } @_ }),
   'observe: one decision, denied, saying DNS stays filtered in observe mode');
is($dns->count('one.test', 'A'), $before, 'observe: the denied name never forwarded');
# ... unless dns.observe = "forward"
$t->write_conf(conf('"two.test"', 'rate_limit = 0; observe = "forward";',
                    'observe = true;'));
like($t->reload // '', qr/reloaded/, 'reloaded with dns.observe = forward');
is(rcode(q1('one.test', 'A')), 'NOERROR', 'observe + forward: a denied name answers');

# -- rate limit ----------------------------------------------------------------------
$t->write_conf(conf('"two.test"', 'rate_limit = 5; burst = 5;'));
like($t->reload // '', qr/reloaded/, 'reloaded with a rate limit');
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'udp');
    my $q = Net::DNS::Packet->new('nothere.test', 'A')->data;
    $s->send($q) for 1 .. 40;
    my $n = 0;
    my $sel = IO::Select->new($s);
    while ($sel->can_read(kapd_tmo(1))) {
        my $r;
        $s->recv($r, 4096);
        $n++;
    }
    ok($n >= 4 && $n <= 12, "burst of 40: $n answered, the rest dropped");
}

# -- TCP idle timeout ----------------------------------------------------------------
{
    my $s = tcp_connect($port);
    my $t0 = time;
    my $closed = IO::Select->new($s)->can_read(kapd_tmo(5))
        && !sysread($s, my $buf, 10);
    ok($closed && time - $t0 < kapd_tmo(4), 'silent TCP client closed after the idle timeout');
}

# -- upstream gone -------------------------------------------------------------------
$dns->stop;
my $t0 = time;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                              Proto => 'udp');
$s->send(Net::DNS::Packet->new('two.test', 'AAAA')->data);
my $r;
$s->recv($r, 4096) if IO::Select->new($s)->can_read(kapd_tmo(4));
ok(defined $r && (unpack('C', substr($r, 3, 1)) & 0xf) == 2,
   'upstream down: SERVFAIL');
ok(time - $t0 < kapd_tmo(3), 'upstream down: no hang');

$t->finish;
