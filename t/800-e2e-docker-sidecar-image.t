#!/usr/bin/perl
# 800-e2e-docker-sidecar-image.t -- the sidecar image on a real Docker
# engine: contrib/docker/import-base-image provides debian:bookworm-slim
# (nothing is pulled), contrib/docker/Dockerfile builds the image from this
# source tree with the classic builder, and the image runs with a test
# configuration on a private `--internal` network.  From a second
# container on that network (same image): the proxy answers 403 for a
# name not on the allowlist (raw HTTP with bash's /dev/tcp, and through
# `kap-shim connect`), the health check turns healthy, kapd is not root.
# Containers, the network and the image are removed even on failure.
#
# Skipped only when no Docker daemon answers (the fresh-machine container
# of contrib/fresh-check has none; CI's host stages do).  The image build
# installs Debian packages from the mirror the base image's apt sources
# name, like any Docker build of the image.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use POSIX ();
use Time::HiRes qw(time);

my $t = Test::Kapd->new;

# docker(args...): (exit code, stdout+stderr)
sub docker {
    my (@args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec('docker', @args) or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

{
    my ($rc, $out) = (127, 'docker is not installed');
    ($rc, $out) = docker('info', '--format', '{{.ServerVersion}}')
        if grep { -x "$_/docker" } split /:/, $ENV{PATH};
    if ($rc != 0) {
        $out =~ s/\s+/ /g;
        plan(skip_all => "no Docker daemon answers (docker info: "
             . substr($out, 0, 160) . ")");
    }
}

my $src = $t->srcdir;
my $id = "$$-" . int(time * 1000) % 100000000;
my $image = "kap-sidecar:test-$id";
my $net = "kap-test-net-$id";
my $sidecar = "kap-test-sidecar-$id";
my $client = "kap-test-client-$id";
my @made;                               # [kind, name] to remove at the end
my %stages_before;                      # build stages there before ours

sub cleanup {
    for my $m (reverse @made) {
        my ($kind, $name) = @$m;
        if ($kind eq 'container') { docker('rm', '-f', '-v', $name) }
        elsif ($kind eq 'network') { docker('network', 'rm', $name) }
        elsif ($kind eq 'image') { docker('rmi', '-f', $name) }
        elsif ($kind eq 'stages') {
            my %now = build_stages();
            docker('rmi', $_) for grep { !$stages_before{$_} } sort keys %now;
        }
    }
    @made = ();
}
END { my $st = $?; cleanup(); $? = $st }
$SIG{INT} = $SIG{TERM} = sub { cleanup(); POSIX::_exit(1) };

# ---- the base image: made here unless one is there ------------------------------
my ($rc, $out) = docker('image', 'inspect', '-f', '{{.Id}}', 'debian:bookworm-slim');
if ($rc != 0) {
    my $log = `'$src/contrib/docker/import-base-image' 2>&1`;
    is($?, 0, 'import-base-image made debian:bookworm-slim') or diag($log);
} else {
    pass('debian:bookworm-slim is there');
}

# ---- the sidecar image from this tree ---------------------------------------------
# the build stage is left as an untagged image labelled kap.stage=build:
# the ones this build adds are removed with the image
sub build_stages {
    my (undef, $ids) = docker('images', '-q', '--filter', 'dangling=true',
                              '--filter', 'label=kap.stage=build');
    return map { $_ => 1 } split /\s+/, $ids;
}
%stages_before = build_stages();
{
    local $ENV{DOCKER_BUILDKIT} = '0';
    my $t0 = time;
    push @made, ['image', $image];
    push @made, ['stages', ''];
    ($rc, $out) = docker('build', '-f', "$src/contrib/docker/Dockerfile",
                         '-t', $image, $src);
    my @lines = split /\n/, $out;
    is($rc, 0, 'sidecar image built with the classic builder')
        or diag(join "\n", @lines > 40 ? @lines[-40 .. -1] : @lines);
    note(sprintf 'image build: %.0f s', time - $t0);
    if ($rc != 0) {             # nothing else can run
        $t->done_testing;
        exit;
    }
}
# the sidecar inherits the base's labels: import-base-image must still
# take only the base itself (not this image, not a build stage) for it
($rc, my $base_id) = docker('image', 'inspect', '-f', '{{.Id}} {{index .Config.Labels "kap.recipe"}}',
                            'debian:bookworm-slim');
SKIP: {
    skip 'debian:bookworm-slim was not made by import-base-image', 1
        unless $base_id =~ /^(\S+) \S+$/;
    my $was = $1;
    my $log = `'$src/contrib/docker/import-base-image' 2>&1`;
    (undef, my $now) = docker('image', 'inspect', '-f', '{{.Id}}', 'debian:bookworm-slim');
    $now =~ s/\s+$//;
    is($now, $was, 'import-base-image after a build FROM it: the tag stays on the base') or diag($log);
}
($rc, $out) = docker('image', 'inspect', '-f', '{{.Config.User}} {{json .Config.Healthcheck.Test}}', $image);
like($out, qr/^kap \[.*3128/, 'image: runs as user kap, a health check on the proxy port');
($rc, $out) = docker('run', '--rm', '--network', 'none', '--entrypoint', 'sh', $image, '-c',
    'command -v curl wget gcc make || true; ls /usr/lib/kapd/modules; kapd -V 2>&1 | head -1');
unlike($out, qr{/(curl|wget|gcc|make)\b}, 'image: no curl, wget or build tools');
like($out, qr/kap_http_connect\.so/, 'image: modules installed');
like($out, qr/kap_dns\.so/, 'image: dns module installed');

# ---- a private internal network, the sidecar with a test policy ------------------
($rc, $out) = docker('network', 'create', '--internal', $net);
is($rc, 0, 'internal network created') or diag($out);
push @made, ['network', $net];

$t->write_file('kap.conf', <<'EOF');
kapd: { load = ["http_connect", "dns"]; };
network: { allow = ["allowed.example"]; };
audit_log: { path = "/var/log/kap/audit.jsonl"; };
http_connect: { listen = ["*:3128"]; };
dns: { listen = ["*:53"]; };
EOF
chmod 0644, $t->path('kap.conf');
push @made, ['container', $sidecar];
($rc, $out) = docker('create', '--name', $sidecar, '--network', $net, $image);
is($rc, 0, 'sidecar created') or diag($out);
# copied in (a bind mount would need the daemon to see the test's files)
($rc, $out) = docker('cp', $t->path('kap.conf'), "$sidecar:/etc/kap/kap.conf");
is($rc, 0, 'test policy copied into the sidecar') or diag($out);
($rc, $out) = docker('start', $sidecar);
is($rc, 0, 'sidecar started') or diag($out);

my $health = '';
my $healthy = wait_until(sub {
    (undef, $health) = docker('inspect', '-f', '{{.State.Status}} {{.State.Health.Status}}', $sidecar);
    $health =~ s/\s+$//;
    return 1 if $health eq 'running healthy';
    return -1 if $health !~ /^running/;          # stopped: no use waiting
    return 0;
}, kapd_tmo(60), 0.5);
is($healthy, 1, 'health status becomes healthy') or do {
    diag("state: $health");
    diag((docker('logs', $sidecar))[1]);
};

($rc, $out) = docker('exec', $sidecar, 'id', '-u');
my ($uid) = $out =~ /^(\d+)/;
ok(defined $uid && $uid != 0, 'kapd runs as a non-root user') or diag($out);

($rc, my $ip) = docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', $sidecar);
$ip =~ s/\s+//g;
like($ip, qr/^\d+\.\d+\.\d+\.\d+$/, "sidecar address on the network ($ip)");

# ---- from a second container on the same network -----------------------------------
push @made, ['container', $client];
my $script = <<'EOF';
set -u
exec 3<>"/dev/tcp/$1/3128" || exit 10
printf 'GET http://denied.example/ HTTP/1.1\r\nHost: denied.example\r\nConnection: close\r\n\r\n' >&3
timeout 10 cat <&3
exec 3<&-
echo "---"
HTTPS_PROXY="http://$1:3128" timeout 20 kap-shim connect denied.example 22 </dev/null
echo "shim exit $?"
EOF
($rc, $out) = docker('run', '--rm', '--name', $client, '--network', $net,
    '--entrypoint', 'bash', $image, '-c', $script, 'probe', $ip);
my ($http, $shim) = split /^---\n/m, $out, 2;
$shim //= '';
like($http, qr{^HTTP/1\.1 403 }, 'plain HTTP to a denied name through the sidecar: 403') or diag($out);
like($http, qr/denied\.example is not on the allowlist/, '403 body names the domain');
like($shim, qr/403.*add "denied\.example:22" to network\.allow/,
     'kap-shim connect in the client: 403 and the fix');
like($shim, qr/shim exit 1$/m, 'kap-shim connect: exit 1');

($rc, $out) = docker('exec', $sidecar, 'cat', '/var/log/kap/audit.jsonl');
like($out, qr/"denied\.example"/, 'the denials are in the sidecar\'s audit log');

cleanup();
($rc, $out) = docker('ps', '-a', '--filter', "name=kap-test-.*-$id", '--format', '{{.Names}}');
is($out, '', 'no container left');
($rc, $out) = docker('network', 'ls', '--filter', "name=$net", '--format', '{{.Name}}');
is($out, '', 'no network left');

$t->done_testing;
