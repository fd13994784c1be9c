#!/usr/bin/perl
# 258-dns-port-5353.t -- DNS on an unprivileged port, as a Kubernetes
# Service maps 53 to it: kapd started as an unprivileged user (no
# capability) binds 5353 for UDP and TCP and answers both.  This
# namespace is the test's own, so the fixed port collides with nothing.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use File::Copy qw(copy);

my $t = Test::Kapd->new->has_kapd->has_module(qw/dns/);
my $setpriv = -x '/usr/bin/setpriv' ? '/usr/bin/setpriv' : undef;

my $dns = Test::Kapd::FakeDNS->new($t, port => $t->port('up'), zone => {
    'one.test' => ['A 192.0.2.1'],
});
my $unpriv = 0;
my $modpath = $t->module_path;
# (not under contrib/valgrind-check: its log directory is root's)
if ($> == 0 && $setpriv && !$ENV{KAPD_VG_LOGDIR}) {
    # run kapd as nobody: a wrapper around a copy of whatever binary the
    # harness uses, with a copy of the dns module, both where uid 65534
    # can reach them (a build tree under /root, 0700, is out of its reach)
    mkdir $t->path('nobody'), 0755;
    copy($t->binary, $t->path('nobody/kapd')) or die "copy kapd: $!";
    chmod 0755, $t->path('nobody/kapd');
    my ($so) = grep { -f "$_/kap_dns.so" } split /:/, $t->module_path;
    copy("$so/kap_dns.so", $t->path('nobody/kap_dns.so')) or die "copy kap_dns.so: $!";
    chmod 0644, $t->path('nobody/kap_dns.so');
    $modpath = $t->path('nobody');
    my $real = $t->path('nobody/kapd');
    my $w = $t->write_file('kapd-nobody', "#!/bin/sh\nexec $setpriv --reuid=65534 "
        . "--regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "
        . "$real \"\$@\"\n");
    chmod 0755, $w;
    chmod 0777, $t->testdir;
    for my $f (qw/error.log audit.jsonl/) {
        open my $fh, '>>', $t->path($f) or die "$f: $!";
        close $fh;
        chown 65534, 65534, $t->path($f);
    }
    $t->{binary} = $w;
    $unpriv = 1;
}
$t->write_conf(<<"EOF");
kapd: { load = ["dns"]; module_path = ["$modpath"]; error_log = "error.log"; };
network: { allow = ["one.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 1; };
audit_log: { path = "audit.jsonl"; };
dns: { listen = ["127.0.0.1:5353"]; rate_limit = 0; };
EOF

diag($unpriv ? 'kapd runs as uid 65534 without capabilities'
             : 'kapd runs as this user (uid ' . $> . ')');
$t->run(wait_log => qr/listening on 127\.0\.0\.1:5353 \(udp\)|started/);

if ($unpriv) {
    # the harness's pid is the wrapper's, which exec'd setpriv, then kapd
    my $st = $t->read_file('/proc/' . $t->pid . '/status') // '';
    my ($ruid) = $st =~ /^Uid:\s+(\d+)/m;
    is($ruid, 65534, 'kapd runs as uid 65534');
    like($st, qr/^CapEff:\s+0+$/m, 'with no effective capability');
}

my $p = dns_query('one.test', 'A', port => 5353);
is($p && $p->header->rcode, 'NOERROR', 'UDP 5353: answered');
is($p && ($p->answer)[0] && ($p->answer)[0]->address, '192.0.2.1', 'UDP 5353: the answer');
$p = dns_query('one.test', 'A', port => 5353, tcp => 1);
is($p && $p->header->rcode, 'NOERROR', 'TCP 5353: answered');

$t->stop;
is($t->exit_code, 0, 'kapd exits 0');
$t->done_testing;
