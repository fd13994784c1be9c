#!/usr/bin/perl
# 530-remote-browser.t -- the remote page in a real headless browser
# (Debian's chromium driven by playwright-core: t/tools/browser-steps.js),
# phone-sized, against a real kapd that serves the remote module and an
# http_connect proxy whose audit log the page shows.
#
# Checked: opening the QR code's URL pairs the browser (a device token in
# localStorage, the secret gone from the address bar); Status shows kapd
# up and the counters; a request the proxy denies while the page is open
# appears in Logs without a reload, and under Denied; the page works in
# light and dark; the page raises no script error.  Screenshots of each
# view, light and dark, are kept in the test's directory (and copied to
# KAP_SCREENSHOT_DIR when it is set: docs/screenshots for the README).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Digest::SHA qw(sha256_hex);
use File::Copy qw(copy);
use JSON::PP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new->has_kapd->has_module('remote')->has_module('http_connect');
my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';
plan(skip_all => "no chromium at $chromium (contrib/install-deps --test installs it)")
    unless -x $chromium;
my $npmroot = `npm root -g 2>/dev/null` // '';
chomp $npmroot;
plan(skip_all => 'no playwright-core (contrib/install-deps --test: npm install -g playwright-core)')
    unless (-d "$npmroot/playwright-core" || -d $t->srcdir . '/node_modules/playwright-core');
$t->plan(16);

my $o = $t->port('origin');
$t->write_conf(<<'EOF2');
kapd: {
    load = ["http_connect", "remote"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: { allow = ["allowed.example"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; timeout = 2; };
audit_log: { path = "audit.jsonl"; };
http_connect: { listen = ["127.0.0.1:%%PORT_proxy%%"]; };
remote: {
    listen = ["127.0.0.1:%%PORT_remote%%"];
    state_dir = "state";
    audit_logs = ["audit.jsonl"];
};
EOF2
mkdir $t->path('state'), 0700;
# an event before the page opens
$t->write_file('audit.jsonl', qq({"ts":"2026-12-07T08:00:00.000001Z","event":"decision","module":"http_connect","kind":"connect","action":"denied","subject":"before.example","reason":"no rule allows it"}\n));
ok($t->try_run, 'kapd serves remote and the proxy') or diag($t->{run_error});
my $port = $t->port('remote');

# a pairing secret, written the way kap remote qr writes it
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
my $url = "http://127.0.0.1:$port/";
my @steps = (
    { do => 'goto', url => "$url#s=$secret" },
    { do => 'wait_text', text => 'paired devices', timeout => 20000 },
    { do => 'storage', key => 'kap_remote_token' },
    { do => 'url' },
    { do => 'screenshot', path => "$shots/status-light.png" },
    { do => 'click', text => 'Logs', exact => JSON::PP::true },
    { do => 'wait_text', text => 'before.example' },
    # the test sends a denied request now (it watches for this step)
    { do => 'wait_text', text => 'live-denied.example', timeout => 30000 },
    { do => 'screenshot', path => "$shots/logs-light.png" },
    { do => 'click', text => 'Denied', exact => JSON::PP::true },
    { do => 'wait_text', text => 'live-denied.example' },
    { do => 'scheme', value => 'dark' },
    { do => 'screenshot', path => "$shots/logs-dark.png" },
    { do => 'click', text => 'Status', exact => JSON::PP::true },
    { do => 'wait_text', text => 'paired devices' },
    { do => 'screenshot', path => "$shots/status-dark.png" },
    { do => 'text', selector => 'body' },
);
open my $sf, '>', $t->path('steps.json') or die $!;
print $sf encode_json(\@steps);
close $sf;

my $out = $t->path('browser.out');
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDOUT, '>', $out or exit 2;
    open STDERR, '>', $t->path('browser.err') or exit 2;
    $ENV{NODE_PATH} = join(":", grep { length } $ENV{NODE_PATH} // "", $npmroot);
    exec('node', $t->srcdir . '/t/tools/browser-steps.js', $t->path('steps.json')) or exit 2;
}
sub results {
    my @r;
    for (split /\n/, $t->read_file('browser.out') // '') {
        my $j = eval { decode_json($_) } or next;
        push @r, $j;
    }
    return @r;
}
sub step_done { my ($n) = @_; return grep { ($_->{step} // '') eq $n && $_->{ok} } results() }

# the page shows the log: a request the proxy denies now must appear
# there without a reload
ok(wait_until(sub { step_done(7) || grep({ !$_->{ok} } results()) }, kapd_tmo(60)),
   'the page paired and shows the log') or diag($t->read_file('browser.out'), $t->read_file('browser.err'));
my $px = tcp_connect($t->port('proxy'));
my $deny = http_raw($px, "CONNECT live-denied.example:443 HTTP/1.1\r\nHost: live-denied.example:443\r\n\r\n");
like($deny // '', qr{^HTTP/1\.1 403}, 'the proxy denies a request while the page is open');

my $st;
wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $? >> 8; 1 } }, kapd_tmo(120))
    or do { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 };
my @r = results();
is($st, 0, 'every browser step passed')
    or diag(join("\n", map { encode_json($_) } @r), $t->read_file('browser.err') // '');
my ($tok) = map { $_->{value} } grep { ($_->{step} // '') eq 3 } @r;
like($tok // '', qr/^\S{20,}$/, 'paired: a device token in localStorage');
my ($u) = map { $_->{value} } grep { ($_->{step} // '') eq 4 } @r;
ok(defined $u && $u !~ /\Q$secret\E/ && $u !~ /#/, 'the secret is gone from the address bar');
ok(!-e $t->path('state/pairing'), 'the pairing secret was used up');
ok(step_done(8), 'the denied request appeared in Logs without a reload');
ok(step_done(11), 'and under Denied');
ok(step_done(15), 'Status again, in dark');
my ($body) = map { $_->{value} } grep { ($_->{step} // '') eq 17 } @r;
like($body // '', qr/denied/i, 'Status shows the denied counter');
my ($end) = grep { ($_->{step} // '') eq 'end' } @r;
is_deeply($end ? $end->{page_errors} : ['no end line'], [], 'no script error in the page');
for my $f (qw/status-light logs-light logs-dark status-dark/) {
    ok(-s "$shots/$f.png" > 1000, "screenshot $f.png");
}
if (my $d = $ENV{KAP_SCREENSHOT_DIR}) {
    copy("$shots/$_.png", "$d/remote-$_.png") for qw/status-light logs-light logs-dark status-dark/;
}
$t->finish;
