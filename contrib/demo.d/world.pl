#!/usr/bin/perl
# contrib/demo.d/world.pl -- the demo's stand-in for the Internet: an
# authoritative DNS server and an HTTP origin, both on addresses of a
# network namespace the demo created (198.51.100.0/24, TEST-NET-2).
# Nothing here ever talks to a real network.
#
#   world.pl DNS_ADDR HTTP_ADDR
#
# DNS: github.com and *.github.com -> HTTP_ADDR; every other name -> NXDOMAIN.
# HTTP: answers any request with a short text naming the Host it was asked.
use strict;
use warnings;
use IO::Socket::IP;
use Net::DNS;
use Net::DNS::Nameserver;
use POSIX ();

my ($dns_addr, $http_addr) = @ARGV;
die "usage: world.pl DNS_ADDR HTTP_ADDR\n" unless $http_addr;
$SIG{CHLD} = 'IGNORE';

my $http = IO::Socket::IP->new(LocalHost => $http_addr, LocalPort => 80,
                               Listen => 64, ReuseAddr => 1)
    or die "world: http $http_addr:80: $!\n";
my $httpd = fork // die "world: fork: $!\n";
if (!$httpd) {
    while (my $c = $http->accept) {
        next if fork;
        my $head = '';
        while (defined(my $l = <$c>)) { $head .= $l; last if $l =~ /^\r?\n$/ }
        my ($host) = $head =~ /^Host:\s*(\S+)/mi;
        my ($line) = $head =~ /^([^\r\n]*)/;
        my $body = "hello from the demo's local stand-in for "
                 . ($host // '?') . " (you asked: $line)\n";
        print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
               . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
        close $c;
        POSIX::_exit(0);
    }
    POSIX::_exit(0);
}
# the demo's clean-up stops this process: the HTTP server goes with it
$SIG{TERM} = $SIG{INT} = sub { kill 'TERM', $httpd; POSIX::_exit(0) };

sub reply {
    my ($qname, $qclass, $qtype) = @_;
    my $n = lc $qname;
    $n =~ s/\.$//;
    return ('NXDOMAIN', [], [], [], { aa => 1 })
        unless $n eq 'github.com' || $n =~ /\.github\.com$/;
    my @ans;
    push @ans, Net::DNS::RR->new("$qname 60 IN A $http_addr") if $qtype eq 'A';
    return ('NOERROR', \@ans, [], [], { aa => 1 });
}

my $ns = Net::DNS::Nameserver->new(LocalAddr => [$dns_addr], LocalPort => 53,
                                   ReplyHandler => \&reply, Verbose => 0)
    or die "world: dns $dns_addr:53: $!\n";
$ns->main_loop;
