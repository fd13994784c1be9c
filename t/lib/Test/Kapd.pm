package Test::Kapd;

# Test::Kapd -- daemon test harness for kapd (nginx-tests style).
#
# A test creates a Test::Kapd object (a temp prefix directory), writes a
# config with %%PORT_n%% / %%PREFIX%% / %%BUILDDIR%% / %%MODULE_PATH%%
# placeholders, starts the real kapd in the foreground and talks to it
# through fakes (Test::Kapd::FakeDNS, ::FakeHTTP, ::FakeBanner) and the
# client helpers exported here.  Every test file runs in a private network
# namespace (loopback only, resolv.conf -> 127.0.0.1): at import time the
# script re-executes itself under `unshare --net --mount --fork`.
#
# At the end of every test the harness adds three checks: no [alert] or
# [crit] in any log of the prefix, no sanitizer report, and every audit
# JSONL line is valid JSON.  Use $t->plan(N) (adds the 3) or
# $t->done_testing.
#
# Environment:
#   KAPD_BUILDDIR    build tree (kapd, .libs/*.so); default "."
#   KAPD_SRCDIR      source tree (contrib/, t/); default: from this file
#   KAPD_BINARY      kapd binary; default $KAPD_BUILDDIR/kapd
#   KAPD_MODULE_PATH module directory; default $KAPD_BUILDDIR/.libs
#   KAPD_TEST_KEEP   keep the temp prefix (its path is printed)
#   KAPD_TEST_CATLOG print error.log at the end
#   KAPD_TEST_NETNS  set inside the namespace (do not set by hand unless
#                    you already provide an isolated namespace)
#   KAPD_TEST_TIMEOUT_SCALE  multiply every deadline (slow sanitizer builds)

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path getcwd);
use Errno qw(EINTR);
use Exporter ();
our @ISA = ('Exporter');
use File::Basename qw(dirname);
use File::Find;
use File::Path ();
use File::Spec;
use File::Temp;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::IP;
use IPC::Open3;
use JSON::PP;
use POSIX qw(:sys_wait_h _exit);
use Socket qw(SOCK_STREAM SOCK_DGRAM);
use Symbol qw(gensym);
use Test::More ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(http_get http_raw http_parse dns_query tcp_connect
                 line_cmd read_line wait_until kapd_tmo connect_tunnel
                 tls_client);

my $LIBDIR = dirname(dirname(abs_path(__FILE__)));   # .../t/lib
my $TDIR   = dirname($LIBDIR);                        # .../t
my @OBJECTS;                                          # live harness objects

sub kapd_tmo {
    my ($s) = @_;
    my $scale = $ENV{KAPD_TEST_TIMEOUT_SCALE} || 1;
    return $s * $scale;
}

# ---- network namespace ---------------------------------------------------

sub _capture {
    my (@cmd) = @_;
    my ($in, $out, $err) = (undef, undef, gensym);
    my $pid = eval { open3($in, $out, $err, @cmd) };
    return (-1, "$@") unless $pid;
    close $in;
    local $/;
    my $o = <$out> // '';
    my $e = <$err> // '';
    waitpid($pid, 0);
    return ($? >> 8, $o . $e);
}

