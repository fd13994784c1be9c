#!/usr/bin/perl
# 511-remote-ws-shutdown.t -- at SIGTERM the remote module closes every
# open WebSocket with 1001 "going away" at once (long before the
# shutdown grace ends), the client's close answer ends the connection,
# and kapd exits without waiting for the grace.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapWS;
use Test::Kapd::Remote qw(remote_pair);
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('remote');
$t->plan(7);
$t->write_conf(<<'EOF');
kapd: {
    load = ["remote"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
    shutdown_grace = "60s";     # the sockets must not wait for it
};
remote: { listen = ["127.0.0.1:%%PORT_remote%%"]; state_dir = "state"; };
EOF
$t->run;
my $port = $t->port('remote');
my ($tok) = remote_pair($port, $t->path('state'), 'phone');
like($tok, qr/^[A-Za-z0-9_-]{43}$/, 'a device is paired');

my @w = map { Test::KapWS->connect(port => $port, path => '/ws/logs',
                                   protocols => "kap.v1, kap.token.$tok") } 1 .. 2;
ok((grep { $_->recv_json_until(sub { $_[0]{type} eq 'live' }, kapd_tmo(5)) } @w) == 2,
   'two sockets are open and live');

my $t0 = time;
$t->kill('TERM');
my @codes;
for my $w (@w) {
    my $f = $w->recv(kapd_tmo(10));
    $f = $w->recv(kapd_tmo(10)) while $f && $f->{op} != 8;
    push @codes, Test::KapWS::close_code($f);
    $w->{closed} = $f;
}
is_deeply(\@codes, [1001, 1001], 'SIGTERM: each socket gets a close with 1001 (going away)');
like($w[0]{closed} ? $w[0]{closed}{data} : '', qr/shutting down/, 'saying why');
ok(time - $t0 < kapd_tmo(5), sprintf('at once, not after the grace (%.2f s)', time - $t0));
$_->send_frame(8, pack('n', 1001)) for @w;
ok($w[0]->wait_eof(kapd_tmo(5)), 'the close answered, the connection ends');
my $st = $t->wait_exit(kapd_tmo(20));
ok(defined $st && time - $t0 < kapd_tmo(20), 'and kapd exits without waiting for the 60 s grace');
$t->stop;
$t->done_testing;
