#!/usr/bin/perl
# 706-kap-init-registries.t -- kap ships no package registry names: the
# registry groups of the kap.conf `kap init` writes hold the hosts this
# machine's own tools and settings name.  With fake npm, go, gem and
# python3 first on PATH and a home with ~/.m2/settings.xml and
# ~/.cargo/config.toml naming mirrors: each mirror is an allow entry of
# its group (URL schemes, ports, paths and "sparse+" dropped), kapd
# accepts the file, and the policy text names nothing but what the
# machine said (no registry host of kap's own).  With tools that answer
# nothing, each such group is a comment saying where to look, and the
# file is still valid.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use File::Path qw(make_path);

my $t = Test::Kapd->new;
$t->has_kapd;
my $k = Test::KapInit->new($t);
plan(skip_all => 'kap-shim not built') unless -x $k->shim;
my $dir = $t->testdir;

sub tool {
    my ($bin, $name, $body) = @_;
    make_path($bin);
    spew("$bin/$name", "#!/bin/sh\n$body\n");
    chmod 0755, "$bin/$name";
}

# -- tools that name mirrors ------------------------------------------------------
my $bin = "$dir/mirrors";
tool($bin, 'npm', 'case "$*" in "config get registry") echo https://npm.mirror.test:8443/registry/ ;; *) exit 1 ;; esac');
tool($bin, 'go', 'case "$*" in "env GOPROXY") echo "https://goproxy.mirror.test/mod,direct" ;; "env GOSUMDB") echo "sum.mirror.test+key https://sum.mirror.test" ;; *) exit 1 ;; esac');
tool($bin, 'gem', q{printf '*** CURRENT SOURCES ***\n\nhttps://user:pw@gems.mirror.test/\n'});
tool($bin, 'python3', q{case "$*" in *"pip config list"*) echo "global.index-url='https://pip.mirror.test/simple'" ;; *) exit 1 ;; esac});
make_path("$dir/home/.m2", "$dir/home/.cargo");
spew("$dir/home/.m2/settings.xml",
     "<settings><mirrors><mirror><url>https://maven.mirror.test/repo</url></mirror></mirrors></settings>\n");
spew("$dir/home/.cargo/config.toml",
     "[registries.corp]\nindex = \"sparse+https://crates.mirror.test/index/\"\n");

make_path("$dir/a");
my $r = $k->kap({ cwd => "$dir/a", path => $bin }, 'init', '-y');
is($r->{rc}, 0, 'kap init -y') or diag($r->{err});
my $conf = slurp("$dir/a/.devcontainer/kap.conf");
my %want = ('npm' => ['npm.mirror.test'],
            'PyPI' => ['pip.mirror.test'],
            'crates (Rust)' => ['crates.mirror.test'],
            'Go modules' => ['goproxy.mirror.test', 'sum.mirror.test'],
            'Maven and Gradle' => ['maven.mirror.test'],
            'RubyGems' => ['gems.mirror.test']);
for my $g (sort keys %want) {
    my $hosts = join ', ', map { "\"$_\"" } @{$want{$g}};
    like($conf, qr/^        # \Q$g\E \(from this machine: [^\n]*\)\n        \Q$hosts\E,?\n/m,
         "group $g: the host(s) its tool named");
}
$r = $k->run({}, $t->binary, '-t', '-c', "$dir/a/.devcontainer/kap.conf", '-p', $dir);
is($r->{rc}, 0, 'kapd -t accepts it') or diag($r->{err});
my @entries = $conf =~ /^\s+((?:"[^"]*",?\s*)+)$/mg;
my @names = map { /"([^"]*)"/g } @entries;
my @other = grep { !/mirror\.test$/ && !/github|anthropic|claude|openai|googleapis/ } @names;
# (apt's group comes from this machine's real /etc/apt: whatever it names)
my %apt = map { $_ => 1 } ($conf =~ /# Debian and Ubuntu apt \(from this machine[^\n]*\n        ([^\n]*)/
                           ? ($1 =~ /"([^"]*)"/g) : ());
is_deeply([grep { !$apt{$_} } @other], [], 'no other registry host in the policy');

# -- tools that answer nothing -----------------------------------------------------
my $none = "$dir/none";
tool($none, $_, 'exit 1') for qw(npm go gem python3);
unlink "$dir/home/.m2/settings.xml", "$dir/home/.cargo/config.toml";
make_path("$dir/b");
$r = $k->kap({ cwd => "$dir/b", path => $none }, 'init', '-y');
is($r->{rc}, 0, 'kap init -y, no tool answering') or diag($r->{err});
$conf = slurp("$dir/b/.devcontainer/kap.conf");
for my $g (sort keys %want) {
    like($conf, qr/^        # \Q$g\E: add its host names here \(/m,
         "group $g: a comment saying where to look");
}
$r = $k->run({}, $t->binary, '-t', '-c', "$dir/b/.devcontainer/kap.conf", '-p', $dir);
is($r->{rc}, 0, 'kapd -t accepts it too') or diag($r->{err});

done_testing;
