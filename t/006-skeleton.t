#!/usr/bin/perl
# 006-skeleton.t -- a third-party module built out of tree: `make install
# DESTDIR=<tmp>` of the build tree, build a copy of
# contrib/module-skeleton against the installed kapd.pc (PKG_CONFIG_PATH
# and PKG_CONFIG_SYSROOT_DIR into the temp dir), then load kap_hello.so
# into kapd and check its policy (subjects starting with "evil" are
# denied), asked through the test_hooks line protocol.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use File::Find;

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
for my $tool (qw(make pkg-config cc)) {
    my ($rc) = Test::Kapd::_capture('sh', '-c', "command -v $tool");
    plan(skip_all => "$tool is missing") if $rc != 0;
}
my $skel = $t->srcdir . '/contrib/module-skeleton';
plan(skip_all => "no module skeleton in $skel")
    unless -d $skel && (-e "$skel/Makefile" || -e "$skel/configure.ac");
$t->plan(8);

my $dest = $t->path('inst');
my $r = run_cmd('make', '-C', $t->builddir, 'install', "DESTDIR=$dest");
is($r->[0], 0, 'make install DESTDIR=<tmp>') or diag($r->[1]);

my @pc;
find(sub { push @pc, $File::Find::name if $_ eq 'kapd.pc' }, $dest) if -d $dest;
ok(@pc == 1, 'kapd.pc installed') or diag("found: @pc");
my $pcdir = @pc ? ($pc[0] =~ s{/kapd\.pc$}{}r) : '';
my ($hdr) = grep { -e $_ } map { "$dest$_/kapd/kap_module.h" }
    map { m{^\Q$dest\E(.*)/lib/pkgconfig$} ? "$1/include" : () } $pcdir;
ok($hdr, 'public headers installed beside it');

# build a copy of the skeleton against the installed tree
my $work = $t->path('skeleton');
$r = run_cmd('cp', '-a', $skel, $work);
%ENV = (%ENV, PKG_CONFIG_PATH => $pcdir, PKG_CONFIG_SYSROOT_DIR => $dest);
$r = run_cmd('pkg-config', '--cflags', 'kapd');
like($r->[1], qr/-I\Q$dest\E/, 'pkg-config --cflags kapd points into the install')
    or diag($r->[1]);
if (-e "$work/configure.ac" && !-e "$work/Makefile") {
    run_cmd('sh', '-c', "cd '$work' && autoreconf -fi && ./configure");
}
$r = run_cmd('make', '-C', $work);
my @so;
find(sub { push @so, $File::Find::name if $_ eq 'kap_hello.so' }, $work);
ok(!$r->[0] && @so, 'the skeleton builds kap_hello.so') or diag($r->[1]);
my $sodir = @so ? ($so[0] =~ s{/kap_hello\.so$}{}r) : $work;

# load it: hello first in the chain, test_hooks allows the rest
$t->write_conf(<<"EOF");
kapd: {
    load = ["hello", "test_hooks"];
    module_path = ["$sodir", "%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = ["hello", "test_hooks", "network"]; };
};
network: { allow = ["github.com"]; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "allow"; };
EOF
ok($t->try_run, 'kapd loads kap_hello.so') or diag($t->{run_error});
my $s = tcp_connect($t->port('hooks'));
like($s ? line_cmd($s, 'CHECK evil.example') // '' : '', qr/^DENY hello\b/,
     'hello denies "evil..."');
like($s ? line_cmd($s, 'CHECK good.example') // '' : '', qr/^ALLOW test_hooks\b/,
     'hello declines the rest');

sub run_cmd {
    my ($rc, $out) = Test::Kapd::_capture(@_);
    return [$rc, $out];
}
