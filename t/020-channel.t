#!/usr/bin/perl
# 020-channel.t -- the sidecar <-> host channel (module "channel",
# docs/channel-protocol.md), end to end with two kapds: a capsule kapd
# (http_connect, network, channel after network) and a host kapd
# (channel listening on a unix socket, test_hooks standing in for the
# human who approves).
#
# A request no rule answers waits in the capsule while the host's
# "human" decides, and completes when it allows; a deny and a timeout
# are 403s with the reason; "allow always" is kept and answered locally
# afterwards (the host is not asked again); the capsule's audit events
# arrive in the host's audit log marked with the capsule's name; a wrong
# secret or an unknown capsule is refused by the host; with the host
# gone the capsule fails closed at once.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use IO::Socket::UNIX;
use Digest::SHA qw(hmac_sha256_hex);
use Time::HiRes qw(time);

my $h = Test::Kapd->new->has_kapd->has_module(qw/channel test_hooks/);
my $c = Test::Kapd->new->has_kapd->has_module(qw/channel http_connect/);
$h->plan(26);

my $secret = "s3cret-" . join('', map { sprintf '%02x', int rand 256 } 1 .. 16);
for my $t ($h, $c) {
    mkdir $t->path('secrets'), 0700;
    $t->write_file('secrets/channel', "$secret\n");
    chmod 0600, $t->path('secrets/channel');
}
my $sock = $h->path('host.sock');

my $o = $c->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($c, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($c, port => $c->port('dns'), zone => {
    map { ("$_.test" => ['A 127.0.0.2']) } qw/asked denied slow always down/
});

sub host_conf {
    my ($answer) = @_;
    return <<"EOF";
kapd: { load = ["channel", "test_hooks"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "test_hooks", "channel"]; }; };
audit_log: { path = "audit.jsonl"; };
channel: { listen = ["unix:$sock"];
           capsules = ( { name = "proj"; secret_file = "secrets/channel"; } ); };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; kinds = ["http"];
              audit_file = "hooks.log"; $answer };
EOF
}
$h->write_conf(host_conf('answer = "wait"; wait = 0.4; after_wait = "allow";'));
$h->run;

