#!/usr/bin/perl
# 253-dns-policy-cache.t -- adversarial: DNS answers under a strict
# configuration, and the answer cache as an attack surface.
#
# rebinding = "refuse" (an answer with any address in the deny set is
# refused whole), network.deny_addresses and the host's own / gateway
# addresses in answers (bypass-classes.md #6: the Docker gateway), type
# rules from the config (TXT refused, MX nodata, ANY hinfo), and the
# per-generation cache: a reload that denies a name must take effect at
# once (no cached answer outlives the policy that allowed it), a cached
# big answer is still truncated for a small UDP client, cached answers
# carry each query's own ID and question case, and a name's cached answer
# is never served for another name, type or class.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Net::DNS;
use IO::Socket::INET;
use IO::Select;

my $t = Test::Kapd->new->has_kapd->has_module('dns');

for my $cmd (['ip', 'link', 'add', 'gw0', 'type', 'veth', 'peer', 'name', 'gw1'],
             ['ip', 'addr', 'add', '10.9.0.2/24', 'dev', 'gw0'],
             ['ip', 'link', 'set', 'gw0', 'up'],
             ['ip', 'link', 'set', 'gw1', 'up'],
             ['ip', 'route', 'add', 'default', 'via', '10.9.0.1']) {
    system(@$cmd) == 0 or plan(skip_all => "cannot run '@$cmd' in the test namespace");
}

my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), ttl => 300, zone => {
    'allowed.test'       => ['A 192.0.2.1', 'TXT "hello"', 'MX 10 mx.allowed.test'],
    'mixed.wild.test'    => ['A 192.0.2.5', 'A 10.1.2.3'],
    'listed.wild.test'   => ['A 192.0.2.99'],
    'listed6.wild.test'  => ['AAAA 2001:db8::99'],
    'gw.wild.test'       => ['A 10.9.0.1'],
    'own.wild.test'      => ['A 10.9.0.2'],
    'clean.wild.test'    => ['A 192.0.2.7'],
    'cached.wild.test'   => ['A 192.0.2.8', 'TXT "t"'],
    'other.wild.test'    => ['A 192.0.2.9'],
    'big.wild.test'      => [map { "A 192.0.2.$_" } 1 .. 90],
});

