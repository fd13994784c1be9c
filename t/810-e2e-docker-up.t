#!/usr/bin/perl
# 810-e2e-docker-up.t -- `kap up` on a real Docker engine: a project made
# by `kap init -y` (the test's policy written over its kap.conf), the devcontainer CLI and Docker Compose start
# the app and the kapd sidecar (image built from this tree by kap up).
# From inside the app (kap exec): an allowed name reaches a fake origin
# container on the sidecar's external network through the proxy, a denied
# name gets 403 and NXDOMAIN, the origin's address is unreachable
# directly, so is a listener on the host (every host address, the
# internal network's gateway first; a container on the external network
# reaches it: the probe can fail), curl without the proxy fails;
# .devcontainer and .git's hooks are read-only and cannot be renamed away;
# kap exec propagates the exit status.  On the host: kap status all ok,
# kap why-denied shows the denials, a policy edit is used only after kap
# allow and then without a restart, kap list names the project, kap down
# -v leaves no container, network or volume.  Everything the test makes
# is removed even on failure.
#
# Skipped only when no Docker daemon answers.  Runs in the host's network
# namespace (the host listener must be the host's).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
BEGIN { $ENV{KAPD_TEST_FILE_LIMIT} //= 1500 }
use Test::Kapd qw(:no_netns);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);

my $t = Test::Kapd->new;

