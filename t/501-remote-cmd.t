#!/usr/bin/perl
# 501-remote-cmd.t -- `kap remote start|status|qr|revoke|stop`
# (contrib/kap/kap-remote.sh) under dash, with a private HOME: start runs
# a daemonised kapd with the remote module (pid file, error log, its
# config in the remote directory) and prints a QR code of the pairing
# URL (decoded with zbarimg when installed); the secret in the URL's
# fragment pairs once; a new `qr` replaces the secret; --png and --svg
# write images; status lists the devices; revoke takes effect at once
# and refuses ids that are not ids; stop ends kapd and is idempotent; a
# busy port makes start fail with kapd's reason.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('remote');
my $k = Test::KapInit->new($t);
$t->plan(38);
my $b = $t->builddir;
my $rdir = $t->testdir . '/remote';
my $port = $t->port('remote');
my $env = { KAPD => "$b/kapd", KAP_QR => "$b/kap-qr",
            KAP_MODULE_PATH => $t->module_path, KAP_REMOTE_DIR => $rdir };
sub remote { return $k->kap({ env => $env }, 'remote', @_) }
sub mode { my @s = lstat $_[0]; return @s ? sprintf('%04o', $s[2] & 07777) : 'none' }

sub pair {
    my ($secret, $name) = @_;
    my $raw = Test::Kapd::http_get('/api/pair', addr => "127.0.0.1:$port",
        method => 'POST', headers => ["Authorization: Bearer $secret"],
        body => encode_json({ name => $name }));
    my $r = Test::Kapd::http_parse($raw) // { status => 0, body => '' };
    $r->{json} = eval { decode_json($r->{body}) };
    return $r;
}
sub status_of {
    my ($tok) = @_;
    my $raw = Test::Kapd::http_get('/api/status', addr => "127.0.0.1:$port",
        headers => ["Authorization: Bearer $tok"]);
    return (Test::Kapd::http_parse($raw) // { status => 0 })->{status};
}

# ---- start ---------------------------------------------------------------------
my $r = remote('start', '--listen', "127.0.0.1:$port");
is($r->{rc}, 0, 'start: exit 0') or diag($r->{err});
like($r->{out}, qr/kap remote started \(pid \d+\), listening on 127\.0\.0\.1:$port/,
     'start: says where it listens');
my ($url, $secret) = $r->{out} =~ m{^(http://127\.0\.0\.1:$port/#s=([0-9a-f]{32}))$}m;
ok($secret, 'start: prints the pairing URL, the secret in the fragment');
like($r->{out}, qr/[\x{2580}\x{2584}\x{2588}]|\xe2\x96[\x80\x84\x88]/,
     'start: draws the QR code with half blocks');
SKIP: {
    skip 'zbarimg is not installed', 1 unless -x '/usr/bin/zbarimg';
    my $png = $t->testdir . '/start.png';
    system($b . '/kap-qr', '--png', $png, $url) == 0 or die 'kap-qr';
    my $dec = `zbarimg -q --raw '$png' 2>/dev/null`;
    chomp $dec;
    is($dec, $url, 'kap-qr --png encodes the URL exactly (zbarimg)');
}
my $pid = do { local (@ARGV, $/) = ("$rdir/kapd.pid"); <> } // '';
chomp $pid;
# a test that dies half-way leaves no daemonised kapd behind
END { kill 'TERM', $pid if $pid && $pid =~ /^\d+$/ && kill 0, $pid }
ok($pid =~ /^\d+$/ && kill(0, $pid), 'kapd runs, its pid in kapd.pid');
is(mode($rdir), '0700', 'the remote directory is 0700');
is(mode("$rdir/state/pairing"), '0600', 'the pairing file is 0600');
unlike(do { local (@ARGV, $/) = ("$rdir/state/pairing"); <> } // '', qr/$secret/,
       'the pairing file does not hold the secret');
ok(-f "$rdir/error.log", 'kapd logs to the remote directory');

# ---- pairing with what start printed --------------------------------------------
$r = pair($secret, 'phone one');
is($r->{status}, 200, 'the printed secret pairs') or diag($r->{body});
my $tok = $r->{json}{token} // '';
my $id = $r->{json}{device_id} // '';
is(status_of($tok), 200, 'the device token works');
is(pair($secret, 'again')->{status}, 401, 'the printed secret works once');

# ---- status --------------------------------------------------------------------
$r = remote('status');
is($r->{rc}, 0, 'status: exit 0');
like($r->{out}, qr/^kap remote is running \(pid $pid\): http:\/\/127\.0\.0\.1:$port\//m,
     'status: running, where');
like($r->{out}, qr/^\Q$id\E\s+\d{4}-\d\d-\d\dT\S+Z\s+\d{4}-\S+Z\s+phone one$/m,
     'status: the device, paired and last seen, its name');

# ---- qr ---------------------------------------------------------------------------
$r = remote('qr');
my ($s2) = $r->{out} =~ /#s=([0-9a-f]{32})$/m;
ok($s2 && $s2 ne $secret, 'qr: a new secret');
$r = remote('qr');
my ($s3) = $r->{out} =~ /#s=([0-9a-f]{32})$/m;
is(pair($s2, 'old')->{status}, 401, 'a newer qr replaces the older secret');
is(pair($s3, 'phone two')->{status}, 200, 'the newest pairs');
my $png = $t->testdir . '/code.png';
$r = remote('qr', '--png', $png);
is($r->{rc}, 0, 'qr --png: exit 0');
is(do { open my $fh, '<:raw', $png or die; local $/ = \8; <$fh> },
   "\x89PNG\r\n\x1a\n", 'qr --png writes a PNG');
my $svg = $t->testdir . '/code.svg';
$r = remote('qr', '--svg', $svg);
like(do { local (@ARGV, $/) = ($svg); <> } // '', qr{<svg xmlns="http://www\.w3\.org/2000/svg"},
     'qr --svg writes an SVG');
$r = remote('qr', '--gif', 'x');
isnt($r->{rc}, 0, 'qr --gif: refused');

# ---- revoke ---------------------------------------------------------------------
for my $bad ('../pairing', '0123456789AB', '0123', "$id/../x") {
    $r = remote('revoke', $bad);
    isnt($r->{rc}, 0, "revoke '$bad': refused");
}
ok(-f "$rdir/state/devices/$id", 'nothing was removed');
$r = remote('revoke', $id);
is($r->{rc}, 0, 'revoke ID: exit 0');
is(status_of($tok), 401, 'the revoked token is refused at once');
unlike(remote('status')->{out}, qr/^\Q$id\E/m, 'status: the device is gone');

# ---- start when running; a busy port --------------------------------------------
$r = remote('start', '--listen', "127.0.0.1:$port");
like($r->{out}, qr/running already \(pid $pid\)/, 'start again: says it runs');

# ---- stop ---------------------------------------------------------------------------
$r = remote('stop');
is($r->{rc}, 0, 'stop: exit 0');
ok(!kill(0, $pid), 'kapd has stopped');
ok(!-e "$rdir/kapd.pid", 'the pid file is gone');
like(remote('stop')->{out}, qr/not running/, 'stop again: not running');

my $blocker = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port", Listen => 1,
                                    ReuseAddr => 1) or die "listen: $!";
$r = remote('start', '--listen', "127.0.0.1:$port");
isnt($r->{rc}, 0, 'start on a busy port fails');
like($r->{err}, qr/did not start/, 'and says so');
close $blocker;

$t->finish;
