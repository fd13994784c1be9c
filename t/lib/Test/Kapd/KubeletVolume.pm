package Test::Kapd::KubeletVolume;

# Test::Kapd::KubeletVolume -- a ConfigMap or Secret volume written the
# way the kubelet's atomic writer does it (an emulation: no cluster here).
# Each version is a timestamped directory "..TS"; "..data" points at it;
# every key is "key -> ..data/key".  An update writes "..TS2", makes the
# link "..data_tmp -> ..TS2", renames it over "..data" and removes the old
# directory.
#
#   my $v = Test::Kapd::KubeletVolume->new($dir);     # $dir must exist
#   $v->version({ 'kap.conf' => $text, ... },          # one version
#               mode => 0440, gid => $gid);            # files' mode, group
#   $v->current;                                       # its "..TS" name

use strict;
use warnings;
use File::Path qw(remove_tree);

sub new {
    my ($class, $dir) = @_;
    return bless { dir => $dir, n => 0, old => undef }, $class;
}

sub current { $_[0]{old} }

sub version {
    my ($self, $files, %o) = @_;
    my $dir = $self->{dir};
    my $n = ++$self->{n};
    my $ts = sprintf('..2026_12_07_10_00_%02d.%09d', $n, $$ + $n);
    mkdir "$dir/$ts" or die "mkdir $dir/$ts: $!";
    chmod 0755, "$dir/$ts";
    for my $k (sort keys %$files) {
        open my $fh, '>', "$dir/$ts/$k" or die "write $k: $!";
        print $fh $files->{$k};
        close $fh;
        chown -1, $o{gid}, "$dir/$ts/$k" if defined $o{gid};
        chmod $o{mode} // 0644, "$dir/$ts/$k";
    }
    symlink($ts, "$dir/..data_tmp") or die "symlink: $!";
    rename("$dir/..data_tmp", "$dir/..data") or die "rename: $!";
    for my $k (sort keys %$files) {
        symlink("..data/$k", "$dir/$k") unless -l "$dir/$k";
    }
    remove_tree("$dir/$self->{old}") if defined $self->{old};
    $self->{old} = $ts;
    return $ts;
}

1;
