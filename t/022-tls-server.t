#!/usr/bin/perl
# 022-tls-server.t -- the core's TLS server layer (kap_tls.h)
# through the test module test_tls, which terminates TLS on a listener
# and answers one HTTP request per connection.  A test CA and a server
# certificate for 127.0.0.1 are made here with openssl req/x509.
#
# Refused at start, with the reason: a key file readable by others, a key
# that is not the certificate's, a missing certificate.  Served: curl and
# openssl s_client verify the chain and get their answer (TLS 1.3 and
# 1.2, ALPN http/1.1); 16 MiB come back intact; a client offering only
# another ALPN protocol, a TLS 1.1 client and a plain HTTP request are
# cut, each logged once; a client that stops mid-handshake (or says
# nothing) is cut at the handshake timeout while others are served; 100
# handshakes, up to 50 at once, all succeed.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('test_tls');
for my $tool (qw(openssl curl)) {
    my ($rc) = Test::Kapd::_capture('sh', '-c', "command -v $tool");
    plan(skip_all => "$tool is missing") if $rc != 0;
}
$t->plan(26);

sub run_cmd {
    my ($rc, $out) = Test::Kapd::_capture(@_);
    return [$rc, $out];
}

# -- the test CA, the server's certificate and keys ---------------------------
my $dir = $t->path('tls');
mkdir $dir;
mkdir "$dir/key", 0700;
chmod 0700, "$dir/key";
my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
          '-nodes');
my $r = run_cmd('openssl', 'req', '-x509', @ec, '-keyout', "$dir/ca.key",
                '-out', "$dir/ca.pem", '-days', '2', '-subj', '/CN=kap test CA');
