#!/usr/bin/perl
# 003-reload.t -- configuration generations.  Through the test_hooks line
# protocol ("CHECK <subject>" -> "ALLOW|DENY <decided_by> <reason>",
# "GEN" -> generation id): after a HUP with a changed config, connections
# opened before keep their generation and its policy, new ones get the new
# one; a broken edit keeps the old generation serving and the error log
# says why with file:line; a content change is picked up without a HUP;
# fixing the file reloads again; 50 live connections keep answering
# through repeated reloads.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(31);

sub conf {
    my ($answer, $extra, $port) = @_;
    $extra //= '';
    $port //= 'hooks';
    return <<"EOF";
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = ["test_hooks", "network"]; };
};
network: { allow = ["github.com"]; };
audit_log: { path = "audit.jsonl"; };
test_hooks: {
    listen = "127.0.0.1:%%PORT_$port%%";
    answer = "$answer";
};
$extra
EOF
}

sub conn { tcp_connect($t->port('hooks')) }
sub gen  { my ($s) = @_; my $g = $s ? line_cmd($s, 'GEN') : undef; $g }
sub check { my ($s, $x) = @_; $s ? line_cmd($s, "CHECK $x") // '' : '' }

$t->write_conf(conf('allow'));
$t->run;

my $c1 = conn();
my $g1 = gen($c1);
like($g1 // '', qr/^\d+$/, 'generation id of the first connection');
like(check($c1, 'a.test'), qr/^ALLOW test_hooks/, 'gen 1 policy: allow');

# -- HUP with a changed config ------------------------------------------------
$t->write_conf(conf('deny'));
like($t->reload // '', qr/reloaded/, 'HUP: reloaded');
is(gen($c1), $g1, 'old connection keeps its generation');
like(check($c1, 'a.test'), qr/^ALLOW test_hooks/, 'old connection keeps its policy');
my $c2 = conn();
my $g2 = gen($c2);
ok(defined $g2 && defined $g1 && $g2 > $g1, 'new connection gets the new generation')
    or diag("g1 " . ($g1 // 'undef') . " g2 " . ($g2 // 'undef'));
like(check($c2, 'a.test'), qr/^DENY test_hooks/, 'new connection: new policy');

# -- a broken edit keeps the old generation ------------------------------------
my $broken = conf('allow');
$broken =~ s/answer = "allow";/answer = ;/;    # line 11: syntax error
$t->write_conf($broken);
my $line = $t->reload // '';
like($line, qr/reload failed/, 'broken edit: reload failed');
like($line, qr/kap\.conf:11\b/, 'and says where (file:line)') or diag($line);
my $c3 = conn();
is(gen($c3), $g2, 'broken edit: new connections still get the old generation');
like(check($c3, 'a.test'), qr/^DENY test_hooks/, 'broken edit: old policy still served');
ok($t->is_running, 'kapd still running');

# -- rollback: fixing the file reloads again, without a HUP ---------------------
my $from = $t->error_log_size;
$t->write_conf(conf('allow'));
my $ok = wait_until(sub {
    my $s = conn() or return 0;
    my $g = gen($s);
    return defined $g && $g > $g2 ? $g : 0;
}, kapd_tmo(10));
ok($ok, 'content change picked up without a HUP');
my $g3 = $ok;
ok($t->wait_log(qr/reloaded/, 5, $from), 'and logged as reloaded');
my $c4 = conn();
like(check($c4, 'a.test'), qr/^ALLOW test_hooks/, 'fixed file: new policy in force');
is(gen($c1), $g1, 'the very first connection still has generation 1');

# -- a change in an @include'd file is picked up too ------------------------
$t->write_file('extra.conf', "# nothing yet\n");
$t->write_conf(conf('allow', '@include "extra.conf"'));
like($t->reload // '', qr/reloaded/, 'config with an @include reloaded');
my $gi = gen(conn());
$from = $t->error_log_size;
$t->write_file('extra.conf', "# changed content\n");
$ok = wait_until(sub { my $g = gen(conn()); defined $g && $g > $gi }, kapd_tmo(10));
ok($ok, 'content change of an included file reloads');

# -- 50 connections keep answering through repeated reloads ---------------------
my @cs = grep { defined } map { conn() } 1 .. 50;
is(scalar @cs, 50, '50 connections open');
my ($sent, $answered, $reloads) = (0, 0, 0);
for my $round (1 .. 6) {
    $from = $t->error_log_size;
    $t->write_conf(conf($round % 2 ? 'deny' : 'allow'));
    $t->kill('HUP');
    # ping every connection while the reload happens
    for my $i (0 .. $#cs) {
        $sent++;
        my $r = line_cmd($cs[$i], "PING $round $i", 5);
        $answered++ if defined $r && $r eq "PING $round $i";
    }
    $reloads++ if $t->wait_log(qr/reloaded/, 10, $from);
}
is($answered, $sent, 'no ping lost, no connection dropped during reloads');
is($reloads, 6, 'every reload succeeded');
my $last = conn();
like(check($last, 'a.test'), qr/^ALLOW test_hooks/,
     'after the reloads the last config is in force');

# -- with every connection closed after many reloads, kapd still serves --------
# (a reload must not leak loop references: an idle loop must not exit)
close $_ for @cs, grep { defined } $c1, $c2, $c3, $c4, $last;
my $alive = wait_until(sub { !$t->is_running }, kapd_tmo(1)) ? 0 : 1;
ok($alive, 'kapd still running once every connection is closed');
my $again = conn();
like($again ? gen($again) // '' : '', qr/^\d+$/, 'and accepts new connections');

# -- listeners: kept across reloads, moved when the address changes -------------
my $old = conn();
my $gold = gen($old);
$t->write_conf(conf('deny', '', 'hooks2'));
like($t->reload // '', qr/reloaded/, 'reload with a new listen port');
my $new = tcp_connect($t->port('hooks2'));
like($new ? check($new, 'a.test') : '', qr/^DENY test_hooks/, 'the new port serves the new generation');
ok(wait_until(sub { !tcp_connect($t->port('hooks'), 1) }, kapd_tmo(5)),
   'the old port stops accepting');
is(gen($old), $gold, 'a connection accepted on the old port still works, in its generation');

# a listen address that cannot be bound: the reload fails, nothing changes
use Test::Kapd::FakeBanner;
my $squat = Test::Kapd::FakeBanner->new($t, port => $t->port('busy'));
$t->write_conf(conf('allow', '', 'busy'));
like($t->reload // '', qr/reload failed/, 'reload to a port in use fails');
my $still = tcp_connect($t->port('hooks2'));
like($still ? check($still, 'a.test') : '', qr/^DENY test_hooks/,
     'the previous listener and policy keep serving');
ok($t->is_running, 'kapd still running');
$t->write_conf(conf('deny', '', 'hooks2'));   # back to good: no more retries