# run(opts, cmd...): (exit code, stdout+stderr); opts: cwd, env
sub run {
    my ($o, @cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        chdir $o->{cwd} if $o->{cwd};
        $ENV{$_} = $o->{env}{$_} for keys %{ $o->{env} // {} };
        exec(@cmd) or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}
sub docker { run({}, 'docker', @_) }
sub have { my ($c) = @_; grep { -x "$_/$c" } split /:/, $ENV{PATH} }

{
    my ($rc, $out) = (127, 'docker is not installed');
    ($rc, $out) = docker('info', '--format', '{{.ServerVersion}}') if have('docker');
    if ($rc != 0) {
        $out =~ s/\s+/ /g;
        plan(skip_all => "no Docker daemon answers (docker info: " . substr($out, 0, 160) . ")");
    }
}
# with an engine, the rest is required (CI installs it: .ci/run)
ok(have('devcontainer'), 'the devcontainer CLI is installed (npm install -g @devcontainers/cli)')
    or do { $t->done_testing; exit };
ok(have('docker-compose') || (docker('compose', 'version'))[0] == 0, 'Docker Compose is installed')
    or do { $t->done_testing; exit };

my $src = $t->srcdir;
my $kap = $t->builddir . '/kap';
my $dir = $t->testdir;
my $home = "$dir/home";
my $proj = "$dir/e2eproj";
my $id = "$$-" . int(time * 1000) % 100000000;
my $origin = "kap-test-origin-$id";
my $mcp = "kap-test-mcp-$id";
my ($name, $listener_pid);

my %env = (HOME => $home, PATH => $t->builddir . ":$ENV{PATH}", KAP_SRCDIR => $src,
           KAP_SHIM => $t->builddir . '/kap-shim', KAP_MCP => $t->builddir . '/kap-mcp');
delete $ENV{$_} for qw/XDG_STATE_HOME COMPOSE_PROJECT_NAME HTTP_PROXY HTTPS_PROXY http_proxy https_proxy/;
sub kap { my (@a) = @_; run({ cwd => $proj, env => \%env }, 'sh', $kap, @a) }

sub cleanup {
    kill 'TERM', $listener_pid if $listener_pid;
    $listener_pid = undef;
    docker('rm', '-f', $origin, $mcp);
    return unless $name;
    my (undef, $ids) = docker('ps', '-aq', '--filter', "label=com.docker.compose.project=$name");
    docker('rm', '-f', split ' ', $ids) if $ids =~ /\S/;
    (undef, $ids) = docker('network', 'ls', '-q', '--filter', "label=com.docker.compose.project=$name");
    docker('network', 'rm', split ' ', $ids) if $ids =~ /\S/;
    (undef, $ids) = docker('volume', 'ls', '-q', '--filter', "label=com.docker.compose.project=$name");
    docker('volume', 'rm', split ' ', $ids) if $ids =~ /\S/;
    # the app's image tags (compose's and the devcontainer CLI's): one
    # test project each
    (undef, $ids) = docker('images', '--format', '{{.Repository}}:{{.Tag}}');
    my ($base) = $name =~ /^([^_]+)_/;
    my $hash = substr($name, length($base) + 4);
    my @tags = grep { /^\Q${name}\E_app:|^vsc-\Q$base\E-\Q$hash\E[0-9a-f]*-uid:/ } split ' ', $ids;
    docker('rmi', @tags) if @tags;
}
END { my $st = $?; cleanup() if $t && $$ == $t->{owner}; $? = $st }
$SIG{INT} = $SIG{TERM} = sub { cleanup(); POSIX::_exit(1) };

# ---- the base image (nothing is pulled) -------------------------------------------------
if ((docker('image', 'inspect', 'debian:bookworm-slim'))[0] != 0) {
    my ($rc, $log) = run({}, "$src/contrib/docker/import-base-image");
    is($rc, 0, 'import-base-image made debian:bookworm-slim') or diag($log);
}

# ---- a project made by kap init -y --------------------------------------------------------
mkdir $_ or die "$_: $!" for $home, $proj;
run({ cwd => $proj }, 'git', 'init', '-q', '.');
my ($rc, $out) = run({ cwd => $proj, env => { %env, KAP_SHIM => $t->builddir . '/kap-shim' } },
                     'sh', $kap, 'init', '-y');
is($rc, 0, 'kap init -y') or diag($out);
# the test's policy and no installs at start (nothing to install from here)
$t->write_file('e2eproj/.devcontainer/kap.conf', <<'EOF');
# the project's policy
network: { allow = ["allowed.example"]; };
EOF
$t->write_file('e2eproj/.devcontainer/kap-setup.conf', "claude_code = no\ncodex = no\ngh = no\n");
# the project belongs to the app's user (uid 1000), as a user's checkout would
run({}, 'chown', '-R', '1000:1000', $proj);
($rc, $out) = run({ env => \%env }, 'sh', $kap, 'allow', '--yes', "$proj/.devcontainer/kap.conf");
is($rc, 0, 'kap allow --yes') or diag($out);

# ---- kap up --------------------------------------------------------------------------------
my $t0 = time;
($rc, $out) = kap('up');
($name) = $out =~ /compose project (\S+)\)/;
is($rc, 0, 'kap up') or diag($out);
note(sprintf 'kap up: %.0f s', time - $t0);
like($out, qr/==> devcontainer up.*==> waiting for the sidecar.*kap status: all \d+ checks passed/s,
     'kap up prints progress and a passing status');
if ($rc != 0 || !$name) { $t->done_testing; exit }

(undef, my $sidecar) = docker('ps', '-q', '--filter', "label=com.docker.compose.project=$name",
                              '--filter', 'label=com.docker.compose.service=kap');
$sidecar =~ s/\s+//g;
(undef, my $started) = docker('inspect', '-f', '{{.State.StartedAt}}', $sidecar);

# the subnets
my $ov = $t->read_file("$proj/.devcontainer/docker-compose.kap.yml");
my ($S, $E) = $ov =~ /^# kap-subnets: (\S+) (\S+)$/m;

# ---- the fake origin on the external network, a listener on the host -------------------------
my $oscript = <<'EOF';
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
    my $req = ''; while (defined(my $l = <$c>)) { $req .= $l; last if $l =~ /^\r?\n$/ }
    print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nORIGIN-OK\n"; close $c;
}
EOF
($rc, $out) = docker('run', '-d', '--name', $origin, '--network', "${name}_kap_external",
    '--network-alias', 'allowed.example', '--network-alias', 'denied.example',
    'debian:bookworm-slim', 'perl', '-e', $oscript);
is($rc, 0, 'fake origin on the external network') or diag($out);
(undef, my $oip) = docker('inspect', '-f', "{{(index .NetworkSettings.Networks \"${name}_kap_external\").IPAddress}}", $origin);
$oip =~ s/\s+//g;
like($oip, qr/^\Q$E\E\.\d+$/, "origin at $oip");

my $lsock = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => 0, Listen => 16, ReuseAddr => 1)
    or die "host listener: $!";
