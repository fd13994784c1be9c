#!/usr/bin/perl
# 154-connect-sni.t -- adversarial: what the client sends first inside a
# CONNECT tunnel.
#
# bypass-classes.md #4 (SNI != CONNECT host, domain fronting, ECH), #8
# (other protocols through CONNECT); DESIGN §6: read the whole ClientHello
# (bounded, with a deadline) and require SNI == CONNECT host; no SNI,
# several names, ECH/ESNI refused; an SSH identification line passes;
# plain HTTP passes only with Host == CONNECT host; anything else refused.
#
# The upstream is a silent echo server that records every byte it gets:
# a refused first message must reach it with ZERO bytes (nothing is relayed
# before the check); an accepted one comes back echoed.  ClientHellos are
# built by hand (SNI lists, ECH/ESNI extensions, several records, 1-byte
# TCP segments); a real TLS handshake through the tunnel is the control.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use Test::Kapd::Hello qw(ext sni_ext hello_body records hello first_bytes);
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $e = $t->port('echo');
my $tlsport = $t->port('tls');
my $tls = Test::Kapd::FakeHTTP->new($t, port => $tlsport, name => 'tls',
    addr => '127.0.0.2', tls => 1, cert_names => ['github.com']);
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'github.com'    => ['A 127.0.0.2'],
    'other.example' => ['A 127.0.0.2'],
});

