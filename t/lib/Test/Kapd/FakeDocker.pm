package Test::Kapd::FakeDocker;

# Test::Kapd::FakeDocker -- a fake Docker Engine API on a unix socket,
# run as a child process (one child per connection, keep-alive).  It
# speaks the paths kapd uses, with the engine's answers:
#
#   GET  /v1.41/containers/json?...        the containers given
#   POST /v1.41/containers/ID/exec         201 {"Id": <64 hex>} (404 for an
#                                          unknown container)
#   POST /v1.41/exec/ID/start              200, the multiplexed stream
#                                          (stdout frames 1, stderr 2) of
#                                          what exec returns, then close
#   GET  /v1.41/exec/ID/json               {"ExitCode": n, "Running": false}
#
#   my $d = Test::Kapd::FakeDocker->new($t, path => $t->path('docker.sock'),
#       containers => [ {...engine container objects...} ],
#       exec => sub { my ($create) = @_;          # the exec create body
#                     return ($stdout, $stderr, $exit) });
#   $d->requests    every request: {method, target, body, json}
#   $d->execs       every exec create body (Cmd, User, Env, WorkingDir...)
#   hang => 1       accept connections and never answer
#
# The exec's create body and exit code are kept in files, since each
# connection is served by a child of its own.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(_exit);
use Socket qw(SOCK_STREAM);
use Test::Kapd ();
use Test::Kapd::FakeHTTP ();

sub new {
    my ($class, $t, %o) = @_;
    my $self = bless {
        t          => $t,
        path       => $o{path},
        containers => $o{containers} // [],
        exec       => $o{exec} // sub { ('', '', 0) },
        hang       => $o{hang},
        dir        => $t->path('fakedocker'),
    }, $class;
    mkdir $self->{dir};
    unlink $self->{path};
    my $ls = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $self->{path},
                                   Listen => 16)
        or die "fake docker: listen $self->{path}: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        eval { $self->_serve($ls) };
        _exit(0);
    }
    close $ls;
    $self->{pid} = $pid;
    push @{$t->{daemons}}, $pid;
    return $self;
}

# one child per connection, as FakeHTTP does; each runs our _conn
sub _serve { Test::Kapd::FakeHTTP::_serve(@_) }

sub _log {
    my ($self, $name, $v) = @_;
    open my $fh, '>>', "$self->{dir}/$name" or return;
    print $fh JSON::PP->new->canonical->encode($v), "\n";
    close $fh;
}

sub _answer {
    my ($c, $st, $body, %o) = @_;
    my $out = "HTTP/1.1 $st Fake\r\nApi-Version: 1.41\r\n";
    if ($o{stream}) {
        $out .= "Content-Type: application/vnd.docker.multiplexed-stream\r\n"
              . "Connection: close\r\n\r\n" . $body;
    } else {
        $out .= "Content-Type: application/json\r\nContent-Length: "
              . length($body) . "\r\n\r\n" . $body;
    }
    Test::Kapd::FakeHTTP::_write_all($c, $out);
}

sub _frames {
    my ($type, $data) = @_;
    my $out = '';
    while (length $data) {
        my $piece = substr($data, 0, 4096, '');
        $out .= pack('CxxxN', $type, length $piece) . $piece;
    }
    return $out;
}

sub _conn {
    my ($self, $c) = @_;
    my $J = JSON::PP->new->canonical;
    my $buf = '';
    if ($self->{hang}) {
        select(undef, undef, undef, 3600) while 1;
    }
    while (1) {
        my $req = Test::Kapd::FakeHTTP::_read_request($c, \$buf) or return;
        my $json = length $req->{body} ? eval { $J->decode($req->{body}) } : undef;
        $self->_log('requests', { method => $req->{method},
            target => $req->{target}, body => $req->{body}, json => $json,
            headers => $req->{headers} });
        my $t = $req->{target};
        if ($req->{method} eq 'GET' && $t =~ m{^/v1\.41/containers/json(\?|$)}) {
            _answer($c, 200, $J->encode($self->{containers}));
        } elsif ($req->{method} eq 'POST'
                 && $t =~ m{^/v1\.41/containers/([0-9a-f]+)/exec$}) {
            my $cid = $1;
            my ($known) = grep { $_->{Id} eq $cid } @{$self->{containers}};
            if (!$known) {
                _answer($c, 404, '{"message":"No such container: ' . $cid . '"}');
                next;
            }
            my $id = sha256_hex($req->{body} . rand());
            $self->_log('execs', $json);
            open my $fh, '>', "$self->{dir}/exec-$id" or die;
            print $fh $req->{body};
            close $fh;
            _answer($c, 201, qq({"Id":"$id"}));
        } elsif ($req->{method} eq 'POST'
                 && $t =~ m{^/v1\.41/exec/([0-9a-f]{64})/start$}) {
            my $id = $1;
            open my $fh, '<', "$self->{dir}/exec-$id" or do {
                _answer($c, 404, '{"message":"No such exec instance"}');
                next;
            };
            my $create = $J->decode(do { local $/; <$fh> });
            close $fh;
            my ($out, $err, $code) = $self->{exec}->($create);
            open $fh, '>', "$self->{dir}/exit-$id" or die;
            print $fh $code // 0;
            close $fh;
            if ($json && $json->{Detach}) {
                _answer($c, 200, '');
                next;
            }
            _answer($c, 200, _frames(1, $out // '') . _frames(2, $err // ''),
                    stream => 1);
            return;
        } elsif ($req->{method} eq 'GET'
                 && $t =~ m{^/v1\.41/exec/([0-9a-f]{64})/json$}) {
            my $code = do {
                open my $fh, '<', "$self->{dir}/exit-$1" or undef;
                $fh ? scalar <$fh> : undef;
            };
            _answer($c, 200, $J->encode({ ExitCode => defined $code ? 0 + $code : undef,
                                          Running => JSON::PP::false }));
        } else {
            _answer($c, 404, '{"message":"page not found"}');
        }
    }
}

sub _read {
    my ($self, $name) = @_;
    open my $fh, '<', "$self->{dir}/$name" or return [];
    my @r;
    while (my $l = <$fh>) {
        my $v = eval { JSON::PP->new->decode($l) } or next;
        push @r, $v;
    }
    return \@r;
}

sub requests { $_[0]->_read('requests') }
sub execs    { $_[0]->_read('execs') }

sub stop {
    my ($self) = @_;
    Test::Kapd::FakeHTTP::stop($self);
    unlink $self->{path};
}

1;
