package Test::Kapd::FakeDNS;

# Test::Kapd::FakeDNS -- an authoritative DNS server for tests
# (Net::DNS::Nameserver on 127.0.0.1:<port>, UDP and TCP), run as a child
# process of the test.  Every query it receives is appended to a log in
# the test prefix, so tests can assert what was (never) forwarded.
#
#   my $dns = Test::Kapd::FakeDNS->new($t,
#       port => $t->port('dns'),
#       zone => {
#           'github.com'     => ['A 127.0.0.2', 'AAAA ::1', 'TXT "hello"'],
#           'www.github.com' => ['CNAME github.com'],
#           'big.test'       => [map { "A 127.0.1.$_" } 1 .. 60],
#           'slow.test'      => 'silent',    # never answers
#           'fail.test'      => 'SERVFAIL',  # any rcode name
#       },
#       ttl => 60, silent => 0, delay => 0);
#   $dns->count;                        # queries received
#   $dns->count('github.com', 'A');     # of one name (and type)
#   $dns->queries;                      # [ {name, type, proto}, ... ]
#   $dns->set_silent(1);                # stop answering (file flag)
#
# Names not in the zone get NXDOMAIN; names present without the asked type
# get NOERROR with no answer; CNAMEs are followed inside the zone.  UDP
# answers larger than 512 bytes (or the client's EDNS size) are sent as
# TC with an empty answer section.

use strict;
use warnings;

use Carp;
use Net::DNS;
use Net::DNS::Nameserver;
use POSIX qw(_exit);
use Test::Kapd ();

sub new {
    my ($class, $t, %o) = @_;
    my $port = $o{port} // $t->port('dns');
    my $addr = $o{addr} // '127.0.0.1';
    my $name = $o{name} // "dns$port";
    my $self = bless {
        t      => $t,
        port   => $port,
        addr   => $addr,
        log    => $t->testdir . "/fakedns-$name.queries",
        flag   => $t->testdir . "/fakedns-$name.silent",
        zone   => _norm_zone($o{zone} // {}),
        ttl    => $o{ttl} // 60,
        delay  => $o{delay} // 0,
    }, $class;
    open my $fh, '>', $self->{log} or croak "$self->{log}: $!";
    close $fh;
    $self->set_silent($o{silent} ? 1 : 0);
    $self->{pid} = $t->run_daemon(sub { $self->_serve });
    $t->add_fake($self);
    my $ok = Test::Kapd::wait_until(sub {
        my $s = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port,
                                      Proto => 'tcp') or return 0;
        close $s;
        1;
    }, Test::Kapd::kapd_tmo(10));
    croak "FakeDNS did not start on $addr:$port" unless $ok;
    return $self;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

sub _norm_zone {
    my ($z) = @_;
    my %n;
    while (my ($k, $v) = each %$z) {
        my $name = lc $k;
        $name =~ s/\.$//;
        $n{$name} = $v;
    }
    return \%n;
}

sub set_silent {
    my ($self, $on) = @_;
    if ($on) {
        open my $fh, '>', $self->{flag} or croak "$self->{flag}: $!";
        close $fh;
    } else {
        unlink $self->{flag};
    }
}

sub _rrs {
    my ($self, $name, $list) = @_;
    my @rr;
    for my $r (@$list) {
        if (ref $r) { push @rr, $r; next }
        push @rr, Net::DNS::RR->new("$name. $self->{ttl} IN $r");
    }
    return @rr;
}

# returns (rcode, \@answer) or () for silence
sub _answer {
    my ($self, $qname, $qtype) = @_;
    my $name = lc $qname;
    $name =~ s/\.$//;
    my @ans;
    my %seen;
    for (1 .. 16) {
        my $e = $self->{zone}{$name};
        return ('NXDOMAIN', \@ans) unless defined $e;
        if (!ref $e) {
            return () if $e eq 'silent';
            return ($e, \@ans);
        }
        my @rrs = $self->_rrs($name, $e);
        my @match = grep { $_->type eq $qtype } @rrs;
        if (@match || $qtype eq 'ANY') {
            push @ans, ($qtype eq 'ANY' ? @rrs : @match);
            return ('NOERROR', \@ans);
        }
        my ($cname) = grep { $_->type eq 'CNAME' } @rrs;
        return ('NOERROR', \@ans) unless $cname;
        push @ans, $cname;
        $name = lc $cname->cname;
        $name =~ s/\.$//;
        return ('NOERROR', \@ans) if $seen{$name}++;
    }
    return ('NOERROR', \@ans);
}

sub _serve {
    my ($self) = @_;
    my $ns = Net::DNS::Nameserver->new(
        LocalAddr => [$self->{addr}],
        LocalPort => $self->{port},
        Truncate  => 0,
        Verbose   => 0,
        ReplyHandler => sub {
            my ($qname, $qclass, $qtype, $peer, $query, $conn) = @_;
            if (open my $fh, '>>', $self->{log}) {
                my $proto = ($conn->{protocol} // 0) == 6 ? 'tcp' : 'udp';
                print $fh "$qname $qtype $proto\n";
                close $fh;
            }
            return () if -e $self->{flag};
            select(undef, undef, undef, $self->{delay}) if $self->{delay};
            my ($rcode, $ans) = $self->_answer($qname, $qtype);
            return () unless defined $rcode;
            # truncation: Net::DNS::Nameserver only truncates for EDNS
            # queries, so do it here: TC with an empty answer section
            if (($conn->{protocol} // 0) != 6) {
                my $max = $query->edns->size || 512;
                my $p = $query->reply;
                $p->push(answer => @$ans);
                return ($rcode, [], [], [], { aa => 1, tc => 1 })
                    if length($p->data) > $max;
            }
            return ($rcode, $ans, [], [], { aa => 1 });
        },
    ) or die "FakeDNS: cannot listen on $self->{addr}:$self->{port}\n";
    $ns->main_loop;
    _exit(0);
}

# queries(): list of { name, type, proto } received so far.
sub queries {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return [];
    my @q;
    while (<$fh>) {
        chomp;
        my ($n, $ty, $p) = split / /;
        push @q, { name => $n, type => $ty, proto => $p };
    }
    return \@q;
}

# count([name[, type]]): number of queries received (name case-insensitive).
sub count {
    my ($self, $name, $type) = @_;
    my $q = $self->queries;
    if (defined $name) {
        (my $n = lc $name) =~ s/\.$//;
        $q = [grep { (my $x = lc $_->{name}) =~ s/\.$//; $x eq $n } @$q];
    }
    $q = [grep { $_->{type} eq $type } @$q] if defined $type;
    return scalar @$q;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    CORE::kill('TERM', $self->{pid});
    waitpid($self->{pid}, 0);
    $self->{t}{daemons} = [grep { $_ != $self->{pid} } @{$self->{t}{daemons}}];
    $self->{pid} = undef;
}

1;
