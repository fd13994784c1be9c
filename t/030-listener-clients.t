#!/usr/bin/perl
# 030-listener-clients.t -- the client allowlist of the core's listener
# layer (kapd.clients, kapd.listener_clients): a TCP peer outside the list
# is reset before any module sees it, a UDP datagram from one is dropped
# unanswered, IPv4 peers on a dual-stack socket are judged as IPv4, every
# refusal is audited (rate-limited per listener), a reload changes the
# list of a kept listener, kapd -T prints each listener's list, and bad
# entries are refused with file:line.
# Peers are told apart by the source address they bind in 127.0.0.0/8.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Select;
use IO::Socket::IP;
use Net::DNS;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module(qw/http_connect dns/);

sub conf {
    my ($clients, $dnsclients) = @_;
    return <<"EOF";
kapd: {
    load = ["http_connect", "dns"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
    clients = [ $clients ];
    listener_clients = (
        { listen = "127.0.0.1:%%PORT_dns%%"; clients = [ $dnsclients ]; }
    );
};
network: { allow = ["allowed.example"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 1; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%", "*:%%PORT_wild%%"]; };
dns: { listen = ["127.0.0.1:%%PORT_dns%%"]; rate_limit = 0; };
EOF
}

my ($proxy, $wild, $dport) = map { $t->port($_) } qw/proxy wild dns/;

# CONNECT from a source address: the status line, or "RESET"/"EOF"
sub connect_from {
    my ($src, $port, $dst) = @_;
    $dst //= '127.0.0.1';
    my $s = IO::Socket::IP->new(PeerHost => $dst, PeerPort => $port,
        LocalHost => $src, Proto => 'tcp', Timeout => kapd_tmo(5))
        or return $!{ECONNRESET} ? 'RESET' : "NOCONNECT($!)";
    syswrite($s, "CONNECT denied.example:443 HTTP/1.1\r\nHost: x\r\n\r\n");
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + kapd_tmo(5);
    while ($buf !~ /\r\n/ && time < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, $buf, 4096, length $buf);
        return $!{ECONNRESET} ? 'RESET' : 'EOF' unless $n;
    }
    close $s;
    return $buf =~ m{^(HTTP/1\.1 \d+)} ? $1 : "GOT($buf)";
}

sub dns_from {
    my ($src, %o) = @_;
    my $res = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'],
        port => $dport, srcaddr => $src, usevc => $o{tcp} ? 1 : 0,
        udp_timeout => kapd_tmo(1), tcp_timeout => kapd_tmo(1),
        retry => 1, retrans => kapd_tmo(1), persistent_udp => 0,
        defnames => 0, dnsrch => 0);
    my $p = $res->send('denied.example', 'A');
    return $p ? $p->header->rcode : 'TIMEOUT';
}

sub refused { grep { ($_->{event} // '') eq 'client_refused' } $t->audit }

$t->write_conf(conf('"127.0.0.1/32", "::1"', '"127.0.0.9"'));
$t->run(wait_ports => [$proxy]);

# -- TCP: the proxy listener ---------------------------------------------------
is(connect_from('127.0.0.1', $proxy), 'HTTP/1.1 403',
   'a listed client reaches http_connect (its 403 for an unlisted name)');
like(connect_from('127.0.0.9', $proxy), qr/^(RESET|EOF)$/,
   'an unlisted client is cut off before any byte of the module');
my @r = $t->wait_audit(sub { grep { ($_->{event} // '') eq 'client_refused' } @_ });
my ($rec) = grep { ($_->{event} // '') eq 'client_refused' } @r;
ok($rec, 'the refusal is audited');
$rec //= {};
like($rec->{client} // '', qr/^127\.0\.0\.9:\d+$/, 'audit: client address and port');
is($rec->{module}, 'http_connect', 'audit: the module owning the listener');
is($rec->{action}, 'denied', 'audit: action denied');
is($rec->{detail}, 'tcp', 'audit: tcp');
is($rec->{listen}, "127.0.0.1:$proxy", 'audit: the listener');
ok(!grep({ ($_->{event} // '') ne 'client_refused' && ($_->{client} // '') =~ /^127\.0\.0\.9:/ } $t->audit),
   'no module recorded anything for the refused client');

# -- dual-stack wildcard: IPv4 peers are mapped back to IPv4 --------------------
is(connect_from('127.0.0.1', $wild), 'HTTP/1.1 403',
   'wildcard listener: an IPv4 peer (v4-mapped on the socket) matches 127.0.0.1/32');
is(connect_from('::1', $wild, '::1'), 'HTTP/1.1 403', 'wildcard listener: ::1 is listed');
like(connect_from('127.0.0.2', $wild), qr/^(RESET|EOF)$/,
   'wildcard listener: 127.0.0.2 is not');

# -- UDP and TCP DNS with its own list ---------------------------------------------
isnt(dns_from('127.0.0.9'), 'TIMEOUT', 'dns (its own list): 127.0.0.9 is answered over UDP');
is(dns_from('127.0.0.1'), 'TIMEOUT',
   'dns: kapd.clients does not apply to a listener with its own list: 127.0.0.1 gets no answer');
is(dns_from('127.0.0.1', tcp => 1), 'TIMEOUT', 'dns over TCP: refused too');
ok(scalar $t->wait_audit(sub { grep { ($_->{event} // '') eq 'client_refused'
                               && ($_->{detail} // '') eq 'udp'
                               && ($_->{module} // '') eq 'dns' } @_ }),
   'the dropped datagram is audited (dns, udp)');

# -- a flood is audited at most 10 times per listener per window ------------------
my $before = grep { ($_->{listen} // '') eq "127.0.0.1:$proxy" } refused();
connect_from('127.0.0.9', $proxy) for 1 .. 30;
ok($t->is_running, 'kapd survives the flood');
is(connect_from('127.0.0.1', $proxy), 'HTTP/1.1 403', 'listed clients still served');
my $after = grep { ($_->{listen} // '') eq "127.0.0.1:$proxy" } refused();
cmp_ok($after, '<=', 10, "at most 10 records per listener per 10 s ($after)");
cmp_ok($after, '>', $before, 'but some were written');
# after the window, the next record carries how many went unrecorded
my $sup;
wait_until(sub {
    connect_from('127.0.0.9', $proxy);
    ($sup) = grep { defined $_->{suppressed} } refused();
    $sup;
}, kapd_tmo(20), 0.5);
ok($sup && $sup->{suppressed} >= 20,
   'the first record of the next window counts the suppressed ones ('
   . ($sup ? $sup->{suppressed} : 'none') . ')');

# -- reload: a kept listener takes the new list --------------------------------------
$t->write_conf(conf('"127.0.0.0/8", "::1"', '"127.0.0.9"'));
like($t->reload // '', qr/reloaded/, 'reload with a wider list');
is(connect_from('127.0.0.9', $proxy), 'HTTP/1.1 403', 'after reload: 127.0.0.9 reaches the proxy');
$t->stop;
is($t->exit_code, 0, 'kapd exits 0');

# -- kapd -T prints what each listener accepts --------------------------------------------
my $r = $t->kapd_cmd('-T', '-c', $t->conf_path, '-p', $t->testdir);
is($r->{rc}, 0, 'kapd -T succeeds');
like($r->{out}, qr{^#   http_connect tcp 127\.0\.0\.1:$proxy: 127\.0\.0\.0/8 ::1/128 \(\S*kap\.conf:\d+\)$}m,
     'kapd -T: a listener under kapd.clients, with its networks and file:line')
    or diag($r->{out});
like($r->{out}, qr{^#   http_connect tcp \*:$wild: 127\.0\.0\.0/8 ::1/128 \(}m,
     'kapd -T: the wildcard listener too');
like($r->{out}, qr{^#   dns udp 127\.0\.0\.1:$dport: 127\.0\.0\.9/32 \(\S*kap\.conf:\d+\)$}m,
     'kapd -T: the listener_clients entry of the DNS listener (udp)');
like($r->{out}, qr{^#   dns tcp 127\.0\.0\.1:$dport: 127\.0\.0\.9/32 \(}m,
     '... and tcp');
(my $open = conf('"127.0.0.1"', '"127.0.0.9"')) =~ s/^\s*clients = \[.*\];\n//m;
$t->write_conf($open);
$r = $t->kapd_cmd('-T', '-c', $t->conf_path, '-p', $t->testdir);
like($r->{out}, qr{^#   http_connect tcp 127\.0\.0\.1:$proxy: anyone$}m,
     'kapd -T: without kapd.clients, "anyone"') or diag($r->{out});

# -- configuration errors ----------------------------------------------------------------
$t->write_conf(conf('', '"127.0.0.9"'));
$r = $t->kapd_cmd('-t', '-c', $t->conf_path, '-p', $t->testdir);
isnt($r->{rc}, 0, 'an empty clients list is an error');
like($r->{all}, qr/"clients" is empty.* in \S*kap\.conf:\d+/, '... with file:line');

$t->write_conf(conf('"10.0.0.0/33"', '"127.0.0.9"'));
$r = $t->kapd_cmd('-t', '-c', $t->conf_path, '-p', $t->testdir);
like($r->{all}, qr/bad prefix length.* in \S*kap\.conf:\d+/, 'a bad CIDR: file:line');

(my $typo = conf('"127.0.0.1"', '"127.0.0.9"')) =~ s/listen = "127\.0\.0\.1:%%PORT_dns%%"/listen = "127.0.0.1:1"/;
$t->write_conf($typo);
ok(!$t->try_run(wait_ports => [$proxy]), 'a listener_clients entry naming no listener: kapd does not start');
like($t->{run_error} // '', qr/"127\.0\.0\.1:1" is not the address of any listener in \S*kap\.conf:\d+/,
     '... and says which, with file:line');

$t->done_testing;
