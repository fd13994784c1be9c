#!/usr/bin/perl
# 035-health.t -- the health module (/healthz, /readyz on a listener of
# its own) and the SIGTERM drain seen from an orchestrator: ready after
# start, "503 draining" on /readyz while live connections finish (its
# listener keeps answering), exit 0 as soon as the last one ends -- well
# before the grace -- and the client allowlist applies to it too.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Socket::IP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module(qw/test_hooks health/);

$t->write_conf(<<'EOF');
kapd: { load = ["test_hooks", "health"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; shutdown_grace = 60;
        listener_clients = ( { listen = "127.0.0.1:%%PORT_health%%";
                               clients = [ "127.0.0.1" ]; } ); };
network: { allow = ["github.com"]; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "allow"; };
health: { listen = ["127.0.0.1:%%PORT_health%%"]; };
EOF
my $hp = $t->port('health');

sub get {
    my ($path, %o) = @_;
    my $r = http_parse(http_get($path, addr => "127.0.0.1:$hp", %o));
    return $r ? "$r->{status} $r->{body}" : 'NONE';
}

$t->run;
is(get('/healthz'), "200 ok\n", '/healthz: 200 ok');
is(get('/readyz'), "200 ready\n", '/readyz: 200 ready once started');
like(get('/nope'), qr/^404 /, 'other paths: 404');
like(get('/readyz', method => 'POST', body => 'x'), qr/^405 /, 'POST: 405');

my $other = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $hp,
    LocalHost => '127.0.0.3', Timeout => kapd_tmo(5));
my $got = $other ? (sysread($other, my $b, 100) // 0) : 0;
ok(!$got, 'a client outside its allowlist gets nothing');

# an open connection that the drain must wait for
my $c = tcp_connect($t->port('hooks')) or die "hooks: $!";
my $from = $t->error_log_size;
my $t0 = time;
$t->kill('TERM');
ok($t->wait_log(qr/shutting down/, 5, $from), 'TERM: draining');
is(get('/readyz'), "503 kap: draining\n", 'draining: /readyz says 503');
is(get('/healthz'), "200 ok\n", 'draining: /healthz still 200 (alive)');
ok($t->is_running, 'kapd waits for the open connection');
close $c;
my $st = $t->wait_exit(15);
my $took = time - $t0;
ok(defined $st, 'the last connection ended: kapd exits');
is($t->exit_code, 0, 'exit code 0');
cmp_ok($took, '<', 30, sprintf('well before the 60 s grace (%.1fs)', $took));

$t->done_testing;
