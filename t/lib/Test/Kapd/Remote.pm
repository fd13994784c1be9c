package Test::Kapd::Remote;

# Test::Kapd::Remote -- a paired device for the remote module's tests,
# paired the way `kap remote qr` and the page do it: a pairing secret
# whose SHA-256 goes into STATE/pairing (0600, renamed into place), then
# POST /api/pair with the secret as the Bearer token.
#
#   use Test::Kapd::Remote qw(remote_pair);
#   my ($tok, $id) = remote_pair($port, $t->path('state'), 'phone');

use strict;
use warnings;

use Exporter 'import';
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Test::Kapd ();

our @EXPORT_OK = qw(remote_pair);

sub remote_pair {
    my ($port, $state, $name) = @_;
    my $s = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    Test::Kapd::wait_until(sub { -d "$state/devices" }, Test::Kapd::kapd_tmo(5));
    my $um = umask 077;
    open my $fh, '>', "$state/pairing.tmp" or die "$state/pairing.tmp: $!";
    print $fh 'sha256:' . sha256_hex($s) . "\n";
    close $fh;
    umask $um;
    rename "$state/pairing.tmp", "$state/pairing" or die "rename: $!";
    my $raw = Test::Kapd::http_get('/api/pair', addr => "127.0.0.1:$port",
        method => 'POST', headers => ["Authorization: Bearer $s",
                                      'Content-Type: application/json'],
        body => encode_json({ name => $name // 'device' }));
    my $j = eval { decode_json((Test::Kapd::http_parse($raw) // {})->{body} // '') } // {};
    return ($j->{token} // '', $j->{device_id} // '');
}

1;