$r->[0] == 0 or BAIL_OUT("openssl req (CA): $r->[1]");
$t->write_file('tls/ext.cnf', "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
$r = run_cmd('openssl', 'req', @ec, '-keyout', "$dir/key/key.pem",
             '-out', "$dir/srv.csr", '-subj', '/CN=localhost');
$r = run_cmd('openssl', 'x509', '-req', '-in', "$dir/srv.csr", '-CA',
             "$dir/ca.pem", '-CAkey', "$dir/ca.key", '-CAcreateserial',
             '-out', "$dir/cert.pem", '-days', '2', '-extfile',
             "$dir/ext.cnf") if $r->[0] == 0;
$r->[0] == 0 or BAIL_OUT("openssl req/x509 (server): $r->[1]");
run_cmd('openssl', 'req', @ec, '-keyout', "$dir/key/other.pem", '-out',
        "$dir/other.csr", '-subj', '/CN=other');
chmod 0600, "$dir/key/key.pem", "$dir/key/other.pem";
my $ca = "$dir/ca.pem";
# the handshake timeout: 1 s, scaled like every deadline (slow builds)
my $hs = kapd_tmo(1);

sub conf {
    my (%o) = @_;
    my $key = $o{key} // 'tls/key/key.pem';
    my $cert = $o{cert} // 'tls/cert.pem';
    return <<"EOF";
kapd: {
    load = ["test_tls"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
test_tls: {
    listen = ["127.0.0.1:%%PORT_tls%%"];
    cert = "$cert";
    key = "$key";
    handshake_timeout = ${\ ($o{hs} // $hs)};
    alpn = ["http/1.1"];
};
EOF
}

# -- refused at start, with the reason ------------------------------------------
sub refused {
    my ($re, $name, %o) = @_;
    $t->write_conf(conf(%o), "bad-$name.conf");
    my $from = $t->error_log_size;
    $t->try_run(conf => "bad-$name.conf");
    # it may listen for a moment before the module's init refuses
    my $st = $t->wait_exit(10);
    $t->stop unless defined $st;
    my $log = substr($t->error_log, $from);
    ok(defined $st && $st != 0 && $log =~ $re, "refused at start: $name")
        or diag($log);
}
chmod 0644, "$dir/key/key.pem";
refused(qr{TLS key file \S+/key\.pem is mode 0644: run chmod 600},
        'key file readable by others');
chmod 0600, "$dir/key/key.pem";
refused(qr{TLS key file \S+/other\.pem does not match the certificate},
        'key of another certificate', key => 'tls/key/other.pem');
refused(qr{TLS certificate file \S+/nothere\.pem: No such file},
        'missing certificate', cert => 'tls/nothere.pem');

# -- served ---------------------------------------------------------------------
$t->write_conf(conf());
my $served_from = $t->error_log_size;
ok($t->try_run, 'kapd starts with the certificate and key')
    or diag($t->{run_error});
my $port = $t->port('tls');
my $url = "https://127.0.0.1:$port";

sub curl {
    my (@a) = @_;
    return run_cmd('curl', '-sS', '--max-time', kapd_tmo(10), '--cacert',
                   $ca, @a);
}

$r = curl('--http1.1', "$url/hello");
is($r->[1], "tls TLSv1.3 alpn=http/1.1 GET /hello HTTP/1.1\n",
   'curl: the chain verifies, TLS 1.3, ALPN http/1.1, answered');

my $sc = run_cmd('sh', '-c', "printf 'GET /s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'"
    . " | openssl s_client -connect 127.0.0.1:$port -CAfile $ca"
    . " -servername localhost -tls1_2 -alpn http/1.1 -ign_eof 2>&1");
like($sc->[1], qr/Verify return code: 0 \(ok\).*tls TLSv1\.2 alpn=http\/1\.1 GET \/s HTTP\/1\.1/s,
     'openssl s_client: TLS 1.2, verified, answered');

my $big = 16 * 1024 * 1024;
$r = curl('-o', $t->path('big.out'), "$url/big/$big");
my $got = $t->read_file('big.out') // '';
my $want = ('abcdefghijklmnopqrstuvwxyz' x ($big / 26 + 1));
ok($r->[0] == 0 && length($got) == $big && $got eq substr($want, 0, $big),
   '16 MiB come back intact (writes that wait for the socket)')
    or diag("rc $r->[0], " . length($got) . " bytes: $r->[1]");

# log lines of the TLS layer about the connection from local port $lport
sub tls_lines {
    my ($lport) = @_;
    return grep { /TLS .*client 127\.0\.0\.1:\Q$lport\E$/ } $t->error_log;
}

# -- wrong protocols: cut, logged once, kapd serves on -----------------------
$r = run_cmd('sh', '-c', "openssl s_client -connect 127.0.0.1:$port"
    . " -CAfile $ca -alpn h2 </dev/null 2>&1");
like($r->[1], qr/no application protocol/i,
     'a client offering only h2: no_application_protocol alert');
ok($t->wait_log(qr/TLS handshake failed: .*no application protocol/),
   'and the failure is logged');

$r = run_cmd('sh', '-c', "openssl s_client -connect 127.0.0.1:$port"
    . " -tls1_1 -cipher DEFAULT\@SECLEVEL=0 </dev/null 2>&1");
like($r->[1], qr/alert protocol version.*Cipher is \(NONE\)/s,
     'a TLS 1.1 client: protocol_version alert, no session');
ok($t->wait_log(qr/TLS handshake failed: .*(unsupported protocol|version)/),
   'logged: unsupported protocol version');

my $s = tcp_connect($port);
my $lport = $s ? $s->sockport : 0;
syswrite($s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") if $s;
my ($bytes, $eof) = read_to_eof($s, 5);
ok($eof && $bytes !~ /HTTP/, 'plain HTTP to the TLS port: closed, no answer')
    or diag("eof $eof: $bytes");
ok(wait_until(sub { tls_lines($lport) }, kapd_tmo(5)), 'logged');
my @l = tls_lines($lport);
ok(@l == 1 && $l[0] =~ /\[info\].*TLS handshake failed: not TLS: a plain HTTP request/,
   'once, at info, saying what it was') or diag(explain(\@l));

# -- stalls: cut at the handshake timeout, others served meanwhile -----------
my $stall = tcp_connect($port);
my $quiet = tcp_connect($port);
my ($sport, $qport) = map { $_ ? $_->sockport : 0 } $stall, $quiet;
# the first 10 bytes of a ClientHello record, then nothing
syswrite($stall, "\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03") if $stall;
my $t0 = time;
$r = curl("$url/meanwhile");
like($r->[1], qr/GET \/meanwhile/, 'a client is served while two stall');
($bytes, $eof) = read_to_eof($stall, 10);
my $el = time - $t0;
ok($eof && $el >= 0.8 * $hs && $el < $hs + kapd_tmo(5),
   sprintf('a client stalled mid-handshake is cut at the timeout (%.1fs)', $el));
($bytes, $eof) = read_to_eof($quiet, 10);
ok($eof, 'so is one that never sends a byte');
ok(wait_until(sub { tls_lines($sport) && tls_lines($qport) }, kapd_tmo(5)),
   'both logged');
@l = (tls_lines($sport), tls_lines($qport));
ok(@l == 2 && !grep({ !/handshake timed out: no progress within ${hs}s/ } @l),
   'once each: handshake timed out') or diag(explain(\@l));

# -- a client that ends with close_notify and no request: no error line ------
my $c = tcp_connect($port);
my $cport = $c ? $c->sockport : 0;
my $tls = $c ? tls_client($c, '127.0.0.1', ca => $ca) : undef;
ok($tls, 'IO::Socket::SSL handshake');
$tls->close(SSL_no_shutdown => 0) if $tls;
$r = curl("$url/after");
like($r->[1], qr/GET \/after/, 'served after it');
ok(!tls_lines($cport), 'a clean close_notify is not an error');

# -- many handshakes at once ---------------------------------------------------
# This part is about concurrency; the stalls above were about the timeout.
# 50 handshakes at once on a loaded machine (sanitizer builds, parallel
# test files) can each go a second without progress, which the 1 s
# timeout rightly cuts; so a timeout they cannot reach here.
$t->stop;
$t->write_conf(conf(hs => kapd_tmo(15)));
ok($t->try_run, 'restarted with a 15 s handshake timeout') or diag($t->{run_error});
$r = curl('--parallel', '--parallel-max', '50', '-o', '/dev/null',
          '-w', '%{http_code}\n', "$url/c/[1-100]");
my @codes = grep { /^\d{3}$/ } split /\n/, $r->[1];
ok(@codes == 100 && !grep({ $_ ne '200' } @codes),
   '100 handshakes, 50 at a time: 100 answers') or diag($r->[1]);

ok(!grep({ /\[(error|warn)\]/ } split /\n/, substr($t->error_log, $served_from)),
   'no error or warning logged while serving');
is($t->stop, 0, 'kapd stops cleanly');

# everything the server sends until EOF or the deadline: (bytes, eof)
sub read_to_eof {
    my ($sock, $tmo) = @_;
    return ('', 0) unless $sock;
    my $buf = '';
    my $deadline = time + kapd_tmo($tmo);
    while (time < $deadline) {
        next unless IO::Select->new($sock)->can_read(0.1);
        my $n = sysread($sock, $buf, 4096, length $buf);
        return ($buf, 1) unless $n;
    }
    return ($buf, 0);
}
