#!/usr/bin/perl
# 615-capsule-ask.t -- `kap run --ask`: the capsule's kapd forwards a
# question no rule answers over the channel (module "channel") to a kapd
# on the host, where test_hooks stands in for the human: the request in
# the capsule waits and completes when the human allows it, is refused
# with the reason when the human denies, and is refused when nobody
# answers within --ask-timeout (fail closed).  The capsule is named after
# its project directory on the host, which authenticates it with the
# shared secret; kap run refuses --ask with the fix when no host kapd
# listens.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t, 'curl');
my $h = Test::Kapd->new->has_kapd->has_module(qw/channel test_hooks/);
my $dir = $t->testdir;
$t->plan(14);

# the host side: ~/.kap/host of the capsule's user
my $hdir = "$dir/home/.kap/host";
for my $d ("$dir/home", "$dir/home/.kap", $hdir) { mkdir $d, 0700; chmod 0700, $d; }
my $secret = join('', map { sprintf '%02x', int rand 256 } 1 .. 32);
$t->write_file('home/.kap/host/secret', "$secret\n");
chmod 0600, "$hdir/secret";
my $sock = "$hdir/channel.sock";
mkdir "$dir/my-proj", 0755;

sub host_conf {
    my ($answer) = @_;
    return <<"EOF2";
kapd: { load = ["channel", "test_hooks"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "test_hooks", "channel"]; }; };
audit_log: { path = "audit.jsonl"; };
channel: { listen = ["unix:$sock"];
           capsules = ( { name = "my-proj"; secret_file = "$hdir/secret"; } ); };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; kinds = ["http"];
              audit_file = "hooks.log"; $answer };
EOF2
}

my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns2'), zone => {
    map { ("$_.test" => ['A 127.0.0.2']) } qw/asked denied slow/
});
$t->write_file_expand('ask.conf', <<'EOF2');
network: { allow = ["127.0.0.2:%%PORT_origin%%"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns2%%"]; };
http_connect: { };
dns: { };
EOF2
$t->write_file_expand('my-proj/probe.sh', <<'EOF2');
t0=$(date +%s%N)
code=$(curl -s -o body -w '%{http_code}' --max-time 20 "http://$1:%%PORT_origin%%/")
t1=$(date +%s%N)
echo "code=$code"
echo "ms=$(( (t1 - t0) / 1000000 ))"
echo "body=$(tr '\n' ' ' < body)"
EOF2

sub ask {
    my ($name, @opt) = @_;
    my $r = $c->run({ cwd => "$dir/my-proj", tag => $name }, '--ask', @opt,
                    '-c', "$dir/ask.conf", '--', 'sh', 'probe.sh', $name);
    return ($r, Test::Kapd::Capsule::kv($r->{out}));
}

# -- no host kapd: refused with the fix --------------------------------------
my ($r, $kv) = ask('asked.test');
isnt($r->{rc}, 0, 'kap run --ask without a host kapd: refused');
like($r->{err}, qr/--ask: no host kapd listens on \S+channel\.sock/,
     'saying where it looked');

# -- the human allows, after a wait -----------------------------------------
$h->write_conf(host_conf('answer = "wait"; wait = 0.5; after_wait = "allow";'));
$h->run;
($r, $kv) = ask('asked.test');
is($kv->{code}, '200', 'a name no rule answers: the host allowed it, curl got 200')
    or diag($r->{err});
ok(($kv->{ms} // 0) >= 450, "the request waited for the human ($kv->{ms} ms)");
is($origin->connections, 1, 'the origin was reached once');
my @ha = $h->wait_audit(sub { grep { ($_->{subject} // '') eq 'asked.test'
                                     && ($_->{decided_by} // '') eq 'test_hooks' } @_ });
my ($hd) = grep { ($_->{subject} // '') eq 'asked.test'
                  && ($_->{decided_by} // '') eq 'test_hooks' } @ha;
ok($hd && ($hd->{capsule} // '') eq 'my-proj' && $hd->{action} eq 'allowed',
   'host audit: the question came from capsule "my-proj" (the project directory)');
like($h->read_file('error.log') // '', qr/capsule "my-proj" connected/,
     'the host authenticated the capsule with the shared secret');

# -- the human denies ---------------------------------------------------------
$h->write_conf(host_conf('answer = "deny";'));
like($h->reload // '', qr/reloaded/, 'host: the human now denies');
($r, $kv) = ask('denied.test');
is($kv->{code}, '403', 'denied by the host: 403') or diag($r->{err});
like($kv->{body} // '', qr/denied by the host/, 'with the reason');

# -- nobody answers: --ask-timeout denies -----------------------------------------
$h->write_conf(host_conf('answer = "wait"; wait = 30; after_wait = "allow";'));
like($h->reload // '', qr/reloaded/, 'host: the human does not answer');
($r, $kv) = ask('slow.test', '--ask-timeout', '2');
is($kv->{code}, '403', 'no answer in time: 403 (fails closed)') or diag($r->{err});
like($kv->{body} // '', qr/no answer from the host within 2 s/, 'saying why');
ok(($kv->{ms} // 0) >= 1800 && ($kv->{ms} // 1e9) < 10000,
   "after the timeout ($kv->{ms} ms)");

$h->finish_quiet;
$t->done_testing;
