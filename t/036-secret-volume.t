#!/usr/bin/perl
# 036-secret-volume.t -- kapd reads its credentials from a Kubernetes
# Secret volume (emulation: no cluster here).  The kubelet's atomic
# writer publishes each key as "KEY -> ..data/KEY", "..data -> ..TS" in a
# sticky 1777 tmpfs, the file in ..TS of mode 0440 for the pod's fsGroup;
# a rotation writes "..TS2" and renames a new "..data" over the old one.
# An mcp server's header (its ${VAR} from the mcp env_file) and a cli
# tool's environment (file:) read their secrets through that layout; a
# swap of ..data is picked up on reload; a swap to a ..data that points
# outside the volume fails the reload (the old secrets stay, the log says
# which hop broke); no secret reaches a log.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use Test::Kapd::KubeletVolume;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module(qw/mcp cli/);
$t->plan(15);
diag('emulation: the kubelet Secret volume layout and rotation in a temp dir');

my $dir = $t->testdir;
my $sv = "$dir/secrets";
mkdir $sv or die "mkdir $sv: $!";
chmod 01777, $sv;
my $vol = Test::Kapd::KubeletVolume->new($sv);
sub secret_version { $vol->version({ @_ }, mode => 0440, gid => (split " ", $))[0]) }

my %v1 = (key => 'k8s-mcp-key-one-Hq3Zt8', cli => 'k8s-cli-tok-one-Rw5Xp2');
my %v2 = (key => 'k8s-mcp-key-two-Lm7Yc4', cli => 'k8s-cli-tok-two-Bn9Vd6');
sub keys_of {
    my ($v) = @_;
    return ('mcp.env' => "KAP_TEST_K8S_KEY=$v->{key}\n",
            'cli-token' => "$v->{cli}\n");
}
secret_version(keys_of(\%v1));
ok(-l "$sv/..data" && -l "$sv/mcp.env" && -l "$sv/cli-token",
   'layout: ..data and key symlinks in a 1777 volume');

my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'gh',
                                  addr => '127.0.0.2', sessions => 0);
my $bin = $t->write_file('bin/fake', "#!/bin/sh\nexit 0\n");
chmod 0755, $bin;
chmod 0755, $t->path('bin');
my $url = $m->url;
$t->write_conf(<<"EOF");
kapd: { load = ["mcp", "cli"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info"; };
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
audit_log: { path = "audit.jsonl"; };
mcp: {
    listen = ["127.0.0.1:%%PORT_kap%%"];
    env_file = "$sv/mcp.env";
    servers = ( { name = "gh"; url = "$url"; allow = ["*"];
                  headers = { X-Api-Key = "\${KAP_TEST_K8S_KEY}"; }; } );
};
cli: {
    listen = ["127.0.0.1:%%PORT_cli%%"];
    tools = ( { name = "fake"; mode = "direct"; path = "$bin";
                env = [ "FROM_SECRET=file:$sv/cli-token" ]; } );
};
EOF
my $r = $t->kapd_cmd('-t', '-c', $t->conf_path, '-p', $dir);
is($r->{rc}, 0, 'kapd -t accepts the secrets behind the layout')
    or diag($r->{all});
$t->run;

my $J = JSON::PP->new->canonical;
sub mcp_key {
    my $from = scalar @{ $m->requests };
    my $body = $J->encode({ jsonrpc => '2.0', id => 1, method => 'tools/list' });
    my $req = "POST /gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . "Accept: application/json, text/event-stream\r\nConnection: close\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $resp = http_parse(http_raw(tcp_connect('127.0.0.1:' . $t->port('kap')),
                                   $req)) // { status => 0 };
    my @reqs = @{ $m->requests };
    my ($q) = grep { $_->{method} eq 'POST' } @reqs[$from .. $#reqs];
    my ($k) = map { $_->[1] } grep { lc $_->[0] eq 'x-api-key' }
              @{ $q ? $q->{headers} : [] };
    return ($resp->{status}, $k // '');
}
sub cli_env {
    my $body = '{"args":["x"],"cwd":"/ws"}';
    my $resp = http_parse(http_raw(tcp_connect('127.0.0.1:' . $t->port('cli')),
        "POST /fake HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n\r\n$body")) // { body => '' };
    my $j = eval { decode_json($resp->{body}) } // {};
    return $j->{env}{FROM_SECRET} // '';
}

my ($st, $k) = mcp_key();
is($st, 200, 'mcp: tools/list through kapd answers 200');
is($k, $v1{key}, 'mcp: the header carries the key read through ..data');
is(cli_env(), $v1{cli}, 'cli: the tool environment holds the file through ..data');

# -- the kubelet rotates the Secret: picked up on reload ----------------------
secret_version(keys_of(\%v2));
like($t->reload // '', qr/reloaded/, 'reload after the ..data swap succeeds');
($st, $k) = mcp_key();
is($k, $v2{key}, 'mcp: the header carries the rotated key');
is(cli_env(), $v2{cli}, 'cli: the tool environment holds the rotated token');

# -- ..data pointing outside the volume: refused, the old secrets stay ------------
my $out = $t->path('outside');
mkdir $out, 0700;
my %o = keys_of({ key => 'outside-key-0000000', cli => 'outside-cli-000000' });
for my $f (keys %o) {
    open my $fh, '>', "$out/$f" or die; print $fh $o{$f}; close $fh;
    chmod 0400, "$out/$f";
}
symlink($out, "$sv/..data_tmp") or die "symlink: $!";
rename("$sv/..data_tmp", "$sv/..data") or die "rename: $!";
my $from = $t->error_log_size;
like($t->reload // '', qr/reload failed/, '..data -> a directory outside: reload fails');
ok($t->wait_log(qr/symbolic link \(refused\).*\.\.data is not a link to a \.\.TIMESTAMP/,
                5, $from), 'the log says which hop broke');
($st, $k) = mcp_key();
is($k, $v2{key}, 'mcp: the previous key is kept');
is(cli_env(), $v2{cli}, 'cli: the previous token is kept');

# -- a key link to a file elsewhere: refused too ---------------------------------
unlink "$sv/..data";
symlink($vol->current, "$sv/..data") or die "symlink: $!";
unlink "$sv/cli-token";
symlink('/etc/passwd', "$sv/cli-token") or die "symlink: $!";
$from = $t->error_log_size;
like($t->reload // '', qr/reload failed/, 'cli-token -> /etc/passwd: reload fails');
ok($t->wait_log(qr/cli-token is a symbolic link \(refused\): it does not point to \.\.data\/cli-token/,
                5, $from), 'naming the link and the layout');

my $logs = join '', map { $t->read_file($_) // '' } qw(error.log audit.jsonl);
my @leaks = grep { index($logs, $_) >= 0 } (values %v1, values %v2);
is(scalar @leaks, 0, 'no secret in the error log or the audit log')
    or diag("leaked: @leaks");
$t->finish;
