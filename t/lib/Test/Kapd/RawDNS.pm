package Test::Kapd::RawDNS;

# Test::Kapd::RawDNS -- a DNS upstream for tests that answers with bytes
# the test builds itself (hostile or malformed replies a real server
# library would refuse to produce), on UDP and TCP, run as a child
# process of the test.  Every query received is appended as hex to a log
# in the test prefix.
#
#   my $up = Test::Kapd::RawDNS->new($t, port => $t->port('up'),
#       reply => sub { my ($query, $proto) = @_; return $bytes_or_undef });
#   delay => 0.8 or sub { my ($query) = @_; secs }: answer that much
#   later (UDP answers are queued, not slept on: one slow answer does not
#   hold up the others)
#   $up->queries_hex;          # every query received so far, as hex
#   $up->count;                # how many
#   Test::Kapd::RawDNS::question_end($query);   # offset past the question
#
# reply() gets the query's raw bytes and 'udp' or 'tcp'; undef sends
# nothing (over TCP: closes the connection).

use strict;
use warnings;

use Carp;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

sub new {
    my ($class, $t, %o) = @_;
    my $port = $o{port} // croak 'RawDNS: port';
    my $reply = $o{reply} // croak 'RawDNS: reply';
    my $delay = $o{delay} // 0;
    my $self = bless { t => $t, port => $port,
                       delay => ref $delay ? $delay : sub { $delay },
                       log => $t->testdir . "/rawdns-$port.hex" }, $class;
    open my $fh, '>', $self->{log} or croak "$self->{log}: $!";
    close $fh;
    my $u = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                  Proto => 'udp') or croak "RawDNS: udp $port: $!";
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                  Proto => 'tcp', Listen => 16, ReuseAddr => 1)
        or croak "RawDNS: tcp $port: $!";
    $self->{pid} = $t->run_daemon(sub { $self->_serve($u, $l, $reply) });
    close $u;
    close $l;
    return $self;
}

sub _log {
    my ($self, $m) = @_;
    if (open my $fh, '>>', $self->{log}) {
        print $fh unpack('H*', $m), "\n";
        close $fh;
    }
}

sub _tcp_conn {
    my ($self, $c, $reply) = @_;
    while (1) {
        my $n = sysread($c, my $l, 2);
        return unless $n && $n == 2;
        my ($want, $m) = (unpack('n', $l), '');
        while (length $m < $want) {
            sysread($c, $m, $want - length $m, length $m) or return;
        }
        $self->_log($m);
        my $r = $reply->($m, 'tcp') // return;
        my $d = $self->{delay}->($m);
        select(undef, undef, undef, $d) if $d;
        syswrite($c, pack('n', length $r) . $r);
    }
}

sub _serve {
    my ($self, $u, $l, $reply) = @_;
    $SIG{CHLD} = 'IGNORE';
    my $sel = IO::Select->new($u, $l);
    my @due;                                # [time, reply, peer], sorted
    while (1) {
        my $wait = @due ? $due[0][0] - Time::HiRes::time() : 1;
        for my $s ($sel->can_read($wait > 0 ? $wait : 0)) {
            if ($s == $l) {
                my $c = $l->accept or next;
                my $pid = fork;
                next if !defined $pid || $pid;
                $self->_tcp_conn($c, $reply);
                POSIX::_exit(0);
            }
            my $peer = $u->recv(my $m, 65535) // next;
            $self->_log($m);
            my $r = $reply->($m, 'udp') // next;
            my $d = $self->{delay}->($m) || 0;
            @due = sort { $a->[0] <=> $b->[0] }
                   @due, [Time::HiRes::time() + $d, $r, $peer];
        }
        while (@due && $due[0][0] <= Time::HiRes::time()) {
            my $x = shift @due;
            $u->send($x->[1], 0, $x->[2]);
        }
    }
}

# queries_hex(): every query received so far, as hex strings
sub queries_hex {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return ();
    chomp(my @l = <$fh>);
    return @l;
}

sub count { scalar $_[0]->queries_hex }

# question_end(query): the offset just past the (uncompressed) question,
# and the lower-cased name; () when the question is cut or compressed
sub question_end {
    my ($m) = @_;
    my ($pos, @labels) = (12);
    while ($pos < length $m) {
        my $l = ord substr($m, $pos, 1);
        return () if $l >= 64;
        last if $l == 0;
        push @labels, substr($m, $pos + 1, $l);
        $pos += 1 + $l;
    }
    my $end = $pos + 1 + 4;
    return () if $end > length $m;
    return ($end, lc join '.', @labels);
}

1;
