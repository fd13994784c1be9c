#!/usr/bin/perl
# 250-dns-exfil.t -- adversarial: DNS as an exfiltration / bypass channel.
#
# bypass-classes.md #1 (exfiltration by query names, "sinkholes" that
# only rewrite A/AAAA), #2 (HTTPS/SVCB give ECH configs), #6 (rebinding);
# DESIGN §6 DNS: NXDOMAIN for denied names for every type, ANY refused,
# PTR and HTTPS/SVCB by policy, nothing denied is ever forwarded.
# The fake upstream logs every query it receives: denied names -- in
# every query type, every case, every class -- must never appear there.
#
# CNAME into a denied name (decision, see i-notes.md): kapd follows the
# chain the way every resolver does.  The query name the agent controls
# is under an allowed domain, and the chain's target is chosen by that
# domain's owner, so this opens no channel the agent steers; but the
# reply carries only the records on the chain, addresses in it still go
# through the rebinding filter, and the target asked directly stays
# NXDOMAIN and unforwarded.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Net::DNS;

my $t = Test::Kapd->new->has_kapd->has_module('dns');

my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), zone => {
    'allowed.test'          => ['A 192.0.2.1', 'TXT "hello"', 'NULL \# 2 abcd',
                                'HTTPS 1 . alpn=h2', 'SVCB 1 . alpn=h2',
                                'CAA 0 issue "ca.example"'],
    'into-denied.wild.test' => ['CNAME secret.denied.test'],
    'into-private.wild.test'=> ['CNAME private.denied.test'],
    'secret.denied.test'    => ['A 192.0.2.66', 'TXT "secret-data"'],
    'private.denied.test'   => ['A 10.0.0.1', 'A 192.0.2.67'],
    'denied.test'           => ['A 192.0.2.2', 'TXT "secret"'],
    'v6.wild.test'          => ['AAAA ::1', 'AAAA ::ffff:127.0.0.1', 'AAAA fe80::1',
                                'AAAA fd00::1', 'AAAA 2001:db8::5'],
    'v4.wild.test'          => ['A 0.0.0.0', 'A 127.0.0.1', 'A 169.254.169.254',
                                'A 100.64.0.1', 'A 172.16.5.4', 'A 192.168.0.1',
                                'A 224.0.0.1', 'A 192.0.2.5'],
    'allprivate.wild.test'  => ['A 10.0.0.1', 'A 127.0.0.1'],
    # a hostile upstream answer: records for other owners in the answer
    'poison.wild.test'      => ['A 192.0.2.10',
                                Net::DNS::RR->new('allowed.test. 60 IN A 192.0.2.66'),
                                Net::DNS::RR->new('denied.test. 60 IN A 192.0.2.67'),
                                Net::DNS::RR->new('x.wild.test. 60 IN A 192.0.2.68')],
    'x.wild.test'           => ['A 192.0.2.11'],
    '7.0.18.198.in-addr.arpa' => ['PTR host.allowed.test'],
    '1.0.0.127.in-addr.arpa'  => ['PTR localhost'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["dns"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
network: {
    allow = ["allowed.test", "*.wild.test", "198.18.0.7"];
    deny = ["bad.wild.test"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
$t->run;
my $port = $t->port('dns');

sub q1 { my ($n, $ty, %o) = @_; dns_query($n, $ty, port => $port, %o) }
sub rcode { my ($p) = @_; $p ? $p->header->rcode : 'TIMEOUT' }
sub addrs {
    my ($p) = @_;
    return () unless $p;
    return map { $_->address } grep { $_->type eq 'A' || $_->type eq 'AAAA' } $p->answer;
}

# -- exfiltration-style names under denied domains, every type ----------------------
my @exfil = (
    '6b65793d73336372337420.denied.test',
    'aGVsbG8gd29ybGQ.x.denied.test',
    join('.', ('a' x 63) x 3) . '.denied.test',
    'allowed.test.denied.test',
    'allowed.test.evil.test',
    'allowedxtest',
    'x.allowed.test',                        # exact rule: no subdomains
    'wild.test',                             # *.suffix: not the apex
    'bad.wild.test', 'x.bad.wild.test.evil.test',
    'DeNiEd.TeSt',
    'evil.test',
);
my @types = qw(A AAAA TXT MX NS SOA SRV CNAME DNAME CAA NAPTR HINFO NULL
               HTTPS SVCB DS DNSKEY TYPE65280 TYPE1234);
my $bad_rc = 0;
my @bad;
for my $n (@exfil) {
    for my $ty (@types) {
        my $p = q1($n, $ty);
        my $rc = rcode($p);
        if ($rc !~ /^(NXDOMAIN|REFUSED)$/ || ($p && $p->answer)) {
            $bad_rc++;
            push @bad, "$n $ty: $rc";
        }
    }
}
is($bad_rc, 0, 'denied names: NXDOMAIN (or REFUSED) with no answer for every type')
    or diag(join "\n", @bad[0 .. ($#bad < 20 ? $#bad : 20)]);
my @leaked = grep { my $q = lc $_->{name}; grep { $q eq lc $_ } @exfil } @{$dns->queries};
is(scalar @leaked, 0, 'no denied name ever reached the upstream, in any type')
    or diag(join ', ', map { "$_->{name}/$_->{type}" } @leaked);

# classes other than IN are refused and never forwarded
for my $c (qw(CH HS ANY NONE)) {
    my $p = q1('allowed.test', 'TXT', class => $c);
    like(rcode($p), qr/^(REFUSED|NOTIMP|FORMERR)$/, "class $c refused (" . rcode($p) . ')');
}
{
    my $p = q1('version.bind', 'TXT', class => 'CH');
    like(rcode($p), qr/^(REFUSED|NXDOMAIN|NOTIMP)$/, 'version.bind CH TXT refused');
    ok(!($p && $p->answer), 'version.bind: no answer (no version disclosed)');
}

# -- 0x20 case is preserved, denied or allowed --------------------------------------------
for my $n ('AlLoWeD.tEsT', 'dEnIeD.TeSt') {
    my $p = q1($n, 'A');
    is($p ? ($p->question)[0]->qname : '', $n, "question case preserved for $n");
}

# -- type policy for an allowed name --------------------------------------------------------
my $before = $dns->count;
is(rcode(q1('allowed.test', 'ANY')), 'REFUSED', 'ANY refused');
is(rcode(q1('allowed.test', 'ANY', tcp => 1)), 'REFUSED', 'ANY over TCP refused');
like(rcode(q1('allowed.test', 'NULL')), qr/^REFUSED$/, 'NULL refused');
{
    my $p = q1('allowed.test', 'HTTPS');
    ok($p && rcode($p) eq 'NOERROR' && !$p->answer, 'HTTPS: NODATA (no ECH config reaches the agent)');
    $p = q1('allowed.test', 'SVCB');
    ok($p && rcode($p) eq 'NOERROR' && !$p->answer, 'SVCB: NODATA');
}
is($dns->count('allowed.test', 'ANY') + $dns->count('allowed.test', 'NULL')
   + $dns->count('allowed.test', 'HTTPS') + $dns->count('allowed.test', 'SVCB'), 0,
   'ANY, NULL, HTTPS, SVCB never forwarded');
{
    my $p = q1('allowed.test', 'TXT');
    is($p && ($p->answer)[0] ? ($p->answer)[0]->txtdata : '', 'hello', 'TXT of an allowed name answered');
    $p = q1('allowed.test', 'CAA');
    is(rcode($p), 'NOERROR', 'CAA of an allowed name: by policy, NOERROR');
}

# -- PTR ------------------------------------------------------------------------------------
{
    my $p = q1('7.0.18.198.in-addr.arpa', 'PTR');
    is($p && ($p->answer)[0] ? ($p->answer)[0]->ptrdname : '', 'host.allowed.test',
       'PTR of an allowed address answered');
    for my $n ('1.0.0.127.in-addr.arpa', '254.169.254.169.in-addr.arpa',
               '8.0.18.198.in-addr.arpa', '18.198.in-addr.arpa',
               '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa',
               'secret-data.in-addr.arpa', '7.0.18.198.in-addr.arpa.evil.test') {
        my $r = q1($n, 'PTR');
        like(rcode($r), qr/^(NXDOMAIN|REFUSED)$/, "PTR $n denied");
        is($dns->count($n), 0, "PTR $n not forwarded");
    }
}

# -- CNAME into a denied name --------------------------------------------------------------
{
    my $p = q1('into-denied.wild.test', 'A');
    my @rr = $p ? $p->answer : ();
    ok(!grep({ $_->owner !~ /^(into-denied\.wild\.test|secret\.denied\.test)\.?$/i } @rr),
       'CNAME into a denied name: only records on the chain')
        or diag(join "\n", map { $_->string } @rr);
    ok(!($p && ($p->authority || $p->additional)),
       'CNAME into a denied name: no authority/additional data passed on');
    $p = q1('into-private.wild.test', 'A');
    is(join(' ', sort(addrs($p))), '192.0.2.67',
       'CNAME into a denied name: private target addresses filtered');
    is(rcode(q1('secret.denied.test', 'A')), 'NXDOMAIN', 'the target asked directly: NXDOMAIN');
    is(rcode(q1('secret.denied.test', 'TXT')), 'NXDOMAIN', 'the target asked directly (TXT): NXDOMAIN');
}

# -- a hostile upstream answer with records for other names ------------------------------
{
    my $p = q1('poison.wild.test', 'A');
    my @own = grep { lc($_->owner) =~ /^poison\.wild\.test\.?$/ } $p ? $p->answer : ();
    my @other = grep { lc($_->owner) !~ /^poison\.wild\.test\.?$/ } $p ? $p->answer : ();
    is(scalar @other, 0, 'records for other owners are not passed on')
        or diag(join "\n", map { $_->string } @other);
    is(join(' ', map { $_->address } grep { $_->type eq 'A' } @own), '192.0.2.10',
       'the record of the asked name is');
    is(join(' ', addrs(q1('allowed.test', 'A'))), '192.0.2.1',
       'no poisoning: allowed.test still has its own address afterwards');
    is(join(' ', addrs(q1('x.wild.test', 'A'))), '192.0.2.11',
       'no poisoning: x.wild.test still has its own address afterwards');
    is(rcode(q1('denied.test', 'A')), 'NXDOMAIN', 'no poisoning: denied.test still denied');
}

# -- rebinding answers ------------------------------------------------------------------------
{
    my @a = addrs(q1('v4.wild.test', 'A'));
    is(join(' ', sort @a), '192.0.2.5', 'A: private, loopback, link-local, CGNAT, multicast, 0.0.0.0 filtered');
    my @aaaa = addrs(q1('v6.wild.test', 'AAAA'));
    is(scalar(@aaaa), 1, 'AAAA: ::1, mapped loopback, link-local, ULA filtered');
    like($aaaa[0] // '', qr/^2001:db8:(0:)*:?5$|^2001:db8::5$|^2001:db8:0:0:0:0:0:5$/,
         'AAAA: the public one kept');
    my $p = q1('allprivate.wild.test', 'A');
    ok($p && !addrs($p), 'all addresses private: no address reaches the agent ('
       . rcode($p) . ')');
    ok(scalar $t->wait_audit(sub {
        grep { ($_->{event} // '') eq 'dns_rebinding' && ($_->{subject} // '') =~ /v4\.wild\.test/i } @_
    }), 'rebinding audited');
}

# -- every denial is audited with a reason ----------------------------------------------------
{
    my @a = $t->wait_audit(sub {
        grep { lc($_->{subject} // '') eq 'evil.test' && ($_->{action} // '') eq 'denied' } @_
    });
    my @den = grep { ($_->{action} // '') eq 'denied' } @a;
    ok(scalar(@den) >= scalar(@exfil), 'denials audited (' . scalar(@den) . ')');
    is(scalar(grep { !length($_->{reason} // '') } @den), 0, 'every DNS denial has a reason');
}

is(rcode(q1('allowed.test', 'A')), 'NOERROR', 'kapd alive and answering');
$t->done_testing;
