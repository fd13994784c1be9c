#!/usr/bin/perl
# 102-connect-limits.t -- http_connect under pressure and across reloads:
# slow clients (slowloris) are cut at header_timeout while others are
# served, the per-client connection limit, a reload that changes the
# allowlist while tunnels are open (open tunnels continue, new ones follow
# the new policy), sni = "require", and a config with unknown keys refused.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeBanner;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);

my $eport = $t->port('echo');
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'echo.example'  => ['A 127.0.0.2'],
    'other.example' => ['A 127.0.0.2'],
    'closed.example' => ['A 127.0.0.2'],
    'slow.example'  => 'silent',
});
my $cport = $t->port('closed');     # nothing listens there
my $echo = Test::Kapd::FakeBanner->new($t, port => $eport, addr => '127.0.0.2',
    name => 'echo', banner => '');

my $conf = <<'EOF';
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; log_level = "info";
        policy = { %%OBSERVE%% }; };
network: {
    allow = [%%ALLOW%%, "127.0.0.2:%%PORT_echo%%", "closed.example:%%PORT_closed%%",
             "127.0.0.2:%%PORT_closed%%", "slow.example:%%PORT_echo%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 1; };
audit_log: { path = "audit.jsonl"; };
http_connect: {
    listen = ["127.0.0.1:%%PORT_proxy%%", "unix:proxy.sock"];
    header_timeout = 1;
    handshake_timeout = 2;
    max_per_client = 12;
    %%SNI%%
};
EOF
sub write_conf {
    my ($allow, $sni, $observe) = @_;
    my $c = $conf;
    $c =~ s/%%ALLOW%%/$allow/;
    $c =~ s/%%SNI%%/$sni/;
    $c =~ s/%%OBSERVE%%/$observe \/\/ ''/e;
    $t->write_conf($c);
}
write_conf('"echo.example:%%PORT_echo%%", "other.example:%%PORT_echo%%"', '');
$t->run;
my $proxy = $t->port('proxy');

sub connect_to {
    my ($target) = @_;
    my $s = tcp_connect($proxy) or return;
    syswrite($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n");
    my $st = read_line($s) // '';
    while (defined(my $l = read_line($s))) { last if $l eq '' }
    return ($s, $st);
}

sub echo_ok {
    my ($s, $msg) = @_;
    syswrite($s, $msg);
    my $got = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + kapd_tmo(3);
    while (length($got) < length($msg) && time < $deadline) {
        next unless $sel->can_read(0.05);
        my $n = sysread($s, my $c, 4096) or last;
        $got .= $c;
    }
    return $got eq $msg;
}

sub closed_within {
    my ($s, $tmo) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + kapd_tmo($tmo);
    while (time < $deadline) {
        next unless $sel->can_read(0.05);
        my $n = sysread($s, my $c, 4096);
        return 1 unless $n;
    }
    return 0;
}

# -- slowloris: slow heads are cut, others are served ---------------------------
my @slow;
for (1 .. 5) {
    my $s = tcp_connect($proxy);
    syswrite($s, "CONNECT echo.exa");
    push @slow, $s;
}
my $t0 = time;
my ($s, $st) = connect_to("echo.example:$eport");
like($st, qr/ 200 /, 'a normal client is served while slow clients hold heads');
ok(echo_ok($s, "SSH-2.0-x\r\nping"), 'and its tunnel works');
my $cut = grep { closed_within($_, 4) } @slow;
is($cut, 5, 'every slow client was cut at header_timeout');
cmp_ok(time - $t0, '<', kapd_tmo(4), 'within the deadline');

# -- per-client limit ----------------------------------------------------------------
my @held = ($s);
for (2 .. 12) {
    my $c = tcp_connect($proxy);
    push @held, $c;
}
my $over = tcp_connect($proxy);
my $resp = http_raw($over, '', timeout => 3);
like($resp // '', qr{^HTTP/1\.1 429 }, 'connection over max_per_client: 429');
close $_ for @held[1 .. $#held];

# -- reload with a tunnel open -----------------------------------------------------------
ok(echo_ok($s, "before"), 'tunnel open before the reload');
write_conf('"other.example:%%PORT_echo%%"', 'sni = "require";');
like($t->reload // '', qr/reloaded/, 'reload: echo.example removed, sni = require');
ok(echo_ok($s, "after"), 'the open tunnel continues under its generation');
my ($s2, $st2) = connect_to("echo.example:$eport");
like($st2, qr/ 403 /, 'a new tunnel follows the new allowlist');
($s2, $st2) = connect_to("other.example:$eport");
like($st2, qr/ 200 /, 'other name still allowed');
# a ClientHello without SNI
my $ext = pack('nnCn', 43, 3, 2, 0x0304);
my $body = pack('n', 0x0303) . ("\x11" x 32) . pack('C', 0)
         . pack('n/a*', pack('n', 0x1301)) . pack('C/a*', "\0") . pack('n/a*', $ext);
my $hello = pack('Cnn', 22, 0x0301, length($body) + 4)
          . pack('CCn', 1, 0, length $body) . $body;
syswrite($s2, $hello);
ok(closed_within($s2, 3), 'sni = require: TLS without SNI refused');
close $s;
ok(wait_until(sub { grep { ($_->{event} // '') eq 'tunnel_close' } audit() }, 5),
   'tunnel close audited after the reload');

# -- upstream failures -------------------------------------------------------------------------
($s2, $st2) = connect_to("closed.example:$cport");
like($st2, qr/ 502 /, 'connection refused upstream: 502');
my $t1 = time;
($s2, $st2) = connect_to("slow.example:$eport");
like($st2, qr/ 504 /, 'resolver timeout: 504');
cmp_ok(time - $t1, '<', kapd_tmo(4), 'answered within the resolver timeout');

# -- a unix-socket listener --------------------------------------------------------------------
SKIP: {
    require IO::Socket::UNIX;
    my $u = IO::Socket::UNIX->new(Peer => $t->path('proxy.sock'), Type => Socket::SOCK_STREAM());
    skip "unix listener not available: $!", 1 unless $u;
    my $resp = http_raw($u, "CONNECT other.example:$eport HTTP/1.1\r\nHost: x\r\n\r\n",
                        one => 1, method => 'CONNECT');
    like($resp // '', qr{^HTTP/1\.1 200 }, 'CONNECT through the unix-socket listener');
}

# -- observe mode --------------------------------------------------------------------------------
write_conf('"other.example:%%PORT_echo%%"', '', 'observe = true;');
like($t->reload // '', qr/reloaded/, 'reload: observe mode');
($s2, $st2) = connect_to("echo.example:$eport");
like($st2, qr/ 200 /, 'observe: a name not on the allowlist is let through');
{
    my $ext2 = pack('nnCn', 43, 3, 2, 0x0304);
    my $list = pack('Cn/a*', 0, 'other.example');
    $ext2 = pack('nn', 0, length($list) + 2) . pack('n/a*', $list) . $ext2;
    my $b2 = pack('n', 0x0303) . ("\x11" x 32) . pack('C', 0)
           . pack('n/a*', pack('n', 0x1301)) . pack('C/a*', "\0") . pack('n/a*', $ext2);
    my $h2 = pack('Cnn', 22, 0x0301, length($b2) + 4) . pack('CCn', 1, 0, length $b2) . $b2;
    ok(echo_ok($s2, $h2), 'observe: an SNI mismatch is let through');
}
ok(wait_until(sub { grep { ($_->{action} // '') eq 'observed'
                           && ($_->{reason} // '') =~ /SNI mismatch/ } audit() }, 5),
   'observe: the SNI mismatch is audited as observed');
($s2, $st2) = connect_to("127.0.0.1:$eport");
like($st2, qr/ (403|502) /, 'observe: address checks still refuse loopback');

# -- config checks ----------------------------------------------------------------------------
$t->write_file_expand('bad.conf', <<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; };
http_connect: { listen = ["127.0.0.1:1"]; no_such_key = 1; };
EOF
my $r = $t->kapd_cmd('-t', '-c', $t->path('bad.conf'));
isnt($r->{rc}, 0, 'unknown http_connect key refused by kapd -t');
like($r->{err} . $r->{out}, qr/no_such_key/, 'and named');
$t->write_file_expand('bad2.conf', <<'EOF');
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"]; };
http_connect: { listen = ["127.0.0.1:1"]; sni = "sometimes"; };
EOF
$r = $t->kapd_cmd('-t', '-c', $t->path('bad2.conf'));
isnt($r->{rc}, 0, 'bad sni value refused');

$t->done_testing;

sub audit {
    my $c = $t->read_file('audit.jsonl') // '';
    return map { eval { decode_json($_) } || () } split /\n/, $c;
}
