package Test::Kapd::Docker;

# Test::Kapd::Docker -- helpers of the tests that build an image from this
# tree and run it on a real Docker engine (t/8NN-e2e-docker-*): run the
# docker CLI, skip when no daemon answers, make the local base image
# (contrib/docker/import-base-image: nothing is pulled), build with the
# classic builder, and remove whatever the test made, even on failure.
#
#   use Test::Kapd::Docker qw(docker);
#   Test::Kapd::Docker::skip_without_daemon();
#   my $d = Test::Kapd::Docker->new($srcdir);     # cleanup at END and INT
#   $d->base_image;                               # ok/pass
#   $d->build('deploy/k8s/Containerfile', 'kapd:test-1') or exit;
#   $d->made(container => $name);                 # removed by cleanup
#   $d->cleanup;

use strict;
use warnings;
use Exporter 'import';
use POSIX ();
use Test::More ();
use Time::HiRes qw(time);

our @EXPORT_OK = qw(docker);

my @LIVE;

# docker(args...): (exit code, stdout+stderr)
sub docker {
    my (@args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec('docker', @args) or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

# skip the whole file, with a reason starting "no Docker daemon"
# (contrib/check does not count that skip as a failure)
sub skip_without_daemon {
    my ($rc, $out) = (127, 'docker is not installed');
    ($rc, $out) = docker('info', '--format', '{{.ServerVersion}}')
        if grep { -x "$_/docker" } split /:/, $ENV{PATH};
    return if $rc == 0;
    $out =~ s/\s+/ /g;
    Test::More::plan(skip_all => 'no Docker daemon answers (docker info: ' . substr($out, 0, 160) . ')');
}

sub new {
    my ($class, $src) = @_;
    my $self = bless { src => $src, made => [] }, $class;
    push @LIVE, $self;
    $SIG{INT} = $SIG{TERM} = sub { $_->cleanup for @LIVE; POSIX::_exit(1) };
    return $self;
}

END { my $st = $?; $_->cleanup for @LIVE; $? = $st }

# made(kind => name): remove it at cleanup (container, network, volume, image)
sub made { my ($self, $kind, $name) = @_; push @{ $self->{made} }, [$kind, $name]; return $name }

# the build stages are left as untagged images labelled kap.stage=build
sub _stages {
    my (undef, $ids) = docker('images', '-q', '--filter', 'dangling=true',
                              '--filter', 'label=kap.stage=build');
    return map { $_ => 1 } split /\s+/, $ids;
}

sub cleanup {
    my ($self) = @_;
    for my $m (reverse @{ $self->{made} }) {
        my ($kind, $name) = @$m;
        if ($kind eq 'container') { docker('rm', '-f', '-v', $name) }
        elsif ($kind eq 'network') { docker('network', 'rm', $name) }
        elsif ($kind eq 'volume') { docker('volume', 'rm', '-f', $name) }
        elsif ($kind eq 'image') { docker('rmi', '-f', $name) }
        elsif ($kind eq 'stages') {
            my %now = _stages();
            docker('rmi', $_) for grep { !$self->{stages_before}{$_} } sort keys %now;
        }
    }
    $self->{made} = [];
}

# debian:bookworm-slim: made here (debootstrap + docker import) unless there
sub base_image {
    my ($self) = @_;
    my ($rc) = docker('image', 'inspect', '-f', '{{.Id}}', 'debian:bookworm-slim');
    return Test::More::pass('debian:bookworm-slim is there') if $rc == 0;
    my $log = `'$self->{src}/contrib/docker/import-base-image' 2>&1`;
    return Test::More::is($?, 0, 'import-base-image made debian:bookworm-slim') || Test::More::diag($log);
}

# build(file relative to the tree, tag): the classic builder, the tree as
# context; the image and the build stages it adds are removed at cleanup
sub build {
    my ($self, $file, $tag) = @_;
    $self->{stages_before} //= { _stages() };
    local $ENV{DOCKER_BUILDKIT} = '0';
    my $t0 = time;
    $self->made(image => $tag);
    $self->made(stages => '');
    my ($rc, $out) = docker('build', '-f', "$self->{src}/$file", '-t', $tag, $self->{src});
    my @lines = split /\n/, $out;
    Test::More::is($rc, 0, "image built from $file with the classic builder")
        or Test::More::diag(join "\n", @lines > 40 ? @lines[-40 .. -1] : @lines);
    Test::More::note(sprintf 'image build: %.0f s', time - $t0);
    return $rc == 0;
}

1;
