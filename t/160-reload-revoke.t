#!/usr/bin/perl
# 160-reload-revoke.t -- adversarial: taking a domain away while the agent
# is using it.
#
# DESIGN §5: connections finish under the generation they began in; new
# ones take the new one.  So after a reload that removes a domain (or adds
# a deny), every NEW connection is refused at once -- plain HTTP, CONNECT
# and DNS alike -- even when the agent had warmed caches or pooled
# upstreams for it.  A reload with a broken file keeps the old (stricter)
# policy, and a reload that denies a name never widens anything else.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('up'), ttl => 300, zone => {
    'keep.example'   => ['A 127.0.0.2'],
    'revoke.example' => ['A 127.0.0.2'],
    'a.wild.example' => ['A 127.0.0.2'],
});

my $conf = <<'EOF';
kapd: { load = ["http_connect", "dns"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; reload_check = 0; };
network: {
    allow = ["keep.example:%%PORT_origin%%", __ALLOW__ "127.0.0.2:%%PORT_origin%%"];
    deny = [__DENY__];
};
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
sub conf {
    my ($allow, $deny) = @_;
    (my $c = $conf) =~ s/__ALLOW__/$allow/;
    $c =~ s/__DENY__/$deny/;
    return $c;
}
$t->write_conf(conf('"revoke.example:%%PORT_origin%%", "*.wild.example:%%PORT_origin%%",', ''));
$t->run;
my $proxy = $t->port('proxy');

sub get {
    my ($h) = @_;
    my $p = http_parse(http_raw($proxy, "GET http://$h:$o/x HTTP/1.1\r\nHost: $h:$o\r\n"
                                . "Connection: close\r\n\r\n"));
    return $p ? $p->{status} : 'none';
}
sub tunnel {
    my ($h) = @_;
    my ($s, $r) = connect_tunnel($proxy, "$h:$o");
    close $s if $s;
    return $r ? $r->{status} : 'none';
}
sub dns { my $p = dns_query($_[0], 'A', port => $t->port('dns')); $p ? $p->header->rcode : 'TIMEOUT' }

# warm everything: resolver cache, DNS answer cache, upstream pool
for (1 .. 2) {
    is(get('revoke.example'), 200, 'before: plain HTTP allowed');
    is(tunnel('revoke.example'), 200, 'before: CONNECT allowed');
    is(dns('revoke.example'), 'NOERROR', 'before: DNS allowed');
    is(get('a.wild.example'), 200, 'before: wildcard allowed');
}
# a keep-alive client connection opened before the reload
my $ka = tcp_connect($proxy);
my $ka1 = http_parse(http_raw($ka, "GET http://revoke.example:$o/ka1 HTTP/1.1\r\n"
                             . "Host: revoke.example:$o\r\n\r\n", one => 1));
is($ka1 && $ka1->{status}, 200, 'keep-alive connection: first request before the reload');
# a tunnel opened before the reload (finishes under its generation)
my ($old, $r) = connect_tunnel($proxy, "revoke.example:$o");
is($r && $r->{status}, 200, 'a tunnel opened before the reload');

$t->write_conf(conf('', '"a.wild.example"'));
like($t->reload // '', qr/reloaded/, 'reload: revoke.example removed, a.wild.example denied');

is(get('revoke.example'), 403, 'after: plain HTTP refused at once');
is(tunnel('revoke.example'), 403, 'after: CONNECT refused at once');
is(dns('revoke.example'), 'NXDOMAIN', 'after: DNS refused at once (no cached answer)');
is(get('a.wild.example'), 403, 'after: the new deny rule applies');
is(dns('a.wild.example'), 'NXDOMAIN', 'after: ... to DNS too');
is(get('keep.example'), 200, 'after: the kept name still works');
{
    # the next request on a keep-alive connection is a new decision: it must
    # not keep a revoked name reachable for as long as the agent keeps the
    # connection busy (nginx closes idle keep-alive connections on reload)
    my $ka2 = http_parse(http_raw($ka, "GET http://revoke.example:$o/ka2 HTTP/1.1\r\n"
                                 . "Host: revoke.example:$o\r\nConnection: close\r\n\r\n",
                                 one => 1));
    ok(!$ka2 || $ka2->{status} == 403,
       'keep-alive connection from before the reload: the revoked name is refused (or closed)');
}

# a broken edit keeps the stricter policy
$t->write_file('kap.conf', conf('"revoke.example:%%PORT_origin%%",', '') . "\nnetwork: { broken");
like($t->reload // '', qr/reload failed/, 'a broken edit is refused');
is(get('revoke.example'), 403, 'after a failed reload: still refused');
is(dns('revoke.example'), 'NXDOMAIN', 'after a failed reload: DNS still refused');

ok(scalar $t->wait_audit(sub {
    grep { ($_->{subject} // '') eq 'revoke.example' && ($_->{action} // '') eq 'denied'
           && ($_->{gen} // 0) > 1 } @_ }), 'the refusals are audited under the new generation')
    or diag(explain [grep { ($_->{subject} // '') eq 'revoke.example' } $t->audit]);
close $old if $old;

$t->done_testing;