sub _enter_netns {
    return if $ENV{KAPD_TEST_NETNS};
    my $script = File::Spec->rel2abs($0);
    my $runner = "$TDIR/netns-run";
    my @unshare = ('unshare', '--net', '--mount', '--fork');
    my ($rc, $out) = _capture(@unshare, 'true');
    if ($rc != 0) {
        # unprivileged: try a user namespace mapping us to root
        my ($rc2) = _capture(@unshare, '--map-root-user', 'true');
        if ($rc2 == 0) {
            @unshare = ('unshare', '--map-root-user', '--net', '--mount',
                        '--fork');
        } else {
            $out =~ s/\s+$//;
            Test::More::plan(skip_all =>
                "network namespaces unavailable: $out");
        }
    }
    $ENV{PERL5LIB} = join ':', $LIBDIR,
        grep { length } split /:/, ($ENV{PERL5LIB} // '');
    $ENV{KAPD_SRCDIR} //= dirname($TDIR);
    STDOUT->flush; STDERR->flush;
    exec(@unshare, '--', 'sh', $runner, $^X, $script, @ARGV)
        or Test::More::plan(skip_all =>
            "network namespaces unavailable: exec unshare: $!");
}

# Re-exec under unshare before the test script runs anything.
# `use Test::Kapd qw(:no_netns)` skips it (for standalone fake checks).
my $NETNS_DONE;
sub import {
    my ($class, @args) = @_;
    my $skip_ns = grep { $_ eq ':no_netns' } @args;
    @args = grep { $_ ne ':no_netns' } @args;
    _enter_netns() unless $NETNS_DONE++ || $skip_ns;
    $class->export_to_level(1, $class, @args);
}

sub enter_netns { _enter_netns() }

# ---- object --------------------------------------------------------------

sub new {
    my ($class, %o) = @_;
    my $builddir = $ENV{KAPD_BUILDDIR} // '.';
    $builddir = abs_path($builddir) // $builddir;
    my $srcdir = $ENV{KAPD_SRCDIR} // dirname($TDIR);
    # kapd (and kap run's kapd) load modules from the build tree, never from
    # the compiled-in module directory of an earlier `make install`
    $ENV{KAPD_MODULE_PATH} //= "$builddir/.libs";
    # a test that hangs fails (and its daemons stop, in END) instead of
    # holding the whole suite until CI's own limit
    my $limit = int(kapd_tmo($ENV{KAPD_TEST_FILE_LIMIT} // 600));
    $SIG{ALRM} = sub { die "test file still running after ${limit}s: stopped\n" };
    alarm($limit);
    my $keep = $ENV{KAPD_TEST_KEEP} ? 1 : 0;
    my $dir = File::Temp::tempdir('kapd-test-XXXXXX', TMPDIR => 1,
                                  CLEANUP => !$keep);
    chmod 0755, $dir;
    Test::More::diag("prefix kept: $dir") if $keep;
    my $self = bless {
        owner      => $$,
        dir        => $dir,
        builddir   => $builddir,
        srcdir     => abs_path($srcdir) // $srcdir,
        binary     => $ENV{KAPD_BINARY} // "$builddir/kapd",
        module_path => $ENV{KAPD_MODULE_PATH} // "$builddir/.libs",
        ports      => {},
        used_ports => {},
        daemons    => [],
        fakes      => [],
        conf       => 'kap.conf',
        wait_ports => {},
        problems   => [],
        nchecks    => 3,
        finalized  => 0,
        ignore_log => [],
    }, $class;
    push @OBJECTS, $self;
    return $self;
}

sub testdir    { $_[0]{dir} }
sub builddir   { $_[0]{builddir} }
sub srcdir     { $_[0]{srcdir} }
sub binary     { $_[0]{binary} }
sub module_path { $_[0]{module_path} }
sub pid        { $_[0]{pid} }

# has_module(name...): skip_all unless every kap_<name>.so is built.
sub has_module {
    my ($self, @names) = @_;
    for my $n (@names) {
        next if -e "$self->{module_path}/kap_$n.so";
        Test::More::plan(skip_all => "module $n not built "
            . "($self->{module_path}/kap_$n.so)");
    }
    return $self;
}

sub has_kapd {
    my ($self) = @_;
    Test::More::plan(skip_all => "no kapd binary at $self->{binary}")
        unless -x $self->{binary};
    return $self;
}

# has_capsule(tool...): skip_all unless the kap script, kap-shim and every
# named tool (unshare, ip, ...) are there; returns (kap script, kap-shim,
# the shell to run the script with: dash when installed, else sh).
sub has_capsule {
    my ($self, @tools) = @_;
    my $kap  = "$self->{builddir}/kap";
    my $shim = "$self->{builddir}/kap-shim";
    my @path = split /:/, $ENV{PATH};
    Test::More::plan(skip_all => "kap script not built ($kap)") unless -f $kap;
    Test::More::plan(skip_all => "kap-shim not built ($shim)") unless -x $shim;
    for my $tool (@tools) {
        Test::More::plan(skip_all => "$tool not installed")
            unless grep { -x "$_/$tool" } @path;
    }
    return ($kap, $shim, (grep { -x "$_/dash" } @path) ? 'dash' : 'sh');
}

# kap_allow({home => DIR, as => uid}, file...): approve policy files for
# kap run the way a user does once, outside the capsule (kap allow --yes),
# for the user whose $HOME is DIR (approvals live in its state directory);
# as => uid runs it as that user.  Returns kap's output; croaks on failure.
sub kap_allow {
    my ($self, $o, @files) = @_;
    my $kap = "$self->{builddir}/kap";
    my $pid = open(my $fh, '-|') // croak "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        $ENV{HOME} = $o->{home};
        delete $ENV{XDG_STATE_HOME};
        my @pre = $o->{as} ? ('setpriv', "--reuid=$o->{as}", "--regid=$o->{as}",
                              '--clear-groups', '--') : ();
        exec(@pre, 'sh', $kap, 'allow', '--yes', @files) or _exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    croak "kap allow --yes @files failed: $out" if $?;
    return $out;
}

# ---- ports ---------------------------------------------------------------

sub _free_port {
    my ($self) = @_;
    for (1 .. 200) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => 0, Proto => 'tcp', ReuseAddr => 1) or next;
        my $p = $s->sockport;
        close $s;
        next if $self->{used_ports}{$p};
        my $u = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $p, Proto => 'udp') or next;
        close $u;
        $self->{used_ports}{$p} = 1;
        return $p;
    }
    croak "no free port on 127.0.0.1";
}

