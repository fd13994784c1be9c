#!/usr/bin/perl
# 151-connect-names.t -- adversarial: domain-matching tricks against the
# allowlist, through CONNECT and absolute-form GET.
#
# bypass-classes.md #12 (pattern-matching mistakes: suffix over-match,
# unescaped dots), DESIGN §6 (exact or *.suffix, deny wins, case-folded,
# one trailing dot ignored, A-labels only, raw non-ASCII refused, ports
# per rule).  evil.test resolves to 127.0.0.3 where a fake origin listens
# and whose address is even allowed by an address rule: only the *name*
# check stands between a trick and a connection there.  A denied name must
# never be resolved (the fake DNS counts every query) and never dialled;
# every refusal is audited with a reason.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

system('ip', 'addr', 'add', '127.0.0.3/32', 'dev', 'lo');  # in 127/8 anyway
my $o = $t->port('origin');
my $good = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'good',
                                     addr => '127.0.0.2');
my $evil = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'evil',
                                     addr => '127.0.0.3');
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'github.com'              => ['A 127.0.0.2'],
    'a.wild.example'          => ['A 127.0.0.2'],
    'b.a.wild.example'        => ['A 127.0.0.2'],
    'wild.example'            => ['A 127.0.0.3'],
    'bad.wild.example'        => ['A 127.0.0.3'],
    'xn--gthub-n4a.com'       => ['A 127.0.0.3'],
    'git.example'             => ['A 127.0.0.2'],
    'plain.example'           => ['A 127.0.0.3'],
    map({ $_ => ['A 127.0.0.3'] } qw(
        evil.test github.com.evil.test evilgithub.com github.com.evil
        github.comevil.test evil.test.github.com.evil.test
        wild.example.evil.test awild.example)),
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["github.com:%%PORT_origin%%", "*.wild.example:%%PORT_origin%%",
             "git.example:22", "plain.example",
             "127.0.0.2:%%PORT_origin%%", "127.0.0.3:%%PORT_origin%%"];
    deny = ["bad.wild.example"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
$t->run;
my $proxy = $t->port('proxy');

sub ask {
    my ($req) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', 0);
    my $lport = $s->sockport;
    my $resp = http_raw($s, $req, timeout => 5);
    close $s;
    my $p = http_parse($resp);
    return ($p ? $p->{status} : 'none', $lport);
}

sub audited {
    my ($lport) = @_;
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($e) = $m->($t->wait_audit($m, 3));
    return $e;
}

sub connect_req { my ($a) = @_; "CONNECT $a HTTP/1.1\r\nHost: $a\r\n\r\n" }

sub allowed {
    my ($auth, $name) = @_;
    my ($st) = ask(connect_req($auth));
    is($st, 200, "$name: allowed");
}

sub refused {
    my ($req, $name, $want) = @_;
    $req = connect_req($req) unless $req =~ /\r\n/;
    my $before = $evil->connections;
    my ($st, $lport) = ask($req);
    like($st, $want // qr/^(400|403)$/, "$name: refused ($st)");
    my $seen = wait_until(sub { $evil->connections > $before }, $st eq '200' ? 2 : 0.2);
    ok(!$seen, "$name: not dialled");
    my $e = audited($lport);
    ok($e && length($e->{reason} // ''), "$name: audited with a reason")
        or diag("no audit line for client port $lport");
}

# -- controls -------------------------------------------------------------------
allowed("github.com:$o", 'exact name');
allowed("GITHUB.COM.:$o", 'upper case and one trailing dot');
allowed("GiThUb.CoM:$o", 'mixed case');
allowed("a.wild.example:$o", 'wildcard: one label');
allowed("b.a.wild.example:$o", 'wildcard: two labels');
allowed("A.WILD.EXAMPLE.:$o", 'wildcard: case and trailing dot');

# -- suffix / prefix / separator tricks ---------------------------------------------
refused("github.com.evil.test:$o", 'allowed name as a prefix of an evil one', qr/^403$/);
refused("evilgithub.com:$o", 'allowed name as a suffix without a dot', qr/^403$/);
refused("github.comevil.test:$o", 'allowed name glued to an evil one');
refused("github.com%2eevil.test:$o", 'percent-encoded dot');
refused("github.com%2Eevil.test:$o", 'percent-encoded dot (upper)');
refused("github.com..:$o", 'two trailing dots');
refused(".github.com:$o", 'leading dot');
refused("github..com:$o", 'empty label');
refused("github.com\\.evil.test:$o", 'backslash-escaped dot');
refused("github.com;.evil.test:$o", 'semicolon');
refused("github.com,evil.test:$o", 'comma');
refused("github.com_evil.test:$o", 'underscore glue');
refused("wild.example:$o", '*.suffix does not match the bare suffix', qr/^403$/);
refused("awild.example:$o", '*.suffix does not match a longer last label', qr/^403$/);
refused("wild.example.evil.test:$o", 'wildcard suffix as a prefix', qr/^403$/);
refused("*.wild.example:$o", 'a literal "*" label');
refused("bad.wild.example:$o", 'deny overrides a wildcard allow', qr/^403$/);
refused("BAD.Wild.Example.:$o", 'deny override: case and trailing dot', qr/^403$/);
refused("evil.test:$o", 'plain denied name', qr/^403$/);

# -- IDN / non-ASCII / control bytes -----------------------------------------------
refused("xn--gthub-n4a.com:$o", 'A-label look-alike of github.com', qr/^403$/);
refused("g\xc3\xadthub.com:$o", 'raw UTF-8 look-alike');
refused("github.com\xc2\xa0:$o", 'trailing no-break space (UTF-8)');
refused("github\x00.com:$o", 'NUL inside the name');
refused("github.com\x00.evil.test:$o", 'NUL before an evil suffix');
refused("github.com\t:$o", 'tab in the name');
refused("github.com\x0b:$o", 'vertical tab in the name');
refused("CONNECT github.com .evil.test:$o HTTP/1.1\r\nHost: github.com\r\n\r\n",
        'space in the authority');
refused(('a' x 64) . ".wild.example:$o", 'label of 64 octets');
refused(join('.', ('a' x 63) x 4) . ".wild.example:$o", 'name over 253 octets');

# -- ports per rule -----------------------------------------------------------------
refused("git.example:443", 'port rule: git.example only on 22, not 443', qr/^403$/);
refused("git.example:$o", 'port rule: git.example only on 22', qr/^403$/);
refused("github.com:22", 'github.com (explicit port) not on 22', qr/^403$/);
refused("github.com:443", 'github.com (explicit port) not on 443', qr/^403$/);
for my $p (22, 853, 8443, 3128, 53, 25, 1443) {
    refused("plain.example:$p", "rule without a port: not on $p (only 80, 443)", qr/^403$/);
}

# -- absolute-form tricks -------------------------------------------------------------
my %abs = (
    "http://github.com\@evil.test:$o/"          => 'userinfo naming the allowed host',
    "http://github.com:$o\@evil.test:$o/"       => 'userinfo with a port',
    "http://evil.test:$o#\@github.com:$o/"      => 'fragment then userinfo',
    "http://evil.test:$o\\\@github.com:$o/"     => 'backslash then userinfo',
    "http://evil.test:$o?\@github.com:$o/"      => 'query then userinfo',
    "http://github.com.evil.test:$o/"           => 'allowed name as a prefix',
    "http://github.com%2eevil.test:$o/"         => 'percent-encoded dot',
);
for my $u (sort keys %abs) {
    (my $hostport) = $u =~ m{^http://([^/]*)};
    refused("GET $u HTTP/1.1\r\nHost: $hostport\r\nConnection: close\r\n\r\n",
            "GET $abs{$u}");
}

# -- credentials presented to the proxy never widen the policy (bypass #10) -----------
for my $h ('Proxy-Authorization: Basic YWRtaW46YWRtaW4=',
           'Proxy-Authorization: Bearer kap-admin-token',
           'X-Kap-Allow: evil.test', 'X-Forwarded-For: 127.0.0.1',
           'Forwarded: for=127.0.0.1;host=github.com') {
    refused("CONNECT evil.test:$o HTTP/1.1\r\nHost: evil.test:$o\r\n$h\r\n\r\n",
            "CONNECT evil.test with '$h'", qr/^403$/);
}
refused("GET http://evil.test:$o/ HTTP/1.1\r\nHost: evil.test:$o\r\n"
        . "Proxy-Authorization: Basic YWRtaW46YWRtaW4=\r\nConnection: close\r\n\r\n",
        'GET evil.test with Proxy-Authorization', qr/^403$/);
# method tokens are case-sensitive: a lower-case "connect" is no tunnel
refused("connect evil.test:$o HTTP/1.1\r\nHost: evil.test:$o\r\n\r\n",
        'lower-case connect');

# -- nothing evil was ever resolved ----------------------------------------------------
my @evil_q = grep { $_->{name} =~ /evil|^xn--|^bad\.|^awild|^wild\.example$/i }
             @{$dns->queries};
is(scalar @evil_q, 0, 'no denied name was ever sent to the upstream DNS')
    or diag(join ', ', map { $_->{name} } @evil_q);
is($evil->connections, 0, 'the evil origin never saw a connection');
allowed("github.com:$o", 'kapd still serves after everything');

$t->done_testing;
