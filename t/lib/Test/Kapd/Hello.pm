package Test::Kapd::Hello;

# Test::Kapd::Hello -- hand-built TLS ClientHellos and a silent echo
# upstream that counts the bytes it gets, for tests of what a client may
# send first inside a CONNECT tunnel.
#
#   use Test::Kapd::Hello qw(ext sni_ext hello_body records hello);
#   my $ch = hello(sni => 'github.com');            # one record
#   my $ch = records(hello_body(sni => 'x', pad => 20000), 60);
#   my $ch = hello(exts => [sni_ext('a', 'b'), ext(0xfe0d, $payload)]);
#   my $echo = Test::Kapd::Hello->echo($t, '127.0.0.2', $port, ...);
#   $echo->bytes;                                   # received so far
#   my ($got, $closed) = first_bytes($tunnel, $ch, bytewise => 1);
#
# hello_body(%o): sni => name (default github.com) or exts => [...] for
# the name-related extensions (the usual groups, signature algorithms,
# versions and key share are always added), pad => n (padding), version
# => legacy_version (default 0x0303), sid => session id bytes.

use strict;
use warnings;

use Carp;
use Exporter 'import';
use IO::Select;
use IO::Socket::IP;
use POSIX qw(_exit);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
use Test::Kapd ();

our @EXPORT_OK = qw(ext sni_ext hello_body records hello first_bytes);

sub ext { my ($type, $data) = @_; pack('nn', $type, length $data) . $data }

# a server_name extension; a name may be [type, bytes] for another
# name_type than host_name (0)
sub sni_ext {
    my (@names) = @_;
    my $list = join '', map {
        my ($ty, $n) = ref $_ ? @$_ : (0, $_);
        pack('Cn', $ty, length $n) . $n
    } @names;
    return ext(0, pack('n', length $list) . $list);
}

sub hello_body {
    my (%o) = @_;
    my @exts = @{$o{exts} // [sni_ext($o{sni} // 'github.com')]};
    push @exts,
        ext(0x000a, pack('n*', 4, 0x001d, 0x0017)),             # groups
        ext(0x000d, pack('n*', 6, 0x0403, 0x0804, 0x0401)),     # sig algs
        ext(0x002b, pack('C n n', 4, 0x0304, 0x0303)),          # versions
        ext(0x0033, pack('n n n', 36, 0x001d, 32) . ("\x11" x 32)); # key share
    push @exts, ext(0x0015, "\0" x $o{pad}) if $o{pad};         # padding
    my $exts = join '', @exts;
    my $sid = $o{sid} // ("\x24" x 32);
    my $b = pack('n', $o{version} // 0x0303) . ("\x42" x 32)
        . pack('C', length $sid) . $sid
        . pack('n n*', 6, 0x1301, 0x1302, 0x1303) . pack('C C', 1, 0)
        . pack('n', length $exts) . $exts;
    return "\x01" . substr(pack('N', length $b), 1) . $b;
}

# split a handshake message into records of at most $max bytes
sub records {
    my ($hs, $max) = @_;
    $max //= 16384;
    my $out = '';
    while (length $hs) {
        my $frag = substr($hs, 0, $max, '');
        $out .= pack('C n n', 0x16, 0x0301, length $frag) . $frag;
    }
    return $out;
}

sub hello { records(hello_body(@_)) }

# first_bytes(socket, data, %o): send data (bytewise => 1: one byte per
# write, in distinct TCP segments), then read until EOF or until as many
# bytes came back (timeout => s, default 4); returns (bytes, closed?)
sub first_bytes {
    my ($s, $data, %o) = @_;
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    if ($o{bytewise}) {
        for my $i (0 .. length($data) - 1) {
            syswrite($s, substr($data, $i, 1)) or last;
            sleep(0.002) if $i % 16 == 0;   # distinct TCP segments
        }
    } else {
        my $d = $data;
        while (length $d) { my $n = syswrite($s, $d) or last; substr($d, 0, $n) = '' }
    }
    my ($got, $closed) = ('', 0);
    my $deadline = time + Test::Kapd::kapd_tmo($o{timeout} // 4);
    my $sel = IO::Select->new($s);
    while (time < $deadline && length($got) < length($data)) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, my $buf, 65536);
        if (!$n) { $closed = 1; last }
        $got .= $buf;
    }
    return ($got, $closed);
}

# echo($t, addr, port...): one silent echo server per port (it never
# speaks first), all logging the byte counts they receive to one file
sub echo {
    my ($class, $t, $addr, @ports) = @_;
    my $self = bless { log => $t->testdir . "/echo-$addr.bytes" }, $class;
    for my $port (@ports) {
        my $ls = IO::Socket::IP->new(LocalHost => $addr, LocalPort => $port,
            Listen => 64, ReuseAddr => 1) or croak "echo listen $addr:$port: $!";
        my $log = $self->{log};
        $t->run_daemon(sub {
            $SIG{CHLD} = 'IGNORE';
            while (1) {
                my $c = $ls->accept or next;
                my $pid = fork;
                next if $pid;
                if (defined $pid) {
                    # an accept is logged as 0 bytes (connections())
                    if (open my $fh, '>>', $log) { print $fh "$port 0\n"; close $fh }
                    while (1) {
                        my $n = sysread($c, my $buf, 65536);
                        last unless $n;
                        if (open my $fh, '>>', $log) { print $fh "$port $n\n"; close $fh }
                        syswrite($c, $buf);
                    }
                    _exit(0);
                }
            }
        });
        close $ls;
    }
    return $self;
}

# bytes(): what the echo servers received so far
sub bytes {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return 0;
    my $n = 0;
    while (<$fh>) { $n += (split)[1] }
    return $n;
}

# connections(): how many connections the echo servers accepted so far
sub connections {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return 0;
    my $n = 0;
    while (<$fh>) { $n++ if (split)[1] == 0 }
    return $n;
}

1;
