#!/usr/bin/perl
# 712-kap-netcheck.t -- `kap netcheck` (kap-shim's netcheck role), the
# probes of an agent's init step, against addresses in this test's own
# namespace: a direct TCP port that is open and one that is closed, DNS
# through kapd's dns listener and through a port where nobody answers,
# CONNECT through kapd to an allowed and a denied target.  PASS/FAIL per
# line; exit 0 only when all pass, 1 otherwise (the init step fails
# closed), 2 for a bad probe; --wait repeats the set until it passes or
# the deadline, printing the last round.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Socket::IP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module(qw/http_connect dns/);
my $kap = $t->builddir . '/kap';
my $shim = $t->builddir . '/kap-shim';
plan(skip_all => "kap or kap-shim not built") unless -x $kap && -x $shim;

my ($oport, $closed, $nodns) = map { $t->port($_) } qw/origin closed nodns/;
my $ols = IO::Socket::IP->new(LocalHost => '127.0.0.5', LocalPort => $oport,
    Listen => 16, ReuseAddr => 1) or die "listen: $!";
$t->run_daemon(sub { while (my $c = $ols->accept) { close $c } });
close $ols;

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect", "dns"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; };
network: { allow = ["127.0.0.5:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 1; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; };
EOF
$t->run;
my ($proxy, $dport) = ($t->port('proxy'), $t->port('dns'));

sub netcheck {
    my $out = `KAP_SHIM=$shim $kap netcheck --timeout 1 @_ 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = netcheck(
    "--open tcp:127.0.0.5:$oport",
    "--blocked tcp:127.0.0.1:$closed",
    "--open dns:127.0.0.1:$dport/denied.example",
    "--blocked dns:127.0.0.1:$nodns/denied.example",
    "--open connect:127.0.0.1:$proxy/127.0.0.5:$oport",
    "--blocked connect:127.0.0.1:$proxy/denied.example:443");
is($rc, 0, 'every probe as expected: exit 0') or diag($out);
my @l = split /\n/, $out;
is(scalar(grep { /^PASS / } @l), 6, 'six PASS lines');
like($out, qr/^PASS open tcp:127\.0\.0\.5:\d+ \(connected\)$/m, 'open TCP port: connected');
like($out, qr/^PASS blocked tcp:127\.0\.0\.1:\d+ \(not connected: Connection refused\)$/m,
     'closed port: blocked');
like($out, qr/^PASS open dns:\S+ \(answered (REFUSED|NXDOMAIN|NOERROR)/m, 'kapd DNS answers');
like($out, qr/^PASS blocked dns:\S+ \(no answer/m, 'no resolver there: blocked');
like($out, qr/^PASS open connect:\S+ \(proxy answered 200/m, 'CONNECT to the allowed target: 200');
like($out, qr/^PASS blocked connect:\S+ \(proxy answered 403/m, 'CONNECT to a denied target: 403');

# the init step fails closed: a direct connection that should be blocked
($rc, $out) = netcheck("--blocked tcp:127.0.0.5:$oport", "--open tcp:127.0.0.1:$proxy");
is($rc, 1, 'a direct connection succeeds where it must not: exit 1');
like($out, qr/^FAIL blocked tcp:127\.0\.0\.5:\d+ \(connected\)$/m, 'FAIL line for it');
like($out, qr/^PASS open tcp:127\.0\.0\.1:\d+/m, 'the other probe still runs and passes');

($rc, $out) = netcheck("--open dns:127.0.0.1:$nodns/x.example");
is($rc, 1, 'no DNS answer where one is expected: exit 1');

# --wait: the set is run again until it passes (a policy reaching a new
# pod late), only the last round printed; a deadline that passes fails
my $t0 = time;
($rc, $out) = netcheck('--wait 3', "--blocked tcp:127.0.0.5:$oport");
is($rc, 1, '--wait 3 with a probe that keeps failing: exit 1');
is(scalar(() = $out =~ /^FAIL /mg), 1, '--wait: only the last round is printed') or diag($out);
cmp_ok(time - $t0, '>=', 1.9, '--wait: it retried until the deadline');
my $late = $t->port('late');
$t->run_daemon(sub {
    select(undef, undef, undef, 1.5);   # the listener comes up later
    my $l = IO::Socket::IP->new(LocalHost => '127.0.0.5', LocalPort => $late,
        Listen => 16, ReuseAddr => 1) or die "listen: $!";
    while (my $c = $l->accept) { close $c }
});
($rc, $out) = netcheck('--wait ' . int(kapd_tmo(20)), "--open tcp:127.0.0.5:$late",
                       "--blocked tcp:127.0.0.1:$closed");
is($rc, 0, '--wait: a port that opens later passes') or diag($out);
is($out =~ tr/\n//, 2, '--wait: one line per probe') or diag($out);
($rc, $out) = netcheck('--wait 0', "--open tcp:127.0.0.5:$oport");
is($rc, 2, '--wait 0: usage error');

($rc, $out) = netcheck("--open tcp:localhost:80");
is($rc, 2, 'a name instead of an address: usage error, exit 2');
($rc, $out) = netcheck();
is($rc, 2, 'no probe: exit 2');
$out = `KAP_SHIM=$shim $kap netcheck --help 2>&1`;
$rc = $? >> 8;
is($rc, 0, '--help: exit 0');
like($out, qr/usage: kap netcheck/, '--help: usage');

$t->done_testing;
