package Test::Kapd::FakeHTTP;

# Test::Kapd::FakeHTTP -- an HTTP/1.1 origin server for tests, run as a
# child process (one child per connection, keep-alive).  Every response
# body is JSON naming the server and echoing what it received:
#
#   { "server": "<name>", "request_line": "GET /x HTTP/1.1",
#     "method": "GET", "target": "/x", "version": "HTTP/1.1",
#     "headers": [["Host","a.test"], ...], "body": "...",
#     "tls": 0|1, "sni": "a.test"|null, "peer": "127.0.0.1:port" }
#
# and carries "X-Fake-Server: <name>".  Each request is also appended (as
# a JSON line) to <prefix>/fakehttp-<name>.requests, see requests(), and
# every accepted connection to fakehttp-<name>.conns, see connections().
#
#   my $o = Test::Kapd::FakeHTTP->new($t, port => $t->port('origin'),
#       name => 'origin', addr => '127.0.0.1',
#       tls => 1, cert_names => ['a.test'],     # self-signed at test time
#       alpn => ['h2', 'http/1.1'],             # offered to TLS clients; the
#                                               # one chosen is logged ("alpn")
#       handler => sub { my ($req) = @_; return (200, [h => v], $body) });
#
# Special targets: /status/NNN answers that status; /bytes/N answers N
# bytes of "x"; /close closes the connection without answering.
#
# A handler may answer a body that comes in pieces over time: an ARRAY
# ref instead of a string is sent with Transfer-Encoding: chunked, one
# element after the other, each string as one chunk in its own write, and
#   { sleep => SECONDS }               a pause between pieces
#   { bulk => N, progress => FILE }    N bytes of "x" in 16 KiB chunks;
#                                      FILE holds the bytes written so
#                                      far (how far the reader let it go);
#                                      with fill => S, each chunk is S
#                                      repeated (whole copies, up to 16 KiB)
#   { close => 1 }                     close now, without the last chunk
#   { hang => 1 }                      never go on (until stopped)
# A Content-Type among the handler's headers replaces the default
# application/json.

use strict;
use warnings;

use Carp;
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use POSIX qw(_exit WNOHANG);
use Test::Kapd ();

sub new {
    my ($class, $t, %o) = @_;
    my $port = $o{port} // $t->port('http');
    my $addr = $o{addr} // '127.0.0.1';
    my $name = $o{name} // "http$port";
    my $self = bless {
        t       => $t,
        port    => $port,
        addr    => $addr,
        name    => $name,
        tls     => $o{tls} ? 1 : 0,
        alpn    => $o{alpn},
        handler => $o{handler},
        log     => $t->testdir . "/fakehttp-$name.requests",
        clog    => $t->testdir . "/fakehttp-$name.conns",
    }, $class;
    if ($self->{tls}) {
        my ($c, $k) = $o{cert}
            ? ($o{cert}, $o{key})
            : make_cert($t, $o{cert_names} // ['localhost'], $name);
        @$self{qw(cert key)} = ($c, $k);
        require IO::Socket::SSL;
    }
    for my $f ($self->{log}, $self->{clog}) {
        open my $fh, '>', $f or croak "$f: $!";
        close $fh;
    }
    my $ls = IO::Socket::IP->new(LocalHost => $addr, LocalPort => $port,
        Proto => 'tcp', Listen => 128, ReuseAddr => 1)
        or croak "FakeHTTP: listen $addr:$port: $!";
    $self->{pid} = $t->run_daemon(sub { $self->_serve($ls) });
    close $ls;
    $t->add_fake($self);
    return $self;
}

sub port { $_[0]{port} }
sub name { $_[0]{name} }
sub cert { $_[0]{cert} }
sub key  { $_[0]{key} }

# make_cert(t, [names], [base]): a self-signed EC certificate with the
# names as subjectAltName (DNS or IP), written into the prefix; returns
# (cert path, key path).
sub make_cert {
    my ($t, $names, $base) = @_;
    $base //= 'cert';
    my $dir = $t->testdir;
    my ($c, $k) = ("$dir/$base.crt", "$dir/$base.key");
    my $san = join ',', map { /^[\d.]+$|:/ ? "IP:$_" : "DNS:$_" } @$names;
    my @cmd = ('openssl', 'req', '-x509', '-newkey', 'ec',
        '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', $k, '-out', $c, '-days', '2',
        '-subj', "/CN=$names->[0]", '-addext', "subjectAltName=$san");
    my ($rc, $out) = Test::Kapd::_capture(@cmd);
    croak "openssl req failed: $out" if $rc != 0;
    return ($c, $k);
}

sub _serve {
    my ($self, $ls) = @_;
    $SIG{CHLD} = 'DEFAULT';
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
            eval { $self->_conn($c) };
            _exit(0);
        }
        push @kids, $pid;
        close $c;
    }
}