# port(label): a free port (TCP and UDP) on 127.0.0.1, stable per label.
sub port {
    my ($self, $label) = @_;
    return $self->{ports}{$label} //= $self->_free_port;
}

# ---- files ---------------------------------------------------------------

sub expand {
    my ($self, $text) = @_;
    $text =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $text =~ s/%%(?:PREFIX|TESTDIR)%%/$self->{dir}/g;
    $text =~ s/%%BUILDDIR%%/$self->{builddir}/g;
    $text =~ s/%%SRCDIR%%/$self->{srcdir}/g;
    $text =~ s/%%MODULE_PATH%%/$self->{module_path}/g;
    return $text;
}

sub path {
    my ($self, $name) = @_;
    return $name if File::Spec->file_name_is_absolute($name);
    return "$self->{dir}/$name";
}

# write_file(name, text): write text as is (no expansion).
sub write_file {
    my ($self, $name, $text) = @_;
    my $p = $self->path($name);
    my $d = dirname($p);
    File::Path::make_path($d) unless -d $d;
    my $tmp = "$p.tmp.$$";
    open my $fh, '>', $tmp or croak "open $tmp: $!";
    print $fh $text;
    close $fh or croak "close $tmp: $!";
    rename $tmp, $p or croak "rename $tmp: $!";
    return $p;
}

