#!/usr/bin/perl
# 013-chain-errors.t -- an explicit kapd.policy.chain or kapd.audit.chain
# is checked in one place (kapd_chain_check): `kapd -t` refuses a chain
# that names a module not loaded, names one twice, names one without a
# hook of that type, or leaves out a loaded module that has one; each
# refusal names the file and line.  A chain that lists what it must is
# accepted.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(6);

# kapd -t on a config whose kapd group holds $chains; the result's text
sub check {
    my ($name, $chains) = @_;
    $t->write_file("$name.conf", <<"EOF2");
kapd: {
    load = ["test_hooks"];
    module_path = ["${\ $t->module_path}"];
    $chains
};
test_hooks: { answer = "allow"; };
EOF2
    my $r = $t->kapd_cmd('-t', '-c', $t->path("$name.conf"), '-p',
                         $t->testdir);
    return ($r->{rc}, $r->{all});
}

my ($rc, $out) = check('ok', 'policy: { chain = ["test_hooks", "network"]; };');
is($rc, 0, 'a chain listing every policy module is accepted') or diag($out);

($rc, $out) = check('unloaded',
    'policy: { chain = ["test_hooks", "nosuch", "network"]; };');
ok($rc != 0 && $out =~ /kapd\.policy\.chain names module "nosuch", which is not loaded in \S+\/unloaded\.conf:4\b/,
   'a module not loaded: refused at its line') or diag($out);

($rc, $out) = check('twice',
    'policy: { chain = ["test_hooks", "network", "test_hooks"]; };');
ok($rc != 0 && $out =~ /names module "test_hooks" twice in \S+\/twice\.conf:4\b/,
   'a module named twice: refused') or diag($out);

($rc, $out) = check('nohook',
    'policy: { chain = ["test_hooks", "network", "resolver"]; };');
ok($rc != 0 && $out =~ /names module "resolver", which has no policy hook/,
   'a module without a policy hook: refused') or diag($out);

($rc, $out) = check('missing', 'policy: { chain = ["network"]; };');
ok($rc != 0 && $out =~ /module "test_hooks" has a policy hook but is not in kapd\.policy\.chain in \S+\/missing\.conf:4\b/,
   'a module with a policy hook left out: refused') or diag($out);

($rc, $out) = check('audit', 'audit: { chain = ["test_hooks"]; };');
ok($rc != 0 && $out =~ /module "audit_log" has a audit hook but is not in kapd\.audit\.chain/,
   'the audit chain is checked the same way') or diag($out);
