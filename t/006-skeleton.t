#!/usr/bin/perl
# 006-skeleton.t -- a third-party module built out of tree: `make install
# DESTDIR=<tmp>` of the build tree, build a copy of
# contrib/module-skeleton against the installed kapd.pc (PKG_CONFIG_PATH
# and PKG_CONFIG_SYSROOT_DIR into the temp dir), then load kap_hello.so
# into kapd and check its policy: subjects starting with "evil" are
# denied (asked through the test_hooks line protocol), and -- through
# http_connect, as a third-party policy placed before `network` -- a
# resolved address in hello.deny_addresses and a TLS server name starting
# with "evil" are refused, with a 403 that names hello and before anything
# is dialled.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use File::Find;
use IO::Select;
use Time::HiRes qw(time);
use Test::Kapd::FakeDNS;
use Test::Kapd::Hello qw(hello);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks', 'http_connect');
for my $tool (qw(make pkg-config cc)) {
    my ($rc) = Test::Kapd::_capture('sh', '-c', "command -v $tool");
    plan(skip_all => "$tool is missing") if $rc != 0;
}
my $skel = $t->srcdir . '/contrib/module-skeleton';
plan(skip_all => "no module skeleton in $skel")
    unless -d $skel && (-e "$skel/Makefile" || -e "$skel/configure.ac");
$t->plan(18);

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

# upstreams (silent echo servers) and names for the proxy part
my $e = $t->port('echo');
my $echo = Test::Kapd::Hello->echo($t, '127.0.0.2', $e);
my $echo3 = Test::Kapd::Hello->echo($t, '127.0.0.3', $e);
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'good.example'     => ['A 127.0.0.2'],
    'evilcorp.example' => ['A 127.0.0.2'],
    'blocked.example'  => ['A 127.0.0.3'],
});

# load it: hello first in the chain, test_hooks allows the rest
$t->write_conf(<<"EOF");
kapd: {
    load = ["hello", "test_hooks", "http_connect"];
    module_path = ["$sodir", "%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = ["hello", "test_hooks", "network"]; };
};
network: { allow = ["github.com", "good.example:%%PORT_echo%%",
                    "evilcorp.example:%%PORT_echo%%",
                    "blocked.example:%%PORT_echo%%",
                    "127.0.0.2:%%PORT_echo%%", "127.0.0.3:%%PORT_echo%%"]; };
hello: { deny_addresses = ["127.0.0.3"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "allow";
              kinds = ["test"]; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
ok($t->try_run, 'kapd loads kap_hello.so') or diag($t->{run_error});
my $s = tcp_connect($t->port('hooks'));
like($s ? line_cmd($s, 'CHECK evil.example') // '' : '', qr/^DENY hello\b/,
     'hello denies "evil..."');
like($s ? line_cmd($s, 'CHECK good.example') // '' : '', qr/^ALLOW test_hooks\b/,
     'hello declines the rest');

# -- a third-party policy on the proxy's address and first-bytes questions --
my $proxy = $t->port('proxy');
# CONNECT (with bytes sent in the same write); the whole answer, up to EOF
sub proxied {
    my ($target, $extra) = @_;
    my $c = tcp_connect($proxy) or return '';
    syswrite($c, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n" . ($extra // ''));
    my $buf = '';
    my $deadline = time + kapd_tmo(4);
    while (time < $deadline) {
        next unless IO::Select->new($c)->can_read(0.1);
        my $n = sysread($c, $buf, 65536, length $buf);
        last unless $n;
        last if $extra && $buf =~ /^HTTP\/1\.1 200 [^\n]*\r\n\r\n.{@{[length $extra]}}/s;
    }
    close $c;
    return $buf;
}
my $h = hello(sni => "good.example");
like(proxied("good.example:$e", $h), qr/^HTTP\/1\.1 200 .*\Q$h\E$/s,
     'hello declines a good name, address and server name: the tunnel works');
my $conns = $echo3->connections;
like(proxied("blocked.example:$e"),
     qr/^HTTP\/1\.1 403 .*blocked\.example:\d+ is not dialled: the address is in hello\.deny_addresses/s,
     'an address hello refuses: 403 with its reason');
is($echo3->connections - $conns, 0, 'and nothing dialled it');
$conns = $echo->connections;
like(proxied("evilcorp.example:$e", hello(sni => 'evilcorp.example')),
     qr/^HTTP\/1\.1 403 .*the TLS server name starts with hello\.deny_prefix/s,
     'a server name hello refuses, sent with the CONNECT: 403 with its reason');
is($echo->connections - $conns, 0, 'before any upstream connection');
my @d = $t->wait_audit(sub { grep { ($_->{decided_by} // '') eq 'hello'
                                    && ($_->{kind} // '') eq 'first' } @_ });
my %k = map { ($_->{kind} // '') => $_ }
        grep { ($_->{decided_by} // '') eq 'hello' && ($_->{action} // '') eq 'denied' } @d;
ok($k{addr} && $k{addr}{subject} eq '127.0.0.3' && ($k{addr}{host} // '') eq 'blocked.example',
   'audited once by the core: kind addr, the address, the name it came from');
ok($k{first} && ($k{first}{sni} // '') eq 'evilcorp.example' && ($k{first}{first} // '') eq 'tls',
   'audited once by the core: kind first, with the sni');
# the same server name after the 200: the tunnel is closed, nothing relayed
{
    my ($c, $r) = connect_tunnel($proxy, "evilcorp.example:$e");
    my $closed = 0;
    if ($c && $r && $r->{status} == 200) {
        syswrite($c, hello(sni => 'evilcorp.example'));
        my $deadline = time + kapd_tmo(4);
        while (time < $deadline) {
            next unless IO::Select->new($c)->can_read(0.1);
            my $n = sysread($c, my $b, 4096);
            if (!$n) { $closed = 1; last }
        }
    }
    ok($closed, 'a server name hello refuses after the 200: closed');
}
my (undef, $dumped) = Test::Kapd::_capture($t->binary, "-T", "-c", $t->conf_path);
like($dumped, qr/policy addr: hello test_hooks network -> default deny/,
     'kapd -T: hello before network in the addr chain');
like($dumped, qr/policy first: hello test_hooks network -> default deny/,
     'kapd -T: and in the first-bytes chain');

sub run_cmd {
    my ($rc, $out) = Test::Kapd::_capture(@_);
    return [$rc, $out];
}
