#!/usr/bin/perl
# 158-upstream-abuse.t -- adversarial: a hostile origin behind an allowed
# name (an allowed host can serve attacker content: bypass-classes.md #11).
#
# Plain-HTTP forwarding must not pass on ambiguous response framing (CL+TE,
# two Content-Lengths, obs-fold), must bound the response head (endless
# header lines; endless 1xx must stream, not pile up), must answer 502
# when the origin closes mid-head, and must not let the bytes an origin
# sends after its response become the answer to a later request (the same
# client's next one on a keep-alive connection, or another client's).
# kapd stays up and bounded in memory.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use IO::Socket::IP;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $o = $t->port('origin');
# a raw origin: the response depends on the path of the request
my %resp = (
    '/ok'       => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    '/clte'     => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                   . "0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
    '/dupcl'    => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\nokHTTP/1.1 200 OK\r\n\r\nsmuggled",
    '/fold'     => "HTTP/1.1 200 OK\r\nX-A: 1\r\n Content-Length: 99\r\nContent-Length: 2\r\n\r\nok",
    '/badcl'    => "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    '/midhead'  => "HTTP/1.1 200 OK\r\nContent-Le",
    '/extra'    => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                   . "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
    '/badstatus'=> "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    '/nul'      => "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok",
);
my $ls = IO::Socket::IP->new(LocalHost => '127.0.0.2', LocalPort => $o, Listen => 64,
                             ReuseAddr => 1) or die "listen: $!";
$t->run_daemon(sub {
    $SIG{CHLD} = 'IGNORE';
    while (1) {
        my $c = $ls->accept or next;
        my $pid = fork;
        next if !defined $pid || $pid;
        local $SIG{__DIE__};
        my $buf = '';
        while (1) {
            while ($buf !~ /\r\n\r\n/) {
                my $n = sysread($c, $buf, 65536, length $buf);
                POSIX::_exit(0) unless $n;
            }
            $buf =~ s/^([^\r\n]*)\r\n.*?\r\n\r\n//s;
            my ($path) = $1 =~ m{^\S+ (?:http://[^/]+)?(\S*)};
            if ($path eq '/endless-head') {
                syswrite($c, "HTTP/1.1 200 OK\r\n");
                for (1 .. 20000) { syswrite($c, "X-Endless: " . ('e' x 100) . "\r\n") or POSIX::_exit(0) }
                POSIX::_exit(0);
            }
            if ($path eq '/endless-1xx') {
                for (1 .. 20000) { syswrite($c, "HTTP/1.1 102 Processing\r\n\r\n") or POSIX::_exit(0) }
                POSIX::_exit(0);
            }
            my $r = $resp{$path} // "HTTP/1.1 404 No\r\nContent-Length: 0\r\n\r\n";
            syswrite($c, $r);
            POSIX::_exit(0) if $path eq '/midhead';
        }
    }
});
close $ls;
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'origin.example' => ['A 127.0.0.2'],
});

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info"; };
network: { allow = ["origin.example:%%PORT_origin%%", "127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; max_header_size = "8k"; };
EOF
$t->run;
my $proxy = $t->port('proxy');
my $H = "origin.example:$o";

sub rss { open my $fh, '<', '/proc/' . $t->pid . '/status' or return 0;
          while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ } 0 }

sub get {
    my ($path, %o) = @_;
    my $s = tcp_connect($proxy);
    my $raw = http_raw($s, "GET http://$H$path HTTP/1.1\r\nHost: $H\r\n"
                       . ($o{ka} ? '' : "Connection: close\r\n") . "\r\n" . ($o{then} // ''),
                       timeout => $o{timeout} // 4);
    close $s;
    return $raw // '';
}

like(get('/ok'), qr{^HTTP/1\.1 200.*\r\n\r\nok\z}s, 'control: a normal response');

for my $c (['/clte', 'response with CL and TE'],
           ['/dupcl', 'response with two Content-Lengths'],
           ['/fold', 'response with obs-fold'],
           ['/badcl', 'response Content-Length with a +'],
           ['/badstatus', 'response with a 4-digit status'],
           ['/nul', 'response with a NUL in a field']) {
    my ($p, $name) = @$c;
    my $r = get($p);
    like($r, qr{^HTTP/1\.1 502}, "$name: 502");
    unlike($r, qr/smuggled/, "$name: nothing smuggled reached the client");
}
like(get('/midhead'), qr{^HTTP/1\.1 502}, 'origin closes mid-head: 502');

{
    my $rss0 = rss();
    my $t0 = time;
    my $r = get('/endless-head', timeout => 8);
    like($r, qr{^HTTP/1\.1 502}, 'endless response head: 502');
    ok(time - $t0 < kapd_tmo(6), 'endless response head: cut promptly');
    $r = get('/endless-1xx', timeout => 8);
    # relaying interim responses is allowed; they must stream, not pile up
    ok(length($r) > 0, 'endless 1xx: answered (relayed or refused)');
    ok(rss() - $rss0 < 16384, sprintf('hostile heads: kapd RSS grew by %d kB', rss() - $rss0));
}

{
    # ... nor to another client's request (a pooled upstream connection)
    my $r1 = get('/extra');
    like($r1, qr{\r\n\r\nok\z}, 'extra bytes, client A: response as framed');
    my $r2 = get('/ok');
    unlike($r2, qr/smuggled/, 'extra bytes: not delivered to client B either');
}
{
    # the bytes an origin sends after its response are not the answer to
    # the next request of the same client
    my $s = tcp_connect($proxy);
    my $r1 = http_raw($s, "GET http://$H/extra HTTP/1.1\r\nHost: $H\r\n\r\n", one => 1);
    like($r1, qr{\r\n\r\nok\z}, 'extra bytes: first response as framed');
    my $r2 = http_raw($s, "GET http://$H/ok HTTP/1.1\r\nHost: $H\r\nConnection: close\r\n\r\n",
                      timeout => 4);
    unlike($r2 // '', qr/smuggled/, 'extra bytes: not delivered as the next response');
    close $s;
}

like(get('/ok', timeout => 4), qr{^HTTP/1\.1 200}, 'kapd still serves');
$t->done_testing;
