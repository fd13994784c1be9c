#!/usr/bin/perl
# 520-remote-docker.t -- the remote module's Docker routes over real
# sockets, against a fake Docker Engine API on a unix socket
# (Test::Kapd::FakeDocker): the exact engine requests kapd makes (argv
# arrays, never a shell), kap projects found by their labels, sessions
# and a timeline from the sample files in t/data/claude served through
# exec, cancel and follow-up argv, ids refused before any engine call,
# an engine that is down (502) or hangs (504), auth on every route.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDocker;
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use IO::Socket::INET;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('remote');
$t->plan(79);

$t->write_conf(<<'EOF2');
kapd: {
    load = ["remote"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
remote: {
    listen = ["127.0.0.1:%%PORT_remote%%"];
    state_dir = "state";
    docker_socket = "docker.sock";
    docker_timeout = "2s";
};
EOF2

my $SID = '5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
my $SID2 = '0a0b0c0d-1111-4222-8333-444455556666';
my $sample = do {
    local (@ARGV, $/) = ($t->srcdir . "/t/data/claude/$SID.jsonl"); <>
};
my $APP = 'a' x 64;
my $KAP = 'b' x 64;
my $OTHER = 'c' x 64;
my $BETA = 'd' x 64;
sub ctr {
    my ($id, $name, $proj, $svc, $nets, %o) = @_;
    return { Id => $id, Names => ["/$name"], State => $o{state} // 'running',
             Status => 'Up 5 minutes',
             Labels => { 'com.docker.compose.project' => $proj,
                         'com.docker.compose.service' => $svc,
                         $o{nokap} ? () : ('kap.project' => "/src/$proj") },
             NetworkSettings => { Networks => { map { $_ => {} } @$nets } } };
}
my @containers = (
    ctr($APP, 'alpha-app-1', 'alpha', 'app', ['alpha_kap_sandbox']),
    ctr($KAP, 'alpha-kap-1', 'alpha', 'kap', ['alpha_kap_sandbox',
                                              'alpha_kap_external']),
    ctr($OTHER, 'web-1', 'web', 'web', ['web_default'], nokap => 1),
    ctr($BETA, 'beta-kap-1', 'beta', 'kap', ['beta_kap_sandbox']),
);
my $now = time;
my $find_out = sprintf("%.10f 3754 /home/dev/.claude/projects/-home-dev-src-alpha/%s.jsonl\n",
                       $now - 3600, $SID)
             . sprintf("%.10f 100 /root/.claude/projects/-workspace/%s.jsonl\n",
                       $now - 2, $SID2)
             . "1.0 5 /home/dev/.claude/projects/x/not-a-uuid.jsonl\n"
             . "garbage line\n";
# what pgrep finds: a file, since the fake engine runs in a child process
my $pgrep_file = $t->path('pgrep.out');
sub set_pgrep { open my $fh, '>', $pgrep_file or die; print $fh $_[0]; close $fh }
set_pgrep('');
sub fake_exec {
    my ($c) = @_;
    my @a = @{$c->{Cmd}};
    if ($a[0] eq 'find') {
        my ($name) = map { $a[$_ + 1] } grep { $a[$_] eq '-name' } 0 .. $#a;
        return ($find_out, "find: '/root/.claude/projects': Permission denied\n", 1)
            if $name eq '*.jsonl';
        return (join('', grep { /\Q$name\E$/ } split /^/, $find_out), '', 0);
    }
    return ($sample, '', 0) if $a[0] eq 'tail' || $a[0] eq 'head';
    if ($a[0] eq 'pgrep') {
        my $o = do { local (@ARGV, $/) = ($pgrep_file); <> } // '';
        return ($o, '', length $o ? 0 : 1);
    }
    return ('', '', 0) if $a[0] eq 'kill';
    return ("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n"
            . "dev:x:1000:1000::/home/dev:/bin/bash\n", '', 0) if $a[0] eq 'getent';
    return (" src/login.js | 2 +-\n 1 file changed\n", '', 0) if $a[0] eq 'git';
    return ('', "unknown\n", 127);
}
my $sock = $t->path('docker.sock');
my $dk = Test::Kapd::FakeDocker->new($t, path => $sock,
    containers => \@containers, exec => \&fake_exec);

ok($t->try_run, 'kapd serves remote') or diag($t->{run_error});
my $port = $t->port('remote');
my $J = JSON::PP->new;

sub req {
    my ($method, $path, %o) = @_;
    my @h = @{$o{headers} // []};
    push @h, "Authorization: Bearer $o{token}" if defined $o{token};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp') or die "connect: $!";
    my $raw = Test::Kapd::http_get($path, addr => $s, method => $method,
                                   headers => \@h, body => $o{body});
    my $r = Test::Kapd::http_parse($raw) // { status => 0, body => '',
                                              headers => {} };
    $r->{json} = eval { $J->decode($r->{body}) };
    return $r;
}

# a device token, paired the way the page does it
my $state = $t->path('state');
Test::Kapd::wait_until(sub { -d "$state/devices" }, kapd_tmo(5));
my $secret = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
{
    umask 077;
    open my $fh, '>', "$state/pairing" or die;
    print $fh 'sha256:' . sha256_hex($secret) . "\n";
    close $fh;
}
my $r = req('POST', '/api/pair', token => $secret,
            headers => ['Content-Type: application/json'], body => '{}');
my $tok = $r->{json}{token} // '';
ok(length $tok, 'paired') or diag($r->{body});

# ---- auth on every new route, before the engine ------------------------------
my @routes = (['GET', '/api/containers'], ['GET', '/api/agent/sessions'],
              ['GET', "/api/agent/session/$SID"],
              ['GET', "/api/agent/session/$SID/status"],
              ['GET', "/api/agent/session/$SID/diff"],
              ['POST', "/api/agent/session/$SID/cancel"],
              ['POST', "/api/agent/session/$SID/message"]);
for my $x (@routes) {
    is(req($x->[0], $x->[1])->{status}, 401, "$x->[0] $x->[1] without a token: 401");
}
is(scalar @{$dk->requests}, 0, 'no engine request without a token');

# ---- containers ---------------------------------------------------------------
$r = req('GET', '/api/containers', token => $tok);
is($r->{status}, 200, 'GET /api/containers') or diag($r->{body});
is_deeply($r->{json}, [
    { project => 'alpha', dir => '/src/alpha', capsule => JSON::PP::false,
      app => { id => 'a' x 12, name => 'alpha-app-1', state => 'running',
               status => 'Up 5 minutes' },
      sidecar => { id => 'b' x 12, name => 'alpha-kap-1', state => 'running',
                   status => 'Up 5 minutes' } },
    { project => 'beta', dir => '/src/beta', capsule => JSON::PP::false, app => undef,
      sidecar => { id => 'd' x 12, name => 'beta-kap-1', state => 'running',
                   status => 'Up 5 minutes' } },
], 'kap projects from their labels, app on the internal network, sorted, not capsules');
my $q = $dk->requests->[-1];
is("$q->{method} $q->{target}",
   'GET /v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22kap.project%22%5D%7D',
   'one engine request: containers with the kap.project label');

# ---- sessions -------------------------------------------------------------------
my $n0 = scalar @{$dk->requests};
$r = req('GET', '/api/agent/sessions', token => $tok);
is($r->{status}, 400, 'several projects and no ?project: 400');
$r = req('GET', '/api/agent/sessions?project=beta', token => $tok);
is($r->{status}, 503, 'a project without a running app: 503');
$r = req('GET', '/api/agent/sessions?project=alpha', token => $tok);
is($r->{status}, 200, 'GET /api/agent/sessions?project=alpha') or diag($r->{body});
is_deeply([map { $_->{id} } @{$r->{json} // []}], [$SID2, $SID],
          'sessions newest first; files without a UUID name left out');
is($r->{json}[1]{project}, 'src-alpha', 'the project from the directory');
is($r->{json}[0]{project}, 'workspace', 'a /workspace session');
ok($r->{json}[0]{running} && !$r->{json}[1]{running},
   'running: written in the last 15 s');
my $e = $dk->execs->[-1];
is_deeply($e->{Cmd}, ['find', '/root/.claude/projects', '/home', '-maxdepth', '5',
    '-path', '*/.claude/projects/*', '-not', '-path', '*/subagents/*',
    '-type', 'f', '-name', '*.jsonl', '-printf', '%T@ %s %p\n'],
    'find runs as an argv');
ok(!exists $e->{Tty} || !$e->{Tty}, 'without a tty (a multiplexed stream)');
my @paths = map { "$_->{method} $_->{target}" } @{$dk->requests}[$n0 .. $#{$dk->requests}];
like(join(' | ', @paths), qr{POST /v1\.41/containers/$APP/exec \| POST /v1\.41/exec/[0-9a-f]{64}/start \| GET /v1\.41/exec/[0-9a-f]{64}/json$},
     'exec: create in the app container, start, inspect');

# ---- a timeline -----------------------------------------------------------------
$r = req('GET', "/api/agent/session/$SID?project=alpha", token => $tok);
is($r->{status}, 200, 'GET /api/agent/session/ID') or diag($r->{body});
my $ev = $r->{json}{events} // [];
is(scalar @$ev, 9, 'the timeline of the sample file');
is($ev->[3]{tool_name}, 'Read', 'with tool names');
is($ev->[5]{summary}, 'npm test -- --grep login', 'and compact tool input');
is($r->{json}{malformed}, 3, 'malformed lines counted');
is($r->{json}{cwd}, '/workspace/app', 'the session cwd');
is_deeply($dk->execs->[-1]{Cmd},
          ['tail', '-c', '4194304', '--',
           "/home/dev/.claude/projects/-home-dev-src-alpha/$SID.jsonl"],
          'the file read with tail -c, bounded, as an argv');
is_deeply([@{$dk->execs->[-2]{Cmd}}[-4 .. -1]],
          ['-name', "$SID.jsonl", '-printf', '%T@ %s %p\n'],
          'located by its name');

$r = req('GET', "/api/agent/session/$SID/status?project=alpha", token => $tok);
is($r->{status}, 200, 'GET .../status');
is($r->{json}{running}, JSON::PP::false, 'an old session is not running');
$r = req('GET', "/api/agent/session/$SID2/status?project=alpha", token => $tok);
is($r->{json}{running}, JSON::PP::true, 'a fresh one is');
$r = req('GET', '/api/agent/session/99999999-9999-4999-8999-999999999999?project=alpha',
         token => $tok);
is($r->{status}, 404, 'an unknown session: 404');

# ---- diff -----------------------------------------------------------------------
$r = req('GET', "/api/agent/session/$SID/diff?project=alpha&format=patch", token => $tok);
is($r->{status}, 200, 'GET .../diff') or diag($r->{body});
like($r->{json}{diff} // '', qr/1 file changed/, 'git diff output');
is_deeply($dk->execs->[-1]{Cmd}, ['git', '-C', '/workspace/app', '--no-pager',
    'diff', '--no-ext-diff', '--no-textconv', '--no-color', '--patch'],
    'git diff in the session cwd, as an argv');
is_deeply($dk->execs->[-2]{Cmd},
          ['head', '-n', '20', '--',
           "/home/dev/.claude/projects/-home-dev-src-alpha/$SID.jsonl"],
          'the cwd from the file head');

# ---- cancel -----------------------------------------------------------------------
set_pgrep("4242\n");
$r = req('POST', "/api/agent/session/$SID/cancel?project=alpha", token => $tok);
is($r->{status}, 200, 'POST .../cancel') or diag($r->{body});
is($r->{json}{cancelled}, JSON::PP::true, 'cancelled');
is_deeply($dk->execs->[-2]{Cmd}, ['pgrep', '-f', '--', $SID],
          'the process found by the session id');
is_deeply($dk->execs->[-1]{Cmd}, ['kill', '-s', 'INT', '4242'],
          'SIGINT to it, as an argv');
$r = req('GET', "/api/agent/session/$SID/cancel?project=alpha", token => $tok);
is($r->{status}, 405, 'GET .../cancel: 405');

# ---- a follow-up message ---------------------------------------------------------
$r = req('POST', "/api/agent/session/$SID/message?project=alpha", token => $tok,
         headers => ['Content-Type: application/json'],
         body => '{"message":"now add a test"}');
is($r->{status}, 409, 'a follow-up to a running session: 409');
set_pgrep('');
my $msg = q{x'; rm -rf / #$(id)`id`"};
$r = req('POST', "/api/agent/session/$SID/message?project=alpha", token => $tok,
         headers => ['Content-Type: application/json'],
         body => $J->encode({ message => $msg }));
is($r->{status}, 200, 'POST .../message') or diag($r->{body});
is($r->{json}{sent}, JSON::PP::true, 'sent');
$e = $dk->execs->[-1];
is_deeply($e->{Cmd}, ['claude', '--resume', $SID,
                      '--dangerously-skip-permissions', '-p', $msg],
          'claude resumes the session; the message is one argv element');
is($e->{User}, 'dev', 'as the first user account (uid 1000)');
is($e->{WorkingDir}, '/workspace/app', 'in the session cwd');
ok((grep { $_ eq 'HOME=/home/dev' } @{$e->{Env} // []}), 'with its HOME');
is_deeply($dk->execs->[-2]{Cmd}, ['getent', 'passwd'], 'the user from getent');
for my $b ('', '{}', '{"message":""}', '{"message":"  "}', '{"message":1}',
           '{"message":"a","x":1}', '{"message":"' . ('a' x 8001) . '"}') {
    my $x = req('POST', "/api/agent/session/$SID/message?project=alpha",
                token => $tok, headers => ['Content-Type: application/json'],
                body => $b);
    is($x->{status}, 400, 'a bad body: 400 (' . substr($b, 0, 20) . ')');
}

# ---- ids refused before the engine -----------------------------------------------------
$n0 = scalar @{$dk->requests};
for my $p ("/api/agent/session/..%2f..%2fetc", "/api/agent/session/../../etc/passwd",
           "/api/agent/session/$SID;id", "/api/agent/session/${SID}'",
           "/api/agent/session/" . uc($SID), "/api/agent/session/$SID$SID",
           "/api/agent/session/" . ('a' x 5000), "/api/agent/session/$SID/x",
           "/api/agent/sessions?project=../x", "/api/agent/sessions?project=a;b",
           "/api/agent/sessions?project=%22x%22") {
    is(req('GET', $p, token => $tok)->{status}, 400,
       'refused: ' . substr($p, 0, 60));
}
is(scalar @{$dk->requests}, $n0, 'none of them reached the engine');

# ---- the page has the Agent view -------------------------------------------------------
$r = req('GET', '/');
like($r->{body}, qr{<button id="t-agent">Agent</button>}, 'the page has an Agent tab');
like($r->{body}, qr{<select id="proj"}, 'and a project picker');
like($r->{body}, qr{"/api/agent/sessions"}, 'that lists the sessions');

# ---- the engine down, the engine hanging -------------------------------------------------
$dk->stop;
$r = req('GET', '/api/containers', token => $tok);
is($r->{status}, 502, 'engine down: 502');
like($r->{json}{error} // '', qr/docker engine unavailable/, 'as JSON that says so');
my $hang = Test::Kapd::FakeDocker->new($t, path => $sock, hang => 1);
my $t0 = time;
$r = req('GET', '/api/containers', token => $tok);
is($r->{status}, 504, 'engine hangs: 504');
ok(time - $t0 < kapd_tmo(6), 'after docker_timeout');
$hang->stop;
ok($t->is_running, 'kapd is still running');
