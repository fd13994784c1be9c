#!/usr/bin/perl
# 034-configmap-swap.t -- the content watch follows a Kubernetes
# ConfigMap volume update (emulation: no cluster here).  The kubelet's
# atomic writer keeps each version in a timestamped directory "..TS",
# points the symlink "..data" at it, and exposes every key as
# "key -> ..data/key"; an update writes a new "..TS2", makes a symlink
# "..data_tmp -> ..TS2", renames it over "..data" and removes the old
# directory.  kapd (-c on the key's symlink) must reload the new content;
# a broken version keeps the old policy and logs file:line.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::KubeletVolume;
use IO::Select;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module(qw/http_connect/);
diag('emulation: the kubelet ConfigMap layout and update sequence in a temp dir');

my $cm = $t->path('cm');
mkdir $cm or die "mkdir $cm: $!";
my $kapconf = <<'EOF';
kapd: { load = ["http_connect"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; reload_check = 0.1; };
@include "policy.conf"
resolver: { upstream = ["127.0.0.1:%%PORT_up%%"]; timeout = 1; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
EOF
my $vol = Test::Kapd::KubeletVolume->new($cm);

# one ConfigMap version, written the way the kubelet's atomic writer does
sub cm_version {
    my (%files) = @_;
    $vol->version({ map { ($_ => $t->expand($files{$_})) } keys %files });
}

sub policy { "network: { allow = [ @_ ]; };\n" }

sub verdict {
    my ($host) = @_;
    my $from = scalar $t->audit;
    my $s = tcp_connect($t->port('proxy')) or return 'NOCONNECT';
    syswrite($s, "CONNECT $host:443 HTTP/1.1\r\nHost: $host:443\r\n\r\n");
    my @l = $t->wait_audit(sub { grep { ($_->{subject} // '') eq $host
                                        && ($_->{event} // '') eq 'decision' }
                                 @_[$from .. $#_] });
    close $s;
    my ($d) = grep { ($_->{subject} // '') eq $host && ($_->{event} // '') eq 'decision' }
              @l[$from .. $#l];
    return $d ? $d->{action} : 'NONE';
}

cm_version('kap.conf' => $kapconf, 'policy.conf' => policy('"one.example"'));
ok(-l "$cm/..data" && -l "$cm/kap.conf", 'layout: ..data and key symlinks');
$t->run(conf => 'cm/kap.conf', wait_ports => [$t->port('proxy')]);
is(verdict('one.example'), 'allowed', 'v1: one.example allowed');
is(verdict('two.example'), 'denied', 'v1: two.example denied');

my $from = $t->error_log_size;
cm_version('kap.conf' => $kapconf, 'policy.conf' => policy('"two.example"'));
ok($t->wait_log(qr/reloaded \(/, 10, $from), 'the ..data swap is seen and reloaded');
is(verdict('two.example'), 'allowed', 'v2: two.example allowed');
is(verdict('one.example'), 'denied', 'v2: one.example denied');

$from = $t->error_log_size;
cm_version('kap.conf' => $kapconf,
           'policy.conf' => "network: {\n  allow = [ \"three.example\" \n};\n");
my $line = $t->wait_log(qr/reload failed/, 10, $from);
ok($line, 'a broken version: reload failed');
like($line // '', qr{cm/(?:\.\.data/)?policy\.conf:\d+}, '... with file:line of the broken file');
is(verdict('two.example'), 'allowed', 'the previous policy keeps running');
ok($t->is_running, 'kapd still runs');

$from = $t->error_log_size;
cm_version('kap.conf' => $kapconf, 'policy.conf' => policy('"one.example"'));
ok($t->wait_log(qr/reloaded \(/, 10, $from), 'a fixed version is loaded again');
is(verdict('one.example'), 'allowed', 'v4: one.example allowed');
is(verdict('two.example'), 'denied', 'v4: two.example denied');

$t->stop;
is($t->exit_code, 0, 'kapd exits 0');
$t->done_testing;
