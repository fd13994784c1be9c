#!/usr/bin/perl
# 500-remote-pair.t -- the remote module (modules/remote) over real
# sockets: pairing, device tokens, auth on every route, revoke, the
# files it keeps, hostile parameters, and logs from a live audit file.
#
# The pairing file is written the way kap(1) writes it ("sha256:HEX",
# 0600); `kap remote` itself is tested in 501-remote-cmd.t.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use IO::Socket::INET;

my $t = Test::Kapd->new->has_kapd->has_module('remote');
$t->plan(68);

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
    audit_logs = ["logs", "single.log"];
    pair_lifetime = "10m";
    pair_limit = 8;
    auth_fail_limit = 6;
    limit_window = "1m";
};
EOF2
mkdir $t->path('logs');
$t->write_file('logs/s1.jsonl',
    qq({"ts":"2026-12-07T08:00:00.000001Z","module":"http_connect","action":"denied","subject":"evil.example"}\n)
  . qq({"ts":"2026-12-07T08:00:01.000001Z","module":"dns","action":"allowed","subject":"github.com"}\n)
  . qq({"ts":"2026-12-07T08:00:02.000001Z","module":"dns","action":"denied","subject":"<script>alert(1)</script>"}\n));
ok($t->try_run, 'kapd serves remote') or diag($t->{run_error});
my $port = $t->port('remote');
my $addr = "127.0.0.1:$port";
my $J = JSON::PP->new;
our $FROM = '127.0.0.1';

sub req {
    my ($method, $path, %o) = @_;
    my @h = @{$o{headers} // []};
    push @h, "Authorization: Bearer $o{token}" if defined $o{token};
    # rate limits count per client address: each part of the test comes
    # from an address of its own on loopback
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  LocalAddr => $o{from} // $FROM,
                                  Proto => 'tcp') or die "connect: $!";
    my $raw = Test::Kapd::http_get($path, addr => $s, method => $method,
                                   headers => \@h, body => $o{body});
    my $r = Test::Kapd::http_parse($raw) // { status => 0, body => '',
                                              headers => {} };
    $r->{json} = eval { $J->decode($r->{body}) };
    return $r;
}

