#!/usr/bin/perl
# 530-remote-browser.t -- the remote page in a real headless browser
# (Debian's chromium driven by playwright-core: t/tools/browser-steps.js),
# phone-sized, against a real kapd that serves the remote module and an
# http_connect proxy whose audit log the page shows.
#
# Checked: opening the QR code's URL pairs the browser (a device token in
# localStorage, the secret gone from the address bar); Status shows kapd
# up and the counters; Logs go live over WS /ws/logs, and a request the
# proxy denies while the page is open appears there at once (before the
# page's own 5 s refresh), and under Denied; the page works in
# light and dark; the page raises no script error.  Screenshots of each
# view, light and dark, are kept in the test's directory (and copied to
# KAP_SCREENSHOT_DIR when it is set: docs/screenshots for the README).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Browser;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('remote')->has_module('http_connect');
my $b = Test::Kapd::Browser->new($t);
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

my $secret = $b->pairing_secret('state');
my $shots = $b->shots;
my $url = "http://127.0.0.1:$port/";
my @steps = (
    { do => 'goto', url => "$url#s=$secret" },
    { do => 'wait_text', text => 'paired devices', timeout => 20000 },
    { do => 'storage', key => 'kap_remote_token' },
    { do => 'url' },
    { do => 'screenshot', path => "$shots/status-light.png" },
    { do => 'click', text => 'Logs', exact => JSON::PP::true },
    { do => 'wait_text', text => 'before.example' },
    # the WebSocket is up: the page says "live"
    { do => 'wait_text', text => 'live', exact => JSON::PP::true, timeout => 20000 },
    # the test sends a denied request now (it watches for this step); it
    # must appear before the page's 5 s refresh could have fetched it
    { do => 'wait_text', text => 'live-denied.example', timeout => 4000 },
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
$b->start(\@steps);

# the page shows the log: a request the proxy denies now must appear
# there without a reload
ok($b->wait_step(8, 60), 'the page paired, shows the log and is live over WS /ws/logs')
    or diag($b->diag_all);
my $px = tcp_connect($t->port('proxy'));
my $deny = http_raw($px, "CONNECT live-denied.example:443 HTTP/1.1\r\nHost: live-denied.example:443\r\n\r\n");
like($deny // '', qr{^HTTP/1\.1 403}, 'the proxy denies a request while the page is open');

is($b->finish(120), 0, 'every browser step passed') or diag($b->diag_all);
like($b->value(3) // '', qr/^\S{20,}$/, 'paired: a device token in localStorage');
my $u = $b->value(4);
ok(defined $u && $u !~ /\Q$secret\E/ && $u !~ /#/, 'the secret is gone from the address bar');
ok(!-e $t->path('state/pairing'), 'the pairing secret was used up');
ok($b->done(9), 'the denied request appeared in Logs at once, pushed over the WebSocket');
ok($b->done(12), 'and under Denied');
ok($b->done(16), 'Status again, in dark');
like($b->value(18) // '', qr/denied/i, 'Status shows the denied counter');
is_deeply($b->page_errors, [], 'no script error in the page');
for my $f (qw/status-light logs-light logs-dark status-dark/) {
    ok(-s "$shots/$f.png" > 1000, "screenshot $f.png");
}
$b->keep_shots('remote-', qw/status-light logs-light logs-dark status-dark/);
$t->finish;
