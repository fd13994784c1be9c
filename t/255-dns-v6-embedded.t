#!/usr/bin/perl
# 255-dns-v6-embedded.t -- adversarial: AAAA answers of allowed names that
# hide a denied IPv4 address inside an IPv6 one, or name an IPv6 range
# that is private by definition (the DNS half of t/163).
#
# bypass-classes.md #5 (IPv4-mapped, -compatible, -translated, NAT64,
# 6to4, local-use NAT64), #6 (rebinding to loopback/metadata/RFC 1918);
# DESIGN §6: addresses in the deny set are filtered from answers (the
# default rebinding mode).  Each name also has one public AAAA
# (2001:db8::5), which must be all the agent gets; a name with only the
# hidden address gets no address at all.  Every filtering is audited.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Socket qw(inet_pton AF_INET6);

my $t = Test::Kapd->new->has_kapd->has_module('dns');

my @bad = (
    ['translated-lo',   '::ffff:0:7f00:1',      'IPv4-translated loopback'],
    ['translated-meta', '::ffff:0:a9fe:a9fe',   'IPv4-translated metadata'],
    ['translated-10',   '::ffff:0:a00:1',       'IPv4-translated RFC 1918'],
    ['mapped-meta',     '::ffff:169.254.169.254', 'IPv4-mapped metadata'],
    ['compat-meta',     '::a9fe:a9fe',          'IPv4-compatible metadata'],
    ['nat64-meta',      '64:ff9b::a9fe:a9fe',   'NAT64 metadata'],
    ['nat64-lo',        '64:ff9b::7f00:1',      'NAT64 loopback'],
    ['nat64local',      '64:ff9b:1::a9fe:a9fe', 'local-use NAT64'],
    ['sixtofour-lo',    '2002:7f00:1::1',       '6to4 loopback'],
    ['sixtofour-meta',  '2002:a9fe:a9fe::1',    '6to4 metadata'],
    ['sixtofour-192',   '2002:c0a8:101::1',     '6to4 RFC 1918'],
    ['teredo',          '2001:0:a9fe:a9fe::1',  'Teredo'],
    ['sitelocal',       'fec0::1',              'site-local (deprecated)'],
    ['sitelocal2',      'feff:ffff::1',         'site-local, top of the range'],
    ['linklocal',       'febf::1',              'link-local, top of the range'],
    ['ula',             'fdff:ffff::1',         'ULA'],
    ['discard',         '100::1',               'discard-only'],
    ['mcast',           'ff05::2',              'site multicast'],
    ['unspec',          '::',                   'unspecified'],
    ['lo6',             '::1',                  'loopback'],
);
my %zone = ('allowed.test' => ['AAAA 2001:db8::5']);
for my $b (@bad) {
    $zone{"$b->[0].wild.test"}  = ["AAAA $b->[1]", 'AAAA 2001:db8::5'];
    $zone{"$b->[0].only.test"}  = ["AAAA $b->[1]"];
}
Test::Kapd::FakeDNS->new($t, port => $t->port('up'), zone => \%zone, ttl => 0);

$t->write_conf(<<'EOF');
kapd: { load = ["dns"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
network: { allow = ["allowed.test", "*.wild.test", "*.only.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
$t->run;
my $port = $t->port('dns');

sub canon { my $b = inet_pton(AF_INET6, $_[0]); defined $b ? unpack('H32', $b) : "bad:$_[0]" }
sub aaaa {
    my ($name, %o) = @_;
    my $p = dns_query($name, 'AAAA', port => $port, %o);
    return ($p ? $p->header->rcode : 'TIMEOUT',
            $p ? [map { canon($_->address) } grep { $_->type eq 'AAAA' } $p->answer] : []);
}

my ($rc, $a) = aaaa('allowed.test');
is("$rc @$a", 'NOERROR ' . canon('2001:db8::5'), 'control: a public AAAA passes');

my $pub = canon('2001:db8::5');
for my $b (@bad) {
    my ($n, $addr, $what) = @$b;
    for my $tcp (0, 1) {
        my $via = $tcp ? ' (TCP)' : '';
        ($rc, $a) = aaaa("$n.wild.test", tcp => $tcp);
        is("$rc @$a", "NOERROR $pub", "$what ($addr) next to a public one$via: filtered out");
    }
    ($rc, $a) = aaaa("$n.only.test");
    ok($rc ne 'TIMEOUT' && !@$a, "$what ($addr) alone: no address reaches the agent ($rc)")
        or diag("got: @$a");
}

# every filtering is audited as rebinding, naming the query
{
    my @miss = grep { my $n = $_->[0];
        !grep { ($_->{event} // '') eq 'dns_rebinding'
                && lc($_->{subject} // '') =~ /^\Q$n\E\.wild\.test\.?$/ }
        $t->wait_audit(sub { grep { ($_->{event} // '') eq 'dns_rebinding'
                                    && ($_->{subject} // '') =~ /^\Q$n\E\.wild/i } @_ }, 2)
    } @bad;
    is(scalar @miss, 0, 'every filtered answer audited as dns_rebinding')
        or diag('not audited: ' . join(', ', map { $_->[0] } @miss));
}

($rc) = aaaa('allowed.test');
is($rc, 'NOERROR', 'kapd alive and answering');
$t->done_testing;
