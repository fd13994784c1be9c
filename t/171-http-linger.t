#!/usr/bin/perl
# 171-http-linger.t -- lingering close in http_connect.
#
# When kapd ends a connection after a refusal while the client is still
# sending (a request body it never reads, pipelined requests, bytes after
# a denied CONNECT), it must half-close and drain instead of closing with
# unread input (which resets the connection): every client reads its
# answer and then a clean EOF, and none gets a reset while sending.
# Lingering is bounded (2 s without data, 10 s in all, 4 MiB), does no
# protocol work (no second answer, no extra audit event), counts against
# max_per_client while it lasts, and a refusal with nothing pending still
# closes at once.  A graceful stop does not wait for a lingering client
# longer than shutdown_grace.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::IP;
use POSIX ();
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $o = $t->port('origin');
Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.example' => ['A 127.0.0.2'],
    'denied.example'  => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info";
        shutdown_grace = 1; };
network: { allow = ["allowed.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: {
    listen = ["127.0.0.1:%%PORT_proxy%%"];
    max_per_client = 4;
};
EOF
$t->run;
my $proxy = $t->port('proxy');
my $A = "allowed.example:$o";
my $D = "denied.example:$o";

sub connect_from {
    my ($src) = @_;
    return IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $proxy,
        LocalHost => $src, Proto => 'tcp', Timeout => kapd_tmo(5));
}