my $conf = <<'EOF';
kapd: { load = ["dns"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; reload_check = 0; };
network: {
    allow = ["allowed.test", "*.wild.test" __EXTRA__];
    deny_addresses = ["192.0.2.99", "2001:db8::99"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: {
    listen = ["127.0.0.1:%%PORT_dns%%"];
    rate_limit = 0;
    rebinding = "refuse";
    types = { TXT = "refuse"; MX = "nodata"; ANY = "hinfo"; };
};
EOF
(my $c1 = $conf) =~ s/__EXTRA__//;
$t->write_conf($c1);
$t->run;
my $port = $t->port('dns');

sub q1 { my ($n, $ty, %o) = @_; dns_query($n, $ty, port => $port, %o) }
sub rcode { my ($p) = @_; $p ? $p->header->rcode : 'TIMEOUT' }
sub addrs { my ($p) = @_; $p ? map({ $_->address } grep { $_->type =~ /^(A|AAAA)$/ } $p->answer) : () }

# -- rebinding = refuse, deny_addresses, gateway, own address -----------------------------------
is(join(' ', addrs(q1('clean.wild.test', 'A'))), '192.0.2.7', 'control: a clean answer');
for my $c (['mixed.wild.test', 'A', 'public + RFC 1918 (refuse: the whole answer)'],
           ['listed.wild.test', 'A', 'address in network.deny_addresses'],
           ['listed6.wild.test', 'AAAA', 'IPv6 address in network.deny_addresses'],
           ['gw.wild.test', 'A', 'the default gateway (the host)'],
           ['own.wild.test', 'A', "this host's own address"]) {
    my ($n, $ty, $name) = @$c;
    my $p = q1($n, $ty);
    ok($p && !addrs($p), "$name: no address reaches the agent (" . rcode($p) . ')');
    isnt(rcode($p), 'NOERROR', "$name: not a NOERROR (refuse mode)");
}
ok(scalar $t->wait_audit(sub {
    grep { ($_->{event} // '') eq 'dns_rebinding' && ($_->{action} // '') eq 'refused'
           && ($_->{subject} // '') =~ /^gw\.wild\.test\.?$/i } @_
}), 'rebinding refusal audited');

# -- type rules from the config ---------------------------------------------------------------------
{
    my $before = $dns->count;
    is(rcode(q1('allowed.test', 'TXT')), 'REFUSED', 'TXT = "refuse": REFUSED');
    my $p = q1('allowed.test', 'MX');
    ok($p && rcode($p) eq 'NOERROR' && !$p->answer, 'MX = "nodata": empty NOERROR');
    $p = q1('allowed.test', 'ANY');
    ok($p && rcode($p) eq 'NOERROR' && (grep { $_->type eq 'HINFO' } $p->answer),
       'ANY = "hinfo": the RFC 8482 answer');
    is(rcode(q1('denied.test', 'ANY')), 'NXDOMAIN', 'ANY = "hinfo" of a denied name: NXDOMAIN');
    is($dns->count - $before, 0, 'none of them forwarded');
}

# -- the cache ----------------------------------------------------------------------------------------
{
    my $p1 = q1('cached.wild.test', 'A');
    is(join(' ', addrs($p1)), '192.0.2.8', 'cache: first answer');
    my $n0 = $dns->count('cached.wild.test', 'A');
    my $p2 = q1('CaChEd.WiLd.TeSt', 'A');
    is(join(' ', addrs($p2)), '192.0.2.8', 'cache: second answer');
    is($p2 ? ($p2->question)[0]->qname : '', 'CaChEd.WiLd.TeSt', 'cache: question case of this query');
    ok($p2 && ($p2->answer)[0] && lc(($p2->answer)[0]->owner) =~ /^cached\.wild\.test\.?$/,
       'cache: answer owner is the asked name');
    # raw query with a chosen ID
    my $q = Net::DNS::Packet->new('cached.wild.test', 'A');
    $q->header->id(4321);
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'udp');
    $sock->send($q->data);
    my $r;
    IO::Select->new($sock)->can_read(kapd_tmo(2)) and $sock->recv($r, 65535);
    is(defined $r ? unpack('n', $r) : -1, 4321, 'cache: reply carries this query\'s ID');
    is(rcode(q1('cached.wild.test', 'TXT')), 'REFUSED', 'cache: another type is not served from it');
    is(rcode(q1('cached.wild.test', 'A', class => 'CH')), 'REFUSED', 'cache: another class is not served from it');
    is(join(' ', addrs(q1('other.wild.test', 'A'))), '192.0.2.9', 'cache: another name gets its own answer');
    ok($dns->count('cached.wild.test', 'A') <= $n0 + 2, 'cache: answers served without asking upstream again')
        or diag('upstream A queries for cached.wild.test: ' . $dns->count('cached.wild.test', 'A'));

    # big answer cached via TCP, then asked over UDP without EDNS: truncated
    my $pt = q1('big.wild.test', 'A', tcp => 1);
    is(scalar(addrs($pt)), 90, 'cache: big answer over TCP');
    my $pu = q1('big.wild.test', 'A', igntc => 1);
    ok($pu && $pu->header->tc && length($pu->data) <= 512,
       'cache: the same answer to a UDP client without EDNS is truncated (TC, <= 512 bytes)');
    $pu = q1('big.wild.test', 'A', igntc => 1, bufsize => 4096);
    ok($pu && length($pu->data) <= 1232, 'cache: ... and within edns_size for an EDNS client');
}

# -- a reload that denies a cached name takes effect at once ---------------------------------------------
{
    is(rcode(q1('cached.wild.test', 'A')), 'NOERROR', 'before the reload: allowed (cached)');
    (my $c2 = $conf) =~ s/"\*\.wild\.test" __EXTRA__/"other.wild.test"/;
    $t->write_conf($c2);
    like($t->reload // '', qr/reloaded/, 'reload without *.wild.test');
    is(rcode(q1('cached.wild.test', 'A')), 'NXDOMAIN', 'after the reload: the cached name is denied');
    is(rcode(q1('CACHED.wild.test', 'A')), 'NXDOMAIN', 'after the reload: in any case');
    is(rcode(q1('other.wild.test', 'A')), 'NOERROR', 'after the reload: the still-allowed name answers');
}

is(rcode(q1('allowed.test', 'A')), 'NOERROR', 'kapd alive and answering');
$t->done_testing;
