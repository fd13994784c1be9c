#!/usr/bin/perl
# 101-connect.t -- the http_connect module, CONNECT tunnels: policy on the
# host and port, IP literals in every spelling, IPv6, the resolved-address
# check (rebinding to loopback, link-local metadata, RFC 1918, ::1 refused
# before any connect), the SNI check (match, mismatch, case and trailing
# dot, missing, several names, ECH, split over records and segments,
# garbage), SSH client-first and server-first, plain HTTP inside a tunnel,
# a real TLS handshake, half-close, byte counts in the audit log.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use Test::Kapd::FakeBanner;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $eport = $t->port('echo');      # client-first echo server on 127.0.0.2
my $sport = $t->port('ssh');       # server-first banner on 127.0.0.2
my $hport = $t->port('https');     # TLS origin on 127.0.0.2
my $tport = $t->port('trap');      # 127.0.0.1: must never see a connection

my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'echo.example'     => ['A 127.0.0.2'],
    'ssh.example'      => ['A 127.0.0.2'],
    'tls.example'      => ['A 127.0.0.2'],
    'other.example'    => ['A 127.0.0.2'],
    'denied.example'   => ['A 127.0.0.2'],
    'v6.example'       => ['AAAA ::1'],
    'rebind-lo.example'   => ['A 127.0.0.1'],
    'rebind-meta.example' => ['A 169.254.169.254'],
    'rebind-10.example'   => ['A 10.1.2.3'],
    'rebind-v6.example'   => ['AAAA ::1'],
    'rebind-mix.example'  => ['A 127.0.0.2', 'A 192.168.1.1'],
    'nx-none.example'     => ['TXT "x"'],
});
my $echo = Test::Kapd::FakeBanner->new($t, port => $eport, addr => '127.0.0.2',
    name => 'echo', banner => '');
my $ssh = Test::Kapd::FakeBanner->new($t, port => $sport, addr => '127.0.0.2',
    name => 'ssh', banner => "SSH-2.0-FakeSSH_1.0\r\n");
my $trap = Test::Kapd::FakeBanner->new($t, port => $tport, addr => '127.0.0.1',
    name => 'trap', banner => '');
my $tls = Test::Kapd::FakeHTTP->new($t, port => $hport, addr => '127.0.0.2',
    name => 'tls', tls => 1, cert_names => ['tls.example']);

my $rebind = join ', ', map { "\"$_.example:%%PORT_trap%%\"" }
    qw/rebind-lo rebind-meta rebind-10 rebind-v6 rebind-mix/;
