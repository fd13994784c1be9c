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
use Digest::SHA qw(sha256_hex);
use File::Copy qw(copy);
use JSON::PP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new->has_kapd->has_module('remote');
my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';
plan(skip_all => "no chromium at $chromium (contrib/install-deps --test installs it)")
    unless -x $chromium;
my $npmroot = `npm root -g 2>/dev/null` // '';
chomp $npmroot;
plan(skip_all => 'no playwright-core (contrib/install-deps --test: npm install -g playwright-core)')
    unless (-d "$npmroot/playwright-core" || -d $t->srcdir . '/node_modules/playwright-core');
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
        return ($sample, '', 0) if $a0 eq 'tail' || $a0 eq 'head';
        return ('', '', 1) if $a0 eq 'pgrep';
        return ("dev:x:1000:1000::/home/dev:/bin/bash\n", '', 0) if $a0 eq 'getent';
        return ('', '', 0);
    });
mkdir $t->path('state'), 0700;
ok($t->try_run, 'kapd serves remote') or diag($t->{run_error});
my $port = $t->port('remote');
my $secret = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
{
    umask 077;
    open my $fh, '>', $t->path('state/pairing.tmp') or die $!;
    print $fh 'sha256:' . sha256_hex($secret) . "\n";
    close $fh;
    rename $t->path('state/pairing.tmp'), $t->path('state/pairing') or die $!;
}
my $shots = $t->path('shots');
mkdir $shots;
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
open my $sf, '>', $t->path('steps.json') or die $!;
print $sf encode_json(\@steps);
close $sf;
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDOUT, '>', $t->path('browser.out') or exit 2;
    open STDERR, '>', $t->path('browser.err') or exit 2;
    $ENV{NODE_PATH} = join(":", grep { length } $ENV{NODE_PATH} // "", $npmroot);
    exec('node', $t->srcdir . '/t/tools/browser-steps.js', $t->path('steps.json')) or exit 2;
}
my $st;
wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $? >> 8; 1 } }, kapd_tmo(120))
    or do { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 };
my @r = map { eval { decode_json($_) } // () } split /\n/, $t->read_file('browser.out') // '';
is($st, 0, 'every browser step passed')
    or diag(join("\n", map { encode_json($_) } @r), $t->read_file('browser.err') // '');
ok((grep { ($_->{step} // '') eq 6 && $_->{ok} } @r), 'the session timeline is shown');
my ($claude) = grep { $_->{Cmd}[0] eq 'claude' } @{$dk->execs};
is_deeply($claude ? $claude->{Cmd} : [], ['claude', '--resume', $SID,
          '--dangerously-skip-permissions', '-p', 'now add a test for it'],
          'the follow-up reached the engine as an argv');
my ($end) = grep { ($_->{step} // '') eq 'end' } @r;
is_deeply($end ? $end->{page_errors} : ['no end line'], [], 'no script error in the page');
for my $f (qw/agent-light agent-dark/) {
    ok(-s "$shots/$f.png" > 1000, "screenshot $f.png");
}
if (my $d = $ENV{KAP_SCREENSHOT_DIR}) {
    copy("$shots/$_.png", "$d/remote-$_.png") for qw/agent-light agent-dark/;
}
$t->finish;