my $lport = $lsock->sockport;
$listener_pid = fork // die "fork: $!";
if ($listener_pid == 0) {
    while (my $c = $lsock->accept) { print $c "HOST-REACHED\n"; close $c }
    POSIX::_exit(0);
}
close $lsock;
(undef, my $addrs) = run({}, 'sh', '-c', "ip -4 -o addr show | awk '{print \$4}' | cut -d/ -f1");
my %seen;
my @host = grep { !$seen{$_}++ } grep { $_ ne '127.0.0.1' } "$S.1", split(' ', $addrs), "$E.1", '172.17.0.1';
# the control: a container on the (ordinary) external network reaches the
# host listener through its gateway: the probe from the app can fail
($rc, $out) = docker('exec', $origin, 'perl', '-MIO::Socket::INET', '-e',
    "my \$s = IO::Socket::INET->new(PeerAddr => '$E.1', PeerPort => $lport, Timeout => 5) or exit 1; print scalar <\$s>");
like($out, qr/HOST-REACHED/, "control: the host listener answers on $E.1 from the external network");

# ---- inside the app ------------------------------------------------------------------------------
my $probe = <<'EOF';
S=$1 OIP=$2 LPORT=$3; shift 3
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
echo "denied_http=$(code http://denied.example/)"
echo "allowed_http=$(curl -s --max-time 10 http://allowed.example/ | tr -d '\r\n')"
getent hosts denied.example >/dev/null; echo "denied_dns=$?"
getent hosts allowed.example | head -n 1 | sed 's/^/allowed_dns=/'
timeout 5 bash -c "exec 3<>/dev/tcp/$OIP/80" 2>/dev/null; echo "direct=$?"
for a in "$@"; do
    out=$(timeout 5 bash -c "exec 3<>/dev/tcp/$a/$LPORT && head -n 1 <&3" 2>/dev/null)
    echo "host_$a=${out:-unreachable}"
