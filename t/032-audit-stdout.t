#!/usr/bin/perl
# 032-audit-stdout.t -- audit_log.path = "-": JSONL on kapd's stdout (a
# pipe, as a container runtime gives it), each record with the client
# address and port; a reader that stops reading never stalls kapd: lines
# beyond the queue are dropped and counted, none is torn.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module(qw/http_connect dns/);

$t->write_conf(<<'EOF');
kapd: { load = ["http_connect", "dns"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; };
network: { allow = ["allowed.example"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 1; };
audit_log: { path = "-"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
my ($proxy, $dport) = ($t->port('proxy'), $t->port('dns'));

pipe(my $r, my $w) or die "pipe: $!";
$t->run(stdout => $w, wait_ports => [$proxy]);
close $w;
ok(!-e $t->path('-') && !-e $t->path('audit.jsonl'), 'no audit file is created');

sub connect_denied {
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $proxy,
        LocalHost => '127.0.0.7', Timeout => kapd_tmo(5)) or return '';
    syswrite($s, "CONNECT denied.example:443 HTTP/1.1\r\nHost: x\r\n\r\n");
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + kapd_tmo(5);
    while ($buf !~ /\r\n/ && time < $deadline) {
        next unless $sel->can_read(0.1);
        sysread($s, $buf, 4096, length $buf) or last;
    }
    return $buf =~ m{^HTTP/1\.1 (\d+)} ? $1 : '';
}

my $pending = '';
sub read_lines {
    my ($tmo) = @_;
    my $sel = IO::Select->new($r);
    my $deadline = time + kapd_tmo($tmo);
    my @l;
    while (time < $deadline) {
        last unless $sel->can_read(0.2);
        my $n = sysread($r, $pending, 65536, length $pending);
        last unless $n;
        while ($pending =~ s/^([^\n]*)\n//) { push @l, $1 }
        last if @l && !$sel->can_read(0);
    }
    return @l;
}

is(connect_denied(), '403', 'a denied CONNECT');
my @l = read_lines(5);
my @recs = map { eval { decode_json($_) } } @l;
my ($d) = grep { ($_->{event} // '') eq 'decision' } @recs;
ok($d, 'its decision arrives on stdout as JSON');
like($d->{client} // '', qr/^127\.0\.0\.7:\d+$/, 'with the client address and port');
is($d->{subject}, 'denied.example', 'and the subject');

# -- a reader that stops: kapd goes on, drops whole lines, counts them ------------
my $u = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $dport,
    Proto => 'udp') or die "udp: $!";
# a query for denied.example (id varies)
my $q = pack('n n n n n n', 0, 0x0100, 1, 0, 0, 0)
      . join('', map { chr(length) . $_ } qw/denied example/) . "\0"
      . pack('n n', 1, 1);
my $answered = 0;
my $t0 = time;
for my $i (1 .. 6000) {
    substr($q, 0, 2) = pack('n', $i);
    send($u, $q, 0);
    if ($i % 50 == 0) {     # pace: let kapd answer, count the answers
        my $sel = IO::Select->new($u);
        while ($sel->can_read(0.2)) { recv($u, my $a, 4096, 0); $answered++; last if $answered >= $i }
    }
}
cmp_ok($answered, '>', 5000, "kapd kept answering with nobody reading its stdout ($answered of 6000)");
is(connect_denied(), '403', 'and the proxy still answers');
ok($t->wait_log(qr/stdout.*dropped so far/), 'the drop is logged with a count');

# drain the pipe: every line is whole JSON
my @all = read_lines(5);
push @all, read_lines(2) while @all && $pending ne '';
my $bad = grep { !eval { decode_json($_); 1 } } @all;
cmp_ok(scalar @all, '>', 100, 'lines queued before the reader stopped are there (' . scalar(@all) . ')');
is($bad, 0, 'none of them is torn');
cmp_ok(scalar @all, '<', 6000, 'some lines were dropped');

# after the reader is back, new lines flow again
is(connect_denied(), '403', 'one more request');
my @more;
wait_until(sub { push @more, read_lines(0.5); grep { /"client":"127\.0\.0\.7:/ } @more }, kapd_tmo(10));
ok(scalar(grep { /"client":"127\.0\.0\.7:/ } @more), 'its record arrives once the reader reads again');

$t->stop;
is($t->exit_code, 0, 'kapd exits 0');
$t->done_testing;