# silent echo upstreams on 127.0.0.2:$e and 127.0.0.2:22; bytes logged
my $echo = Test::Kapd::Hello->echo($t, '127.0.0.2', $e, 22);

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["github.com:%%PORT_echo%%", "github.com:%%PORT_tls%%", "github.com:22",
             "other.example:%%PORT_echo%%",
             "127.0.0.2:%%PORT_echo%%", "127.0.0.2:%%PORT_tls%%", "127.0.0.2:22"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: {
    listen = ["127.0.0.1:%%PORT_proxy%%"];
    sni = "require";
    handshake_timeout = 2;
};
EOF
$t->run;
my $proxy = $t->port('proxy');

sub upstream_bytes { $echo->bytes }

# ---- tunnel helpers --------------------------------------------------------------------
# open a CONNECT tunnel; returns the socket (status must be 200)
sub tunnel {
    my ($target) = @_;
    my ($s, $r) = connect_tunnel($proxy, $target);
    return ($s, $r ? $r->{status} : 'none');
}

# send bytes (optionally one byte per write), then read until EOF or
# until $want bytes came back; returns (echoed bytes, closed?)
sub audited {
    my ($lport, $re) = @_;
    my $m = sub { grep { ($_->{client} // '') =~ /:\Q$lport\E\]?$/
                         && ($_->{action} // '') eq 'denied' } @_ };
    my ($ev) = $m->($t->wait_audit($m, 3));
    return $ev;
}

sub passes {
    my ($target, $data, $name, %o) = @_;
    my ($s, $st) = tunnel($target);
    is($st, 200, "$name: tunnel opened");
    return unless $s && $st eq '200';
    my ($got) = first_bytes($s, $data, %o);
    is(length $got, length $data, "$name: passes (echoed back)");
    close $s;
}

sub refused {
    my ($target, $data, $name, %o) = @_;
    my ($s, $st) = tunnel($target);
    is($st, 200, "$name: tunnel opened (upstream first)");
    return unless $s && $st eq '200';
    my $lport = $s->sockport;
    my $before = upstream_bytes();
    my ($got, $closed) = first_bytes($s, $data, %o);
    is(length $got, 0, "$name: nothing came back");
    ok($closed, "$name: connection closed");
    is(upstream_bytes() - $before, 0, "$name: no byte reached the upstream");
    my $ev = audited($lport);
    ok($ev && length($ev->{reason} // ''), "$name: audited with a reason"
       . ($ev ? " ($ev->{reason})" : ''));
    close $s;
}

my $G = "github.com:$e";

# -- controls ------------------------------------------------------------------------------
{
    my ($s, $st) = tunnel("github.com:$tlsport");
    is($st, 200, 'real TLS: tunnel opened');
    my $ssl = $s && tls_client($s, 'github.com', ca => $tls->cert);
    ok($ssl, 'real TLS: handshake with SNI github.com through the tunnel')
        or diag(IO::Socket::SSL::errstr());
    if ($ssl) {
        print $ssl "GET /over-tls HTTP/1.1\r\nHost: github.com\r\nConnection: close\r\n\r\n";
        my $r = join '', <$ssl>;
        like($r, qr{^HTTP/1\.1 200}, 'real TLS: request answered by the origin');
    } else { fail('real TLS: request answered by the origin') }
}
passes($G, hello(sni => 'github.com'), 'crafted ClientHello, SNI github.com');
passes($G, hello(sni => 'GitHub.COM'), 'SNI in another case');
passes($G, hello(sni => 'github.com'), 'ClientHello in 1-byte TCP segments', bytewise => 1);
passes($G, records(hello_body(sni => 'github.com'), 100),
       'ClientHello fragmented over many small records');
passes($G, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 'SSH identification line (client first)');
passes("github.com:22", "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 'SSH ident on port 22 (github.com:22)');
passes($G, "GET / HTTP/1.1\r\nHost: github.com:$e\r\n\r\n", 'plain HTTP with the CONNECT host');
passes($G, "GET / HTTP/1.1\r\nHost: github.com\r\n\r\n", 'plain HTTP with the CONNECT host, no port');

# -- refusals ---------------------------------------------------------------------------------
{
    my ($s, $st) = tunnel("github.com:$tlsport");
    my $before = $tls->count;
    my $ssl = $s && tls_client($s, 'other.example');
    ok(!$ssl, 'real TLS: SNI other.example on CONNECT github.com fails');
    is($tls->count - $before, 0, 'real TLS: the origin got no request');
}
refused($G, hello(sni => 'evil.test'), 'SNI mismatch');
refused($G, hello(sni => 'other.example'), 'SNI of another allowed host (fronting)');
refused($G, hello(sni => 'github.com.evil.test'), 'SNI with the host as a prefix');
refused($G, hello(sni => 'evil.github.com'), 'SNI subdomain of the host');
refused($G, hello(sni => "github.com\0evil.test"), 'SNI with a NUL');
refused($G, hello(exts => []), 'no SNI (sni = require)');
refused($G, hello(exts => [sni_ext('github.com', 'evil.test')]), 'two names in one SNI list');
refused($G, hello(exts => [sni_ext('evil.test', 'github.com')]), 'two names, evil first');
refused($G, hello(exts => [sni_ext('github.com'), sni_ext('evil.test')]),
        'two SNI extensions');
refused($G, hello(exts => [sni_ext('github.com'), ext(0xfe0d, "\0\x00\x01\x00\x01\x01" . pack('n', 0x20) . ("\x55" x 32) . pack('n', 64) . ("\x66" x 64))]),
        'ECH extension (0xfe0d)');
refused($G, hello(exts => [sni_ext('github.com'), ext(0xffce, "\x13\x01" . ("\x77" x 40))]),
        'ESNI extension (0xffce)');
refused($G, hello(sni => 'evil.test'), 'SNI mismatch in 1-byte TCP segments', bytewise => 1);
refused($G, records(hello_body(sni => 'evil.test'), 60),
        'SNI mismatch in a ClientHello fragmented over records');
refused($G, hello(sni => 'evil.test', pad => 20000),
        'SNI mismatch in a ClientHello larger than one record');
{
    # a large matching ClientHello: passing or failing closed are both
    # acceptable, but kapd must stay up
    my ($s, $st) = tunnel($G);
    my ($got, $closed) = $s ? first_bytes($s, hello(sni => 'github.com', pad => 20000)) : ('', 1);
    ok(length($got) > 0 || $closed, 'large matching ClientHello: passed or failed closed');
}
refused($G, "\x00\x01\x02\x03garbage\r\n\r\n", 'garbage first bytes');
refused($G, "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", 'TLS record with a ServerHello');
refused($G, "\x80\x2e\x01\x00\x02" . ("\0" x 41), 'SSLv2-style hello');
refused($G, "\x17\x03\x03\x00\x10" . ("\xaa" x 16), 'TLS application data first');
refused($G, "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", 'plain HTTP with another Host');
refused($G, "GET / HTTP/1.1\r\nHost: other.example:$e\r\n\r\n",
        'plain HTTP with another allowed Host');
refused($G, "GET http://evil.test/ HTTP/1.1\r\nHost: github.com\r\n\r\n",
        'plain HTTP absolute-form to another host');
refused($G, "GET / HTTP/1.1\r\nHost: github.com\r\nHost: evil.test\r\n\r\n",
        'plain HTTP with two Host fields');
refused($G, "SSH-2.0-x\0evil\r\n" . ("\x99" x 8), 'SSH ident with a NUL');
refused($G, "SSH-1.5-old\r\n", 'SSH protocol 1 ident');
refused($G, "EHLO evil.test\r\n", 'SMTP first');
refused($G, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . pack('nCCCN', 0, 0, 4, 0, 0),
        'HTTP/2 prior-knowledge preface (no Host to check)');
refused($G, "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n",
        'a CONNECT inside the tunnel (chained proxy)');

# -- first bytes pipelined with the CONNECT head (one write) ------------------------------
sub pipelined {
    my ($data, $name, $expect_pass) = @_;
    my $s = tcp_connect($proxy);
    my $lport = $s->sockport;
    my $before = upstream_bytes();
    my $conns = $echo->connections;
    syswrite($s, "CONNECT $G HTTP/1.1\r\nHost: $G\r\n\r\n" . $data);
    my ($buf, $closed) = ('', 0);
    my $deadline = time + kapd_tmo(4);
    while (time < $deadline) {
        next unless IO::Select->new($s)->can_read(0.1);
        my $n = sysread($s, $buf, 65536, length $buf);
        if (!$n) { $closed = 1; last }
        last if $expect_pass && length($buf) >= length($data);
    }
    (my $after = $buf) =~ s/^HTTP\/1\.1 200[^\n]*\r\n\r\n//;
    if ($expect_pass) {
        is($after, $data, "$name: passes (echoed)");
    } else {
        # the first bytes came with the CONNECT: refused before dialling
        like($buf, qr{^HTTP/1\.1 403 .*\r\n\r\nkap: the first bytes of this tunnel do not go to \Q$G\E: \S}s,
             "$name: 403 with the reason");
        ok($closed, "$name: closed");
        is(upstream_bytes() - $before, 0, "$name: no byte reached the upstream");
        is($echo->connections - $conns, 0, "$name: no upstream connection was opened");
        my $ev = audited($lport);
        ok($ev && length($ev->{reason} // ''), "$name: audited with a reason");
    }
    close $s;
}
pipelined(hello(sni => 'github.com'), 'ClientHello in the same write as CONNECT', 1);
pipelined(hello(sni => 'evil.test'), 'SNI mismatch in the same write as CONNECT', 0);
pipelined("CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n",
          'a second CONNECT pipelined after the first', 0);
pipelined("GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
          'a GET for another host pipelined after CONNECT', 0);

# -- a half ClientHello then silence: closed at the handshake deadline ---------------------------
{
    my ($s, $st) = tunnel($G);
    my $h = hello(sni => 'github.com');
    my $before_half = upstream_bytes();
    syswrite($s, substr($h, 0, 20));
    my $t0 = time;
    my $closed = wait_until(sub {
        return 0 unless IO::Select->new($s)->can_read(0.05);
        my $n = sysread($s, my $buf, 100);
        return defined $n && $n == 0;
    }, kapd_tmo(8));
    ok($closed && time - $t0 < kapd_tmo(6), 'half ClientHello: closed at the handshake timeout');
    is(upstream_bytes() - $before_half, 0, 'half ClientHello: nothing relayed');
}

is(upstream_bytes() > 0, 1, 'the echo upstream did get the accepted tunnels');
passes($G, hello(sni => 'github.com'), 'kapd still serves after everything');

$t->done_testing;
