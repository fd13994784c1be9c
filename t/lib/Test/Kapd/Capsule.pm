package Test::Kapd::Capsule;
# Test::Kapd::Capsule -- run `kap run` from a test, the way a user would:
# a given working directory, $HOME and $XDG_RUNTIME_DIR, optionally as
# another uid, extra environment, an extra inherited descriptor.
#
#   my $c = Test::Kapd::Capsule->new($t, kap => $kap, shim => $shim, sh => $sh);
#   my $r = $c->run({ cwd => $dir, home => "$dir/home", tag => 'x' },
#                   '-c', $policy, '--', 'sh', '-c', '...');
#   $r->{rc}, $r->{out}, $r->{err}
use strict;
use warnings;
use POSIX qw(WNOHANG dup2);
use Test::Kapd;
use Test::Kapd::FakeDNS;

sub new {
    my ($class, $t, %o) = @_;
    return bless { t => $t, %o, n => 0 }, $class;
}

# setup($t, tool...): what every capsule test needs -- kapd with its two
# modules, kap, kap-shim and the tools (skip_all otherwise), a stand-in
# DNS upstream, policy.conf in the prefix (allowed.test), home/ and run/
# (the real $HOME and $XDG_RUNTIME_DIR); returns the runner
sub setup {
    my ($class, $t, @tools) = @_;
    $t->has_kapd->has_module(qw/http_connect dns/);
    my ($kap, $shim, $sh) = $t->has_capsule('setpriv', @tools);
    my $dir = $t->testdir;
    my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {});
    $t->write_file_expand('policy.conf', <<'EOC');
network: { allow = ["allowed.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { };
dns: { };
EOC
    mkdir "$dir/home", 0700;
    mkdir "$dir/run", 0700;
    return $class->new($t, kap => $kap, shim => $shim, sh => $sh, dns => $dns);
}

# run(\%o, kap-run-args...): o = cwd, home, xdg, as (uid), env {NAME =>
# value, undef deletes}, tag, timeout (s), fd5 (a path opened on fds 5
# and 12, inherited), bg (return the pid at once)
sub run {
    my ($self, $o, @args) = @_;
    my $t = $self->{t};
    my $dir = $t->testdir;
    my $tag = $o->{tag} // ('run' . ++$self->{n});
    my ($out, $err) = ("$dir/$tag.out", "$dir/$tag.err");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        chdir($o->{cwd} // $dir) or do { print STDERR "chdir: $!\n"; POSIX::_exit(126) };
        $ENV{KAPD} = $t->binary;
        $ENV{KAP_SHIM} = $self->{shim};
        $ENV{KAP_MODULE_PATH} = $t->module_path;
        $ENV{HOME} = $o->{home} // "$dir/home";
        $ENV{XDG_RUNTIME_DIR} = $o->{xdg} // "$dir/run";
        delete $ENV{XDG_STATE_HOME};
        for my $k (keys %{ $o->{env} // {} }) {
            if (defined $o->{env}{$k}) { $ENV{$k} = $o->{env}{$k} } else { delete $ENV{$k} }
        }
        if ($o->{fd5}) {
            open my $f, '<', $o->{fd5} or POSIX::_exit(126);
            for my $fd (5, 12) {                             # no close-on-exec
                dup2(fileno($f), $fd) or POSIX::_exit(126);
            }
        }
        my @pre = $o->{as} ? ('setpriv', "--reuid=$o->{as}", "--regid=$o->{as}",
                              '--clear-groups', '--') : ();
        exec(@pre, $self->{sh}, $self->{kap}, 'run', @args) or POSIX::_exit(127);
    }
    return $pid if $o->{bg};
    my $st;
    my $done = wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } },
                          kapd_tmo($o->{timeout} // 60));
    unless ($done) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $st = -1;
    }
    my $rd = sub { open my $f, '<', $_[0] or return ''; local $/; <$f> // '' };
    return { rc => $st < 0 ? -1 : ($st & 127 ? 128 + ($st & 127) : $st >> 8),
             out => $rd->($out), err => $rd->($err) };
}

# kv(text): { key => value } from key=value lines
sub kv {
    my ($text) = @_;
    return { map { /^([\w.\/-]+)=(.*)$/ ? ($1, $2) : () } split /\n/, $text };
}

1;