sub _conn {
    my ($self, $c) = @_;
    my $peer = $c->peerhost . ':' . $c->peerport;
    if (open my $fh, '>>', $self->{clog}) {
        print $fh "$peer\n";
        close $fh;
    }
    my ($sni, $alpn);
    if ($self->{tls}) {
        IO::Socket::SSL->start_SSL($c, SSL_server => 1,
            SSL_cert_file => $self->{cert}, SSL_key_file => $self->{key},
            $self->{alpn} ? (SSL_alpn_protocols => $self->{alpn}) : (),
            SSL_startHandshake => 1, Timeout => 10) or return;
        $sni = $c->get_servername;
        $alpn = $c->alpn_selected if $self->{alpn};
    }
    my $buf = '';
    while (1) {
        my $req = _read_request($c, \$buf) or return;
        @$req{qw(tls sni peer)} = ($self->{tls}, $sni, $peer);
        $req->{alpn} = $alpn if $self->{alpn};
        if (open my $fh, '>>', $self->{log}) {
            print $fh JSON::PP->new->canonical->encode({ %$req,
                server => $self->{name} }), "\n";
            close $fh;
        }
        my ($st, $hdrs, $body);
        if ($self->{handler}) {
            ($st, $hdrs, $body) = $self->{handler}->($req);
        } elsif ($req->{target} =~ m{^(?:https?://[^/]+)?/status/(\d{3})}) {
            $st = $1;
        } elsif ($req->{target} =~ m{^(?:https?://[^/]+)?/bytes/(\d+)}) {
            ($st, $body) = (200, 'x' x $1);
        } elsif ($req->{target} =~ m{^(?:https?://[^/]+)?/close}) {
            return;
        }
        $st //= 200;
        $body //= JSON::PP->new->canonical->encode({ %$req,
            server => $self->{name} });
        my $close = grep { lc($_->[0]) eq 'connection'
                           && $_->[1] =~ /close/i } @{$req->{headers}};
        $close ||= $req->{version} eq 'HTTP/1.0';
        my $out = "HTTP/1.1 $st Fake\r\nX-Fake-Server: $self->{name}\r\n";
        my @h = @{$hdrs // []};
        my $has_ct = 0;
        while (my ($k, $v) = splice(@h, 0, 2)) {
            $out .= "$k: $v\r\n";
            $has_ct = 1 if lc $k eq 'content-type';
        }
        $out .= "Content-Type: application/json\r\n" unless $has_ct;
        if (ref $body eq 'ARRAY') {
            $out .= "Transfer-Encoding: chunked\r\n";
            $out .= "Connection: close\r\n" if $close;
            _write_all($c, "$out\r\n") or return;
            _write_pieces($c, $body) or return;
            return if $close;
            next;
        }
        $out .= "Content-Length: " . length($body) . "\r\n";
        $out .= "Connection: close\r\n" if $close;
        $out .= "\r\n";
        $out .= $body unless $req->{method} eq 'HEAD';
        _write_all($c, $out) or return;
        return if $close;
    }
}

sub _write_all {
    my ($c, $data) = @_;
    while (length $data) {
        my $n = syswrite($c, $data);
        return 0 unless $n;
        substr($data, 0, $n) = '';
    }
    return 1;
}

# a body in pieces (see the top), chunked; 0 when the connection ends
sub _write_pieces {
    my ($c, $pieces) = @_;
    for my $p (@$pieces) {
        if (!ref $p) {
            next unless length $p;
            _write_all($c, sprintf("%x\r\n%s\r\n", length $p, $p)) or return 0;
        } elsif (exists $p->{sleep}) {
            select(undef, undef, undef, $p->{sleep});
        } elsif (exists $p->{bulk}) {
            my ($left, $done) = ($p->{bulk}, 0);
            my $chunk = defined $p->{fill}
                ? $p->{fill} x (int(16384 / length $p->{fill}) || 1) : 'x' x 16384;
            my $cl = length $chunk;
            while ($left > 0) {
                my $n = $left < $cl ? $left : $cl;
                _write_all($c, sprintf("%x\r\n%s\r\n", $n,
                                       substr($chunk, 0, $n))) or return 0;
                $left -= $n;
                $done += $n;
                if ($p->{progress} && open my $fh, '>', "$p->{progress}.tmp") {
                    print $fh "$done\n";
                    close $fh;
                    rename "$p->{progress}.tmp", $p->{progress};
                }
            }
        } elsif ($p->{close}) {
            return 0;
        } elsif ($p->{hang}) {
            select(undef, undef, undef, 3600) while 1;
        }
    }
    return _write_all($c, "0\r\n\r\n");
}

sub _fill {
    my ($c, $bufref) = @_;
    my $pending = $c->isa('IO::Socket::SSL') && $c->pending;
    if (!$pending) {
        return 0 unless IO::Select->new($c)->can_read(30);
    }
    my $n = sysread($c, my $chunk, 65536);
    return 0 unless $n;
    $$bufref .= $chunk;
    return 1;
}

# parse one request from the connection (content-length or chunked body)
sub _read_request {
    my ($c, $bufref) = @_;
    while ($$bufref !~ /\r?\n\r?\n/) {
        return undef if length $$bufref > 65536;
        _fill($c, $bufref) or return undef;
    }
    $$bufref =~ s/^(.*?)\r?\n\r?\n//s;
    my @lines = split /\r?\n/, $1;
    my $rl = shift @lines // '';
    my ($m, $tg, $v) = split / /, $rl, 3;
    $v //= '';
    my @h;
    for (@lines) {
        my ($n, $val) = /^([^:]+):[ \t]*(.*?)[ \t]*$/ or next;
        push @h, [$n, $val];
    }
    my ($cl) = map { $_->[1] } grep { lc $_->[0] eq 'content-length' } @h;
    my $te = grep { lc $_->[0] eq 'transfer-encoding'
                    && $_->[1] =~ /chunked/i } @h;
    my $body = '';
    if ($te) {
        while (1) {
            while ($$bufref !~ /\r\n/) { _fill($c, $bufref) or return undef }
            $$bufref =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n// or return undef;
            my $n = hex $1;
            if ($n == 0) {
                while ($$bufref !~ /^\r\n/ && $$bufref !~ /\r\n\r\n/) {
                    _fill($c, $bufref) or return undef;
                }
                $$bufref =~ s/^(?:.*?\r\n)?\r\n//s;
                last;
            }
            while (length $$bufref < $n + 2) { _fill($c, $bufref) or return undef }
            $body .= substr($$bufref, 0, $n);
            substr($$bufref, 0, $n + 2) = '';
        }
    } elsif (defined $cl && $cl =~ /^\d+$/) {
        while (length $$bufref < $cl) { _fill($c, $bufref) or return undef }
        $body = substr($$bufref, 0, $cl);
        substr($$bufref, 0, $cl) = '';
    }
    return { request_line => $rl, method => $m // '', target => $tg // '',
             version => $v, headers => \@h, body => $body };
}

# requests(): the requests received so far, as hashes (see above).
sub requests {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return [];
    my @r;
    while (my $l = <$fh>) {
        my $v = eval { JSON::PP->new->decode($l) } or next;
        push @r, $v;
    }
    return \@r;
}

sub count { scalar @{$_[0]->requests} }

# connections(): TCP connections accepted so far (before any TLS or
# request parsing), e.g. to prove a denied target was never dialled.
sub connections {
    my ($self) = @_;
    open my $fh, '<', $self->{clog} or return 0;
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