my $state = $t->path('state');
sub new_secret {
    my ($age) = @_;
    my $s = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    my $f = "$state/pairing";
    umask 077;
    open my $fh, '>', "$f.tmp" or die "$f: $!";
    print $fh 'sha256:' . sha256_hex($s) . "\n";
    close $fh;
    rename "$f.tmp", $f or die $!;
    utime(time - $age, time - $age, $f) if $age;
    return $s;
}
sub pair {
    my ($secret, $body) = @_;
    return req('POST', '/api/pair', token => $secret,
               headers => ['Content-Type: application/json'],
               body => $body // '{"name":"Pixel 8"}');
}

# ---- the state directory ---------------------------------------------------
# (made by the module's init, which may finish just after the port is bound)
Test::Kapd::wait_until(sub { -d "$state/devices" }, kapd_tmo(5));
ok(-d $state && ((stat $state)[2] & 07777) == 0700,
   'state_dir is made 0700');
ok(-d "$state/devices" && ((stat "$state/devices")[2] & 07777) == 0700,
   'state_dir/devices is 0700');

# ---- the page needs nothing, every other path a device token ----------------
my $r = req('GET', '/');
is($r->{status}, 200, 'GET / answers without a token');
like($r->{body}, qr{<title>kap remote</title>}, 'it is the page');
like($r->{headers}{'content-security-policy'} // '', qr/default-src 'none'/,
     'with a restrictive Content-Security-Policy');
unlike($r->{body}, qr{(?:src|href)=["']?https?://}i,
       'the page loads nothing from elsewhere');
for my $p ('/api/status', '/api/logs', '/api/logs?limit=5', '/api/nothing',
           '/etc/passwd', '/api/status/', '/API/STATUS') {
    my $x = req('GET', $p);
    is($x->{status}, 401, "GET $p without a token: 401");
}
like(req('GET', '/api/status')->{headers}{'www-authenticate'} // '',
     qr/^Bearer/, 'a 401 names the Bearer scheme');

# ---- pairing ----------------------------------------------------------------
my $secret = new_secret();
$r = req('GET', '/api/pair', token => $secret);
is($r->{status}, 405, 'GET /api/pair: 405');
$r = req('GET', '/api/status', token => $secret);
is($r->{status}, 401, 'the pairing secret is no device token');
$r = pair('0' x 32);
is($r->{status}, 401, 'a wrong pairing secret: 401');
$r = pair($secret, '{"name":"a\u001b[31mb"}');
is($r->{status}, 400, 'a device name with a control character: 400');
$r = pair($secret, '{"name":"x","admin":true}');
is($r->{status}, 400, 'unknown members in the pair body: 400');
$r = pair($secret);
is($r->{status}, 200, 'the right secret pairs') or diag($r->{body});
my $tok = $r->{json}{token} // '';
my $id = $r->{json}{device_id} // '';
like($tok, qr/^[A-Za-z0-9_-]{43}$/, 'a device token of 256 bits, base64url');
like($id, qr/^[0-9a-f]{12}$/, 'a device id of 12 hex digits');
is($r->{headers}{'cache-control'}, 'no-store', 'the token is not cached');
ok(!-e "$state/pairing", 'the pairing file is gone');
$r = pair($secret);
is($r->{status}, 401, 'the secret works once');

# the device file
my $df = "$state/devices/$id";
ok(-f $df, 'the device has a file');
is((stat $df)[2] & 07777, 0600, 'the device file is 0600');
my $dtext = do { local (@ARGV, $/) = ($df); <> } // '';
unlike($dtext, qr/\Q$tok\E/, 'the token itself is not stored');
like($dtext, qr/^token=sha256:\Q${\ sha256_hex($tok)}\E$/m,
     'its SHA-256 is');
like($dtext, qr/^name=Pixel 8$/m, 'the name from the request is kept');

# ---- authenticated routes -------------------------------------------------------
$r = req('GET', '/api/status', token => $tok);
is($r->{status}, 200, 'GET /api/status with the device token');
is($r->{json}{device}{id}, $id, 'it names this device');
is($r->{json}{audit}{denied}, 2, 'denied counted from the audit logs');
is($r->{json}{audit}{allowed}, 1, 'allowed counted');
is($r->{json}{audit}{modules}{dns}{denied}, 1, 'per module');
ok(-f "$df.seen", 'last_seen is kept');
$r = req('GET', '/api/status', headers => ["Authorization: bearer $tok"]);
is($r->{status}, 200, 'the scheme name is case-insensitive');
$r = req('GET', "/api/status?token=$tok");
is($r->{status}, 401, 'a token in the query string is not accepted');
$r = req('GET', '/api/logs', token => $tok);
is($r->{status}, 200, 'GET /api/logs');
is(scalar @{$r->{json} // []}, 3, 'three events (the broken line skipped)');
is($r->{json}[0]{subject}, '<script>alert(1)</script>',
   'newest first; a hostile subject comes back as JSON data');
$r = req('GET', '/api/logs?limit=1&denied=1', token => $tok);
is_deeply([map { $_->{subject} } @{$r->{json} // []}],
          ['<script>alert(1)</script>'], 'limit and denied');

# a live audit file: an event appended now is served at once
open my $lf, '>>', $t->path('single.log') or die $!;
print $lf qq({"ts":"2026-12-07T09:00:00.000001Z","module":"mcp","action":"denied","subject":"live.example"}\n);
close $lf;
$r = req('GET', '/api/logs?limit=1', token => $tok);
is($r->{json}[0]{subject}, 'live.example', 'an event just appended is served');

$FROM = '127.0.0.3';
# ---- hostile parameters ---------------------------------------------------------
for my $q ('limit=0', 'limit=1001', 'limit=-1', 'limit=1%30', 'limit=1&limit=2',
           'denied=yes', "token=$tok", 'limit=5;rm -rf /', 'x=1') {
    $r = req('GET', "/api/logs?$q", token => $tok);
    is($r->{status}, 400, "/api/logs?$q: 400");
}
$r = req('GET', '/api/logs?limit=5', token => $tok . 'x');
is($r->{status}, 401, 'a token with an extra byte: 401');
$r = req('POST', '/api/status', token => $tok);
is($r->{status}, 405, 'POST /api/status: 405');
$r = req('GET', '/api/status/../pair', token => $tok);
is($r->{status}, 404, 'dot segments are no route');

# ---- expiry --------------------------------------------------------------------
$secret = new_secret(11 * 60);
$r = pair($secret);
is($r->{status}, 401, 'a pairing secret older than pair_lifetime: 401');
ok(-e "$state/pairing", 'an expired secret is not consumed');
$t->wait_log(qr/expired/) or fail('the log says why');

$FROM = '127.0.0.4';
# ---- revoke (what kap remote revoke does: remove the files) ----------------------
$secret = new_secret();
$r = pair($secret, '{"name":"second"}');
my $tok2 = $r->{json}{token} // '';
unlink $df, "$df.seen";
is(req('GET', '/api/status', token => $tok)->{status}, 401,
   'a revoked device is refused at once');
is(req('GET', '/api/status', token => $tok2)->{status}, 200,
   'the other device still works');

# ---- rate limits -----------------------------------------------------------------
$FROM = '127.0.0.5';
my @st;
push @st, req('GET', '/api/status', token => 'A' x 43)->{status} for 1 .. 6;
is_deeply(\@st, [(401) x 6], 'failed auths are answered 401 up to the limit')
    or diag("@st");
$r = req('GET', '/api/status', token => $tok2);
is($r->{status}, 429, 'then even a good token from that address waits: 429');
ok(($r->{headers}{'retry-after'} // 0) >= 1, 'with Retry-After');
is(req('GET', '/api/status', token => $tok2, from => '127.0.0.6')->{status},
   200, 'other addresses are not held');
# pairing: pair_limit (8) attempts per window from all addresses together;
# seven were made above
$FROM = '127.0.0.7';
$secret = new_secret();
is(pair('f' x 32)->{status}, 401, 'the eighth pairing attempt is answered');
$r = pair($secret, undef);
is($r->{status}, 429, 'the ninth waits, even with the right secret');
$FROM = '127.0.0.8';
is(pair($secret)->{status}, 429, 'and from any other address');
ok(-e "$state/pairing", 'the secret was not spent');

$t->finish;