# Drive clients at once: each sends its head, then body_len bytes (as fast
# as kapd takes them), reading all the while, until it has sent everything
# (or a send failed) and its read side ended.  Returns one hash per client:
# resp, sent, werr (send error text), eof (clean EOF), rerr (read error).
sub run_clients {
    my (%o) = @_;
    my @c;
    for my $i (0 .. $#{$o{heads}}) {
        my $s = connect_from($o{from}->($i)) or return ();
        $s->blocking(0);
        push @c, { s => $s, out => $o{heads}[$i], left => $o{body_len},
                   resp => '', sent => 0 };
    }
    my $chunk = 'b' x 65536;
    my $deadline = time + kapd_tmo($o{timeout} // 10);
    while (time < $deadline) {
        my (@r, @w);
        for my $c (@c) {
            push @r, $c if !$c->{rdone};
            push @w, $c if !$c->{wdone};
        }
        last if !@r && !@w;
        my %by = map { (fileno($_->{s}) => $_) } @c;
        my ($rs, $ws) = IO::Select->select(IO::Select->new(map { $_->{s} } @r),
                                           IO::Select->new(map { $_->{s} } @w),
                                           undef, 0.1);
        for my $s (@{$ws // []}) {
            my $c = $by{fileno $s};
            if ($c->{out} eq '' && $c->{left} > 0) {
                my $n = $c->{left} < length $chunk ? $c->{left} : length $chunk;
                $c->{out} = substr($chunk, 0, $n);
                $c->{left} -= $n;
            }
            my $n = syswrite($s, $c->{out});
            if (defined $n) {
                substr($c->{out}, 0, $n) = '';
                $c->{sent} += $n;
                $c->{wdone} = 1 if $c->{out} eq '' && $c->{left} == 0;
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                $c->{werr} = "$!";
                $c->{wdone} = 1;
            }
        }
        for my $s (@{$rs // []}) {
            my $c = $by{fileno $s};
            my $n = sysread($s, my $buf, 65536);
            if ($n) {
                $c->{resp} .= $buf;
            } elsif (defined $n) {
                @$c{qw(eof rdone)} = (1, 1);
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                @$c{qw(rerr rdone)} = ("$!", 1);
            }
        }
    }
    close $_->{s} for @c;
    return @c;
}

# how many clients fail a condition, with the first failure for a diag
sub failures {
    my ($what, $cond, @c) = @_;
    my @bad = grep { !$cond->($_) } @c;
    diag(sprintf('%d of %d %s: resp=%s sent=%d werr=%s rerr=%s eof=%s',
                 scalar @bad, scalar @c, $what, substr($bad[0]{resp}, 0, 12),
                 $bad[0]{sent}, $bad[0]{werr} // '-', $bad[0]{rerr} // '-',
                 $bad[0]{eof} // 0)) if @bad;
    return scalar @bad;
}

sub post_head {
    my ($host, $len) = @_;
    return "POST http://$host/up HTTP/1.1\r\nHost: $host\r\n"
         . "Content-Length: $len\r\n\r\n";
}

# send bytes from src and read the answer up to kapd's EOF; the socket
# (still open on our side) when the answer was a 403, else undef
sub refused_open {
    my ($src, $bytes) = @_;
    my $s = connect_from($src) or return undef;
    syswrite($s, $bytes);
    my $r = '';
    my $eof = wait_until(sub {
        IO::Select->new($s)->can_read(0.05) or return 0;
        my $n = sysread($s, my $buf, 65536);
        $r .= $buf if $n;
        return !$n;
    }, kapd_tmo(3));
    return $eof && $r =~ m{^HTTP/1\.1 403 } ? $s : undef;
}

# the status of an allowed GET from src (0: no answer)
sub status_from {
    my ($src) = @_;
    my $s = connect_from($src) or return 0;
    my $p = http_parse(http_raw($s, "GET http://$A/ok HTTP/1.1\r\nHost: $A\r\n"
                                . "Connection: close\r\n\r\n", timeout => 2));
    return $p ? $p->{status} : 0;
}

# -- many clients upload a body to a denied host at once -----------------------------
{
    my $n = 40;
    my $len = 1024 * 1024;
    my @c = run_clients(heads => [(post_head($D, $len)) x $n], body_len => $len,
                        from => sub { '127.0.1.' . (1 + $_[0] % 20) },
                        timeout => 20);
    is(scalar @c, $n, "upload to a denied host: $n clients connected");
    is(failures('without a 403', sub { $_[0]{resp} =~ m{^HTTP/1\.1 403 } }, @c), 0,
       'upload to a denied host: every client read its 403');
    is(failures('reset while sending', sub { !$_[0]{werr} && $_[0]{sent} > $len }, @c),
       0, 'upload to a denied host: every client sent its whole body');
    is(failures('without a clean EOF', sub { $_[0]{eof} }, @c), 0,
       'upload to a denied host: the answer ends with a clean EOF');
    is(failures('with more than one answer',
                sub { my $k = () = $_[0]{resp} =~ m{HTTP/1\.1 }g; $k == 1 }, @c), 0,
       'upload to a denied host: one answer each');
}

# -- pipelined requests behind a bad request ----------------------------------------
{
    my $bad = "GET http://$A/x HTTP/1.1\r\nHost: $A\r\nBad Header\r\n\r\n";
    my $more = "GET http://$A/p HTTP/1.1\r\nHost: $A\r\n\r\n" x 6000;
    my @c = run_clients(heads => [$bad . $more], body_len => 0,
                        from => sub { '127.0.2.1' });
    my $c = $c[0] // {};
    like($c->{resp} // '', qr{^HTTP/1\.1 400 }, 'pipelined after a bad request: 400');
    unlike($c->{resp} // '', qr{HTTP/1\.1 200}, 'pipelined after a bad request: '
           . 'nothing behind it was served');
    ok($c->{eof} && !$c->{werr} && $c->{sent} == length($bad . $more),
       'pipelined after a bad request: all sent, clean EOF')
        or diag("sent $c->{sent}, werr " . ($c->{werr} // '-') . ', rerr '
                . ($c->{rerr} // '-'));
}

# -- bytes behind a denied CONNECT -----------------------------------------------------
{
    my $head = "CONNECT denied.example:443 HTTP/1.1\r\nHost: denied.example:443\r\n\r\n";
    my @c = run_clients(heads => [$head . ("\x16\x03\x01" . ('c' x 4093)) x 64],
                        body_len => 0, from => sub { '127.0.2.2' });
    my $c = $c[0] // {};
    like($c->{resp} // '', qr{^HTTP/1\.1 403 }, 'bytes behind a denied CONNECT: 403');
    ok($c->{eof} && !$c->{werr},
       'bytes behind a denied CONNECT: all sent, clean EOF')
        or diag('werr ' . ($c->{werr} // '-') . ', rerr ' . ($c->{rerr} // '-'));
}

# -- nothing pending: a refusal still closes at once --------------------------------
{
    # four connections from one address, each refused with nothing behind
    # it, held open on our side; if they lingered, the fifth would be
    # over max_per_client (4)
    my %kinds = (
        'Connection: close' => ['127.0.3.1', "GET http://$D/ HTTP/1.1\r\nHost: $D\r\n"
                                             . "Connection: close\r\n\r\n"],
        'a small body sent whole' => ['127.0.3.3', post_head($D, 5) . 'hello'],
    );
    for my $k (sort keys %kinds) {
        my ($src, $req) = @{$kinds{$k}};
        my @held = grep { defined } map { refused_open($src, $req) } 1 .. 4;
        is(scalar @held, 4, "nothing pending ($k): four refusals answered");
        ok(wait_until(sub { status_from($src) == 200 }, kapd_tmo(1)),
           "nothing pending ($k): closed at once (not counted against the client)");
        close $_ for @held;
    }

    # keep-alive denials are unchanged: the connection serves the next one
    my $s = connect_from('127.0.3.2');
    my $r1 = http_parse(http_raw($s, "GET http://$D/1 HTTP/1.1\r\nHost: $D\r\n\r\n",
                                 one => 1));
    my $r2 = http_parse(http_raw($s, "GET http://$A/2 HTTP/1.1\r\nHost: $A\r\n"
                                 . "Connection: close\r\n\r\n"));
    ok($r1 && $r1->{status} == 403 && $r2 && $r2->{status} == 200,
       'keep-alive denial: the same connection serves the next request');
}

# -- bounds ----------------------------------------------------------------------------
# a lingering client that sends nothing more is dropped after the linger
# timeout (2 s); until then it counts against max_per_client
{
    my @ling = grep { defined } map {
        refused_open('127.0.4.1', post_head($D, 1 << 30) . ('z' x 65536))
    } 1 .. 4;
    my $t0 = time;
    is(scalar @ling, 4, 'linger timeout: four clients got their 403 and EOF');
    # (429, or closed at once: an over-limit refusal does not linger)
    ok(status_from('127.0.4.1') =~ /^(429|0)$/, 'linger timeout: lingering '
       . 'connections count against max_per_client');
    my $served = wait_until(sub { status_from('127.0.4.1') == 200 }, kapd_tmo(6));
    my $dt = time - $t0;
    ok($served && $dt > 1.2 && $dt < kapd_tmo(5),
       sprintf('linger timeout: dropped after about 2 s (%.1f s)', $dt));
    close $_ for @ling;
}
# a client that keeps sending is dropped after 4 MiB
{
    my $len = 32 * 1024 * 1024;
    my @c = run_clients(heads => [post_head($D, $len)], body_len => $len,
                        from => sub { '127.0.4.2' }, timeout => 15);
    my $c = $c[0] // {};
    like($c->{resp} // '', qr{^HTTP/1\.1 403 }, 'discard budget: 403');
    ok($c->{werr} && $c->{sent} >= 4 * 1024 * 1024 && $c->{sent} < $len,
       "discard budget: cut after 4 MiB (sent $c->{sent})");
}
# a client that trickles is dropped after 10 s in all
{
    my $s = connect_from('127.0.4.3');
    syswrite($s, post_head($D, 1 << 30) . ('z' x 1024));
    my $t0 = time;
    my $cut = wait_until(sub {
        my $n = syswrite($s, 'z');
        return 1 if !defined $n;
        sleep(0.5);
        return 0;
    }, kapd_tmo(20));
    my $dt = time - $t0;
    ok($cut && $dt > 8 && $dt < kapd_tmo(13),
       sprintf('linger time: a trickling client is cut after about 10 s (%.1f s)', $dt));
}

# -- no extra audit events -----------------------------------------------------------
{
    my @a = grep { ($_->{client} // '') =~ /^127\.0\.2\.1:/ } $t->audit;
    is(scalar @a, 1, 'pipelined after a bad request: one audit event')
        or diag(explain(\@a));
}

# -- a graceful stop does not wait for a lingering client beyond the grace -----
{
    my $s = refused_open('127.0.5.1', post_head($D, 1 << 30) . ('z' x 65536));
    ok($s, 'stop: the client got its answer and EOF');
    my $pid = fork;
    if (defined $pid && $pid == 0) {        # keep the linger alive
        for (1 .. 40) { syswrite($s, 'z') or last; sleep(0.25) }
        POSIX::_exit(0);
    }
    my $t0 = time;
    my $code = $t->stop;
    my $dt = time - $t0;
    waitpid($pid, 0) if $pid;
    is($code, 0, 'stop: kapd exited cleanly');
    ok($dt < kapd_tmo(4), sprintf('stop: within the grace, not the linger time '
                                  . '(%.1f s)', $dt));
}

$t->finish;
done_testing;
