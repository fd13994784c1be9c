#!/usr/bin/perl
# 612-capsule-cwd.t -- issue 10 item 8: `kap run` works from wherever a
# user starts it.  `cd "$(mktemp -d)" && kap run -- pwd` used to exit 125
# ("cannot enter /tmp/tmp.XXXX") depending on the path's length.  Each
# working directory shape: a fresh mktemp -d under /tmp, one under
# /var/tmp, a project in $HOME, /, names with spaces and a newline, a
# symlinked directory, a long path, $HOME itself.  The command starts in
# the same (physical) directory; in a project it writes the real one; in
# $HOME it gets the capsule home, never the real one.  Run as root and, where
# the kernel allows it, as an unprivileged user.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t);
my $dir = $t->testdir;

$t->plan(2 * 9 + 1);

my $uid = 65534;
my $probe = `setpriv --reuid=$uid --regid=$uid --clear-groups -- unshare --user --map-root-user --net true 2>&1`;
my $nobody_ok = !$? && !system('setpriv', "--reuid=$uid", "--regid=$uid", '--clear-groups', '--',
                               'sh', '-c', "test -r '$dir/policy.conf' && test -x '" . $t->binary . "'");

sub shapes {
    my ($who, $home, $owner) = @_;
    my @d;
    push @d, ['mktemp -d under /tmp', tempdir('/tmp/tmp.XXXXXXXXXX', CLEANUP => 1)];
    push @d, ['mktemp -d under /var/tmp', tempdir('/var/tmp/kap-cwd-XXXXXXXX', CLEANUP => 1)];
    push @d, ['a project in $HOME', "$home/src/proj"];
    push @d, ['a name with spaces', "$dir/$who/with some spaces"];
    push @d, ['a name with a newline', "$dir/$who/new\nline"];
    push @d, ['a long path', "$dir/$who/" . join('/', ('a-rather-long-directory-name') x 6)];
    mkdir "$dir/$who";
    for my $p (map { $_->[1] } @d) {
        my $s = '';
        for (split m{/}, $p) { next unless length; $s .= "/$_"; mkdir $s }
    }
    mkdir "$dir/$who/real";
    symlink "$dir/$who/real", "$dir/$who/link";
    push @d, ['a symlinked directory', "$dir/$who/link", "$dir/$who/real"];
    chown $owner, $owner, map { $_->[1] } @d if $owner;
    chown $owner, $owner, "$dir/$who", "$dir/$who/real", "$home/src" if $owner;
    return @d;
}

sub try_shapes {
    my ($who, %o) = @_;
    my $home = $o{home};
    for my $s (shapes($who, $home, $o{as}), ['/', '/'], ['$HOME itself', $home]) {
        my ($name, $cwd, $phys) = @$s;
        $phys //= abs_path($cwd);
        my $r = $c->run({ %o, cwd => $cwd, tag => "cwd-$who" },
                        '-c', "$dir/policy.conf", '--', 'sh', '-c',
                        'pwd; echo here > kap-cwd.txt 2>/dev/null && echo wrote; exit 0');
        my $pwd = $r->{out};
        my $wrote = $pwd =~ s/\nwrote\n\z/\n/;
        $pwd =~ s/\n\z// or $pwd = undef;
        my $ok = $r->{rc} == 0 && defined $pwd && $pwd eq $phys;
        if ($name eq '/') {
            ok($ok, "$who: from /: starts in /");
        } elsif ($name eq '$HOME itself') {
            ok($ok && $wrote && !-e "$home/kap-cwd.txt",
               "$who: from \$HOME: starts there, in the capsule home (the real one is not written)")
                or diag("rc $r->{rc}: $r->{out} $r->{err}");
        } else {
            ok($ok && $wrote && -e "$phys/kap-cwd.txt", "$who: from $name: starts there and writes it")
                or diag("rc $r->{rc}: out [$r->{out}] err [$r->{err}]");
        }
    }
}

try_shapes('root', home => "$dir/home");
SKIP: {
    skip "unprivileged user namespaces unavailable or build tree unreadable: $probe", 9 unless $nobody_ok;
    my $home = "$dir/home-nobody";
    mkdir $home, 0700;
    mkdir "$home/src";
    mkdir "$dir/run-nobody", 0700;
    chown $uid, $uid, $home, "$dir/run-nobody";
    try_shapes('nobody', as => $uid, home => $home, xdg => "$dir/run-nobody");
}
my @left = grep { -e } glob("$dir/run/kap/* $dir/run-nobody/kap/*");
is(scalar @left, 0, 'no runtime directory left behind');
