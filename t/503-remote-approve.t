#!/usr/bin/perl
# 503-remote-approve.t -- approve from the phone, and `kap approve`:
# `kap remote start` runs the host kapd with the remote module as the
# last policy hook and the channel listener at ~/.kap/host/channel.sock;
# a capsule (`kap run --ask`) whose curl asks for a name no rule answers
# waits while the question shows in GET /api/asks (kind, subject,
# project, rule, remaining seconds); a paired device answers it through
# POST /api/asks/ID and the curl completes within a second (once), gets
# 403 (deny), or is allowed and the capsule keeps the answer (always:
# the next request is not asked); no answer before the host's
# --ask-timeout denies; `kap approve` lists and answers; the routes need
# a device token; ids and bodies are checked strictly; a late answer is
# 409; the host audit says which device answered.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::Capsule;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t, 'curl');
$t->has_module(qw/remote channel/);
my $k = Test::KapInit->new($t);
$t->plan(52);
my $dir = $t->testdir;
my $b = $t->builddir;
my $rdir = "$dir/remote";
my $port = $t->port('remote');
my $hto = int(kapd_tmo(8));
my $env = { KAPD => "$b/kapd", KAP_QR => "$b/kap-qr",
            KAP_MODULE_PATH => $t->module_path, KAP_REMOTE_DIR => $rdir };
sub mode { my @s = lstat $_[0]; return @s ? sprintf('%04o', $s[2] & 07777) : 'none' }

sub api {
    my ($method, $path, $tok, $body) = @_;
    my $raw = Test::Kapd::http_get($path, addr => "127.0.0.1:$port", method => $method,
        headers => [defined $tok ? ("Authorization: Bearer $tok") : (),
                    defined $body ? ('Content-Type: application/json') : ()],
        defined $body ? (body => $body) : ());
    my $r = Test::Kapd::http_parse($raw) // { status => 0, body => '' };
    $r->{json} = eval { decode_json($r->{body}) };
    return $r;
}

# ---- the host: kap remote start -------------------------------------------------
my $r = $k->kap({ env => $env }, 'remote', 'start', '--listen', "127.0.0.1:$port",
                '--ask-timeout', $hto);
is($r->{rc}, 0, 'kap remote start: exit 0') or diag($r->{err});
my $pid = do { local (@ARGV, $/) = ("$rdir/kapd.pid"); <> } // '';
chomp $pid;
END { kill 'TERM', $pid if $pid && $pid =~ /^\d+$/ && kill 0, $pid }
my ($secret) = $r->{out} =~ m{/#s=([0-9a-f]{32})$}m;
my $hdir = "$dir/home/.kap/host";
ok(-S "$hdir/channel.sock", 'it listens for capsules on ~/.kap/host/channel.sock');
is(mode("$hdir/secrets"), '0700', 'the capsules\' secrets directory is 0700');
is(mode("$rdir/approve.header"), '0600', 'kap approve was paired: its token file is 0600');
$r = api('POST', '/api/pair', $secret, encode_json({ name => 'phone' }));
my $tok = $r->{json}{token} // '';
my $devid = $r->{json}{device_id} // '';
is($r->{status}, 200, 'the QR code\'s secret still pairs a phone') or diag($r->{body});

# ---- auth and validation on the new routes -----------------------------------
is(api('GET', '/api/asks')->{status}, 401, 'GET /api/asks without a token: 401');
is(api('GET', '/api/asks', 'x' x 43)->{status}, 401, 'with an unknown token: 401');
is(api('POST', '/api/asks/0123456789abcdef', undef, '{"answer":"once"}')->{status}, 401,
   'POST /api/asks/ID without a token: 401');
$r = api('GET', '/api/asks', $tok);
is($r->{status}, 200, 'GET /api/asks with the device token: 200');
is_deeply($r->{json}, { asks => [] }, 'nothing waits yet');
is(api('POST', '/api/asks/0123456789abcdef', $tok, '{"answer":"once"}')->{status}, 404,
   'an unknown id: 404');
for my $bad ('0123456789ABCDEF', '0123', '0123456789abcdef0', '..%2f..%2fetc',
             '0123456789abcde;') {
    is(api('POST', "/api/asks/$bad", $tok, '{"answer":"once"}')->{status}, 400,
       "a bad id ($bad): 400");
}
for my $body ('', '{"answer":"yes"}', '{"answer":"once","x":1}', '["once"]',
              '{"answer":"once","answer":"deny"}') {
    is(api('POST', '/api/asks/0123456789abcdef', $tok, $body)->{status}, 400,
       "a bad body ('$body'): 400");
}
is(api('GET', '/api/asks/0123456789abcdef', $tok)->{status}, 405, 'GET /api/asks/ID: 405');

# ---- a capsule whose curl waits on the host ----------------------------------
my $o = $t->port('origin');
my $origin = Test::Kapd::FakeHTTP->new($t, port => $o, name => 'origin', addr => '127.0.0.2');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns2'), zone => {
    map { ("$_.test" => ['A 127.0.0.2']) } qw/once denied always slow term linked/
});
$t->write_file_expand('ask.conf', <<'EOF2');
# the project's policy: "allow always" adds to it on the host
network: { allow = ["127.0.0.2:%%PORT_origin%%"]; };   # the origin only
resolver: { upstream = ["127.0.0.1:%%PORT_dns2%%"]; };
http_connect: { };
dns: { };
EOF2
mkdir "$dir/my-proj", 0755;
$t->write_file_expand('my-proj/probe.sh', <<'EOF2');
code=$(curl -s -o body -w '%{http_code}' --max-time 60 "http://$1:%%PORT_origin%%/")
echo "code=$code"
echo "end=$(date +%s%N)"
echo "body=$(tr '\n' ' ' < body)"
EOF2

