#!/usr/bin/perl
# 710-kap-overlay.t -- `kap overlay` without Docker: the compose overlay
# .devcontainer/docker-compose.kap.yml and the sidecar's configuration for
# a project with the files kap init writes.  A fake `docker` on PATH
# reports the engine's networks: the /24 pair is chosen free of them,
# follows the project's existing networks, is stable across runs and
# reused when the engine is away.  The app is on the internal network
# only (no host address on its bridge), proxy variables and DNS name the
# sidecar, IPv6 is off, no capability is added, .devcontainer and .git's
# code are read-only mounts, /opt/kap is read-only.  The sidecar's
# configuration is made on the host from the approved policy only (code
# and host paths dropped), kept when the policy changes unapproved,
# refreshed by kap allow; ~/.kap/kap.conf is merged.  Validation messages,
# help, and the install hints for missing tools.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use POSIX ();

my $t = Test::Kapd->new;
my $kap = $t->builddir . '/kap';
plan(skip_all => "kap script not built ($kap)") unless -f $kap;
my $sh = (grep { -x "$_/dash" } split /:/, $ENV{PATH}) ? 'dash' : 'sh';

my $dir = $t->testdir;
my $home = "$dir/home";
my $proj = "$dir/my proj";              # a space: paths are quoted
my $bin = "$dir/bin";
mkdir $_ or die "$_: $!" for $home, $proj, "$proj/.devcontainer", $bin;
mkdir "$proj/.git"; mkdir "$proj/.git/hooks";
$t->write_file('my proj/.git/config', "[core]\n\tbare = false\n");
$t->write_file('my proj/.git/HEAD', "ref: refs/heads/main\n");

# the files kap init writes (the contract between kap init and kap up)
my $devc = <<'EOF';
// made by kap init
{
  "name": "my proj",
  "dockerComposeFile": ["docker-compose.yml", "docker-compose.kap.yml"],
  "service": "app",
  "workspaceFolder": "/workspaces/my proj",
  "initializeCommand": "kap overlay",
  /* PATH for the shims */
  "remoteEnv": {"PATH": "/opt/kap/bin:${containerEnv:PATH}"},
  "postStartCommand": {"kap-setup": "/opt/kap/bin/kap-post-start"},
}
EOF
$t->write_file('my proj/.devcontainer/devcontainer.json', $devc);
$t->write_file('my proj/.devcontainer/docker-compose.yml', <<'EOF');
services:
  app:
    build: {context: ., dockerfile: Dockerfile}
    volumes:
      - ..:/workspaces/my proj:cached
    command: sleep infinity
EOF
$t->write_file('my proj/.devcontainer/kap.conf', <<'EOF');
kapd: { log_level = "info"; module_path = ["/tmp/evil"]; };
network: { allow = ["allowed.example"]; };
EOF

