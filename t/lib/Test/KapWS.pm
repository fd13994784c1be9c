package Test::KapWS;
# Test::KapWS -- a small WebSocket client (RFC 6455) for the tests: the
# handshake with every field under the test's control, frames masked or
# not, fragmented or not, and a reader that answers pings (unless told
# not to) and returns each frame.
#
#   my $ws = Test::KapWS->connect(port => $p, path => '/ws/logs',
#                                 protocols => "kap.v1, kap.token.$tok");
#   $ws->{status}            # 101, or the refusal's status
#   $ws->{headers}{lc name}  # the answer's headers
#   $ws->{body}              # a refusal's body
#   $ws->send_text('...');   $ws->send_frame($op, $data, mask => 0, fin => 1)
#   my $f = $ws->recv(5);    # { op, data } or undef (timeout, EOF)
#   my $m = $ws->recv_json_until(sub { $_[0]{type} eq 'live' }, 5);
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Digest::SHA qw(sha1_base64);
use MIME::Base64 qw(encode_base64);
use JSON::PP;
use Time::HiRes qw(time);

our $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

sub new_key { return encode_base64(join('', map { chr int rand 256 } 1 .. 16), '') }

sub connect {
    my ($class, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $o{port}, LocalAddr => $o{from} // '127.0.0.1',
        Proto => 'tcp', Timeout => 5) or return undef;
    binmode $s;
    my $key = exists $o{key} ? $o{key} : new_key();
    my @h = ("GET $o{path} HTTP/1.1", "Host: " . ($o{host} // "127.0.0.1:$o{port}"));
    my %def = (Upgrade => 'websocket', Connection => 'Upgrade',
               'Sec-WebSocket-Version' => 13);
    for my $n ('Upgrade', 'Connection', 'Sec-WebSocket-Version') {
        my $v = exists $o{lc $n} ? $o{lc $n} : $def{$n};
        push @h, "$n: $v" if defined $v;
    }
    push @h, "Sec-WebSocket-Key: $key" if defined $key;
    push @h, "Sec-WebSocket-Protocol: $o{protocols}" if defined $o{protocols};
    push @h, "Origin: $o{origin}" if defined $o{origin};
    push @h, @{$o{headers} // []};
    print $s join("\r\n", @h) . "\r\n\r\n";
    my $self = bless { s => $s, buf => '', key => $key, headers => {},
                       status => 0, body => '' }, $class;
    my $dl = time + ($o{timeout} // 10);
    while ($self->{buf} !~ /\r\n\r\n/) {
        last unless $self->_fill($dl);
    }
    my $i = index($self->{buf}, "\r\n\r\n");
    return $self if $i < 0;
    my $head = substr($self->{buf}, 0, $i);
    $self->{buf} = substr($self->{buf}, $i + 4);
    my ($st, @lines) = split /\r\n/, $head;
    ($self->{status}) = $st =~ m{^HTTP/1\.1 (\d{3})};
    $self->{status} //= 0;
    for (@lines) {
        my ($n, $v) = /^([^:]+):\s*(.*)$/ or next;
        $self->{headers}{lc $n} = $v;
    }
    if ($self->{status} != 101) {
        my $len = $self->{headers}{'content-length'} // 0;
        while (length($self->{buf}) < $len) { last unless $self->_fill($dl) }
        $self->{body} = substr($self->{buf}, 0, $len);
        $self->{json} = eval { decode_json($self->{body}) };
    }
    return $self;
}

# the Sec-WebSocket-Accept the key asks for
sub expected_accept {
    my ($self) = @_;
    my $a = sha1_base64($self->{key} . $GUID);
    return $a . '=' x ((4 - length($a) % 4) % 4);
}

sub _fill {
    my ($self, $dl) = @_;
    my $left = $dl - time;
    return 0 if $left <= 0;
    return 0 unless IO::Select->new($self->{s})->can_read($left);
    my $n = sysread($self->{s}, my $chunk, 65536);
    if (!$n) { $self->{eof} = 1; return 0 }
    $self->{buf} .= $chunk;
    return 1;
}

sub send_frame {
    my ($self, $op, $data, %o) = @_;
    my $fin = exists $o{fin} ? $o{fin} : 1;
    my $mask = exists $o{mask} ? $o{mask} : 1;
    my $len = length $data;
    my $f = chr(($fin ? 0x80 : 0) | $op);
    my $mbit = $mask ? 0x80 : 0;
    if ($len < 126) { $f .= chr($mbit | $len) }
    elsif ($len < 65536) { $f .= chr($mbit | 126) . pack('n', $len) }
    else { $f .= chr($mbit | 127) . pack('Q>', $len) }
    if ($mask) {
        my $k = join '', map { chr int rand 256 } 1 .. 4;
        my $m = ($k x (int($len / 4) + 1));
        $f .= $k . ($data ^ substr($m, 0, $len));
    } else {
        $f .= $data;
    }
    local $SIG{PIPE} = 'IGNORE';
    return syswrite($self->{s}, $f) // 0;
}

sub send_text { my ($self, $d) = @_; return $self->send_frame(1, $d) }

# one frame from the server (unmasked), or undef; pings are answered
# unless $self->{no_pong}
sub recv {
    my ($self, $tmo) = @_;
    my $dl = time + ($tmo // 5);
    for (;;) {
        my $b = $self->{buf};
        if (length($b) >= 2) {
            my ($b0, $b1) = unpack('CC', $b);
            my $len = $b1 & 0x7f;
            my $off = 2;
            if ($len == 126) { $len = length($b) >= 4 ? unpack('n', substr($b, 2, 2)) : -1; $off = 4 }
            elsif ($len == 127) { $len = length($b) >= 10 ? unpack('Q>', substr($b, 2, 8)) : -1; $off = 10 }
            if ($len >= 0 && length($b) >= $off + $len) {
                my $f = { op => $b0 & 0x0f, fin => $b0 >> 7,
                          masked => $b1 >> 7, data => substr($b, $off, $len) };
                $self->{buf} = substr($b, $off + $len);
                if ($f->{op} == 9 && !$self->{no_pong}) {
                    $self->{pings}++;
                    $self->send_frame(10, $f->{data});
                    next;
                }
                return $f;
            }
        }
        return undef unless $self->_fill($dl);
    }
}

# the close frame's code, or undef
sub close_code {
    my ($f) = @_;
    return undef unless $f && $f->{op} == 8 && length($f->{data}) >= 2;
    return unpack('n', substr($f->{data}, 0, 2));
}

# text frames decoded, until $pred is true of one (returned) or timeout;
# every message seen is pushed to @{$self->{seen}}
sub recv_json_until {
    my ($self, $pred, $tmo) = @_;
    my $dl = time + ($tmo // 5);
    while (time < $dl) {
        my $f = $self->recv($dl - time) or return undef;
        if ($f->{op} == 8) { $self->{closed} = $f; return undef }
        next unless $f->{op} == 1;
        my $m = eval { decode_json($f->{data}) } or next;
        push @{$self->{seen}}, $m;
        return $m if $pred->($m);
    }
    return undef;
}

# wait for the connection's end (EOF); 1 when it came in time
sub wait_eof {
    my ($self, $tmo) = @_;
    my $dl = time + ($tmo // 5);
    while (!$self->{eof}) {
        $self->{buf} = '';
        last unless $self->_fill($dl);
    }
    return $self->{eof} ? 1 : 0;
}

sub close { my ($self) = @_; close $self->{s} }

1;