$c->write_conf(<<"EOF");
kapd: { load = ["http_connect", "channel"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "channel"]; }; };
network: { allow = ["127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
channel: { connect = "unix:$sock"; name = "proj"; secret_file = "secrets/channel";
           timeout = 2; always_file = "approved.txt"; };
EOF
$c->run;
ok($h->wait_log(qr/capsule "proj" connected/), 'the host authenticated the capsule');
ok($c->wait_log(qr/channel to unix:\S+ ready as "proj"/), 'the capsule sees the channel ready');

my $proxy = $c->port('proxy');
sub get {
    my ($name) = @_;
    my $t0 = time;
    my $p = http_parse(http_raw("127.0.0.1:$proxy",
        "GET http://$name:$o/ HTTP/1.1\r\nHost: $name:$o\r\nConnection: close\r\n\r\n",
        timeout => 10));
    return ($p ? $p->{status} : 'none', $p ? $p->{body} // '' : '', time - $t0);
}

# -- allowed by the human on the host, after a wait --------------------------------
my ($st, $body, $took) = get('asked.test');
is($st, 200, 'a name no rule answers: the host allowed it, the request completed');
ok($took >= 0.35, sprintf('it waited for the human (%.2f s)', $took));
is($origin->connections, 1, 'the origin was reached');
my @ca = $c->wait_audit(sub { grep { ($_->{subject} // '') eq 'asked.test'
                                     && ($_->{event} // '') eq 'decision' } @_ });
my ($cd) = grep { ($_->{subject} // '') eq 'asked.test' && ($_->{event} // '') eq 'decision' } @ca;
ok($cd && $cd->{action} eq 'allowed' && $cd->{decided_by} eq 'channel'
   && ($cd->{reason} // '') =~ /^allowed once by the host/,
   'capsule audit: allowed, decided by channel, "allowed once by the host"');
my @ha = $h->wait_audit(sub { grep { ($_->{subject} // '') eq 'asked.test'
                                     && ($_->{module} // '') eq 'channel'
                                     && ($_->{decided_by} // '') eq 'test_hooks' } @_ });
my ($hd) = grep { ($_->{subject} // '') eq 'asked.test' && ($_->{decided_by} // '') eq 'test_hooks' } @ha;
ok($hd && ($hd->{capsule} // '') eq 'proj' && $hd->{action} eq 'allowed',
   'host audit: the question, from capsule "proj", decided by the human');
ok(scalar $h->wait_audit(sub { grep { ($_->{capsule} // '') eq 'proj'
                                      && ($_->{capsule_module} // '') eq 'http_connect'
                                      && ($_->{subject} // '') eq 'asked.test' } @_ }),
   "the capsule's own audit events are streamed to the host");

# -- denied by the human ------------------------------------------------------------------
$h->write_conf(host_conf('answer = "deny";'));
like($h->reload // '', qr/reloaded/, 'host: the human now denies');
($st, $body) = get('denied.test');
is($st, 403, 'denied by the host: 403');
like($body, qr/denied by the host/, 'with the reason');

# -- nobody answers: the capsule's timeout denies -------------------------------------
$h->write_conf(host_conf('answer = "wait"; wait = 30; after_wait = "allow";'));
like($h->reload // '', qr/reloaded/, 'host: the human does not answer');
($st, $body, $took) = get('slow.test');
is($st, 403, 'no answer in time: 403 (fails closed)');
like($body, qr/no answer from the host within 2 s/, 'saying why');
ok($took >= 1.8 && $took < 8, sprintf('after channel.timeout (%.2f s)', $took));

# -- allow always: kept, and answered locally afterwards -------------------------------
$h->write_conf(host_conf('answer = "allow"; always = true;'));
like($h->reload // '', qr/reloaded/, 'host: the human allows always');
($st) = get('always.test');
is($st, 200, 'allowed always: 200');
$h->write_conf(host_conf('answer = "deny";'));
like($h->reload // '', qr/reloaded/, 'host: the human would deny now');
my $asked = () = ($h->read_file('hooks.log') // '') =~ /^decision http always\.test \S+ test_hooks /mg;
($st) = get('always.test');
is($st, 200, 'the kept answer allows it again');
my $asked2 = () = ($h->read_file('hooks.log') // '') =~ /^decision http always\.test \S+ test_hooks /mg;
is($asked2, $asked, 'without asking the host');
like($c->read_file('approved.txt') // '', qr/^http always\.test $o$/m,
     'and it is in always_file');

# -- the host refuses a wrong secret and an unknown capsule ---------------------------
sub handshake {
    my ($name, $key) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $sock) or return "connect: $!";
    my $cn = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
    print $s qq({"type":"hello","v":1,"name":"$name","nonce":"$cn"}\n);
    my $l = read_line($s, 5) // '';
    return $l unless $l =~ /"nonce":"([0-9a-f]{64})"/;
    my $hn = $1;
    my $proof = hmac_sha256_hex("kap-channel capsule\n$hn\n$cn", $key);
    print $s qq({"type":"auth","proof":"$proof"}\n);
    return read_line($s, 5) // 'closed';
}
like(handshake('proj', 'not-the-secret'), qr/"type":"error".*authentication failed/,
     'a wrong secret: refused');
like(handshake('other', $secret), qr/"type":"error".*unknown capsule/,
     'an unknown capsule: refused');
like(handshake('proj', $secret), qr/^\{"type":"ready"\}$/,
     'the right secret: ready (the test speaks the protocol from its document)');

# -- the host gone: fail closed at once --------------------------------------------------
$h->stop;
ok($c->wait_log(qr/channel to unix:\S+ down/), 'the capsule sees the channel go down');
($st, $body, $took) = get('down.test');
ok($st == 403 && $body =~ /the channel to the host is down/ && $took < 1.5,
   sprintf('with the host gone: 403 at once, saying so (%.2f s)', $took));

$c->finish_quiet;
$h->done_testing;