my $n = 0;
my $askconf = "$dir/ask.conf";
sub ask_bg {
    my ($name, @opt) = @_;
    my $tag = 'ask' . ++$n;
    my $p = $c->run({ cwd => "$dir/my-proj", tag => $tag, bg => 1 }, '--ask', @opt,
                    '-c', $askconf, '--', 'sh', 'probe.sh', $name);
    return { pid => $p, tag => $tag };
}
sub ask_wait {
    my ($a) = @_;
    my $st;
    wait_until(sub { waitpid($a->{pid}, WNOHANG) == $a->{pid} }, kapd_tmo(90))
        or do { kill 'KILL', $a->{pid}; waitpid($a->{pid}, 0) };
    my $out = $t->read_file("$a->{tag}.out") // '';
    my $kv = Test::Kapd::Capsule::kv($out);
    diag($t->read_file("$a->{tag}.err") // '') unless defined $kv->{code};
    return $kv;
}
# the pending question about subject, polled with a deadline
sub pending {
    my ($subject) = @_;
    my $q;
    wait_until(sub {
        my $l = api('GET', '/api/asks', $tok);
        ($q) = grep { $_->{subject} eq $subject } @{ $l->{json}{asks} // [] };
        $q }, kapd_tmo(30));
    return $q;
}

# -- allow once ---------------------------------------------------------------
my $a = ask_bg('once.test');
my $q = pending('once.test');
ok($q, 'the question shows in GET /api/asks while the capsule waits');
ok($q && $q->{id} =~ /^[0-9a-f]{16}$/ && $q->{kind} eq 'http' && $q->{port} == $o
   && ($q->{project} // '') eq 'my-proj' && $q->{rule} ne ''
   && $q->{remaining} > 0 && $q->{remaining} <= $hto,
   'with its id, kind, port, project, rule and remaining seconds')
    or diag(explain($q));
my $t0 = time;
$r = api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"once"}');
is($r->{status}, 200, 'POST /api/asks/ID {"answer":"once"}: 200') or diag($r->{body});
my $kv = ask_wait($a);
is($kv->{code}, '200', 'the capsule\'s curl completes: 200');
my $lag = ($kv->{end} // 0) / 1e9 - $t0;
ok($lag < kapd_tmo(1), sprintf('within a second of the answer (%.3f s)', $lag));
is(api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"deny"}')->{status}, 409,
   'answering it again: 409');
my @ev = $t->wait_audit(sub { grep { ($_->{event} // '') eq 'ask_answered' } @_ },
                        5, 'remote/audit.jsonl');
my ($ae) = grep { ($_->{event} // '') eq 'ask_answered' } @ev;
ok($ae && $ae->{device} eq $devid && $ae->{action} eq 'once' && $ae->{subject} eq 'once.test'
   && $ae->{capsule} eq 'my-proj', 'host audit: which device answered what')
    or diag(explain(\@ev));
is(mode("$hdir/secrets/my-proj"), '0600', 'kap run --ask made the capsule\'s secret (0600)');

# -- deny -------------------------------------------------------------------------
$a = ask_bg('denied.test');
$q = pending('denied.test');
is(api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"deny"}')->{status}, 200, 'deny: 200');
$kv = ask_wait($a);
is($kv->{code}, '403', 'denied from the phone: 403 in the capsule');
like($kv->{body} // '', qr/denied by device \Q$devid\E/, 'saying who denied it');

# -- always: the host adds the rule to the capsule's policy file ---------------------
my $conf0 = $t->read_file('ask.conf');
chmod 0640, "$dir/ask.conf";
$a = ask_bg('always.test');
$q = pending('always.test');
$r = api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"always"}');
is($r->{status}, 200, 'always: 200');
is($r->{json}{rule_file} // $r->{body}, "$dir/ask.conf:2", 'the answer says where the rule went');
is(ask_wait($a)->{code}, '200', 'allowed always: 200');
(my $conf1 = $conf0) =~ s/(allow = \["127\.0\.0\.2:$o")\]/$1, "always.test:$o"]/;
is($t->read_file('ask.conf'), $conf1,
   'the policy file got "always.test:PORT" in network.allow, its comments kept');
is(mode("$dir/ask.conf"), '0640', 'and its mode');
@ev = $t->wait_audit(sub { grep { ($_->{action} // '') eq 'always' } @_ }, 5, 'remote/audit.jsonl');
($ae) = grep { ($_->{action} // '') eq 'always' } @ev;
ok($ae && ($ae->{rule} // '') eq "always.test:$o" && ($ae->{rule_file} // '') eq "$dir/ask.conf:2",
   'host audit: the rule and its file:line') or diag(explain($ae));
# the capsule's own memory of the answer goes: the policy file answers now
my @alw = glob("$dir/home/.local/state/kap/always/*.txt");
ok(@alw && unlink(@alw) == @alw, 'the capsule\'s always_file removed');
$a = ask_bg('always.test');
$kv = ask_wait($a);
is($kv->{code}, '200', 'the next request to it is allowed ...');
is(scalar(@{ api('GET', '/api/asks', $tok)->{json}{asks} // [1] }), 0,
   '... without asking the host');

# -- a policy file the host does not write (a symlink): no rule, allowed anyway --------
my $conf2 = $t->read_file('ask.conf');
symlink "$dir/ask.conf", "$dir/link.conf" or die "symlink: $!";
$askconf = "$dir/link.conf";
$a = ask_bg('linked.test');
$q = pending('linked.test');
$r = api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"always"}');
like($r->{json}{rule_error} // '', qr/\Q$dir\E\/link\.conf: .*symbolic links/,
     'a policy file behind a symlink gets no rule, saying why') or diag($r->{body});
is(ask_wait($a)->{code}, '200', 'the request is allowed anyway');
is($t->read_file('ask.conf'), $conf2, 'and the file it points to is unchanged');
$askconf = "$dir/ask.conf";

# -- no answer: the host's timeout denies --------------------------------------
$a = ask_bg('slow.test', '--ask-timeout', 3 * $hto);
$q = pending('slow.test');
$kv = ask_wait($a);
is($kv->{code}, '403', "no answer within the host's --ask-timeout: 403");
like($kv->{body} // '', qr/no answer on the host within $hto s/, 'saying why');
is(api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"once"}')->{status}, 409,
   'an expired question: 409');

# -- kap approve ---------------------------------------------------------------------
$a = ask_bg('term.test');
$q = pending('term.test');
$r = $k->kap({ env => $env }, 'approve');
like($r->{out}, qr/^1\s+\Q$q->{id}\E\s+\d+s\s+http\s+term\.test:$o\s+my-proj\s/m,
     'kap approve lists the waiting question') or diag($r->{out}, $r->{err});
$r = $k->kap({ env => $env }, 'approve', '--once', $q->{id});
is($r->{rc}, 0, 'kap approve --once ID: exit 0') or diag($r->{err});
is(ask_wait($a)->{code}, '200', 'and the capsule\'s curl completes');
$r = $k->kap({ env => $env }, 'approve', '--deny', $q->{id});
like($r->{err}, qr/answered already \(409\)/, 'kap approve on an answered question says so');

$k->kap({ env => $env }, 'remote', 'stop');
$t->done_testing;
