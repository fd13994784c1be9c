#!/usr/bin/perl
# 166-http-authority-forms.t -- adversarial: request targets and Host
# fields in the spellings t/150, t/151 and t/153 do not try.
#
# bypass-classes.md #12 (matching mistakes), DESIGN §6 (Host must agree
# with the absolute URI; names are ASCII as on the wire; IP literals only
# when listed).  Schemes other than http (https, ws, wss, ftp, file,
# scheme-relative) are never forwarded as plain HTTP; percent-encoded,
# Unicode-dotted and zone-id hosts are refused; the Host field must name
# the URI's host and port (an explicit default port and one trailing dot
# are the same; anything else is not); ports with leading zeros name the
# same port (normalised) and never wrap.  Nothing refused reaches the
# origin; the evil origin (which an address rule even allows) is never
# dialled.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $o = $t->port('origin');
my $good = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'good', addr => '127.0.0.2');
my $evil = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'evil', addr => '127.0.0.3');
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.example' => ['A 127.0.0.2'],
    'evil.test'       => ['A 127.0.0.3'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%",
                    "127.0.0.3:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";

sub ask {
    my ($req) = @_;
    my $s = tcp_connect($proxy) or return ('noconnect', 0);
    my $lport = $s->sockport;
    my $p = http_parse(http_raw($s, $req, timeout => 5));
    close $s;
    return ($p ? $p->{status} : 'none', $lport);
}

sub refused {
    my ($req, $name, $want) = @_;
    my ($g, $e) = ($good->count, $evil->connections);
    my ($st, $lport) = ask($req);
    like($st, $want // qr/^(400|403|501)$/, "$name: refused ($st)");
    wait_until(sub { $good->count > $g || $evil->connections > $e }, 0.3);
    is($good->count - $g, 0, "$name: nothing reached the origin");
    is($evil->connections - $e, 0, "$name: the evil origin was not dialled");
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($ev) = $m->($t->wait_audit($m, 3));
    ok($ev && length($ev->{reason} // ''), "$name: audited with a reason");
}

sub forwarded {
    my ($req, $name, $target) = @_;
    my $g = $good->count;
    my ($st) = ask($req);
    is($st, 200, "$name: forwarded");
    ok(wait_until(sub { $good->count > $g }, kapd_tmo(3)), "$name: the origin got it");
    my $r = $good->requests->[-1];
    is($r ? $r->{target} : '', $target, "$name: as origin-form $target");
}

sub get { my ($uri, $host) = @_; "GET $uri HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n" }

# -- schemes ---------------------------------------------------------------------------------
for my $c (["https://$A/x",  'https (a plain proxy request cannot be TLS)'],
           ["ws://$A/x",     'ws'],
           ["wss://$A/x",    'wss'],
           ["ftp://$A/x",    'ftp'],
           ["file:///etc/passwd", 'file'],
           ["//$A/x",        'scheme-relative'],
           ["http:$A/x",     'http: without slashes'],
           ["http:/$A/x",    'http: with one slash'],
           ["http:\\\\$A/x", 'http: with backslashes'],
           ["hxxp://$A/x",   'unknown scheme'],
           ["gopher://$A/_GET%20/",  'gopher']) {
    refused(get($c->[0], $A), "scheme: $c->[1]");
}
forwarded(get("HTTP://$A/upper", $A), 'scheme in upper case', '/upper');

# -- hosts in the URI --------------------------------------------------------------------------
for my $c (["http://%61llowed.example:$o/x",           'percent-encoded letter'],
           ["http://allowed%2eexample:$o/x",           'percent-encoded dot'],
           ["http://allowed\xe3\x80\x82example:$o/x",  'ideographic full stop'],
           ["http://allowed\xef\xbc\x8eexample:$o/x",  'full-width full stop'],
           ["http://[fe80::1%25lo]:$o/x",              'IPv6 zone id'],
           ["http://evil.test\\.allowed.example:$o/x", 'backslash in the host'],
           ["http://allowed.example..:$o/x",           'two trailing dots'],
           ["http://allowed.example:$o:$o/x",          'two ports'],
           ["http://allowed.example:/x",               'empty port'],
           ["http://allowed.example:0/x",              'port 0'],
           ["http://allowed.example:" . (65536 + $o) . "/x", 'port past 65535']) {
    refused(get($c->[0], $c->[0] =~ m{^http://([^/]*)} ? $1 : $A), "URI host: $c->[1]");
}
forwarded(get("http://allowed.example:0$o/lz", $A), 'port with a leading zero (same port)', '/lz')
    if length("0$o") <= 5;

# -- Host against the URI ----------------------------------------------------------------------------
for my $c (["evil.test:$o",               'another host'],
           ['allowed.example',            'the URI host without its port (port 80)'],
           ["allowed.example:" . ($o + 1), 'another port'],
           ["allowed.example..:$o",       'two trailing dots'],
           ["allowed.example:$o:$o",      'two ports'],
           ["user\@allowed.example:$o",   'userinfo'],
           ["allowed.example:$o/path",    'a path'],
           ["allowed.example :$o",        'a space before the port'],
           ["allowed.example:$o, evil.test:$o", 'a list'],
           ["127.0.0.2:$o",               'the address the name resolves to'],
           ["[::ffff:127.0.0.2]:$o",      'the mapped address of the name']) {
    refused(get("http://$A/h", $c->[0]), "Host: $c->[1]");
}
forwarded(get("http://$A/h1", "ALLOWED.EXAMPLE.:$o"), 'Host in upper case with a trailing dot', '/h1');
{
    # the explicit default port equals the implicit one (port 80 is not
    # listed, so both are refused the same way: by policy, not by the
    # Host check)
    my ($st1) = ask(get('http://allowed.example/d', 'allowed.example:80'));
    my ($st2) = ask(get('http://allowed.example:80/d', 'allowed.example'));
    is("$st1 $st2", '403 403', 'explicit and implicit port 80 agree (both refused by policy)');
}

is($evil->connections, 0, 'the evil origin never saw a connection');
is(scalar(grep { $_->{name} =~ /evil/ } @{$dns->queries}), 0, 'evil.test was never resolved');
$t->done_testing;
