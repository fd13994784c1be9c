#!/usr/bin/perl
# 502-remote-tls.t -- the remote module with cert and key: it serves
# HTTPS through the core's TLS layer (a self-signed certificate for
# 127.0.0.1, as a user would make one), curl verifying it pairs and reads
# /api/status, auth is still required over TLS, and a plain-HTTP client
# gets no answer from the TLS port.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Digest::SHA qw(sha256_hex);
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('remote');
for my $tool (qw(openssl curl)) {
    my ($rc) = Test::Kapd::_capture('sh', '-c', "command -v $tool");
    plan(skip_all => "$tool is missing") if $rc != 0;
}
$t->plan(5);

my $dir = $t->path('tls');
mkdir $dir;
mkdir "$dir/key", 0700;
chmod 0700, "$dir/key";
my ($rc, $out) = Test::Kapd::_capture('openssl', 'req', '-x509', '-newkey', 'ec',
    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', "$dir/key/key.pem", '-out', "$dir/cert.pem", '-days', '2',
    '-subj', '/CN=kap remote', '-addext', 'subjectAltName=IP:127.0.0.1');
$rc == 0 or BAIL_OUT("openssl req: $out");
chmod 0600, "$dir/key/key.pem";

$t->write_conf(<<'EOF2');
kapd: {
    load = ["remote"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
remote: {
    listen = ["127.0.0.1:%%PORT_remote%%"];
    state_dir = "state";
    cert = "tls/cert.pem";
    key = "tls/key/key.pem";
};
EOF2
ok($t->try_run, 'kapd serves remote over TLS') or diag($t->{run_error});
my $port = $t->port('remote');
my $base = "https://127.0.0.1:$port";
my $state = $t->path('state');
Test::Kapd::wait_until(sub { -d "$state/devices" }, kapd_tmo(5));

sub curl {
    my (@a) = @_;
    my ($rc, $out) = Test::Kapd::_capture('curl', '-sS', '--cacert', "$dir/cert.pem",
                                          '-w', '\n%{http_code}', @a);
    my ($body, $code) = $out =~ /^(.*)\n(\d{3})\z/s;
    return ($code // 0, $body // $out);
}

my ($code) = curl("$base/api/status");
is($code, 401, 'over TLS: no token, 401');
my $secret = 'ab' x 16;
{
    umask 077;
    open my $fh, '>', "$state/pairing" or die $!;
    print $fh 'sha256:' . sha256_hex($secret) . "\n";
    close $fh;
}
my $body;
($code, $body) = curl('-X', 'POST', '-H', "Authorization: Bearer $secret",
                      '-d', '{"name":"tls phone"}', "$base/api/pair");
is($code, 200, 'pairing over TLS, the certificate verified by curl');
my $tok = eval { decode_json($body)->{token} } // '';
($code, $body) = curl('-H', "Authorization: Bearer $tok", "$base/api/status");
is($code, 200, 'the device token works over TLS');
my $plain = Test::Kapd::http_get('/api/status', addr => "127.0.0.1:$port",
                                 timeout => 2);
unlike($plain // '', qr{^HTTP/1\.1 \d{3}}, 'plain HTTP gets no HTTP answer');

$t->finish;
