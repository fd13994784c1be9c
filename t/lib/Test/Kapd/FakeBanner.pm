package Test::Kapd::FakeBanner;

# Test::Kapd::FakeBanner -- a raw TCP "server speaks first" fake (like an
# SSH server): on accept it sends a banner line at once, then echoes
# every byte it receives.  Run as a child process; one child per
# connection.  Each accepted connection appends its peer to
# <prefix>/fakebanner-<name>.conns, see count().
#
#   my $b = Test::Kapd::FakeBanner->new($t, port => $t->port('ssh'),
#       banner => "SSH-2.0-FakeSSH_1.0\r\n");

use strict;
use warnings;

use Carp;
use IO::Socket::IP;
use POSIX qw(_exit WNOHANG);
use Test::Kapd ();

sub new {
    my ($class, $t, %o) = @_;
    my $port = $o{port} // $t->port('banner');
    my $addr = $o{addr} // '127.0.0.1';
    my $name = $o{name} // "banner$port";
    my $self = bless {
        t      => $t,
        port   => $port,
        addr   => $addr,
        name   => $name,
        banner => $o{banner} // "SSH-2.0-FakeSSH_1.0\r\n",
        log    => $t->testdir . "/fakebanner-$name.conns",
    }, $class;
    open my $fh, '>', $self->{log} or croak "$self->{log}: $!";
    close $fh;
    my $ls = IO::Socket::IP->new(LocalHost => $addr, LocalPort => $port,
        Proto => 'tcp', Listen => 128, ReuseAddr => 1)
        or croak "FakeBanner: listen $addr:$port: $!";
    $self->{pid} = $t->run_daemon(sub { $self->_serve($ls) });
    close $ls;
    $t->add_fake($self);
    return $self;
}

sub port   { $_[0]{port} }
sub banner { $_[0]{banner} }

sub _serve {
    my ($self, $ls) = @_;
    my @kids;
    local $SIG{TERM} = sub { CORE::kill('TERM', @kids) if @kids; _exit(0) };
    while (1) {
        my $c = $ls->accept;
        @kids = grep { waitpid($_, WNOHANG) == 0 } @kids;
        next unless $c;
        my $pid = fork;
        if (!defined $pid) { close $c; next }
        if ($pid == 0) {
            $SIG{TERM} = sub { _exit(0) };
            close $ls;
            if (open my $fh, '>>', $self->{log}) {
                print $fh $c->peerhost, ':', $c->peerport, "\n";
                close $fh;
            }
            syswrite($c, $self->{banner});
            while (1) {
                my $n = sysread($c, my $buf, 65536);
                last unless $n;
                my $off = 0;
                while ($off < $n) {
                    my $w = syswrite($c, $buf, $n - $off, $off);
                    _exit(0) unless $w;
                    $off += $w;
                }
            }
            _exit(0);
        }
        push @kids, $pid;
        close $c;
    }
}

# count(): connections accepted so far.
sub count {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return 0;
    my @l = <$fh>;
    return scalar @l;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    CORE::kill('TERM', $self->{pid});
    waitpid($self->{pid}, 0);
    $self->{t}{daemons} = [grep { $_ != $self->{pid} } @{$self->{t}{daemons}}];
    $self->{pid} = undef;
}

1;