done
env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy curl -s --max-time 5 http://allowed.example/ >/dev/null 2>&1
echo "noproxy_name=$?"
curl -s --noproxy '*' --max-time 5 "http://$OIP/" >/dev/null 2>&1; echo "noproxy_ip=$?"
cat /proc/sys/net/ipv6/conf/all/disable_ipv6 | sed 's/^/ipv6_off=/'
W=/workspaces/e2eproj
touch $W/.devcontainer/kap.conf 2>/dev/null; echo "touch_policy=$?"
mv $W/.devcontainer $W/.devcontainer.x 2>/dev/null; echo "mv_devcontainer=$?"
touch $W/.git/hooks/pre-commit 2>/dev/null; echo "touch_hook=$?"
mv $W/.git $W/.git.x 2>/dev/null; echo "mv_git=$?"
echo x > $W/written-in-app 2>/dev/null; echo "write_project=$?"
test -x /opt/kap/bin/kap-shim; echo "shim=$?"
touch /opt/kap/bin/x 2>/dev/null; echo "touch_opt=$?"
EOF
sub probe {
    my ($rc, $out) = kap('exec', 'bash', '-c', $probe, 'probe', $S, $oip, $lport, @host);
    my %r = $out =~ /^([a-z_0-9.]+)=(.*)$/mg;
    return ($rc, $out, %r);
}
my ($prc, $pout, %r) = probe();
is($prc, 0, 'kap exec ran the probe') or diag($pout);
is($r{denied_http}, '403', 'denied name through the proxy: 403');
is($r{denied_dns}, 2, 'denied name: NXDOMAIN (getent exit 2)');
unlike($r{allowed_http} // '', qr/ORIGIN-OK/, 'allowed name resolving to a private address: refused until the policy allows the address');
like($r{allowed_http} // '', qr/resolves to \Q$oip\E/, '... saying so');
is($r{direct}, 1, "direct TCP to the origin ($oip) fails");
for my $a (@host) {
    is($r{"host_$a"}, 'unreachable', "the host listener on $a is unreachable from the app");
}
isnt($r{noproxy_name}, 0, 'curl without the proxy variables fails');
isnt($r{noproxy_ip}, 0, 'curl --noproxy to the origin\'s address fails');
is($r{ipv6_off}, 1, 'IPv6 is off in the app');
isnt($r{touch_policy}, 0, '.devcontainer/kap.conf is read-only in the app');
isnt($r{mv_devcontainer}, 0, '.devcontainer cannot be renamed away');
isnt($r{touch_hook}, 0, '.git/hooks is read-only');
isnt($r{mv_git}, 0, '.git cannot be renamed away');
is($r{write_project}, 0, 'the project itself is writable');
is($r{shim}, 0, '/opt/kap/bin/kap-shim is there');
isnt($r{touch_opt}, 0, '/opt/kap is read-only');
ok(-f "$proj/written-in-app", '... and the write is on the host');

($rc, $out) = kap('exec', 'sh', '-c', 'exit 7');
is($rc, 7, 'kap exec propagates the exit status');

# ---- the policy: an edit counts only after kap allow, then without a restart --------------------
$t->write_file('e2eproj/.devcontainer/kap.conf', <<"EOF");
# the project's policy, the origin's address allowed on purpose
network: { allow = ["allowed.example", "$oip"]; };
EOF
sleep 3;                                # longer than kapd's reload check: a wrong reload would show
($rc, $out) = kap('exec', 'sh', '-c', 'curl -s --max-time 10 http://allowed.example/');
unlike($out, qr/ORIGIN-OK/, 'an unapproved edit of the policy changes nothing');
($rc, $out) = run({ cwd => $proj, env => \%env }, 'sh', $kap, 'allow', '--yes');
like($out, qr/uses it now/, 'kap allow brings the approved policy to the sidecar') or diag($out);
my $got = '';
my $ok = wait_until(sub {
    (undef, $got) = kap('exec', 'sh', '-c', 'curl -s --max-time 10 http://allowed.example/');
    return $got =~ /ORIGIN-OK/ ? 1 : 0;
}, kapd_tmo(30), 0.5);
ok($ok, 'allowed name through the proxy reaches the origin after kap allow') or diag($got);
(undef, my $started2) = docker('inspect', '-f', '{{.State.StartedAt}}', $sidecar);
is($started2, $started, 'the sidecar was not restarted');
($rc, $out) = kap('exec', 'sh', '-c', 'getent hosts allowed.example');
like($out, qr/^\Q$oip\E\s/m, 'the allowed name resolves to the origin in the app');

# ---- MCP through the sidecar (:3129) --------------------------------------------------------------
# A fake MCP server on the external network (JSON replies; tools/call says
# whether the Authorization it got is the registered one), registered on
# the host with `kap mcp add --header`; the policy gains an mcp group
# allowing one of its two tools and, after kap allow, the running sidecar
# serves it: the app's .mcp.json names http://S.3:3129/docs, the app
# lists only the allowed tool, the call carries the host's credential,
# which the app never holds, and the other tool is refused.
my $mscript = <<'EOF';
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
    my ($len, $auth, $body) = (0, '', '');
    while (defined(my $l = <$c>)) {
        last if $l =~ /^\r?\n$/;
        $len = $1 if $l =~ /^Content-Length:\s*(\d+)/i;
        $auth = $1 if $l =~ /^Authorization:\s*(.*?)\r?\n/i;
    }
    read($c, $body, $len) if $len;
    my ($id) = $body =~ /"id"\s*:\s*(\d+)/;
    my ($m) = $body =~ /"method"\s*:\s*"([^"]+)"/;
    if (!defined $id) { print $c "HTTP/1.0 202 Accepted\r\nContent-Length: 0\r\n\r\n"; close $c; next }
    my $r = '{}';
    $r = '{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"fake","version":"1"}}'
        if $m eq 'initialize';
    $r = '{"tools":[{"name":"search","description":"s","inputSchema":{"type":"object"}},'
       . '{"name":"delete_all","description":"d","inputSchema":{"type":"object"}}]}' if $m eq 'tools/list';
    $r = '{"content":[{"type":"text","text":"' . ($auth eq 'Bearer kap-e2e-mcp-SECRET' ? 'AUTH-OK' : 'AUTH-BAD') . '"}]}'
        if $m eq 'tools/call';
    my $out = '{"jsonrpc":"2.0","id":' . $id . ',"result":' . $r . '}';
    print $c "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: " . length($out) . "\r\n\r\n$out";
    close $c;
}
EOF
($rc, $out) = docker('run', '-d', '--name', $mcp, '--network', "${name}_kap_external",
    'debian:bookworm-slim', 'perl', '-e', $mscript);
is($rc, 0, 'fake MCP server on the external network') or diag($out);
(undef, my $mip) = docker('inspect', '-f', "{{(index .NetworkSettings.Networks \"${name}_kap_external\").IPAddress}}", $mcp);
$mip =~ s/\s+//g;
($rc, $out) = run({ cwd => $proj, env => \%env }, 'sh', $kap, 'mcp', 'add', 'docs', "http://$mip/mcp",
                  '--header', 'Authorization=Bearer kap-e2e-mcp-SECRET');
