#!/usr/bin/perl
# 010-module-echo.t -- the third-party listener example, built out of
# tree as t/006 builds the skeleton: `make install DESTDIR=<tmp>` of the
# build tree, then copies of contrib/module-echo and
# contrib/module-skeleton built against the installed kapd.pc
# (PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR into the temp dir).  kapd
# loads kap_echo.so (a listener) and kap_hello.so (a policy that denies
# subjects starting with "evil"); test_hooks allows the other test
# questions.  Through a real socket: lines are echoed once the first line
# is allowed, a first line hello denies gets one DENIED line and EOF, and
# an over-long line is refused by echo itself, audited once by the core
# with decided_by echo.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use File::Find;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
for my $tool (qw(make pkg-config cc)) {
    my ($rc) = Test::Kapd::_capture('sh', '-c', "command -v $tool");
    plan(skip_all => "$tool is missing") if $rc != 0;
}
my $echo_src = $t->srcdir . '/contrib/module-echo';
my $skel = $t->srcdir . '/contrib/module-skeleton';
plan(skip_all => "no echo module in $echo_src") unless -e "$echo_src/Makefile";
plan(skip_all => "no module skeleton in $skel") unless -e "$skel/Makefile";
$t->plan(17);

# -- the staged install and the out-of-tree builds ------------------------
my $dest = $t->path('inst');
my $r = run_cmd('make', '-C', $t->builddir, 'install', "DESTDIR=$dest");
is($r->[0], 0, 'make install DESTDIR=<tmp>') or diag($r->[1]);
my @pc;
find(sub { push @pc, $File::Find::name if $_ eq 'kapd.pc' }, $dest) if -d $dest;
ok(@pc == 1, 'kapd.pc installed') or diag("found: @pc");
my $pcdir = @pc ? ($pc[0] =~ s{/kapd\.pc$}{}r) : '';
%ENV = (%ENV, PKG_CONFIG_PATH => $pcdir, PKG_CONFIG_SYSROOT_DIR => $dest);

my %dir;
for my $m (['echo', $echo_src], ['hello', $skel]) {
    my ($name, $src) = @$m;
    my $work = $t->path("build-$name");
    run_cmd('cp', '-a', $src, $work);
    run_cmd('rm', '-f', "$work/kap_$name.so");     # a stale local build
    $r = run_cmd('make', '-C', $work);
    ok(!$r->[0] && -e "$work/kap_$name.so",
       "kap_$name.so builds out of tree against the installed kapd.pc")
        or diag($r->[1]);
    $dir{$name} = $work;
}

$t->write_conf(<<"EOF");
kapd: {
    load = ["echo", "hello", "test_hooks"];
    module_path = ["$dir{echo}", "$dir{hello}", "%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = ["hello", "test_hooks", "network"]; };
};
echo: { listen = ["127.0.0.1:%%PORT_echo%%"]; max_line = 64; };
hello: { deny_prefix = "evil"; };
test_hooks: { answer = "allow"; kinds = ["test"]; };
audit_log: { path = "audit.jsonl"; };
EOF
ok($t->try_run, 'kapd loads kap_echo.so and listens') or diag($t->{run_error});
my $port = $t->port('echo');

# everything the server sends until EOF (or the deadline): [text, eof]
sub read_to_eof {
    my ($s) = @_;
    my $buf = ${*$s}{kapd_buf} // '';
    my $deadline = time + kapd_tmo(5);
    while (time < $deadline) {
        next unless IO::Select->new($s)->can_read(0.1);
        my $n = sysread($s, $buf, 4096, length $buf);
        return [$buf, 1] unless $n;
    }
    return [$buf, 0];
}

sub decisions {
    my ($by) = @_;
    return grep { ($_->{event} // '') eq 'decision'
                  && ($_->{module} // '') eq 'echo'
                  && ($_->{decided_by} // '') eq $by } $t->audit;
}

# -- allowed: the first line and every later line come back --------------
my $s = tcp_connect($port);
is($s ? line_cmd($s, 'hello world') : undef, 'hello world',
   'an allowed first line is echoed');
is($s ? line_cmd($s, 'second line') : undef, 'second line',
   'and so is the next one');
if ($s) { syswrite($s, "a\nb\r\nc\n") }
is(join(',', map { $s ? read_line($s) // '-' : '-' } 1 .. 3), 'a,b,c',
   'three lines in one write: three lines back, in order');
my @d = $t->wait_audit(sub { grep { ($_->{subject} // '') eq 'hello world' } @_ });
my @ok = grep { ($_->{subject} // '') eq 'hello world' } @d;
ok(@ok == 1 && $ok[0]{action} eq 'allowed' && $ok[0]{decided_by} eq 'test_hooks'
   && $ok[0]{kind} eq 'test' && ($ok[0]{client} // '') =~ /^127\.0\.0\.1:\d+$/,
   'one question per connection: the first line, audited by the core')
    or diag(explain(\@ok));
ok(!grep({ ($_->{subject} // '') eq 'second line' } $t->audit),
   'later lines are not asked about');

# -- the over-long line: echo refuses, the core audits -------------------
if ($s) { syswrite($s, ('x' x 100) . "\n") }
my $got = $s ? read_to_eof($s) : ['', 0];
is($got->[0], "ERR line too long\n", 'a line over echo.max_line: one ERR line');
ok($got->[1], 'and the connection is closed');
close $s if $s;
@d = $t->wait_audit(sub { decisions('echo') });
my @ref = decisions('echo');
ok(@ref == 1 && $ref[0]{action} eq 'denied' && $ref[0]{kind} eq 'test'
   && ($ref[0]{reason} // '') =~ /longer than echo\.max_line \(64 bytes\)/,
   'audited once, by the core: denied, decided_by echo, with the limit')
    or diag(explain(\@ref));

# -- refused by a policy: hello denies first lines starting with "evil" --
my $before = () = decisions('hello');
my $e = tcp_connect($port);
if ($e) { syswrite($e, "evil plan\nsecond\n") }
$got = $e ? read_to_eof($e) : ['', 0];
like($got->[0], qr/\ADENIED hello subject starts with the hello\.deny_prefix\n\z/,
     'a first line hello denies: one DENIED line naming hello, nothing echoed');
ok($got->[1], 'and the connection is closed');
$t->wait_audit(sub { decisions("hello") > $before });
my @den = grep { ($_->{subject} // '') eq 'evil plan' } decisions('hello');
ok(@den == 1 && $den[0]{action} eq 'denied' && $den[0]{kind} eq 'test',
   'the denial is audited once, decided_by hello')
    or diag(explain(\@den));

# -- the listener survives all that ---------------------------------------
my $again = tcp_connect($port);
is($again ? line_cmd($again, 'still here') : undef, 'still here',
   'a new client is served after the refusals');
close $again if $again;

sub run_cmd {
    my ($rc, $out) = Test::Kapd::_capture(@_);
    return [$rc, $out];
}
