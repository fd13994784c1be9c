#!/usr/bin/perl
# t/007-symbols.t -- the exported-symbol contract (DESIGN.md section 3).
#
# 1. kapd's dynamic symbol table defines only kap_* symbols (plus glibc data
#    copied into the binary such as stderr/optarg, versioned "@GLIBC", and
#    the linker's _end/_edata/__bss_start/_init/_fini); no kapd_* leaks.
# 2. every kap_* function prototype and extern variable in the installed
#    headers core/include/kapd/*.h is exported by kapd (a module can link
#    against everything the ABI promises).
# 3. every built module kap_<name>.so (the deliberately broken kap_bad_*
#    test modules aside) defines only its descriptor kap_<name>_module,
#    and every kap_* symbol it needs is exported by kapd.
#
# Needs nm (binutils).  KAPD_BUILDDIR / KAPD_BINARY / KAPD_MODULE_PATH as for
# the other tests; KAPD_SRCDIR for the headers.
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $builddir = $ENV{KAPD_BUILDDIR} // '.';
my $srcdir   = $ENV{KAPD_SRCDIR} // dirname(dirname(abs_path($0)));
my $kapd     = $ENV{KAPD_BINARY} // "$builddir/kapd";
# KAPD_BINARY may be a wrapper script (contrib/valgrind-check): the symbols
# are those of the real binary in the build tree
$kapd = "$builddir/kapd" unless is_elf($kapd);
my $moddir   = $ENV{KAPD_MODULE_PATH} // "$builddir/.libs";

sub is_elf {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return 0;
    my $n = read($fh, my $magic, 4);
    return ($n // 0) == 4 && $magic eq "\x7fELF";
}

plan skip_all => "no kapd binary at $kapd" unless -x $kapd;
plan skip_all => 'nm not found'
    unless system('nm --version >/dev/null 2>&1') == 0;

# (type, name) pairs of `nm -D` for one file; $which: defined or undefined
sub dynsyms {
    my ($file, $which) = @_;
    open my $fh, '-|', 'nm', '-D', "--$which-only", $file
        or die "nm $file: $!";
    my @s;
    while (<$fh>) {
        chomp;
        my @f = split ' ';
        next unless @f >= 2;
        push @s, [$f[-2], $f[-1]];
    }
    close $fh or die "nm -D $file failed\n";
    return @s;
}

my %linker = map { $_ => 1 } qw(_end _edata __bss_start _init _fini
                                _IO_stdin_used);
sub harmless {
    my ($name) = @_;
    return 1 if $linker{$name};
    return 1 if $name =~ /\@/;          # versioned: copy-relocated libc data
    # sanitizer builds may put runtime hooks in the binary
    return 1 if $name =~ /^__(asan|ubsan|lsan|sanitizer)_|^__odr_asan[._]/;
    return 0;
}

# ---- 1. kapd exports only kap_* ---------------------------------------------
my @def = dynsyms($kapd, 'defined');
my %exported = map { $_->[1] => $_->[0] } grep { $_->[1] =~ /^kap_/ } @def;
my @stray = map { "$_->[0] $_->[1]" }
            grep { $_->[1] !~ /^kap_/ && !harmless($_->[1]) } @def;
ok(%exported, 'kapd exports kap_* symbols at all ('
   . scalar(keys %exported) . ')');
is_deeply(\@stray, [], 'kapd exports nothing but kap_*')
    or diag("not kap_*: @stray");
my @internal = grep { /^kapd_/ } map { $_->[1] } @def;
is_deeply(\@internal, [], 'no kapd_* (core-internal) symbol is exported');

# ---- 2. every declared kap_* is exported ------------------------------------
my %declared;
for my $h (sort glob("$srcdir/core/include/kapd/*.h")) {
    open my $fh, '<', $h or die "$h: $!";
    local $/;
    my $src = <$fh>;
    close $fh;
    $src =~ s{/\*.*?\*/}{ }gs;          # comments
    $src =~ s{//[^\n]*}{}g;
    $src =~ s{"(?:[^"\\\n]|\\.)*"}{""}g; # strings
    $src =~ s/\\\n/ /g;                 # macro continuations
    (my $base = $h) =~ s{.*/}{};
    for my $l (split /\n/, $src) {
        next if $l =~ /^\s*#/;          # macro bodies are not prototypes
        $declared{$1} = $base while $l =~ /\b(kap_\w+)\s*\(/g;
        $declared{$1} = $base
            if $l =~ /^\s*extern\b.*\b(kap_\w+)\s*(?:\[[^\]]*\])?\s*;/;
    }
}
ok(scalar(keys %declared) > 20,
   'found kap_* prototypes in the headers (' . scalar(keys %declared) . ')');
my @missing = map { "$_ ($declared{$_})" }
              grep { !exists $exported{$_} } sort keys %declared;
is_deeply(\@missing, [], 'every kap_* declared in core/include/kapd/*.h '
          . 'is exported by kapd')
    or diag("declared but not exported: @missing");
my @undeclared = grep { !exists $declared{$_} } sort keys %exported;
is_deeply(\@undeclared, [], 'every exported kap_* is declared in a '
          . 'public header')
    or diag("exported but not in core/include/kapd: @undeclared");

# ---- 3. modules --------------------------------------------------------------
my @mods = grep { !m{/kap_bad_[^/]*\.so$} } sort glob("$moddir/kap_*.so");
ok(scalar(@mods), "modules found in $moddir (" . scalar(@mods) . ')');
for my $so (@mods) {
    (my $name = $so) =~ s{.*/kap_(.*)\.so$}{$1};
    my @d = grep { !harmless($_->[1]) } dynsyms($so, 'defined');
    my @names = sort map { $_->[1] } @d;
    is_deeply(\@names, ["kap_${name}_module"],
              "kap_$name.so exports only kap_${name}_module")
        or diag("kap_$name.so exports: @names");
    my @need = grep { /^kap_/ && !exists $exported{$_} }
               map { $_->[1] } dynsyms($so, 'undefined');
    is_deeply(\@need, [], "kap_$name.so needs only kap_* that kapd exports")
        or diag("kap_$name.so needs: @need");
    my @core = grep { /^kapd_/ } map { $_->[1] } dynsyms($so, 'undefined');
    is_deeply(\@core, [], "kap_$name.so uses no kapd_* symbol")
        or diag("kap_$name.so uses: @core");
}

done_testing();
