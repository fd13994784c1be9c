#!/usr/bin/perl
# 614-capsule-observe.t -- `kap run --observe`: kap starts its kapd with
# --observe (one observe mode, the core's: kapd.policy.observe), so a name
# the policy does not list is let through and recorded as "observed", and
# `kap why-denied` lists it to build the allowlist -- while a name that
# resolves into the address deny set is still refused with a 403 that
# says why, and a plain `kap run` of the same policy still refuses.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t, 'curl');
my $dir = $t->testdir;
$t->plan(9);

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns2'), zone => {
    'unlisted.test' => ['A 127.0.0.2'],
    'inside.test'   => ['A 127.0.0.3'],
});
# 127.0.0.2:origin is listed on purpose (a test origin inside the deny
# set); 127.0.0.3 is not, so inside.test resolves into the deny set
$t->write_file_expand('observe.conf', <<'EOF');
network: { allow = ["allowed.test", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns2%%"]; };
http_connect: { };
dns: { };
EOF
$t->write_file_expand('probe.sh', <<'EOF');
code() { curl -s -o "$2" -w '%{http_code}' --max-time 5 "$1"; }
echo "unlisted=$(code http://unlisted.test:%%PORT_origin%%/ /dev/null)"
echo "inside=$(code http://inside.test:%%PORT_origin%%/ inside.body)"
echo "inside_body=$(tr '\n' ' ' < inside.body)"
EOF

my $r = $c->run({ tag => 'plain' }, '-c', "$dir/observe.conf", '--', 'sh', "$dir/probe.sh");
my $kv = Test::Kapd::Capsule::kv($r->{out});
is($kv->{unlisted}, '403', 'kap run: a name the policy does not list is refused')
    or diag($r->{err});

$r = $c->run({ tag => 'observe' }, '--observe', '-c', "$dir/observe.conf", '--',
             'sh', "$dir/probe.sh");
$kv = Test::Kapd::Capsule::kv($r->{out});
is($r->{rc}, 0, 'kap run --observe ran') or diag($r->{err});
is($kv->{unlisted}, '200', 'kap run --observe: the unlisted name is let through');
is($origin->connections, 1, 'and reached the origin once');
is($kv->{inside}, '403', 'kap run --observe: a name resolving into the deny set is still refused');
like($kv->{inside_body} // '', qr/inside\.test resolves to 127\.0\.0\.3 \(loopback\)/,
     'with a 403 that says which address and why');

my $why = `cd '$dir' && HOME='$dir/home' XDG_RUNTIME_DIR='$dir/run' '$c->{sh}' '$c->{kap}' why-denied 2>&1`;
like($why, qr/unlisted\.test.*observed/s,
     'kap why-denied lists the observed name (to add it to the allowlist)');
like($why, qr/127\.0\.0\.3/, 'and the refused address');
unlike($r->{err}, qr/error|cannot/i, 'no error from kap or kapd')
    or diag($r->{err});
