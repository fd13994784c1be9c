#!/usr/bin/perl
# 103-connect-policy-wait.t -- http_connect with an asynchronous policy
# hook (test_hooks answering "wait", as the remote "ask a human" hook
# does): the answer arrives later and the request continues from there;
# other clients are served meanwhile; a decision that never comes is
# answered 504 at idle_timeout and audited.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeBanner;
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect/);
plan(skip_all => 'test_hooks module not built')
    unless -e $t->module_path . '/kap_test_hooks.so';

my $eport = $t->port('echo');
my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'echo.example'   => ['A 127.0.0.2'],
    'denied.example' => ['A 127.0.0.2'],
});
my $echo = Test::Kapd::FakeBanner->new($t, port => $eport, addr => '127.0.0.2',
    name => 'echo', banner => 'SSH-2.0-Echo' . "\r\n");

my $conf = <<'EOF';
kapd: {
    load = ["test_hooks", "http_connect"];
    module_path = ["%%MODULE_PATH%%"];
    policy: { chain = ["test_hooks", "network"]; };
};
network: { allow = ["echo.example:%%PORT_echo%%", "127.0.0.2:%%PORT_echo%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { answer = "wait"; wait = %%WAIT%%; after_wait = "decline";
              kinds = ["connect", "http"]; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; idle_timeout = %%IDLE%%; };
EOF
sub conf {
    my ($wait, $idle) = @_;
    (my $c = $conf) =~ s/%%WAIT%%/$wait/;
    $c =~ s/%%IDLE%%/$idle/;
    $t->write_conf($c);
}
conf(0.5, 30);
$t->run;
my $proxy = $t->port('proxy');

sub connect_to {
    my ($target) = @_;
    my $s = tcp_connect($proxy) or return;
    syswrite($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n");
    my $st = read_line($s, 10) // '';
    while (defined(my $l = read_line($s))) { last if $l eq '' }
    return ($s, $st);
}

my $t0 = time;
my ($s, $st) = connect_to("echo.example:$eport");
my $el = time - $t0;
like($st, qr/ 200 /, 'waiting hook, then the allowlist: allowed');
cmp_ok($el, '>=', 0.4, 'the answer waited for the hook');
is(read_line($s), 'SSH-2.0-Echo', 'tunnel works after an asynchronous decision');
($s, $st) = connect_to("denied.example:$eport");
like($st, qr/ 403 /, 'waiting hook, then the allowlist: denied');

# several clients waiting at once are all answered
my @c = map { my $x = tcp_connect($proxy);
              syswrite($x, "CONNECT echo.example:$eport HTTP/1.1\r\nHost: x\r\n\r\n"); $x } 1 .. 5;
my $ok = grep { (read_line($_, 10) // '') =~ / 200 / } @c;
is($ok, 5, 'five concurrent waiting requests all answered');

# a decision that never comes
conf(30, 1);
like($t->reload // '', qr/reloaded/, 'reload: hook waits 30 s, idle_timeout 1 s');
$t0 = time;
($s, $st) = connect_to("echo.example:$eport");
like($st, qr/ 504 /, 'no decision within idle_timeout: 504');
cmp_ok(time - $t0, '<', kapd_tmo(5), 'answered at the timeout');
ok(wait_until(sub { grep { ($_->{reason} // '') =~ /policy decision timed out/ } audit() }, 5),
   'the timeout is audited');

$t->done_testing;

sub audit {
    my $c = $t->read_file('audit.jsonl') // '';
    return map { eval { decode_json($_) } || () } split /\n/, $c;
}