$t->write_conf(<<"EOF");
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: {
    allow = ["echo.example:%%PORT_echo%%", "other.example:%%PORT_echo%%",
             "ssh.example:%%PORT_ssh%%", "tls.example:%%PORT_https%%",
             "v6.example:%%PORT_echo%%", "[::1]:%%PORT_echo%%",
             "127.0.0.2:%%PORT_echo%%", "127.0.0.2:%%PORT_ssh%%",
             "127.0.0.2:%%PORT_https%%", $rebind];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
audit_log: { path = "audit.jsonl"; };
http_connect: {
    listen = ["127.0.0.1:%%PORT_proxy%%"];
    handshake_timeout = 2;
    header_timeout = 1;
};
EOF
$t->run;
my $proxy = $t->port('proxy');

# CONNECT and return (socket, status line)
sub connect_to {
    my ($target, %o) = @_;
    my $s = tcp_connect($proxy) or return;
    syswrite($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n"
                 . ($o{extra} // ''));
    my $st = read_line($s) // '';
    while (defined(my $l = read_line($s))) { last if $l eq '' }
    return ($s, $st);
}

# read up to n bytes (or until EOF/timeout); returns (data, eof)
sub read_some {
    my ($s, $n, $tmo) = @_;
    my $buf = ${*$s}{kapd_buf} // '';
    ${*$s}{kapd_buf} = '';
    my $deadline = time + kapd_tmo($tmo // 3);
    my $sel = IO::Select->new($s);
    while (length($buf) < $n && time < $deadline) {
        next unless $sel->can_read(0.05);
        my $r = sysread($s, my $chunk, 65536);
        return ($buf, 1) unless $r;
        $buf .= $chunk;
    }
    return ($buf, 0);
}

# is the socket closed by the peer (within the deadline)?
sub closed_soon {
    my ($s, $tmo) = @_;
    my (undef, $eof) = read_some($s, 1 << 30, $tmo // 3);
    return $eof;
}

# a TLS 1.3-style ClientHello with the given names / ECH / ESNI
sub client_hello {
    my (%o) = @_;
    my $ext = '';
    if (@{$o{names} // []}) {
        my $list = join '', map { pack('Cn/a*', 0, $_) } @{$o{names}};
        $ext .= pack('nn', 0, length($list) + 2) . pack('n/a*', $list);
    }
    $ext .= pack('nnCn', 43, 3, 2, 0x0304);                 # supported_versions
    $ext .= pack('nnnn', 0xfe0d, 4, 0, 0) if $o{ech};
    $ext .= pack('nn', 0xffce, 0) if $o{esni};
    my $body = pack('n', 0x0303) . ("\x11" x 32) . pack('C/a*', "\x22" x 32)
             . pack('n/a*', pack('nn', 0x1301, 0x1302)) . pack('C/a*', "\0")
             . pack('n/a*', $ext);
    my $hs = pack('CCn', 1, length($body) >> 16, length($body) & 0xffff) . $body;
    my $frag = $o{frag} // 16384;
    my $out = '';
    for (my $i = 0; $i < length $hs; $i += $frag) {
        my $part = substr($hs, $i, $frag);
        $out .= pack('Cnn', 22, 0x0301, length $part) . $part;
    }
    return $out;
}

# send a hello into a fresh tunnel to the echo server; returns 'passed'
# (the echo server sent the bytes back) or 'refused' (closed, nothing back)
sub try_hello {
    my ($target, $bytes, %o) = @_;
    my ($s, $st) = connect_to($target);
    return "no tunnel ($st)" unless $st =~ / 200 /;
    if ($o{pieces}) {
        my $n = $o{pieces};
        my $len = int(length($bytes) / $n) + 1;
        for (my $i = 0; $i < length $bytes; $i += $len) {
            syswrite($s, substr($bytes, $i, $len));
            last if $i + $len >= length $bytes;
            # the proxy must wait for the rest: nothing comes back meanwhile
            my ($got, $eof) = read_some($s, 1, 0.1);
            return "early answer" if length($got) || $eof;
        }
    } else {
        syswrite($s, $bytes);
    }
    my ($got, $eof) = read_some($s, length $bytes, 3);
    return 'passed' if $got eq $bytes;
    return 'refused' if $got eq '' && ($eof || closed_soon($s, 3));
    return "unexpected (" . length($got) . " bytes)";
}

my $E = "echo.example:$eport";

# -- policy on the CONNECT host ---------------------------------------------------
my ($s, $st) = connect_to($E);
like($st, qr{^HTTP/1\.1 200 }, 'allowed name: 200');
close $s;
($s, $st) = connect_to("denied.example:$eport");
like($st, qr{^HTTP/1\.1 403 }, 'name not listed: 403');
($s, $st) = connect_to("echo.example:$sport");
like($st, qr{^HTTP/1\.1 403 }, 'allowed name on another port: 403');
($s, $st) = connect_to("ECHO.Example.:$eport");
like($st, qr{^HTTP/1\.1 200 }, 'CONNECT host: case and trailing dot ignored');
($s, $st) = connect_to("echo.example");
like($st, qr{^HTTP/1\.1 400 }, 'CONNECT without a port: 400');
($s, $st) = connect_to("nx-none.example:$eport");
like($st, qr{^HTTP/1\.1 403 }, 'unlisted name without address: 403 (policy first)');

# -- IP literals in every spelling ----------------------------------------------
for my $lit ('127.0.0.3', '127.3', '0x7f.0.0.3', '2130706435', '017700000003',
             '[::ffff:127.0.0.3]', '[::1]:1', '[0:0:0:0:0:0:0:1]:1') {
    my $target = $lit =~ /:\d+$/ ? $lit : "$lit:$eport";
    ($s, $st) = connect_to($target);
    like($st, qr{^HTTP/1\.1 (403|400) }, "unlisted IP literal $lit refused");
}
($s, $st) = connect_to("127.0.0.2:$eport");
like($st, qr{^HTTP/1\.1 200 }, 'listed IP literal allowed');
($s, $st) = connect_to("0x7f.0.0.2:$eport");
like($st, qr{^HTTP/1\.1 200 }, 'listed IP literal allowed in another spelling');
($s, $st) = connect_to("[::1]:$eport");
like($st, qr{^HTTP/1\.1 (200|502) }, 'listed IPv6 literal passes the policy');

# -- resolved addresses: refused before any connect -------------------------------
for my $n (qw/rebind-lo rebind-meta rebind-10 rebind-v6 rebind-mix/) {
    ($s, $st) = connect_to("$n.example:$tport");
    like($st, qr{^HTTP/1\.1 403 }, "$n: allowed name with a denied address: 403");
    my ($body) = read_some($s, 4096, 2);
    like($body, qr{\Q$n.example\E resolves to \S+ \(},
         "$n: the 403 says which address and why");
}
is($trap->count, 0, 'no connection ever reached the denied addresses');
($s, $st) = connect_to("v6.example:$eport");
like($st, qr{^HTTP/1\.1 502 }, 'AAAA ::1 refused for a name (loopback)');

# -- SNI ----------------------------------------------------------------------------
is(try_hello($E, client_hello(names => ['echo.example'])), 'passed',
   'ClientHello with SNI = CONNECT host passes');
is(try_hello($E, client_hello(names => ['ECHO.example.'])), 'passed',
   'SNI compared case-insensitively, trailing dot ignored');
is(try_hello($E, client_hello(names => ['other.example'])), 'refused',
   'SNI mismatch (another allowed name) refused');
is(try_hello($E, client_hello(names => ['denied.example'])), 'refused',
   'SNI mismatch (denied name) refused');
is(try_hello($E, client_hello(names => []), ), 'passed',
   'no SNI on a port other than 443 passes by default (sni unset)');
is(try_hello($E, client_hello(names => ['echo.example', 'other.example'])),
   'refused', 'several server names refused');
is(try_hello($E, client_hello(names => ['echo.example'], ech => 1)), 'refused',
   'ECH refused');
is(try_hello($E, client_hello(names => ['echo.example'], esni => 1)), 'refused',
   'ESNI refused');
is(try_hello($E, client_hello(names => ['echo.example'], frag => 20)), 'passed',
   'ClientHello split over many records passes');
is(try_hello($E, client_hello(names => ['other.example'], frag => 20)), 'refused',
   'mismatch in a split ClientHello refused');
is(try_hello($E, client_hello(names => ['other.example']), pieces => 4), 'refused',
   'mismatch in a ClientHello split over TCP segments refused');
is(try_hello($E, client_hello(names => ['echo.example']), pieces => 4), 'passed',
   'ClientHello split over TCP segments passes');
is(try_hello($E, "\x16\x03\x01\x00\x05garbage-after-record"), 'refused',
   'garbage TLS refused');
is(try_hello($E, "hello, this is not TLS\r\n"), 'refused', 'non-TLS garbage refused');
is(try_hello($E, "SSH-2.0-OpenSSH_9.2\r\n"), 'passed', 'SSH identification line passes');
is(try_hello($E, "GET / HTTP/1.1\r\nHost: echo.example:$eport\r\n\r\n"), 'passed',
   'plain HTTP with the CONNECT host passes');
is(try_hello($E, "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n"), 'refused',
   'plain HTTP with another Host refused');
{
    # hello pipelined with the CONNECT head
    my ($s2, $st2) = connect_to($E, extra => client_hello(names => ['other.example']));
    ok(closed_soon($s2), 'mismatching hello sent with the CONNECT head refused');
}
{
    # nothing sent at all: refused at the handshake deadline
    my ($s2, $st2) = connect_to($E);
    my $t0 = time;
    ok(closed_soon($s2, 6), 'silent client closed at the handshake deadline');
    cmp_ok(time - $t0, '<', kapd_tmo(5), 'within the deadline');
}

# -- server speaks first (SSH) ---------------------------------------------------------
($s, $st) = connect_to("ssh.example:$sport");
like($st, qr{ 200 }, 'tunnel to an SSH server');
is(read_line($s), 'SSH-2.0-FakeSSH_1.0', 'server banner forwarded at once');
syswrite($s, "SSH-2.0-Client\r\nsome bytes");
my ($got) = read_some($s, 27);
is($got, "SSH-2.0-Client\r\nsome bytes", 'bytes flow both ways after the banner');
shutdown($s, 1);
ok(closed_soon($s), 'half-close propagated and the tunnel closed');

# -- a real TLS handshake through the tunnel ----------------------------------------------
SKIP: {
    skip 'IO::Socket::SSL missing', 2 unless eval { require IO::Socket::SSL; 1 };
    my ($ts, $tst) = connect_to("tls.example:$hport");
    my $ok = $tst =~ / 200 / && IO::Socket::SSL->start_SSL($ts,
        SSL_hostname => 'tls.example', SSL_verify_mode => 0, Timeout => 5);
    ok($ok, 'TLS handshake through the tunnel');
    my $body = '';
    if ($ok) {
        print $ts "GET /x HTTP/1.1\r\nHost: tls.example\r\nConnection: close\r\n\r\n";
        local $/;
        $body = <$ts> // '';
    }
    like($body, qr/"sni":"tls\.example"/, 'origin saw the SNI');
}

# -- a large transfer and the tunnel_close audit ------------------------------------------
($s, $st) = connect_to($E);
my $blob = 'SSH-2.0-bulk' . ('z' x 300000);
$blob .= "\r\n";
substr($blob, 16, 0) = "\r\n";           # an SSH-like first line, then bulk
my ($w, $r, $data) = (0, 0, '');
my $sel = IO::Select->new($s);
my $deadline = time + kapd_tmo(10);
$s->blocking(0);
while (($w < length $blob || length($data) < length($blob)) && time < $deadline) {
    my ($rr, $ww) = IO::Select->select($sel, $w < length $blob ? $sel : undef, undef, 0.2);
    if ($ww && @$ww) {
        my $n = syswrite($s, $blob, 65536, $w);
        $w += $n if $n;
    }
    if ($rr && @$rr) {
        my $n = sysread($s, my $c, 65536);
        last unless $n;
        $data .= $c;
    }
}
ok(length($data) == length($blob) && $data eq $blob, '300 KB echoed through the tunnel');
close $s;
ok(wait_until(sub { grep { ($_->{event} // '') eq 'tunnel_close'
                           && ($_->{bytes_up} // 0) >= 300000 } audit() }, 5),
   'tunnel_close audited with bytes_up');
my ($tc) = grep { ($_->{event} // '') eq 'tunnel_close' && ($_->{bytes_up} // 0) >= 300000 } audit();
ok($tc && $tc->{bytes_down} >= 300000 && defined $tc->{duration},
   'tunnel_close has bytes_down and duration');

# -- audit of refusals -----------------------------------------------------------------------
my @den = grep { ($_->{action} // '') eq 'denied' } audit();
ok(grep({ ($_->{reason} // '') =~ /SNI mismatch: other\.example/ } @den), 'SNI mismatch audited');
ok(grep({ ($_->{reason} // '') =~ /several server names/ } @den), 'several names audited');
ok(grep({ ($_->{reason} // '') =~ /ECH/ } @den), 'ECH audited');
ok(grep({ ($_->{reason} // '') =~ /rebind-meta\.example resolves to 169\.254\.169\.254/ } @den),
   'metadata address audited');
my @addr = grep { ($_->{kind} // '') eq 'addr' && ($_->{subject} // '') eq '169.254.169.254' } @den;
is(scalar @addr, 1, 'the address question: one decision, kind addr, subject the address');
ok(@addr && ($addr[0]{host} // '') eq 'rebind-meta.example'
   && ($addr[0]{decided_by} // '') eq 'network',
   'with the name it came from (host) and who decided (network)');
ok(grep({ ($_->{subject} // '') eq '127.0.0.3' } @den), 'IP literal audited in canonical form');
ok(grep({ ($_->{reason} // '') =~ /handshake timeout/ } @den), 'handshake timeout audited');
ok(!grep({ !defined $_->{reason} || $_->{reason} eq '' } @den), 'every denial has a reason');

$t->done_testing;

sub audit {
    my $c = $t->read_file('audit.jsonl') // '';
    return map { eval { decode_json($_) } || () } split /\n/, $c;
}
