#!/usr/bin/perl
# 000-harness.t -- the test harness itself: network namespace isolation,
# ports, placeholders, the fakes (DNS, HTTP, TLS, banner) and the client
# helpers.  Needs no kapd, so it runs first and fails loudly when the
# harness is broken.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use Test::Kapd::FakeBanner;

my $t = Test::Kapd->new;
$t->plan(36);

# -- isolation -------------------------------------------------------------
is($ENV{KAPD_TEST_NETNS}, 1, 'running inside the test namespace');
my ($rc, $links) = Test::Kapd::_capture('ip', '-o', 'link', 'show');
my @ifs = map { /^\d+:\s+([^:@]+)/ ? $1 : () } split /\n/, $links;
is_deeply(\@ifs, ['lo'], 'loopback is the only interface');
my (undef, $routes) = Test::Kapd::_capture('ip', 'route', 'show');
is($routes, '', 'no IPv4 route at all (nothing can leave)');
open my $rfh, '<', '/etc/resolv.conf';
my $resolv = do { local $/; <$rfh> };
like($resolv, qr/^nameserver 127\.0\.0\.1$/m, 'resolv.conf points at 127.0.0.1');
unlike($resolv, qr/^nameserver (?!127\.0\.0\.1$)/m, 'and nowhere else');

# -- ports and placeholders ------------------------------------------------
my $p1 = $t->port('a');
my $p2 = $t->port('b');
ok($p1 && $p2 && $p1 != $p2, 'distinct free ports');
is($t->port('a'), $p1, 'port is stable per label');
$t->write_conf(<<'EOF');
x: { listen = "127.0.0.1:%%PORT_a%%"; dir = "%%PREFIX%%"; m = "%%MODULE_PATH%%"; };
EOF
my $c = $t->read_file('kap.conf');
like($c, qr/listen = "127\.0\.0\.1:$p1"/, 'PORT placeholder expanded');
like($c, qr/dir = "\Q${\$t->testdir}\E"/, 'PREFIX placeholder expanded');
$t->write_conf(<<'EOF', 'multi.conf');
x: { listen = "127.0.0.1:%%PORT_a%%"; };
y: { listen = ["[::1]:%%PORT_b%%", "localhost:%%PORT_c%%", "unix:/x/y"]; };
EOF
is_deeply([sort keys %{$t->{wait_ports}{'multi.conf'}}],
          [sort("127.0.0.1:$p1", "[::1]:$p2", '127.0.0.1:' . $t->port('c'))],
          'listen addresses remembered for run() (string and list forms)');

# -- FakeDNS ---------------------------------------------------------------
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'github.com'     => ['A 127.0.0.2', 'AAAA ::1', 'TXT "hello world"'],
    'www.github.com' => ['CNAME alias.github.com'],
    'alias.github.com' => ['CNAME github.com'],
    'big.test'       => [map { "A 127.0.1.$_" } 1 .. 150],
    'slow.test'      => 'silent',
    'fail.test'      => 'SERVFAIL',
});
my $port = $dns->port;
my $r = dns_query('github.com', 'A', port => $port);
is(join(',', map { $_->address } grep { $_->type eq 'A' } $r ? $r->answer : ()),
   '127.0.0.2', 'A record');
$r = dns_query('github.com', 'TXT', port => $port, tcp => 1);
is($r && ($r->answer)[0]->txtdata, 'hello world', 'TXT over TCP');
$r = dns_query('www.github.com', 'A', port => $port);
is(join(' ', map { $_->type } $r ? $r->answer : ()), 'CNAME CNAME A',
   'CNAME chain followed');
$r = dns_query('nope.test', 'A', port => $port);
is($r && $r->header->rcode, 'NXDOMAIN', 'NXDOMAIN');
$r = dns_query('github.com', 'MX', port => $port);
ok($r && $r->header->rcode eq 'NOERROR' && !$r->answer, 'NODATA');
$r = dns_query('fail.test', 'A', port => $port);
is($r && $r->header->rcode, 'SERVFAIL', 'configured rcode');
$r = dns_query('big.test', 'A', port => $port, igntc => 1);
ok($r && $r->header->tc, 'large answer truncated over UDP');
$r = dns_query('big.test', 'A', port => $port, tcp => 1);
is($r ? scalar(grep { $_->type eq 'A' } $r->answer) : 0, 150, 'full answer over TCP');
$r = dns_query('slow.test', 'A', port => $port, timeout => 1);
ok(!$r, 'silent name gets no answer');
is($dns->count('github.com'), 3, 'queries counted per name');
is($dns->count('www.github.com', 'A'), 1, 'queries counted per name and type');

# -- FakeHTTP --------------------------------------------------------------
my $h = Test::Kapd::FakeHTTP->new($t, port => $t->port('http'), name => 'origin');
my $resp = http_parse(http_get('/hello', addr => $h->port, host => 'a.test',
                               headers => ['X-Test: 1']));
my $j = $resp && eval { JSON::PP->new->decode($resp->{body}) };
is($j && $j->{server}, 'origin', 'FakeHTTP names itself');
is($j && $j->{request_line}, 'GET /hello HTTP/1.1', 'and echoes the request line');
ok($j && grep({ $_->[0] eq 'X-Test' && $_->[1] eq '1' } @{$j->{headers}}),
   'and the headers');
