#!/usr/bin/perl
# 531-remote-agent-browser.t -- the remote page's Agent view in a real
# headless browser (Debian's chromium driven by playwright-core:
# t/tools/browser-steps.js), phone-sized, against a real kapd whose
# remote module talks to a fake Docker Engine API (Test::Kapd::FakeDocker)
# serving the sample session in t/data/claude.
#
# Checked: the Agent tab lists the project's sessions, opens one and
# shows its timeline, and a follow-up typed into the box reaches the
# engine as `claude --resume ID ... -p MESSAGE`; light and dark
# screenshots; no script error in the page.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDocker;
use Test::Kapd::Browser;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('remote');
my $b = Test::Kapd::Browser->new($t);
$t->plan(7);

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
};
EOF2
my $SID = '5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
my $file = "/home/dev/.claude/projects/-home-dev-src-alpha/$SID.jsonl";
my $sample = do { local (@ARGV, $/) = ($t->srcdir . "/t/data/claude/$SID.jsonl"); <> };
my $APP = 'a' x 64;
my $dk = Test::Kapd::FakeDocker->new($t, path => $t->path('docker.sock'),
    containers => [{ Id => $APP, Names => ['/alpha-app-1'], State => 'running',
        Status => 'Up 1 hour',
        Labels => { 'com.docker.compose.project' => 'alpha',
                    'com.docker.compose.service' => 'app',
                    'kap.project' => '/src/alpha' },
        NetworkSettings => { Networks => { alpha_kap_sandbox => {} } } }],
    exec => sub {
        my ($c) = @_;
        my $a0 = $c->{Cmd}[0];
        return (sprintf("%.1f 3754 %s\n", time - 600, $file), '', 0) if $a0 eq 'find';
        # tail -c +N (WS /ws/agent/ID reads on from where it stopped)
        return (length($sample) >= $1 ? substr($sample, $1 - 1) : '', '', 0)
            if $a0 eq 'tail' && $c->{Cmd}[2] =~ /^\+(\d+)$/;
        return ($sample, '', 0) if $a0 eq 'tail' || $a0 eq 'head';
        return ('', '', 1) if $a0 eq 'pgrep';
        return ("dev:x:1000:1000::/home/dev:/bin/bash\n", '', 0) if $a0 eq 'getent';
        return ('', '', 0);
    });
mkdir $t->path('state'), 0700;
ok($t->try_run, 'kapd serves remote') or diag($t->{run_error});
my $port = $t->port('remote');
my $secret = $b->pairing_secret('state');
my $shots = $b->shots;
my @steps = (
    { do => 'goto', url => "http://127.0.0.1:$port/#s=$secret" },
    { do => 'wait_text', text => 'paired devices', timeout => 20000 },
    { do => 'click', text => 'Agent', exact => JSON::PP::true },
    { do => 'wait_text', text => 'src-alpha', timeout => 20000 },
    { do => 'click', selector => '#sessions li' },
    { do => 'wait_text', text => 'npm test -- --grep login', timeout => 20000 },
    { do => 'screenshot', path => "$shots/agent-light.png" },
    { do => 'fill', selector => '#a-text', value => 'now add a test for it' },
    { do => 'click', text => 'Send', exact => JSON::PP::true },
    { do => 'wait_text', text => 'Sent.', timeout => 20000 },
    { do => 'scheme', value => 'dark' },
    { do => 'screenshot', path => "$shots/agent-dark.png" },
);
$b->start(\@steps);
is($b->finish(120), 0, 'every browser step passed') or diag($b->diag_all);
ok($b->done(6), 'the session timeline is shown');
my ($claude) = grep { $_->{Cmd}[0] eq 'claude' } @{$dk->execs};
is_deeply($claude ? $claude->{Cmd} : [], ['claude', '--resume', $SID,
          '--dangerously-skip-permissions', '-p', 'now add a test for it'],
          'the follow-up reached the engine as an argv');
is_deeply($b->page_errors, [], 'no script error in the page');
for my $f (qw/agent-light agent-dark/) {
    ok(-s "$shots/$f.png" > 1000, "screenshot $f.png");
}
$b->keep_shots('remote-', qw/agent-light agent-dark/);
$t->finish;