# write_file_expand(name, text): expand placeholders, then write.
sub write_file_expand {
    my ($self, $name, $text) = @_;
    $text = $self->expand($text);
    # remember TCP listen addresses so run() can wait for them:
    # listen = "127.0.0.1:N" or listen = ["127.0.0.1:N", "[::1]:N", ...]
    while ($text =~ /\blisten\s*=\s*(\[(?:[^\]"]|"[^"]*")*\]|"[^"]*")/g) {
        my $v = $1;
        while ($v =~ /"(\d+\.\d+\.\d+\.\d+|localhost|\[[0-9a-fA-F:.]+\]|\*)?:(\d+)"/g) {
            my ($h, $p) = ($1 // '127.0.0.1', $2);
            $h = '127.0.0.1' if $h eq 'localhost' || $h eq '*'
                                || $h eq '0.0.0.0';
            $h = '::1' if $h eq '[::]';
            $h =~ s/^\[(.*)\]$/$1/;
            $self->{wait_ports}{$name}{$h =~ /:/ ? "[$h]:$p" : "$h:$p"} = 1;
        }
    }
    return $self->write_file($name, $text);
}

# write_conf(text[, name]): the main config (default kap.conf).
sub write_conf {
    my ($self, $text, $name) = @_;
    $name //= $self->{conf};
    $self->{conf} = $name;
    $self->{wait_ports}{$name} = {};
    return $self->write_file_expand($name, $text);
}

sub conf_path { $_[0]->path($_[0]{conf}) }

sub read_file {
    my ($self, $name) = @_;
    my $p = $self->path($name);
    open my $fh, '<', $p or return undef;
    local $/;
    my $c = <$fh>;
    return $c;
}

sub error_log_path { $_[0]->path('error.log') }

# error_log(): lines of error.log (list), or the text in scalar context.
sub error_log {
    my ($self) = @_;
    my $c = $self->read_file('error.log') // '';
    return wantarray ? split(/\n/, $c) : $c;
}

sub error_log_size {
    my ($self) = @_;
    return -s $self->error_log_path || 0;
}

# wait_log(qr//, [timeout], [from_offset]): poll error.log until the
# regex matches text after from_offset; returns the matching line or undef.
sub wait_log {
    my ($self, $re, $tmo, $from) = @_;
    $tmo = kapd_tmo($tmo // 10);
    $from //= 0;
    my $line;
    wait_until(sub {
        my $c = $self->read_file('error.log') // '';
        $c = length($c) > $from ? substr($c, $from) : '';
        for my $l (split /\n/, $c) {
            if ($l =~ $re) { $line = $l; return 1 }
        }
        return 0;
    }, $tmo);
    return $line;
}

# audit([name]): the audit JSONL file (default audit.jsonl) as a list of
# hashes; lines that do not parse are skipped (the end-of-test check
# reports them).
sub audit {
    my ($self, $name) = @_;
    my $c = $self->read_file($name // 'audit.jsonl') // '';
    my $j = JSON::PP->new;
    return map { my $v = eval { $j->decode($_) }; ref $v eq 'HASH' ? $v : () }
        split /\n/, $c;
}

# wait_audit(code, [timeout], [name]): poll the audit file until code
# returns true for the list of its lines; returns the lines or ().
sub wait_audit {
    my ($self, $code, $tmo, $name) = @_;
    my @l;
    wait_until(sub { @l = $self->audit($name); $code->(@l) }, kapd_tmo($tmo // 5))
        or return ();
    return @l;
}

# ---- running kapd --------------------------------------------------------

# kapd_cmd(args...): run kapd synchronously with -p prefix; returns
# { rc, out, err, signal }.  stderr is also appended to kapd-cmd.log so
# the end-of-test sanitizer check sees it.
sub kapd_cmd {
    my ($self, @args) = @_;
    my %o = ref $args[0] eq 'HASH' ? %{shift @args} : ();
    my @cmd = ($self->{binary}, @args);
    my $err = gensym;
    my $pid = open3(my $in, my $out, $err, @cmd);
    close $in;
    my ($o, $e) = ('', '');
    my $sel = IO::Select->new($out, $err);
    my $deadline = time + kapd_tmo($o{timeout} // 20);
    while ($sel->count && time < $deadline) {
        for my $fh ($sel->can_read(0.2)) {
            my $n = sysread($fh, my $buf, 65536);
            if (!$n) { $sel->remove($fh); next }
            if ($fh == $out) { $o .= $buf } else { $e .= $buf }
        }
    }
    my $timedout = $sel->count ? 1 : 0;
    CORE::kill 'KILL', $pid if $timedout;
    waitpid($pid, 0);
    my $st = $?;
    open my $log, '>>', "$self->{dir}/kapd-cmd.log";
    print $log "# @cmd\n$e" if $log;
    return { rc => $st >> 8, signal => $st & 127, out => $o, err => $e,
             all => $o . $e, timedout => $timedout };
}

# run(%o): start kapd in the foreground with -c <conf> -p <prefix>;
# waits until every listen port of the config accepts (or until the
# "started" notice when there is no TCP port); dies on failure.
#   conf => name, args => [extra args], wait_ports => [ports],
#   wait_log => qr//, timeout => s, stdout => a handle for kapd's stdout
#   (default: the error log)
sub run {
    my ($self, %o) = @_;
    my $ok = $self->try_run(%o);
    croak "kapd did not start: $self->{run_error}" unless $ok;
    return $self;
}

# try_run(%o): like run, but returns undef (and sets run_error) on failure.
sub try_run {
    my ($self, %o) = @_;
    croak "kapd already running (pid $self->{pid})" if $self->{pid};
    my $conf = $o{conf} // $self->{conf};
    my @args = ('-c', $self->path($conf), '-p', $self->{dir},
                @{$o{args} // []});
    my $log = $self->error_log_path;
    my $from = $self->error_log_size;
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        if ($o{stdout}) { open STDOUT, '>&', $o{stdout} }
        else            { open STDOUT, '>>', $log }
        open STDERR, '>>', $log;
        exec($self->{binary}, @args) or do {
            print STDERR "exec $self->{binary}: $!\n";
            _exit(127);
        };
    }
    $self->{pid} = $pid;
    $self->{exit_status} = undef;
    my @ports = @{$o{wait_ports} // [sort keys %{$self->{wait_ports}{$conf} // {}}]};
    my $re = $o{wait_log} // (@ports ? undef : qr/\bstarted\b/);
    my $ready = wait_until(sub {
        if (waitpid($pid, WNOHANG) == $pid) {
            $self->{exit_status} = $?;
            $self->{pid} = undef;
            return 1;
        }
        for my $p (@ports) {
            my $s = tcp_connect($p, 1) or return 0;
            close $s;
        }
        if ($re) {
            my $c = $self->read_file('error.log') // '';
            return 0 unless substr($c, $from) =~ $re;
        }
        return 1;
    }, kapd_tmo($o{timeout} // 15));
    if (!$self->{pid}) {
        my $st = $self->{exit_status};
        $self->{run_error} = sprintf("kapd exited with code %d (signal %d)\n%s",
            $st >> 8, $st & 127, $self->_log_tail($from));
        return undef;
    }
    if (!$ready) {
        $self->{run_error} = "kapd not ready in time (listening on @ports?)\n"
            . $self->_log_tail($from);
        return undef;
    }
    return $self;
}

sub _log_tail {
    my ($self, $from) = @_;
    my $c = $self->read_file('error.log') // '';
    $c = substr($c, $from // 0);
    $c = substr($c, -4000) if length $c > 4000;
    return $c;
}

sub kill {
    my ($self, $sig) = @_;
    return 0 unless $self->{pid};
    return CORE::kill($sig // 'TERM', $self->{pid});
}

# is_running(): true while the kapd child has not exited (reaps it).
sub is_running {
    my ($self) = @_;
    return 0 unless $self->{pid};
    if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
        $self->{exit_status} = $?;
        $self->{pid} = undef;
        return 0;
    }
    return 1;
}

# wait_exit([timeout]): wait for kapd to exit; returns the wait status
# or undef when it is still running at the deadline.
sub wait_exit {
    my ($self, $tmo) = @_;
    return $self->{exit_status} unless $self->{pid};
    wait_until(sub { !$self->is_running }, kapd_tmo($tmo // 15));
    return $self->{pid} ? undef : $self->{exit_status};
}

sub exit_status { $_[0]{exit_status} }
sub exit_code {
    my $st = $_[0]{exit_status};
    return defined $st ? $st >> 8 : undef;
}

# stop([timeout]): TERM, wait with a deadline, KILL if needed (recorded
# as a problem, which fails the end-of-test checks).  Returns the exit
# code.
sub stop {
    my ($self, $tmo) = @_;
    return $self->exit_code unless $self->{pid};
    my $pid = $self->{pid};
    if (!$self->is_running) {
        push @{$self->{problems}}, sprintf(
            "kapd (pid %d) had exited on its own before stop (status %d, signal %d)",
            $pid, $self->{exit_status} >> 8, $self->{exit_status} & 127);
        return $self->exit_code;
    }
    CORE::kill 'TERM', $pid;
    my $st = $self->wait_exit($tmo // 20);
    if (!defined $st) {
        push @{$self->{problems}}, "kapd (pid $pid) did not exit after TERM; killed";
        CORE::kill 'KILL', $pid;
        waitpid($pid, 0);
        $self->{exit_status} = $?;
        $self->{pid} = undef;
    } elsif ($st & 127) {
        push @{$self->{problems}},
            "kapd (pid $pid) died of signal " . ($st & 127);
    }
    return $self->exit_code;
}

# reload(): send HUP and wait for the outcome line; returns the line
# ("... reloaded ..." or "... reload failed ...") or undef on timeout.
sub reload {
    my ($self, %o) = @_;
    croak "kapd not running" unless $self->{pid};
    my $from = $self->error_log_size;
    CORE::kill 'HUP', $self->{pid};
    return $self->wait_log(qr/reloaded|reload failed/, $o{timeout} // 10,
                           $from);
}

# ---- fakes and helper daemons -------------------------------------------

# run_daemon(code, args...): fork a child running code->(args); it is
# TERMed (then KILLed) at stop_daemons / end of test.  Returns the pid.
sub run_daemon {
    my ($self, $code, @args) = @_;
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $SIG{TERM} = sub { _exit(0) };
        eval { $code->(@args) };
        print STDERR "daemon: $@" if $@;
        _exit($@ ? 1 : 0);
    }
    push @{$self->{daemons}}, $pid;
    return $pid;
}

sub add_fake {
    my ($self, $fake) = @_;
    push @{$self->{fakes}}, $fake;
    return $fake;
}

sub stop_daemons {
    my ($self) = @_;
    my @pids = @{$self->{daemons}};
    $self->{daemons} = [];
    CORE::kill 'TERM', @pids if @pids;
    my %left = map { $_ => 1 } @pids;
    wait_until(sub {
        for my $p (keys %left) {
            delete $left{$p} if waitpid($p, WNOHANG) != 0;
        }
        return !%left;
    }, kapd_tmo(5));
    for my $p (keys %left) { CORE::kill 'KILL', $p; waitpid($p, 0) }
}

# ---- end-of-test checks --------------------------------------------------

# allow_log(qr//): error-log lines matching it are not counted as alerts
# (for tests that provoke a [crit] on purpose).
sub allow_log {
    my ($self, $re) = @_;
    push @{$self->{ignore_log}}, $re;
    return $self;
}

sub plan {
    my ($self, $n) = @_;
    $self->{planned} = 1;
    Test::More::plan(tests => $n + $self->{nchecks});
    return $self;
}

sub done_testing {
    my ($self) = @_;
    $self->finish;
    Test::More::done_testing();
}

sub _prefix_files {
    my ($self, $re) = @_;
    my @f;
    return @f unless -d $self->{dir};
    find({ no_chdir => 1, wanted => sub {
        push @f, $File::Find::name if -f $_ && $File::Find::name =~ $re;
    } }, $self->{dir});
    return sort @f;
}

sub _check_results {
    my ($self) = @_;
    my (@alerts, @san, @json);
    for my $f ($self->_prefix_files(qr/\.log(\.\d+)?$|\/stderr[^\/]*$/)) {
        open my $fh, '<', $f or next;
        my $rel = substr($f, length($self->{dir}) + 1);
        while (my $l = <$fh>) {
            chomp $l;
            if ($l =~ /\[(alert|crit)\]/) {
                push @alerts, "$rel: $l"
                    unless grep { $l =~ $_ } @{$self->{ignore_log}};
            }
            push @san, "$rel: $l"
                if $l =~ /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|MemorySanitizer|runtime error:|Fatal glibc error|malloc\(\): |free\(\): |double free|corrupted (size|double-linked)|stack smashing detected|Assertion `.*. failed/;
        }
    }
    my $json = JSON::PP->new->allow_nonref(0);
    for my $f ($self->_prefix_files(qr/\.jsonl(\.\d+)?$/)) {
        open my $fh, '<', $f or next;
        my $rel = substr($f, length($self->{dir}) + 1);
        my $n = 0;
        while (my $l = <$fh>) {
            $n++;
            if ($l !~ /\n\z/) {
                push @json, "$rel:$n: line not terminated by newline";
            }
            chomp $l;
            my $v = eval { $json->decode($l) };
            if (!defined $v || ref $v ne 'HASH') {
                my $e = $@ || 'not a JSON object';
                $e =~ s/\s+$//;
                push @json, "$rel:$n: $e: " . substr($l, 0, 200);
            }
        }
    }
    return (\@alerts, \@san, \@json);
}

# finish(): stop kapd and every fake, then run the three checks as tests.
sub finish {
    my ($self) = @_;
    return if $self->{finalized}++ || $self->{owner} != $$;
    $self->_shutdown_all;
    $self->_emit_checks(1);
}

# finish_quiet(): like finish, for extra objects in a planned test: the
# checks are reported only when they fail (a failure fails the test).
sub finish_quiet {
    my ($self) = @_;
    return if $self->{finalized}++ || $self->{owner} != $$;
    $self->_shutdown_all;
    $self->_emit_checks(0);
}

sub _shutdown_all {
    my ($self) = @_;
    $self->stop if $self->{pid};
    $_->stop for @{$self->{fakes}};
    $self->{fakes} = [];
    $self->stop_daemons;
}

sub _emit_checks {
    my ($self, $as_tests) = @_;
    my ($alerts, $san, $json) = $self->_check_results;
    my @problems = @{$self->{problems}};
    my $catlog = $ENV{KAPD_TEST_CATLOG};
    my @r = (
        [ !@$alerts && !@problems, 'no alerts or crits in the logs',
          [@$alerts, @problems] ],
        [ !@$san, 'no sanitizer reports', $san ],
        [ !@$json, 'audit logs are valid JSONL', $json ],
    );
    for my $r (@r) {
        my ($ok, $name, $why) = @$r;
        if ($as_tests) {
            Test::More::ok($ok, $name)
                or Test::More::diag(join "\n", @$why[0 .. ($#$why < 19 ? $#$why : 19)]);
        } elsif (!$ok) {
            Test::More::ok(0, $name);
            Test::More::diag(join "\n", @$why[0 .. ($#$why < 19 ? $#$why : 19)]);
        }
    }
    Test::More::diag($self->error_log) if $catlog;
}

END {
    for my $self (@OBJECTS) {
        next if $self->{owner} != $$;
        next if $self->{finalized}++;
        local $?;
        $self->_shutdown_all;
        # with a plan from $t->plan, the checks are counted in it;
        # otherwise report only failures
        $self->_emit_checks($self->{planned} ? 1 : 0);
    }
}

# ---- helpers (exported) --------------------------------------------------

# wait_until(code, timeout[, interval]): poll until code returns true;
# returns that value, or 0 at the deadline.  Never a fixed sleep.
sub wait_until {
    my ($code, $tmo, $iv) = @_;
    my $deadline = time + ($tmo // 10);
    $iv //= 0.02;
    while (1) {
        my $v = $code->();
        return $v if $v;
        return 0 if time >= $deadline;
        sleep($iv);
        $iv *= 1.5 if $iv < 0.2;
    }
}

# tcp_connect(port | "host:port", [timeout]): a connected socket or undef.
sub tcp_connect {
    my ($addr, $tmo) = @_;
    $addr = "127.0.0.1:$addr" if $addr =~ /^\d+$/;
    my ($h, $p) = $addr =~ /^\[?(.*?)\]?:(\d+)$/ or croak "bad address $addr";
    return IO::Socket::IP->new(PeerHost => $h, PeerPort => $p,
        Proto => 'tcp', Timeout => kapd_tmo($tmo // 5));
}

# read_line(sock, [timeout]): one line (without \r?\n) or undef.
sub read_line {
    my ($s, $tmo) = @_;
    my $deadline = time + kapd_tmo($tmo // 5);
    my $buf = ${*$s}{kapd_buf} // '';
    while ($buf !~ /\n/) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        my $sel = IO::Select->new($s);
        next unless $sel->can_read($left);
        my $n = sysread($s, my $chunk, 4096);
        if (!$n) {
            ${*$s}{kapd_buf} = $buf;
            return undef;
        }
        $buf .= $chunk;
    }
    $buf =~ s/^([^\n]*)\n//;
    my $l = $1;
    ${*$s}{kapd_buf} = $buf;
    $l =~ s/\r$//;
    return $l;
}

# line_cmd(sock, line, [timeout]): send line\n, return the reply line.
sub line_cmd {
    my ($s, $line, $tmo) = @_;
    my $data = "$line\n";
    while (length $data) {
        my $n = syswrite($s, $data);
        return undef unless $n;
        substr($data, 0, $n) = '';
    }
    return read_line($s, $tmo);
}

# http_raw(addr, request, %o): send request bytes, read until EOF (or
# until a complete response when o{one} is set), timeout o{timeout}.
sub http_raw {
    my ($addr, $req, %o) = @_;
    my $s = ref $addr ? $addr : tcp_connect($addr, $o{timeout}) or return undef;
    my $data = $req;
    while (length $data) {
        my $n = syswrite($s, $data);
        last unless $n;
        substr($data, 0, $n) = '';
    }
    my $resp = '';
    my $deadline = time + kapd_tmo($o{timeout} // 5);
    my $sel = IO::Select->new($s);
    while (time < $deadline) {
        last if $o{one} && _response_complete($resp, $o{method});
        next unless $sel->can_read(0.1);
        my $n = sysread($s, my $chunk, 65536);
        last unless $n;
        $resp .= $chunk;
    }
    return $resp;
}

sub _response_complete {
    my ($r, $method) = @_;
    return 0 unless $r =~ /\r?\n\r?\n/;
    my $p = http_parse($r);
    return 0 unless $p;
    my $st = $p->{status};
    return 1 if ($method // '') =~ /^(CONNECT|HEAD)$/ && $st >= 200;
    return 1 if $st == 204 || $st == 304 || $st < 200;
    if (defined(my $cl = $p->{headers}{'content-length'})) {
        return length($p->{body}) >= $cl;
    }
    if (($p->{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        return $r =~ /\r\n0\r\n(?:[^\r\n]+\r\n)*\r\n\z/;
    }
    return 0;
}

# http_parse(raw): { status, reason, version, headers => {lc name => v},
# header_list => [[n, v]], body } or undef.
sub http_parse {
    my ($raw) = @_;
    return undef unless defined $raw;
    my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
    return undef unless defined $head;
    my @lines = split /\r?\n/, $head;
    my $sl = shift @lines // '';
    my ($ver, $st, $reason) = $sl =~ m{^(HTTP/\d\.\d)\s+(\d{3})\s*(.*)$}
        or return undef;
    my (%h, @hl);
    for (@lines) {
        my ($n, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        push @hl, [$n, $v];
        $h{lc $n} = exists $h{lc $n} ? "$h{lc $n}, $v" : $v;
    }
    $body //= '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n);
            substr($body, 0, $n + 2) = '';
        }
        $body = $out;
    }
    return { version => $ver, status => $st, reason => $reason,
             headers => \%h, header_list => \@hl, body => $body };
}

# http_get(url, %o): GET through a proxy (o{via} = port or host:port) as
# an absolute-URI request, or directly to o{addr} with an origin-form
# request.  Returns the raw response (parse with http_parse).
#   headers => [ "Name: value", ... ], method => 'GET', body => '...'
sub http_get {
    my ($url, %o) = @_;
    my $method = $o{method} // 'GET';
    my ($host, $path);
    if ($url =~ m{^https?://([^/]+)(/.*)?$}) {
        ($host, $path) = ($1, $2 // '/');
    } else {
        ($host, $path) = ($o{host} // 'localhost', $url);
    }
    my $target = $o{via} ? $url : $path;
    my $req = "$method $target HTTP/1.1\r\nHost: $host\r\n";
    $req .= "$_\r\n" for @{$o{headers} // []};
    $req .= "Connection: close\r\n" unless $o{keepalive};
    $req .= "Content-Length: " . length($o{body}) . "\r\n" if defined $o{body};
    $req .= "\r\n" . ($o{body} // '');
    my $addr = $o{via} // $o{addr} // croak "http_get: via or addr needed";
    return http_raw($addr, $req, %o, one => $o{keepalive}, method => $method);
}

# connect_tunnel(proxy, "host:port", %o): send "CONNECT host:port" to
# the proxy (port or host:port) and read the response head.  Returns
# (socket, parsed response) — the socket is the tunnel when the status is
# 200.  o{headers} adds request headers, o{raw} replaces the request.
sub connect_tunnel {
    my ($proxy, $target, %o) = @_;
    my $s = tcp_connect($proxy, $o{timeout}) or return;
    my $req = $o{raw} // ("CONNECT $target HTTP/1.1\r\nHost: $target\r\n"
        . join('', map { "$_\r\n" } @{$o{headers} // []}) . "\r\n");
    my $data = $req;
    while (length $data) {
        my $n = syswrite($s, $data);
        return ($s, undef) unless $n;
        substr($data, 0, $n) = '';
    }
    # read byte by byte up to the end of the head: nothing of the tunnel
    # may be consumed here
    my $head = '';
    my $deadline = time + kapd_tmo($o{timeout} // 5);
    my $sel = IO::Select->new($s);
    while ($head !~ /\r?\n\r?\n\z/ && time < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, my $ch, 1);
        last unless $n;
        $head .= $ch;
    }
    return ($s, http_parse($head));
}

# tls_client(socket, hostname, %o): start TLS on a connected socket (a
# tunnel); o{ca} = CA/cert file to verify with (else no verification),
# o{sni} = 0 to send no SNI.  Returns the IO::Socket::SSL or undef.
sub tls_client {
    my ($s, $host, %o) = @_;
    require IO::Socket::SSL;
    my %a = (SSL_startHandshake => 1, Timeout => kapd_tmo($o{timeout} // 5));
    if ($o{ca}) {
        @a{qw(SSL_ca_file SSL_verify_mode SSL_verifycn_name SSL_verifycn_scheme)}
            = ($o{ca}, IO::Socket::SSL::SSL_VERIFY_PEER(), $host, 'http');
    } else {
        $a{SSL_verify_mode} = IO::Socket::SSL::SSL_VERIFY_NONE();
    }
    $a{SSL_hostname} = ($o{sni} // 1) ? $host : '';
    return IO::Socket::SSL->start_SSL($s, %a);
}

# dns_query(name, type, %o): ask 127.0.0.1:o{port} (o{tcp} for TCP);
# returns a Net::DNS::Packet or undef (timeout / error in $@-like o{err}).
sub dns_query {
    my ($name, $type, %o) = @_;
    require Net::DNS;
    my $res = Net::DNS::Resolver->new(
        nameservers => [$o{server} // '127.0.0.1'],
        port => $o{port} // 53, recurse => 1,
        usevc => $o{tcp} ? 1 : 0, igntc => $o{igntc} ? 1 : 0,
        udp_timeout => kapd_tmo($o{timeout} // 3),
        tcp_timeout => kapd_tmo($o{timeout} // 3),
        retry => 1, retrans => kapd_tmo($o{timeout} // 3), persistent_udp => 0,
        defnames => 0, dnsrch => 0,
        udppacketsize => $o{bufsize} // 0);
    my $p = $res->send($name, $type // 'A', $o{class} // 'IN');
    ${$o{err}} = $res->errorstring if $o{err};
    return $p;
}

1;
