#!/usr/bin/perl
# 008-global-conf.t -- kapd -g GLOBAL merges a global configuration (such
# as ~/.kap/kap.conf) under the project's: lists concatenate (without
# repeating an entry), every other value stays the project's, groups the
# project lacks come from the global file; an edit of the global file is
# picked up by the content watch; a broken global file keeps the old
# policy and names the global file's line.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(13);

$t->write_conf(<<'EOF');
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = ["test_hooks", "network"]; observe = false; };
};
network: {
    allow = ["github.com", "*.github.com"];
    deny = ["gist.github.com"];
};
test_hooks: {
    listen = "127.0.0.1:%%PORT_hooks%%";
    answer = "decline";
    kinds = ["test", "connect"];
};
EOF
my $global = <<'EOF';
kapd: { policy: { observe = true; }; };
network: {
    allow = ["github.com", "*.corp.test", "artifactory.corp.test"];
    deny = ["bad.corp.test"];
};
audit_log: { path = "global-audit.jsonl"; };
EOF
$t->write_file('global.conf', $global);
$t->run(args => ['-g', $t->path('global.conf')]);

sub ask {
    my ($subject) = @_;
    my $s = tcp_connect($t->port('hooks')) or return '';
    return line_cmd($s, "CHECK $subject connect 443", 10) // '';
}

like(ask('api.github.com'), qr/^ALLOW network/, 'project allow kept');
like(ask('artifactory.corp.test'), qr/^ALLOW network/,
     'global allow concatenated');
like(ask('x.y.corp.test'), qr/^ALLOW network/, 'global wildcard concatenated');
like(ask('gist.github.com'), qr/^DENY network/, 'project deny kept');
like(ask('bad.corp.test'), qr/^DENY network/, 'global deny concatenated');
like(ask('example.org'), qr/^DENY default/,
     'project observe=false wins over the global observe=true');
ok(-s $t->path('global-audit.jsonl'),
   'a group only the global file has (audit_log) is used');

# an edit of the global file is a config change
$global =~ s/"artifactory.corp.test"/"artifactory.corp.test", "new.test"/;
$t->write_file('global.conf', $global);
ok(wait_until(sub { ask('new.test') =~ /^ALLOW/ }, 15),
   'edit of the global file picked up by the content watch');

# a broken global file keeps the running policy
my $size = $t->error_log_size;
$t->write_file('global.conf', "network: { allow = [\"a.test\" };\n");
ok($t->wait_log(qr/reload failed/, 15, $size), 'broken global: reload failed');
like($t->error_log, qr/global\.conf:1/, 'error names the global file:line');
like(ask('new.test'), qr/^ALLOW/, 'old policy still serving');

# kapd -t with -g
my $cmd = join ' ', $t->binary, '-t', '-c', $t->conf_path, '-p', $t->testdir,
    '-g', $t->path('global.conf');
my $out = `$cmd 2>&1`;
isnt($? >> 8, 0, 'kapd -t -g with a broken global file fails');
like($out, qr/global\.conf:1/, 'kapd -t names the global file:line');