my $s = tcp_connect($h->port);
my $two = http_raw($s, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", one => 1, method => 'GET');
my $two2 = http_raw($s, "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
                    one => 1, method => 'POST');
my $j2 = eval { JSON::PP->new->decode(http_parse($two2)->{body}) };
ok(http_parse($two)->{status} == 200 && $j2 && $j2->{body} eq 'abc',
   'keep-alive: two requests on one connection, body echoed');
is($h->count, 3, 'requests recorded');

# -- FakeHTTP with TLS -----------------------------------------------------
SKIP: {
    my $tls = eval { Test::Kapd::FakeHTTP->new($t, port => $t->port('tls'),
        name => 'tls', tls => 1, cert_names => ['a.test', '127.0.0.1']) };
    skip "TLS fake: $@", 7 unless $tls;
    require IO::Socket::SSL;
    my $cs = IO::Socket::SSL->new(PeerHost => '127.0.0.1',
        PeerPort => $tls->port, SSL_hostname => 'a.test',
        SSL_ca_file => $tls->cert, SSL_verifycn_name => 'a.test',
        Timeout => 5);
    ok($cs, 'TLS handshake with the self-signed cert')
        or diag(IO::Socket::SSL::errstr());
    my $tr = $cs ? http_parse(http_raw($cs,
        "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")) : undef;
    my $tj = $tr && eval { JSON::PP->new->decode($tr->{body}) };
    is($tj && $tj->{sni}, 'a.test', 'TLS fake records the SNI');

    # connect_tunnel + tls_client through a minimal CONNECT relay
    my $pp = $t->port('relay');
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $pp,
        Listen => 8, ReuseAddr => 1) or die "relay: $!";
    $t->run_daemon(sub {
        while (my $c = $ls->accept) {
            my $head = '';
            while ($head !~ /\r\n\r\n/) {
                sysread($c, my $ch, 1) or last;
                $head .= $ch;
            }
            my ($hp) = $head =~ /^CONNECT (\S+) / or next;
            my $u = IO::Socket::INET->new(PeerAddr => $hp) or next;
            syswrite($c, "HTTP/1.1 200 Connection established\r\n\r\n");
            my $sel = IO::Select->new($c, $u);
            RELAY: while (1) {
                for my $fh ($sel->can_read) {
                    sysread($fh, my $b, 65536) or last RELAY;
                    syswrite($fh == $c ? $u : $c, $b);
                }
            }
        }
    });
    close $ls;
    my $before = $tls->connections;
    my ($ts, $tr2) = connect_tunnel($pp, '127.0.0.1:' . $tls->port);
    is($tr2 && $tr2->{status}, 200, 'connect_tunnel: 200 from the relay');
    my $ssl = $ts && tls_client($ts, 'a.test', ca => $tls->cert);
    ok($ssl, 'tls_client: verified TLS through the tunnel')
        or diag(IO::Socket::SSL::errstr());
    my $tr3 = $ssl ? http_parse(http_raw($ssl,
        "GET /t HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")) : undef;
    my $tj3 = $tr3 && eval { JSON::PP->new->decode($tr3->{body}) };
    is($tj3 && $tj3->{sni}, 'a.test', 'SNI seen through the tunnel');
    is($tls->connections, $before + 1, 'connections() counts accepted connections');
    my ($ns) = connect_tunnel($pp, '127.0.0.1:' . $tls->port);
    my $nossl = $ns && tls_client($ns, 'a.test', sni => 0);
    my $tr4 = $nossl ? http_parse(http_raw($nossl,
        "GET /t HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")) : undef;
    my $tj4 = $tr4 && eval { JSON::PP->new->decode($tr4->{body}) };
    ok($tj4 && !defined $tj4->{sni}, 'tls_client sni => 0 sends no SNI');
}

# -- FakeBanner ------------------------------------------------------------
my $b = Test::Kapd::FakeBanner->new($t, port => $t->port('ssh'));
my $bs = tcp_connect($b->port);
is(read_line($bs), 'SSH-2.0-FakeSSH_1.0', 'banner sent first');
is(line_cmd($bs, 'ping'), 'ping', 'then echoes');

# -- end-of-test checks catch problems ------------------------------------
my $u = Test::Kapd->new;
$u->write_file('error.log', "2026/01/01 00:00:00 [crit] 1#0: boom\n");
$u->write_file('audit.jsonl', "{\"a\":1}\nnot json\n");
$u->write_file('x.log', "==1==ERROR: AddressSanitizer: heap-use-after-free\n");
my ($al, $san, $js);
$u->write_file('y.log', "Fatal glibc error: malloc assertion failure in sysmalloc\n");
($al, $san, $js) = $u->_check_results;
ok(@$al == 1 && @$san == 2 && @$js == 1 && $js->[0] =~ /audit\.jsonl:2/,
   'checks find a [crit], sanitizer/glibc reports and a bad JSONL line');
$u->{finalized} = 1;
