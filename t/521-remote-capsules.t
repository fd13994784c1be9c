#!/usr/bin/perl
# 521-remote-capsules.t -- kap run capsules in GET /api/containers: a
# capsule kapd that connects to the host over the channel (what `kap run
# --ask` starts) is listed beside the Docker projects (the fake Docker
# Engine), marked "capsule": true with the policy file its hello named,
# and is gone from the list when it ends.  Without a Docker engine the
# list holds the connected capsules only (502 when there are none).  A capsule cannot fake another's arrival
# with audit events of its own.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDocker;
use Test::Kapd::Remote qw(remote_pair);
use Digest::SHA qw(hmac_sha256_hex);
use IO::Socket::UNIX;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);

my $h = Test::Kapd->new->has_kapd->has_module(qw/channel remote/);
my $c = Test::Kapd->new->has_kapd->has_module('channel');
$h->plan(11);

my $sock = $h->path('channel.sock');
my $csecret = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
mkdir $h->path('secrets'), 0700;
$h->write_file('secrets/proj', "$csecret\n");
chmod 0600, $h->path('secrets/proj');
sub host_conf {
    my ($docker) = @_;
    return <<"EOF";
kapd: { load = ["channel", "remote"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "remote", "channel"]; }; };
audit_log: { path = "audit.jsonl"; };
channel: { listen = ["unix:$sock"]; secrets_dir = "%%PREFIX%%/secrets"; };
remote: { listen = ["127.0.0.1:%%PORT_remote%%"]; state_dir = "state";
          docker_socket = "$docker"; docker_timeout = "2s"; };
EOF
}
$h->write_conf(host_conf('docker.sock'));
my $APP = 'a' x 64;
my $KAP = 'b' x 64;
my $d = Test::Kapd::FakeDocker->new($h, path => $h->path('docker.sock'), containers => [
    map { { Id => $_->[0], Names => ["/$_->[1]"], State => 'running', Status => 'Up',
            Labels => { 'com.docker.compose.project' => 'alpha',
                        'com.docker.compose.service' => $_->[2],
                        'kap.project' => '/src/alpha' },
            NetworkSettings => { Networks => { alpha_kap_sandbox => {} } } } }
    [$APP, 'alpha-app-1', 'app'], [$KAP, 'alpha-kap-1', 'kap'] ],
    exec => sub { return ('', '', 0) });
$h->run;
my $port = $h->port('remote');

sub api {
    my ($path, $tok) = @_;
    my $raw = http_get($path, addr => "127.0.0.1:$port",
                       headers => ["Authorization: Bearer $tok"]);
    my $r = http_parse($raw) // { status => 0, body => '' };
    $r->{json} = eval { decode_json($r->{body}) };
    return $r;
}
my ($tok) = remote_pair($port, $h->path('state'), 'phone');
like($tok, qr/^[A-Za-z0-9_-]{43}$/, 'a device is paired');

sub listed { return { map { ($_->{project} => $_) } @{ api('/api/containers', $tok)->{json} // [] } } }
my $l = listed();
ok($l->{alpha} && !$l->{alpha}{capsule} && !$l->{proj},
   'before: the Docker project only, not marked a capsule') or diag(explain($l));

# ---- a capsule connects ---------------------------------------------------------
mkdir $c->path('secrets'), 0700;
$c->write_file('secrets/channel', "$csecret\n");
chmod 0600, $c->path('secrets/channel');
my $policy = $c->path('policy.conf');
$c->write_file('policy.conf', "network: { allow = []; };\n");
$c->write_conf(<<"EOF");
kapd: { load = ["channel"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "channel"]; }; };
channel: { connect = "unix:$sock"; name = "proj"; secret_file = "secrets/channel";
           policy_file = "$policy"; };
EOF
$c->run;
ok($c->wait_log(qr/channel to unix:\S+ ready as "proj"/), 'a capsule kapd connects to the host');
wait_until(sub { $l = listed(); $l->{proj} }, kapd_tmo(10));
ok($l->{proj} && $l->{proj}{capsule} && ($l->{proj}{policy_file} // '') eq $policy
   && $l->{proj}{connected} > 0 && $l->{alpha},
   'it is listed beside the Docker project, marked a capsule, with its policy file')
    or diag(explain($l));
my @ev = $h->wait_audit(sub { grep { ($_->{event} // '') eq 'capsule_connected' } @_ });
ok(scalar(grep { ($_->{event} // '') eq 'capsule_connected' && ($_->{capsule} // '') eq 'proj' } @ev),
   'the host audit records the capsule_connected event');

# ---- a capsule cannot forge arrivals with audit events of its own ------------------
my $ch = IO::Socket::UNIX->new(Peer => $sock) or die "$sock: $!";
sub chline {
    my ($s) = @_;
    my ($line, $ch1) = ('', '');
    my $sel = IO::Select->new($s);
    my $dl = time + kapd_tmo(10);
    while (time < $dl && $sel->can_read($dl - time)) {
        last unless sysread($s, $ch1, 1);
        return $line if $ch1 eq "\n";
        $line .= $ch1;
    }
    return undef;
}
my $cn = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
print $ch qq({"type":"hello","v":1,"name":"proj","nonce":"$cn"}\n);
my ($hn) = (chline($ch) // '') =~ /"nonce":"([0-9a-f]{64})"/;
print $ch '{"type":"auth","proof":"' . hmac_sha256_hex("kap-channel capsule\n$hn\n$cn", $csecret) . "\"}\n";
like(chline($ch) // '', qr/"type":"ready"/, 'a second connection of the capsule is ready');
sub nproj { return scalar grep { $_->{project} eq 'proj' } @{ api('/api/containers', $tok)->{json} // [] } }
my $np;
wait_until(sub { ($np = nproj()) == 2 }, kapd_tmo(10));
print $ch qq({"type":"audit","event":{"kind":"connect","event":"capsule_closed","subject":"proj","action":"closed"}}\n);
print $ch qq({"type":"audit","event":{"kind":"connect","event":"marker","subject":"m","action":"observed"}}\n);
$h->wait_audit(sub { grep { ($_->{event} // '') eq 'marker' } @_ });
ok($np == 2 && nproj() == 2, 'listed twice; its own "capsule_closed" event removes neither')
    or diag("before $np, after " . nproj());
close $ch;

# ---- it ends ------------------------------------------------------------------------
$c->stop;
wait_until(sub { $l = listed(); !$l->{proj} }, kapd_tmo(10));
ok(!$l->{proj} && $l->{alpha}, 'when the capsule ends it is gone from the list') or diag(explain($l));

# ---- no Docker engine: the capsules only ------------------------------------------------
$h->write_conf(host_conf('no-such-docker.sock'));
like($h->reload // '', qr/reloaded/, 'the host now has no Docker engine');
is(api('/api/containers', $tok)->{status}, 502, 'no engine and no capsule: 502');
$c->run;
wait_until(sub { $l = listed(); $l->{proj} }, kapd_tmo(10));
is_deeply([sort keys %$l], ['proj'], 'the list holds the connected capsule only');
$c->stop;
$h->done_testing;
