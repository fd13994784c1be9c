#!/usr/bin/perl
# 002-modules.t -- module loading: test_hooks loads and serves; each
# deliberately mis-versioned module (kap_bad_magic/major/minor/size/sig/
# name) is refused before any of its code runs, with a message naming
# both values, and kapd exits with code 3; a missing module names the
# path that was searched.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(4 + 6 * 3 + 3 + 4);

# -- a good module ------------------------------------------------------------
$t->write_conf(<<'EOF');
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = ["test_hooks", "network"]; };
};
network: { allow = ["github.com"]; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "allow"; };
EOF
ok($t->try_run, 'kapd starts with test_hooks') or diag($t->{run_error});
my $s = tcp_connect($t->port('hooks'));
like($s ? line_cmd($s, 'GEN') // '' : '', qr/^\d+$/, 'test_hooks answers GEN');
like($s ? line_cmd($s, 'CHECK example.test') // '' : '', qr/^ALLOW test_hooks\b/,
     'test_hooks decides');
close $s if $s;
is($t->stop, 0, 'TERM: exit 0');

# -- mis-versioned modules ----------------------------------------------------
# name => check of the log: the refusal must name both values
my %bad = (
    magic => sub { $_[0] =~ /magic\s+0x[0-9a-fA-F]+\b.*\b0x4[bB]41504[dD]\b/ },
    major => sub { $_[0] =~ /ABI\s+(\d+)\.\d+\b.*\bABI\s+(\d+)\.\d+\b/
                   && $1 != $2 },
    minor => sub { $_[0] =~ /ABI\s+(\d+)\.(\d+)\b.*\bABI\s+(\d+)\.(\d+)\b/
                   && $1 == $3 && $2 > $4 },
    size  => sub { $_[0] =~ /size\s+(\d+)\b.*?\b(\d+)\b/ && $1 != $2 },
    sig   => sub { $_[0] =~ /signature\s+"([^"]*)".*?"([^"]*)"/ && $1 ne $2 },
    name  => sub { $_[0] =~ /named\s+"([^"]+)".*"bad_name"/ && $1 ne 'bad_name' },
);
for my $b (sort keys %bad) {
    SKIP: {
        skip "kap_bad_$b.so not built", 3
            unless -e $t->module_path . "/kap_bad_$b.so";
        my $u = Test::Kapd->new;
        $u->write_conf(<<"EOF");
kapd: {
    load = ["bad_$b"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
EOF
        my $ok = $u->try_run(timeout => 10);
        ok(!$ok, "bad_$b: kapd refuses to start");
        $u->stop if $ok;
        is($u->exit_code, 3, "bad_$b: exit code 3");
        my $log = $u->error_log;
        ok($bad{$b}->($log), "bad_$b: the message names both values")
            or diag($log);
        $u->finish_quiet;
    }
}

# -- a missing module -----------------------------------------------------------
my $m = Test::Kapd->new;
$m->write_conf(<<'EOF');
kapd: {
    load = ["nosuch"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
EOF
my $ok = $m->try_run(timeout => 10);
ok(!$ok, 'missing module: kapd refuses to start');
$m->stop if $ok;
is($m->exit_code, 3, 'missing module: exit code 3');
like($m->error_log, qr/nosuch.*\Q${\$m->module_path}\E/,
     'missing module: the message names the path searched') or diag($m->error_log);
$m->finish_quiet;

# -- a module named twice; -t reports a bad module too ----------------------------
my $w = Test::Kapd->new;
$w->write_conf(<<'EOF');
kapd: {
    load = ["test_hooks", "test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
EOF
my $r = $w->kapd_cmd('-t', '-c', $w->conf_path, '-p', $w->testdir);
isnt($r->{rc}, 0, 'a module loaded twice is refused');
like($r->{all}, qr/test_hooks.*(twice|already|duplicate)|(twice|already|duplicate).*test_hooks/i,
     'and the message says so') or diag($r->{all});
SKIP: {
    skip 'kap_bad_major.so not built', 2
        unless -e $w->module_path . '/kap_bad_major.so';
    $w->write_conf(<<'EOF');
kapd: {
    load = ["bad_major"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
EOF
    $r = $w->kapd_cmd('-t', '-c', $w->conf_path, '-p', $w->testdir);
    isnt($r->{rc}, 0, 'kapd -t refuses a mis-versioned module');
    like($r->{all}, qr/bad_major.*ABI/, 'kapd -t prints why') or diag($r->{all});
}
$w->finish_quiet;