# the fake docker: `network ls` and `network inspect` answer from
# $FAKE_NETS ("name cidr..." lines); FAKE_DOCKER_DOWN=1: no engine
$t->write_file('bin/docker', <<'EOF');
#!/usr/bin/perl
my @a = @ARGV;
exit 1 if $ENV{FAKE_DOCKER_DOWN};
my @nets;
if (open my $fh, '<', $ENV{FAKE_NETS}) { @nets = grep { /\S/ } <$fh> }
chomp @nets;
if ($a[0] eq 'network' && $a[1] eq 'ls') { print((split ' ', $_)[0], "\n") for @nets; exit 0 }
if ($a[0] eq 'network' && $a[1] eq 'inspect') {
    my %want = map { $_ => 1 } @a[4 .. $#a];
    for (@nets) { my ($n, @c) = split ' '; print join(' ', $n, @c), "\n" if $want{$n} }
    exit 0;
}
if ($a[0] eq 'info') { exit 0 }
if ($a[0] eq 'compose') { exit 1 }
exit 1;
EOF
chmod 0755, "$bin/docker";
my $nets = "$dir/nets";
$t->write_file('nets', "bridge 172.17.0.0/16\nhost\nnone\n");

# kap(args...) with HOME=$home, the fake docker first on PATH, in $proj
sub kap {
    my (@args) = @_;
    my %env = (%{ ref $args[0] eq 'HASH' ? shift @args : {} });
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        $ENV{HOME} = $home;
        delete @ENV{qw/XDG_STATE_HOME COMPOSE_PROJECT_NAME/};
        $ENV{PATH} = "$bin:$ENV{PATH}";
        $ENV{FAKE_NETS} = $nets;
        $ENV{$_} = $env{$_} for keys %env;
        chdir $proj or POSIX::_exit(126);
        exec($sh, $kap, @args) or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}
my $ov_path = "$proj/.devcontainer/docker-compose.kap.yml";
sub overlay { open my $fh, '<', $ov_path or return ''; local $/; <$fh> }
sub subnets { my ($o) = @_; $o =~ /^# kap-subnets: (\S+) (\S+)$/m ? "$1 $2" : '' }
sub in172 { my ($p) = @_; $p =~ /^172\.(\d+)\.(\d+)$/ && $1 >= 18 && $1 <= 31 && $2 <= 255 }

# ---- an unapproved policy: nothing is written -----------------------------------------
my ($rc, $out) = kap('overlay');
isnt($rc, 0, 'overlay: an unapproved policy fails');
like($out, qr/new or changed since you last allowed it.*\n.*\n\s+kap allow '.*my proj\/\.devcontainer\/kap\.conf'/,
     'the message says how to approve it');
ok(!-e $ov_path, 'no overlay written');

$t->kap_allow({ home => $home }, "$proj/.devcontainer/kap.conf");
($rc, $out) = kap('overlay');
is($rc, 0, 'overlay after kap allow') or diag($out);
like($out, qr/line 1: ignoring kapd\.module_path/, 'the policy\'s module_path is refused with a warning');
unlike($out, qr/warning: devcontainer\.json/, 'the contract\'s devcontainer.json passes validation');
my $ov = overlay();
my ($s, $e) = split ' ', subnets($ov);
ok(in172($s) && in172($e), "a pair of /24s in 172.18-31 ($s, $e)");
my ($s2, $s3) = $s =~ /^172\.(\d+)\.(\d+)$/;
my ($e2, $e3) = $e =~ /^172\.(\d+)\.(\d+)$/;
is($e2 * 256 + $e3, $s2 * 256 + $s3 + 1, 'the external /24 follows the sandbox /24');

# ---- what the overlay says ----------------------------------------------------------
my ($app) = $ov =~ /^  app:\n(.*?)^  kap:\n/ms;
my ($side) = $ov =~ /^  kap:\n(.*?)^volumes:\n/ms;
my ($netdef) = $ov =~ /^networks:\n(.*)\z/ms;
ok(defined $app && defined $side && defined $netdef, 'services app and kap, networks') or diag($ov);
$app //= ''; $side //= ''; $netdef //= '';
like($app, qr/^    networks:\n      kap_sandbox:\n        ipv4_address: \Q$s\E\.2\n    depends_on:/m,
     'app: only on kap_sandbox, at S.2');
for my $v (qw/HTTP_PROXY HTTPS_PROXY http_proxy https_proxy/) {
    like($app, qr/^      $v: "http:\/\/\Q$s\E\.3:3128"$/m, "app: $v names the sidecar");
}
like($app, qr/^      NO_PROXY: "[^"]*\b\Q$s\E\.3"$/m, 'app: NO_PROXY includes the sidecar');
like($app, qr/^    dns:\n      - \Q$s\E\.3$/m, 'app: DNS is the sidecar');
like($app, qr/net\.ipv6\.conf\.all\.disable_ipv6: 1/, 'app: IPv6 off');
unlike($ov, qr/privileged|network_mode/, 'no privileges or host network');
unlike($app, qr/cap_add/, 'app: no capability added');
like($side, qr/^    cap_drop: \[ALL\]\n    cap_add: \[NET_BIND_SERVICE\]$/m,
     'sidecar: every capability dropped but NET_BIND_SERVICE (kapd binds :53)');
like($side, qr/^    user: "$<:${\ (0 + $))}"$/m, 'sidecar: kapd runs as the user who runs kap (it reads the MCP registrations)');
like($side, qr{target: "/etc/kap/auth"\n\s+read_only: false}, 'sidecar: the registrations, writable (OAuth refresh)');
like($app, qr/condition: service_healthy/, 'app waits for the healthy sidecar');
my $ws = '/workspaces/my proj';
like($app, qr{source: "\Q$proj\E/\.devcontainer"\n\s+target: "\Q$ws\E/\.devcontainer"\n\s+read_only: true},
     'app: .devcontainer read-only over the workspace');
like($app, qr{source: "\Q$proj\E/\.git"\n\s+target: "\Q$ws\E/\.git"\n\s+read_only: false},
     'app: .git is a mount point of its own (pinned against rename)');
for my $p (qw/hooks info modules worktrees config/) {
    like($app, qr{source: "\Q$proj\E/\.git/$p"\n\s+target: "\Q$ws\E/\.git/$p"\n\s+read_only: true},
         "app: .git/$p read-only");
}
ok(-d "$proj/.git/info", '.git/info made so it can be mounted (else the agent could create it)');
like($app, qr{target: "/opt/kap"\n\s+read_only: true}, 'app: /opt/kap read-only');
like($side, qr/^    networks:\n      kap_sandbox:\n        ipv4_address: \Q$s\E\.3\n      kap_external: \{\}/m,
     'sidecar: on kap_sandbox at S.3 and on kap_external');
like($netdef, qr/^  kap_sandbox:\n    internal: true\n/m, 'kap_sandbox is internal');
like($netdef, qr/com\.docker\.network\.bridge\.inhibit_ipv4: "true"/, 'kap_sandbox\'s bridge has no host address');
like($netdef, qr/^        - subnet: \Q$s\E\.0\/24$/m, 'kap_sandbox subnet');
like($netdef, qr/^        - subnet: \Q$e\E\.0\/24$/m, 'kap_external subnet');

# the sidecar's configuration: from the host, read-only, not the project's
my ($etc) = $side =~ m{source: "([^"]+)"\n\s+target: "/etc/kap/project"\n\s+read_only: true};
ok(defined $etc, 'sidecar: its configuration directory is mounted read-only');
$etc //= '/nonexistent';
unlike($etc, qr/^\Q$proj\E/, 'the configuration is not in the project (the app cannot write it)');
like($etc, qr{^\Q$home\E/\.local/state/kap/docker/my-proj_kap[0-9a-f]{8}/etc$}, 'in kap\'s state directory');
like($side, qr{"-c", "/etc/kap/project/kapd\.conf", "-g", "/etc/kap/project/global\.conf"}, 'kapd reads it (and the global one)');
like($side, qr{target: "/workspace"\n\s+read_only: true}, 'sidecar: the workspace read-only');
like($side, qr{- kap-logs:/var/log/kap}, 'sidecar: the audit log on a volume');
my $kc = $t->read_file("$etc/kapd.conf");
like($kc, qr/allow = \["allowed\.example"\]/, 'sidecar configuration: the policy\'s allowlist');
like($kc, qr/listen = \["\*:3128"\]/, 'sidecar configuration: the proxy on every address');
like($kc, qr/listen = \["\*:53"\]/, 'sidecar configuration: DNS on every address');
like($kc, qr{path = "/var/log/kap/audit\.jsonl"}, 'sidecar configuration: the audit log');
unlike($kc, qr{/tmp/evil}, 'sidecar configuration: no module path of the policy\'s');
unlike($kc, qr/reload_check = 0/, 'sidecar configuration: kapd reloads it on change');
is(sprintf('%o', (stat "$etc/kapd.conf")[2] & 0777), '644', 'readable by the sidecar\'s user');
like($t->read_file("$etc/global.conf"), qr/no global policy/, 'no ~/.kap/kap.conf: an empty global file');

# ---- stable across runs --------------------------------------------------------------
($rc, $out) = kap('overlay');
is($rc, 0, 'overlay again');
is(overlay(), $ov, 'the overlay is the same on the next start');

# ---- an mcp group: served by the sidecar on *:3129, .mcp.json names it ---------------
$t->write_file('my proj/.devcontainer/kap.conf', <<'EOF');
# the project's policy
network: { allow = ["allowed.example"]; };
mcp: { servers = ( { name = "docs"; allow = ["search"]; } ); };
EOF
$t->kap_allow({ home => $home }, "$proj/.devcontainer/kap.conf");
($rc, $out) = kap({ KAP_MCP => $t->builddir . '/kap-mcp' }, 'overlay');
is($rc, 0, 'overlay with an mcp group') or diag($out);
$kc = $t->read_file("$etc/kapd.conf");
like($kc, qr/load = \["http_connect", "dns", "mcp"\]/, 'sidecar configuration: the mcp module loaded');
like($kc, qr{listen = \["\*:3129"\];\s*locked = true;\s*auth_dir = "/etc/kap/auth";\s*env_file = "/etc/kap/envs/\.env";},
     'sidecar configuration: mcp on every address, locked, the mounted registrations and env file') or diag($kc);
like($out, qr{MCP server docs at http://\Q$s\E\.3:3129/docs}, 'overlay names the MCP server');
my $mj = $t->read_file("$proj/.mcp.json") // '';
like($mj, qr{"url"\s*:\s*"http://\Q$s\E\.3:3129/docs"}, '.mcp.json: the server at the sidecar\'s address');
is(overlay(), $ov, 'the compose overlay itself is unchanged');

# ---- collisions -----------------------------------------------------------------------
# another network takes the sandbox /24 of the overlay: a new pair, free
$t->write_file('nets', "bridge 172.17.0.0/16\nother $s.0/24\n");
($rc, $out) = kap('overlay');
my ($n1, $n2) = split ' ', subnets(overlay());
ok($n1 ne $s && $n2 ne $s && in172($n1), "the taken sandbox /24 is avoided ($n1 $n2)");
# the preferred pair (the first choice after the overlay's) and the next ones
# taken by /16 and /22 networks: the pair chosen is free of all
my ($p2) = $n1 =~ /^172\.(\d+)\./;
$t->write_file('nets', "bridge 172.17.0.0/16\nother $s.0/24\nbig 172.$p2.0.0/16\n");
($rc, $out) = kap('overlay');
my ($m1, $m2) = split ' ', subnets(overlay());
unlike("$m1 $m2", qr/^172\.$p2\.|172\.$p2\.\d+$|\Q$s\E\b/, "a /16 covering it is avoided too ($m1 $m2)");
ok(in172($m1) && in172($m2), 'still in 172.18-31');
# stable while nothing changes
($rc, $out) = kap('overlay');
is(subnets(overlay()), "$m1 $m2", 'stable while the networks stay');
# the overlay's pair is kept when it is free (even though the preference is free again)
$t->write_file('nets', "bridge 172.17.0.0/16\n");
($rc, $out) = kap('overlay');
is(subnets(overlay()), "$m1 $m2", 'the overlay\'s pair is kept while free');
# the project's own networks exist: the overlay follows them
my ($name) = $etc =~ m{/docker/([^/]+)/etc$};
$t->write_file('nets', "bridge 172.17.0.0/16\n${name}_kap_sandbox 172.25.40.0/24\n${name}_kap_external 172.25.41.0/24\n");
($rc, $out) = kap('overlay');
is(subnets(overlay()), '172.25.40 172.25.41', 'the project\'s existing networks are followed');
# no engine: the overlay's pair
($rc, $out) = kap({ FAKE_DOCKER_DOWN => 1 }, 'overlay');
is($rc, 0, 'overlay without a Docker engine');
is(subnets(overlay()), '172.25.40 172.25.41', 'without an engine the overlay\'s pair is reused');

# ---- a changed policy: used only once approved; kap allow brings it in ---------------
$t->write_file('my proj/.devcontainer/kap.conf', <<'EOF');
network: { allow = ["allowed.example", "more.example"]; };
@include "/etc/passwd"
sidecar: { image = "evil/sidecar:latest"; };
EOF
($rc, $out) = kap('overlay');
is($rc, 0, 'overlay with a changed, unapproved policy still works');
like($out, qr/keeps the last approved policy/, 'and says the sidecar keeps the last approved one');
unlike($t->read_file("$etc/kapd.conf"), qr/more\.example/, 'the unapproved edit is not in the sidecar configuration');
$out = $t->kap_allow({ home => $home }, "$proj/.devcontainer/kap.conf");
like($out, qr/the sidecar of .*my proj uses it now/, 'kap allow refreshes the sidecar configuration');
$kc = $t->read_file("$etc/kapd.conf");
like($kc, qr/more\.example/, 'the approved edit is in the sidecar configuration');
unlike($kc, qr/\@include|passwd/, '@include dropped');
like($out, qr/ignoring \@include/, '... with a warning');
($rc, $out) = kap('overlay');
like($out, qr/ignoring the sidecar group: only ~\/\.kap\/kap\.conf chooses the sidecar image/,
     'a project policy cannot choose the sidecar image');
like(overlay(), qr/image: "kap-sidecar:/, 'the image stays kap\'s');

# ---- the global policy: merged once approved, picked up when created later -----------
mkdir "$home/.kap";
$t->write_file('home/.kap/kap.conf', "network: { allow = [\"global.example\"]; };\n");
($rc, $out) = kap('overlay');
like($out, qr/kap\.conf is new or changed since you last allowed it: not used/, 'an unapproved global policy is not used');
unlike($t->read_file("$etc/global.conf"), qr/global\.example/, '... not in global.conf');
$out = $t->kap_allow({ home => $home }, "$home/.kap/kap.conf");
like($t->read_file("$etc/global.conf"), qr/global\.example/, 'kap allow of ~/.kap/kap.conf: in the sidecar\'s global.conf');

# ---- SSH agent and git identity -------------------------------------------------------
like(overlay(), qr{^      GIT_CONFIG_GLOBAL: /opt/kap/gitconfig$}m, 'app: GIT_CONFIG_GLOBAL is kap\'s');
like($t->read_file("$etc/../opt/gitconfig"), qr{path = /opt/kap-host-gitconfig\n\s+path = ~/\.gitconfig-kap},
     'it includes the host identity, then the app\'s own');
unlike(overlay(), qr{/ssh-agent|kap-host-gitconfig"}, 'no agent socket, no host gitconfig: nothing mounted');
$t->write_file('home/.gitconfig', "[user]\n\tname = Someone\n");
use IO::Socket::UNIX;
my $asock = IO::Socket::UNIX->new(Local => "$dir/agent.sock", Listen => 1) or die "agent socket: $!";
($rc, $out) = kap({ SSH_AUTH_SOCK => "$dir/agent.sock" }, 'overlay');
like(overlay(), qr{source: "\Q$dir\E/agent\.sock"\n\s+target: "/ssh-agent"}, 'app: the host\'s agent socket at /ssh-agent');
like(overlay(), qr{^      SSH_AUTH_SOCK: /ssh-agent$}m, 'app: SSH_AUTH_SOCK');
like(overlay(), qr{source: "\Q$home\E/\.gitconfig"\n\s+target: "/opt/kap-host-gitconfig"\n\s+read_only: true},
     'app: the host\'s ~/.gitconfig read-only');
is($t->read_file("$etc/../opt/bin/kap-post-start"), $t->read_file($t->srcdir . '/contrib/kap/kap-post-start'),
   '/opt/kap/bin/kap-post-start is kap\'s');
like($t->read_file("$etc/../opt/bin/kap-post-start"), qr{ProxyCommand /opt/kap/bin/kap-shim connect %h %p},
     'kap-post-start: ssh through kap-shim connect');
ok(-x "$etc/../opt/bin/kap-post-start", 'kap-post-start is executable');

# ---- validation messages --------------------------------------------------------------
(my $bad = $devc) =~ s/"initializeCommand": "kap overlay",\n//;
$bad =~ s/"docker-compose.yml", "docker-compose.kap.yml"/"docker-compose.kap.yml", "docker-compose.yml"/;
$bad =~ s{/opt/kap/bin:}{};
$bad =~ s{/opt/kap/bin/kap-post-start}{/bin/true};
$t->write_file('my proj/.devcontainer/devcontainer.json', $bad);
($rc, $out) = kap('overlay');
like($out, qr/initializeCommand does not run "kap overlay"/, 'validation: initializeCommand');
like($out, qr/dockerComposeFile must list docker-compose\.kap\.yml last/, 'validation: the overlay last');
like($out, qr/remoteEnv\.PATH lacks \/opt\/kap\/bin/, 'validation: PATH');
like($out, qr/postStartCommand does not run \/opt\/kap\/bin\/kap-post-start/, 'validation: postStartCommand');
$t->write_file('my proj/.devcontainer/devcontainer.json', $devc);

# ---- help and install hints ----------------------------------------------------------
for my $c (qw/overlay up down exec list status logs/) {
    ($rc, $out) = kap('help', $c);
    like($out, qr/^usage: kap \Q$c\E/, "kap help $c");
}
($rc, $out) = kap('--help');
like($out, qr/^\s+up \[-p DIR\] \[--reset\]/m, 'kap --help lists up');
# a PATH with everything but compose and the devcontainer CLI
my $bare = "$dir/bare";
mkdir $bare;
for my $d (split /:/, $ENV{PATH}) {
    opendir(my $dh, $d) or next;
    for my $f (readdir $dh) {
        next if $f =~ /^(\.|\.\.|docker|docker-compose|devcontainer)$/ || -e "$bare/$f";
        symlink("$d/$f", "$bare/$f") if -x "$d/$f" && !-d "$d/$f";
    }
}
($rc, $out) = kap({ PATH => "$bin:$bare" }, 'up');
isnt($rc, 0, 'kap up without compose fails');
like($out, qr/Docker Compose is not installed \(Debian\/Ubuntu: apt-get install docker-compose\)/, '... with the install hint');
symlink('/bin/true', "$bin/docker-compose");
($rc, $out) = kap({ PATH => "$bin:$bare" }, 'up');
like($out, qr/the devcontainer CLI is not installed \(npm install -g \@devcontainers\/cli\)/, 'devcontainer CLI: install hint');
($rc, $out) = kap({ PATH => $bare }, 'status');
like($out, qr/docker is not installed/, 'docker: install hint');

$t->done_testing;
