package Test::Kapd::Cli;

# Test::Kapd::Cli -- one call to the cli module's proxy mode
# (docs/cli-protocol.md) and its framed answer.
#
#   use Test::Kapd::Cli qw(cli_call);
#   my $r = cli_call("127.0.0.1:$port", 'gh', ['pr', 'list'], timeout => 30);
#   $r->{exit}, $r->{why}, $r->{out}, $r->{err}, $r->{status}
#
# The request is POST /<tool> with {"args": [...]}; the answer's frames
# are sorted: stdout (1), stderr (2), and the exit frame ("CODE WHY").
# exit is -1 when no exit frame came.

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;
use Test::Kapd ();

our @EXPORT_OK = qw(cli_call);

sub cli_call {
    my ($addr, $tool, $args, %o) = @_;
    my $body = encode_json({ args => $args });
    my $raw = Test::Kapd::http_raw($addr,
        "POST /$tool HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
        . length($body) . "\r\n\r\n$body", timeout => $o{timeout} // 30);
    my $p = Test::Kapd::http_parse($raw) // { status => 0, body => '' };
    my $b = $p->{body};
    my %r = (status => $p->{status}, out => '', err => '', exit => -1);
    while (length($b) >= 5) {
        my ($id, $n) = unpack('a1 N', $b);
        my $d = substr($b, 5, $n);
        substr($b, 0, 5 + $n) = '';
        $r{out} .= $d if $id eq "\x01";
        $r{err} .= $d if $id eq "\x02";
        ($r{exit}, $r{why}) = $d =~ /^(\d+) ?(\S*)/ if $id eq 'x';
    }
    return \%r;
}

1;