is($rc, 0, 'kap mcp add registers it on the host (initialize and tools/list checked)') or diag($out);
$t->write_file('e2eproj/.devcontainer/kap.conf', <<"EOF");
# the project's policy, the origin's and the MCP server's addresses allowed on purpose
network: { allow = ["allowed.example", "$oip", "$mip"]; };
mcp: { servers = ( { name = "docs"; allow = ["search"]; } ); };
EOF
($rc, $out) = run({ cwd => $proj, env => \%env }, 'sh', $kap, 'allow', '--yes');
like($out, qr/MCP server docs at http:\/\/\Q$S\E\.3:3129\/docs/, 'kap allow: the sidecar serves the MCP server') or diag($out);
my $mj = $t->read_file("$proj/.mcp.json") // '';
like($mj, qr{"url"\s*:\s*"http://\Q$S\E\.3:3129/docs"}, '.mcp.json names it at the sidecar\'s address');
unlike($mj, qr/SECRET/, '... with no credential');
my $mcall = <<'EOF';
u=http://$1.3:3129/docs
post() { curl -s --max-time 10 -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d "$1" "$u"; }
echo "list=$(post '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}' | tr -d '\r\n')"
echo "call=$(post '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search","arguments":{}}}' | tr -d '\r\n')"
echo "denied=$(post '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_all","arguments":{}}}' | tr -d '\r\n')"
grep -rqs kap-e2e-mcp-SECRET /proc/self/environ /workspaces /opt/kap 2>/dev/null; echo "secret_in_app=$?"
EOF
my %m;
$ok = wait_until(sub {
    (undef, $got) = kap('exec', 'bash', '-c', $mcall, 'mcp', $S);
    %m = $got =~ /^([a-z_]+)=(.*)$/mg;
    return ($m{list} // '') =~ /"tools"/ ? 1 : 0;
}, kapd_tmo(30), 0.5);
ok($ok, 'the app reaches the MCP server through the sidecar at :3129') or diag($got . `docker logs --tail 30 $sidecar 2>&1`);
like($m{list} // '', qr/"search"/, 'tools/list: the allowed tool');
unlike($m{list} // '', qr/delete_all/, 'tools/list: the other tool filtered out');
like($m{call} // '', qr/AUTH-OK/, 'tools/call: the upstream got the registered credential');
ok(($m{denied} // '') =~ /"code"\s*:\s*-32602/ && $m{denied} !~ /AUTH-/,
   'the tool the policy does not allow is refused (-32602) and never reaches the server') or diag($m{denied});
is($m{secret_in_app}, 1, 'the credential is nowhere in the app');
(undef, $started2) = docker('inspect', '-f', '{{.State.StartedAt}}', $sidecar);
is($started2, $started, 'the sidecar was not restarted for it');

# ---- status, why-denied, list, logs -----------------------------------------------------------
($rc, $out) = kap('status');
is($rc, 0, 'kap status exits 0') or diag($out);
unlike($out, qr/FAIL/, 'kap status: no FAIL');
like($out, qr/kap status: all \d+ checks passed/, 'kap status: all checks passed');
($rc, $out) = kap('why-denied');
like($out, qr/denied\.example/, 'kap why-denied shows the denied name');
like($out, qr/network\.allow \+= "denied\.example"/, '... and the line that would allow it');
($rc, $out) = kap('list');
like($out, qr/^\Q$name\E\s+\Q$proj\E$/m, 'kap list names the project');
like($out, qr/^  kap: Up/m, 'kap list: the sidecar is up');
($rc, $out) = kap('logs');
is($rc, 0, 'kap logs');

# kap status fails when a layer breaks: the sidecar stopped
docker('stop', '-t', '1', $sidecar);
($rc, $out) = kap('status');
isnt($rc, 0, 'kap status fails when the sidecar is down');
like($out, qr/FAIL  the sidecar is running and healthy.*\n\s+-> kap up/, '... and names the fix');

# ---- kap down -v ------------------------------------------------------------------------------------
($rc, $out) = kap('down', '-v');
is($rc, 0, 'kap down -v') or diag($out);
(undef, my $left) = docker('ps', '-aq', '--filter', "label=com.docker.compose.project=$name");
is($left, '', 'no container left');
(undef, $left) = docker('network', 'ls', '-q', '--filter', "label=com.docker.compose.project=$name");
is($left, '', 'no network left');
(undef, $left) = docker('volume', 'ls', '-q', '--filter', "label=com.docker.compose.project=$name");
is($left, '', 'no volume left');

cleanup();
$t->done_testing;
