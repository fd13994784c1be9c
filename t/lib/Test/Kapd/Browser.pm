package Test::Kapd::Browser;
# Test::Kapd::Browser -- what the browser tests (t/53N-remote-*browser.t)
# share: skip without chromium or playwright-core, a pairing secret the
# way kap remote qr writes it, and a run of t/tools/browser-steps.js in
# the background whose progress the test can watch (one JSON line per
# step in browser.out).
#
#   my $b = Test::Kapd::Browser->new($t);          # plans skip_all if absent
#   my $secret = $b->pairing_secret('state');      # state/pairing, 0600
#   $b->start(\@steps);                            # node in the background
#   $b->wait_step(7, 60);                          # step 7 done (or failed)
#   my $rc = $b->finish(120);                      # its exit status
#   $b->value(3); $b->done(8); $b->results; $b->page_errors;
#   $b->keep_shots('remote-', qw/status-light/);   # KAP_SCREENSHOT_DIR
use strict;
use warnings;
use Carp qw(croak);
use Digest::SHA qw(sha256_hex);
use File::Copy qw(copy);
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More ();
use Test::Kapd qw(wait_until kapd_tmo);

sub new {
    my ($class, $t) = @_;
    my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';
    Test::More::plan(skip_all => "no chromium at $chromium (contrib/install-deps --test installs it)")
        unless -x $chromium;
    my $npmroot = `npm root -g 2>/dev/null` // '';
    chomp $npmroot;
    Test::More::plan(skip_all => 'no playwright-core (contrib/install-deps --test: '
                                 . 'npm install -g playwright-core)')
        unless -d "$npmroot/playwright-core" || -d $t->srcdir . '/node_modules/playwright-core';
    my $self = bless { t => $t, npmroot => $npmroot, shots => $t->path('shots') }, $class;
    mkdir $self->{shots};
    return $self;
}

sub shots { $_[0]{shots} }

# a one-time pairing secret in DIR/pairing ("sha256:HEX", 0600)
sub pairing_secret {
    my ($self, $dir) = @_;
    my $t = $self->{t};
    my $secret = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    my $old = umask 077;
    open my $fh, '>', $t->path("$dir/pairing.tmp") or croak "pairing: $!";
    print $fh 'sha256:' . sha256_hex($secret) . "\n";
    close $fh;
    rename $t->path("$dir/pairing.tmp"), $t->path("$dir/pairing") or croak "rename: $!";
    umask $old;
    return $secret;
}

sub start {
    my ($self, $steps) = @_;
    my $t = $self->{t};
    open my $sf, '>', $t->path('steps.json') or croak "steps.json: $!";
    print $sf encode_json($steps);
    close $sf;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $t->path('browser.out') or POSIX::_exit(2);
        open STDERR, '>', $t->path('browser.err') or POSIX::_exit(2);
        $ENV{NODE_PATH} = join(':', grep { length } $ENV{NODE_PATH} // '', $self->{npmroot});
        exec('node', $t->srcdir . '/t/tools/browser-steps.js', $t->path('steps.json'))
            or POSIX::_exit(2);
    }
    $self->{pid} = $pid;
    return $pid;
}

sub results {
    my ($self) = @_;
    return map { eval { decode_json($_) } // () }
           split /\n/, $self->{t}->read_file('browser.out') // '';
}

sub done { my ($self, $n) = @_; return scalar grep { ($_->{step} // '') eq $n && $_->{ok} } $self->results }
sub failed { my ($self) = @_; return scalar grep { !$_->{ok} } $self->results }
sub value {
    my ($self, $n) = @_;
    my ($r) = grep { ($_->{step} // '') eq $n } $self->results;
    return $r ? $r->{value} : undef;
}
sub page_errors {
    my ($self) = @_;
    my ($end) = grep { ($_->{step} // '') eq 'end' } $self->results;
    return $end ? $end->{page_errors} : ['no end line'];
}

# wait until step n is done, or a step failed, or secs (scaled) passed;
# true when step n is done
sub wait_step {
    my ($self, $n, $secs) = @_;
    wait_until(sub { $self->done($n) || $self->failed || $self->_reaped }, kapd_tmo($secs // 60));
    return $self->done($n);
}

sub _reaped {
    my ($self) = @_;
    return 1 if defined $self->{status};
    return 0 unless waitpid($self->{pid}, WNOHANG) == $self->{pid};
    $self->{status} = $? >> 8;
    return 1;
}

# the script's exit status (0: every step passed), killed after secs
sub finish {
    my ($self, $secs) = @_;
    wait_until(sub { $self->_reaped }, kapd_tmo($secs // 120))
        or do { kill 'KILL', $self->{pid}; waitpid($self->{pid}, 0); $self->{status} = -1 };
    return $self->{status};
}

sub diag_all {
    my ($self) = @_;
    return join("\n", map { encode_json($_) } $self->results) . "\n"
           . ($self->{t}->read_file('browser.err') // '');
}

# copy screenshots NAME.png to KAP_SCREENSHOT_DIR/PREFIX NAME.png
sub keep_shots {
    my ($self, $prefix, @names) = @_;
    my $d = $ENV{KAP_SCREENSHOT_DIR} or return;
    copy("$self->{shots}/$_.png", "$d/$prefix$_.png") for @names;
}

1;
