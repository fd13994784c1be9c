package Test::KapInit;
# Test::KapInit -- running `kap init` (and `kap-shim jsonc`) for the
# t/70N-kap-init-*.t tests: no Docker, no terminal (setsid), a private
# HOME and state directory, gh on PATH or not as the test says.
#
#   my $k = Test::KapInit->new($t);          # $t: a Test::Kapd
#   my $r = $k->kap({cwd => $dir, gh => 1}, 'init', '-y');
#   $r->{rc}, $r->{out}, $r->{err}
#   $k->jsonc('get', $file, 'service')        # same shape
#   slurp($path), spew($path, $bytes), tree($dir) (path => bytes)

use strict;
use warnings;
use Exporter 'import';
use File::Find;
use File::Path qw(make_path);

our @EXPORT = qw(slurp spew tree);

sub new {
    my ($class, $t) = @_;
    my $self = bless { t => $t }, $class;
    $self->{kap} = $t->builddir . '/kap';
    $self->{shim} = $t->builddir . '/kap-shim';
    $self->{home} = $t->testdir . '/home';
    $self->{state} = $t->testdir . '/state';
    $self->{fakebin} = $t->testdir . '/fakebin';
    make_path($self->{home}, $self->{state}, "$self->{fakebin}/gh", "$self->{fakebin}/nogh");
    spew("$self->{fakebin}/gh/gh", "#!/bin/sh\nexit 0\n");
    chmod 0755, "$self->{fakebin}/gh/gh";
    # the kap program runs under dash when there is one (POSIX sh)
    ($self->{sh}) = grep { -x } qw(/usr/bin/dash /bin/dash /bin/sh);
    return $self;
}

sub shim { $_[0]{shim} }
sub state { $_[0]{state} }

# a PATH with the system's tools but no gh (or only the fake one): a
# directory that holds a real gh (/usr/bin when the gh package is
# installed) is replaced by a mirror of symbolic links to everything in
# it but gh, so the other tools stay
sub _path {
    my ($self, $gh) = @_;
    my @keep;
    for my $d (split /:/, $ENV{PATH} // '/usr/bin:/bin') {
        next if $d eq '';
        $d = $self->_mirror_without_gh($d) if -x "$d/gh";
        push @keep, $d;
    }
    unshift @keep, "$self->{fakebin}/gh" if $gh;
    return join ':', @keep;
}

sub _mirror_without_gh {
    my ($self, $d) = @_;
    return $self->{mirror}{$d} if $self->{mirror}{$d};
    my $m = "$self->{fakebin}/nogh-" . scalar(keys %{$self->{mirror} // {}});
    make_path($m);
    opendir(my $dh, $d) or return $m;
    for my $e (readdir $dh) {
        next if $e eq '.' || $e eq '..' || $e eq 'gh';
        symlink("$d/$e", "$m/$e");
    }
    closedir $dh;
    return $self->{mirror}{$d} = $m;
}

# run(\%opt, @argv): rc, out, err.  opt: cwd, gh, path (a directory put
# first on PATH), env (more environment), stdin (bytes on standard
# input), input (then through script(1) on a pseudo-terminal, the answers
# as the terminal's input)
sub run {
    my ($self, $opt, @argv) = @_;
    my $dir = $self->{t}->testdir;
    my ($out, $err, $in) = ("$dir/run.out", "$dir/run.err", "$dir/run.in");
    spew($in, $opt->{input} // $opt->{stdin} // '');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', $in or exit 127;
        open STDOUT, '>', $out or exit 127;
        open STDERR, '>', $err or exit 127;
        chdir($opt->{cwd} // $dir) or exit 127;
        $ENV{HOME} = $self->{home};
        $ENV{XDG_STATE_HOME} = $self->{state};
        $ENV{KAP_SHIM} = $self->{shim};
        $ENV{KAP_MCP} = $self->{t}->builddir . '/kap-mcp';
        $ENV{PATH} = $self->_path($opt->{gh});
        $ENV{PATH} = "$opt->{path}:$ENV{PATH}" if $opt->{path};
        delete @ENV{qw(KAP_CAPSULE KAP_AUTH_DIR)};
        $ENV{$_} = $opt->{env}{$_} for keys %{$opt->{env} // {}};
        if (defined $opt->{input}) {
            my $cmd = join ' ', map { my $a = $_; $a =~ s/'/'\\''/g; "'$a'" } @argv;
            exec('script', '-qec', $cmd, '/dev/null') or exit 127;
        }
        POSIX::setsid();
        exec(@argv) or exit 127;
    }
    waitpid($pid, 0);
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return { rc => $rc, out => slurp($out), err => slurp($err) };
}

# kap(\%opt, ARGS...): the kap program under POSIX sh
sub kap {
    my ($self, $opt, @args) = @_;
    return $self->run($opt, $self->{sh}, $self->{kap}, @args);
}

# jsonc(OP, ARGS...): kap-shim jsonc
sub jsonc {
    my ($self, @args) = @_;
    return $self->run({}, $self->{shim}, 'jsonc', @args);
}

sub slurp {
    my ($p) = @_;
    open my $fh, '<:raw', $p or return undef;
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub spew {
    my ($p, $s) = @_;
    open my $fh, '>:raw', $p or die "$p: $!";
    print $fh $s;
    close $fh or die "$p: $!";
}

# tree(DIR): every file below DIR, relative path => content
sub tree {
    my ($top) = @_;
    my %t;
    find({ no_chdir => 1, wanted => sub {
        return unless -f $_;
        (my $rel = $_) =~ s{^\Q$top\E/}{};
        $t{$rel} = slurp($_);
    } }, $top);
    return \%t;
}

use POSIX ();

1;
