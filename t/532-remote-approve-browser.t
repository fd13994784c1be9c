#!/usr/bin/perl
# 532-remote-approve-browser.t -- approve a waiting request from the
# phone, in a real headless browser (Debian's chromium through
# playwright-core, t/lib/Test/Kapd/Browser.pm): `kap remote start` runs
# the host kapd; the browser opens the QR code's URL and pairs; a capsule
# (`kap run --ask`) asks for a name no rule answers, and its curl waits;
# the question appears in the page's Approvals view; a tap on "Allow
# once" lets the capsule's curl complete (200), and a tap on "Deny" for
# the next one makes it 403.  Screenshots of the waiting question, light
# and dark.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::Browser;
use Test::Kapd::Capsule;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use JSON::PP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t, 'curl');
$t->has_module(qw/remote channel/);
my $b = Test::Kapd::Browser->new($t);
my $k = Test::KapInit->new($t);
$t->plan(12);
my $dir = $t->testdir;
my $bd = $t->builddir;
my $rdir = "$dir/remote";
my $port = $t->port('remote');
my $env = { KAPD => "$bd/kapd", KAP_QR => "$bd/kap-qr",
            KAP_MODULE_PATH => $t->module_path, KAP_REMOTE_DIR => $rdir };

# ---- the host ----------------------------------------------------------------------
my $r = $k->kap({ env => $env }, 'remote', 'start', '--listen', "127.0.0.1:$port",
                '--ask-timeout', int(kapd_tmo(60)));
is($r->{rc}, 0, 'kap remote start: exit 0') or diag($r->{err});
my $pid = do { local (@ARGV, $/) = ("$rdir/kapd.pid"); <> } // '';
chomp $pid;
END { kill 'TERM', $pid if $pid && $pid =~ /^\d+$/ && kill 0, $pid }
my ($url) = $r->{out} =~ m{^(http://\S+/#s=[0-9a-f]{32})$}m;
ok($url, 'it prints the pairing URL') or diag($r->{out});
$url =~ s{^http://[^/]+/}{http://127.0.0.1:$port/} if $url;

# ---- a capsule whose curl will wait on the host -------------------------------------
my $o = $t->port('origin');
Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns2'), zone => {
    map { ("$_.test" => ['A 127.0.0.2']) } qw/tap-once tap-deny/
});
$t->write_file_expand('ask.conf', <<'EOF2');
network: { allow = ["127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns2%%"]; };
http_connect: { };
dns: { };
EOF2
mkdir "$dir/phone-proj", 0755;
$t->write_file_expand('phone-proj/probe.sh', <<'EOF2');
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 "http://$1:%%PORT_origin%%/")
echo "code=$code"
EOF2
my $n = 0;
sub ask_bg {
    my ($name) = @_;
    my $tag = 'ask' . ++$n;
    my $p = $c->run({ cwd => "$dir/phone-proj", tag => $tag, bg => 1 }, '--ask',
                    '-c', "$dir/ask.conf", '--', 'sh', 'probe.sh', $name);
    return { pid => $p, tag => $tag };
}
sub ask_wait {
    my ($a) = @_;
    wait_until(sub { waitpid($a->{pid}, WNOHANG) == $a->{pid} }, kapd_tmo(120))
        or do { kill 'KILL', $a->{pid}; waitpid($a->{pid}, 0) };
    my $kv = Test::Kapd::Capsule::kv($t->read_file("$a->{tag}.out") // '');
    diag($t->read_file("$a->{tag}.err") // '') unless defined $kv->{code};
    return $kv;
}

# ---- the phone --------------------------------------------------------------------------
my $shots = $b->shots;
my @steps = (
    { do => 'goto', url => $url // "http://127.0.0.1:$port/" },          # 1
    { do => 'wait_text', text => 'paired devices', timeout => 20000 },  # 2
    { do => 'click', selector => '#t-asks' },                           # 3
    # the test starts the first capsule now
    { do => 'wait_text', text => 'tap-once.test', timeout => 90000 },   # 4
    { do => 'screenshot', path => "$shots/approve-light.png" },         # 5
    { do => 'click', text => 'Allow once', exact => JSON::PP::true },   # 6
    { do => 'wait_gone', text => 'tap-once.test', timeout => 30000 },   # 7
    # and the second one now
    { do => 'scheme', value => 'dark' },                                # 8
    { do => 'wait_text', text => 'tap-deny.test', timeout => 90000 },   # 9
    { do => 'text', selector => 'main' },                               # 10
    { do => 'screenshot', path => "$shots/approve-dark.png" },          # 11
    { do => 'click', text => 'Deny', exact => JSON::PP::true },         # 12
    { do => 'wait_gone', text => 'tap-deny.test', timeout => 30000 },   # 13
    { do => 'wait_text', text => 'Nothing is waiting for an answer.' }, # 14
);
$b->start(\@steps);
ok($b->wait_step(3, 90), 'the phone paired and opened Approvals') or diag($b->diag_all);
my $a = ask_bg('tap-once.test');
ok($b->wait_step(6, 120), 'the waiting question appeared and was allowed once')
    or diag($b->diag_all);
is(ask_wait($a)->{code}, '200', 'the capsule\'s curl completes after the tap: 200');
ok($b->wait_step(8, 60), 'the question left the page');
$a = ask_bg('tap-deny.test');
ok($b->wait_step(12, 120), 'the next question appeared and was denied') or diag($b->diag_all);
unlike($b->value(10) // '', qr/Nothing is waiting/, 'while it waits, the page does not say nothing is waiting');
is(ask_wait($a)->{code}, '403', 'the capsule\'s curl gets 403 after the tap');
is($b->finish(60), 0, 'every browser step passed') or diag($b->diag_all);
is_deeply($b->page_errors, [], 'no script error in the page');
ok(-s "$shots/approve-light.png" > 1000 && -s "$shots/approve-dark.png" > 1000,
   'screenshots of the waiting question, light and dark');
$b->keep_shots('remote-', qw/approve-light approve-dark/);
$t->finish;
