#!/usr/bin/perl
# 400-cli-proxy.t -- the cli module's proxy mode end to end, over real
# sockets, with a fake tool (t/tools/fake-cli, profile fake-cli.prof)
# that records its argv, cwd and environment.
#
# A call is canonicalised and decided with the tool's profile and rules,
# asked and audited on the core's policy chain ("cli" questions), and the
# CANONICAL argv runs in an isolated environment and per-call home; stdout
# and stderr come back as separate frames, then the exact exit status or
# 128+signal.  Covered: stdin; large output; the output cap and the wall
# time kill the process group; a client that leaves kills it too; denied
# calls exit 126 with one stderr line naming the command, the reason and
# a rule that would allow it; the concurrency limit; cwd mapped into the
# workspace and refused outside it; secrets never in the error log or the
# audit (redacted from the argv); a reload changes the rules live.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Socket::INET;
use IO::Select;
use File::Copy qw(copy);
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('cli')->has_module('test_hooks');
$t->plan(87);

# the fake tool and its profile, in directories only we can write
mkdir $t->path('bin'), 0755;
copy($t->srcdir . '/t/tools/fake-cli', $t->path('bin/fake')) or die $!;
chmod 0755, $t->path('bin/fake');
copy($t->srcdir . '/t/tools/fake-cli.prof', $t->path('fake.prof')) or die $!;
mkdir $t->path('ws'), 0755;
mkdir $t->path('ws/repo'), 0755;
symlink('/etc', $t->path('ws/out'));
mkdir $t->path('homes'), 0700;
my $log = $t->path('calls.log');
my $secret = 'sEcReT-token-0123456789abcdef';
$ENV{KAPD_LEAK} = 'kapd-environment-must-not-leak';

sub conf {
    my (%o) = @_;
    my $allow = $o{allow} // '"echo **", "err", "exit *", "kill *", "cat", '
        . '"big *", "sleep", "pwd", "env"';
    my $deny = $o{deny} // '"echo bad"';
    my $lim = $o{limits} // 'wall_time = "3s"; max_output = "1M"; concurrency = 2;';
    my $cwd = $o{cwd} // 'home';
    my $prof = $o{profile} // 'fake.prof';
    my $ask = $o{ask} // '';
    # after cli on the chain: what a human would answer to an ask rule
    my $hooks = $o{hooks} // 'answer = "decline";';
    my $pol = $o{default} ? "policy = { default = \"$o{default}\"; };" : '';
    return <<"EOF2";
kapd: {
    load = ["cli", "test_hooks"]; $pol
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
audit_log: { path = "audit.jsonl"; };
test_hooks: { kinds = ["cli"]; $hooks };
cli: {
    listen = ["127.0.0.1:%%PORT_cli%%"];
    workspace = "ws";
    home_dir = "homes";
    tools = (
        { name = "fake"; path = "%%TESTDIR%%/bin/fake"; profile = "$prof";
          env = [ "FAKE_TOKEN=$secret", "FAKE_CLI_LOG=$log" ];
          allow = [ $allow ]; deny = [ $deny ]; ask = [ $ask ];
          cwd = "$cwd"; $lim }
    );
};
EOF2
}

$t->write_conf(conf());
ok($t->try_run, 'kapd runs a proxy-mode tool') or diag($t->{run_error});
my $port = $t->port('cli');

# call(args, %o): POST /fake; returns { status, out, err, exit, why,
# frames => [[id, bytes]], raw }
sub call {
    my ($args, %o) = @_;
    my $body = encode_json({ args => $args,
                             defined $o{cwd} ? (cwd => $o{cwd}) : () });
    my $stdin = $o{stdin} // '';
    my $req = "POST /fake HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\n"
        . (length $stdin ? "Kap-Stdin: " . length($stdin) . "\r\n" : '')
        . "Content-Length: " . (length($body) + length($stdin))
        . "\r\n\r\n$body$stdin";
    my $raw = http_raw("127.0.0.1:$port", $req, timeout => $o{timeout} // 10);
    my $p = http_parse($raw) // { status => 0, body => '' };
    my %r = (status => $p->{status}, out => '', err => '', frames => [],
             raw => $raw, ctype => $p->{headers}{'content-type'} // '');
    my $b = $p->{body};
    while (length($b) >= 5) {
        my ($id, $n) = unpack('a1 N', $b);
        my $d = substr($b, 5, $n);
        substr($b, 0, 5 + $n) = '';
        push @{$r{frames}}, [$id, $d];
        $r{out} .= $d if $id eq "\x01";
        $r{err} .= $d if $id eq "\x02";
        ($r{exit}, $r{why}) = $d =~ /^(\d+) (\S+)/ if $id eq 'x';
    }
    $r{rest} = $b;
    return \%r;
}

# start_sleep(): a "sleep" call left running; (socket, what it read)
sub start_sleep {
    my $s = tcp_connect("127.0.0.1:$port") or die;
    my $body = encode_json({ args => ['sleep'] });
    print $s "POST /fake HTTP/1.1\r\nHost: x\r\nContent-Length: "
        . length($body) . "\r\n\r\n$body";
    my $got = '';
    my $sel = IO::Select->new($s);
    wait_until(sub {
        if ($sel->can_read(0.05)) {
            my $n = sysread($s, my $c, 4096);
            $got .= $c if $n;
        }
        return $got =~ /started/;
    }, 5);
    return ($s, $got);
}

sub last_call {
    my @c = split /^end\n/m, $t->read_file('calls.log') // '';
    return $c[-1] // '';
}

# ---- stdout, stderr, exit status ----------------------------------------
my $r = call(['echo', 'a b', 'c']);
is($r->{status}, 200, 'a proxy call: 200');
is($r->{ctype}, 'application/x-kap-cli', 'framed content type');
is($r->{out}, "a b|c\n", 'stdout comes back as stdout frames');
is($r->{err}, '', 'no stderr');
is($r->{exit}, 0, 'exit status 0');
is($r->{frames}[-1][0], 'x', 'the exit frame is last');
is($r->{rest}, '', 'nothing after it');

$r = call(['err']);
is($r->{out}, "out-1\nout-2\n", 'stdout separate');
is($r->{err}, "err-1\nerr-2\n", 'stderr separate');

$r = call(['exit', '42']);
is($r->{exit}, 42, 'the exact exit status (42)');
is($r->{why}, 'exited', 'it exited');
$r = call(['kill', 'TERM']);
is($r->{exit}, 128 + 15, 'a death by SIGTERM is 143');
is($r->{why}, 'signal', 'by a signal');

# ---- the canonical argv is what runs -----------------------------------
$r = call(['-v', 'echo', '-n', 'ok', 'x']);
is($r->{exit}, 0, 'short flags before and after the command: allowed');
like(last_call(), qr/^argv: \[echo\] \[--verbose\] \[--name=ok\] \[x\]$/m,
     'the tool got the canonical argv') or diag(last_call());

# ---- isolation ---------------------------------------------------------------
$r = call(['env']);
my %env = $r->{out} =~ /^(\w+)=(.*)$/mg;
like($env{HOME}, qr{^\Q${\$t->path('homes')}\E/}, 'HOME is a per-call home under home_dir');
ok(!-e $env{HOME}, 'removed after the call');
is($env{KAPD_LEAK}, '', "kapd's environment does not reach the tool");
is($env{TOKEN_LEN}, length $secret, 'the configured credential does');
$r = call(['pwd']);
like($r->{out}, qr{^\Q${\$t->path('homes')}\E/}, 'cwd = "home": the per-call home');

# ---- stdin, large output, limits ------------------------------------------
my $in = join('', map { chr($_ % 256) } 0 .. 70000);
$r = call(['cat'], stdin => $in);
is(length $r->{out}, length $in, 'stdin (binary, 70 001 bytes) reaches the tool');
ok($r->{out} eq $in, 'byte for byte');
$r = call(['big', '900000']);
is(length $r->{out}, 900000, 'large output in full');
is($r->{exit}, 0, 'and exit 0');
$r = call(['big', '3000000']);
is(length $r->{out}, 1024 * 1024, 'max_output: exactly the cap is delivered');
is($r->{why}, 'output-limit', 'then the group is killed');
is($r->{exit}, 137, 'SIGKILL: 137');

sub gone { my $p = shift; !kill(0, $p) }
unlink "$log.bg";
my $t0 = time;
$r = call(['sleep'], timeout => 15);
is($r->{why}, 'timeout', 'wall_time ends a call');
ok(time - $t0 < 10, 'within the wall time and the drain');
my ($bg) = ($t->read_file('calls.log.bg') // '') =~ /(\d+)/;
ok($bg && wait_until(sub { gone($bg) }, 5), 'its background child was killed too');

# ---- a client that leaves kills the group ------------------------------------
unlink "$log.bg";
{
    my ($s, $got) = start_sleep();
    like($got, qr/started/, 'a long call streams its first output');
    my ($leader) = last_call() =~ /^pid: (\d+)/m;
    ($bg) = ($t->read_file('calls.log.bg') // '') =~ /(\d+)/;
    close $s;
    ok($leader && wait_until(sub { gone($leader) }, 5),
       'the client left: the tool was killed');
    ok($bg && wait_until(sub { gone($bg) }, 5), 'and its background child');
}

# ---- denials ---------------------------------------------------------------
$r = call(['echo', 'bad', 'x']);
is($r->{exit}, 126, 'a deny rule: exit 126');
is($r->{out}, '', 'nothing on stdout');
like($r->{err}, qr/^kap: fake echo bad x: denied: deny-rule: echo bad\n\z/,
     'one stderr line: command and reason') or diag($r->{err});
$r = call(['secret']);
is($r->{exit}, 126, 'a sensitive command is not reached by a wildcard');
$r = call(['env', 'x']);
is($r->{exit}, 126, 'a word no rule allows: 126');
like($r->{err}, qr/^kap: fake env x: denied: no-allow-rule \(a rule that would allow it: "env x"\)\n\z/,
     'the line says which rule would allow it') or diag($r->{err});
$r = call(['--user', 'x', 'echo']);
is($r->{exit}, 126, 'an unknown global flag: 126');
like($r->{err}, qr/unknown-global-flag --user/, 'says so');
$r = call(['nope']);
like($r->{err}, qr/unknown-command nope/, 'an unknown command word');
$r = call(['echo', "$secret"]);
is($r->{exit}, 0, 'a call with the secret as an argument runs');

# ---- cwd ---------------------------------------------------------------------
$t->write_conf(conf(cwd => 'workspace'));
like($t->reload // '', qr/reloaded/, 'reload: cwd = "workspace"');
$r = call(['pwd'], cwd => '/workspace/repo');
is($r->{out}, $t->path('ws/repo') . "\n", 'the capsule cwd mapped to the workspace');
$r = call(['pwd'], cwd => '/etc');
is($r->{exit}, 126, 'a cwd outside the capsule workspace: denied');
$r = call(['pwd'], cwd => '/workspace/out');
is($r->{exit}, 126, 'a symlink out of the workspace: denied');
like($r->{err}, qr/leaves the workspace/, 'says so');

# ---- concurrency ----------------------------------------------------------------
$t->write_conf(conf(limits => 'wall_time = "20s"; concurrency = 1;'));
like($t->reload // '', qr/reloaded/, 'reload: concurrency 1');
{
    my ($s, $got) = start_sleep();
    $r = call(['echo', 'x']);
    is($r->{exit}, 126, 'over the concurrency limit: 126');
    like($r->{err}, qr/concurrency limit/, 'says so');
    close $s;
}

# ---- reload changes the rules live ------------------------------------------
$t->write_conf(conf(allow => '"echo *"', deny => '"err"'));
like($t->reload // '', qr/reloaded/, 'reload with other rules');
is(call(['exit', '3'])->{exit}, 126, 'exit is no longer allowed');
is(call(['echo', 'x'])->{exit}, 0, 'echo still is');
$t->write_conf(conf(allow => '"echo nosuchflag --zzz"'));
like($t->reload // '', qr/reload failed/, 'a rule the profile cannot read fails the reload');
like($t->error_log, qr/allow rule "echo nosuchflag --zzz".*kap\.conf:\d+/,
     'at file:line');
is(call(['echo', 'x'])->{exit}, 0, 'the old rules stay');

# ---- the installed tool must be the version its profile was read from --------
sub asked { my $a = $t->read_file('bin/fake.asked') // ''; return () = $a =~ /^asked$/mg }
sub profile_with {
    my ($name, $edit) = @_;
    my $p = $t->read_file('fake.prof');
    $edit->() for $p;
    $t->write_file($name, $p);
}
my $asked = asked();
ok($asked >= 1, "the tool's version was asked when it was loaded");
$t->write_conf(conf(allow => '"echo *"'));
like($t->reload // '', qr/reloaded/, 'reload, same binary');
is(asked(), $asked, 'a binary that passed is not run again on reload');
utime(undef, undef, $t->path('bin/fake'));
$t->write_conf(conf(allow => '"echo *"', deny => '"echo no"'));
like($t->reload // '', qr/reloaded/, 'reload after the binary changed');
is(asked(), $asked + 1, 'a changed binary is asked again');
profile_with('new.prof', sub { s/^version .*$/version 1.5.0/m });
$t->write_conf(conf(profile => 'new.prof'));
like($t->reload // '', qr/reload failed/, 'a profile of another version fails the reload');
like($t->error_log, qr/tool "fake": \S+bin\/fake is not version 1\.5\.0 of its profile \(it says "fake-cli version 1\.4\.2"\).*kap\.conf:\d+/,
     'says which version, what the tool says, at file:line');
is(call(['echo', 'x'])->{exit}, 0, 'the old tool keeps serving');
profile_with('nover.prof', sub { s/^versioncmd .*\n//m });
$t->write_conf(conf(profile => 'nover.prof'));
like($t->reload // '', qr/reload failed/, 'a profile without versioncmd fails the reload');
like($t->error_log, qr/profile fake records no version and versioncmd/, 'says what to add');

# ---- ask rules: a human decides (here test_hooks, after cli on the chain) ----
$t->write_conf(conf(allow => '"echo **"', deny => '"echo bad"',
                    ask => '"exit *", "echo ask **", "echo bad"', default => 'allow'));
like($t->reload // '', qr/reloaded/, 'reload with ask rules and policy.default = allow');
$r = call(['exit', '3']);
is($r->{exit}, 126, 'ask, and nobody after cli answers: denied (even with policy.default = allow)');
like($r->{err}, qr/a human must decide and nobody was asked/, '... saying so');
my @nd = $t->wait_audit(sub { grep { ($_->{detail} // '') eq 'fake exit 3'
                                     && ($_->{cli_verdict} // '') eq 'ask' } @_ });
is(join(',', map { $_->{action} } grep { ($_->{detail} // '') eq 'fake exit 3'
                                         && ($_->{cli_verdict} // '') eq 'ask' } @nd),
   'denied', '... and audited as denied, once');
$t->write_conf(conf(allow => '"echo **"', deny => '"echo bad"',
                    ask => '"exit *", "echo ask **", "echo bad"',
                    hooks => 'answer = "wait"; wait = 0.3; after_wait = "allow";'));
like($t->reload // '', qr/reloaded/, 'reload: a human who answers allow');
$r = call(['exit', '3']);
is($r->{exit}, 3, 'a call no allow rule covers but an ask rule does: asked, allowed, run');
my @ad = $t->wait_audit(sub { grep { ($_->{event} // '') eq 'decision'
                                     && ($_->{detail} // '') eq 'fake exit 3'
                                     && ($_->{action} // '') eq 'allowed' } @_ });
my ($ask_d) = grep { ($_->{detail} // '') eq 'fake exit 3' && ($_->{action} // '') eq 'allowed' } @ad;
ok($ask_d && ($ask_d->{decided_by} // '') eq 'test_hooks',
   'the decision is the answerer\'s, audited once by the core') or diag(explain(\@ad));
is(call(['echo', 'ask', 'x'])->{out}, "ask|x\n", 'an ask rule inside what allow covers: asked, then run');
is(call(['echo', 'bad'])->{exit}, 126, 'deny wins over ask (never asked)');
$t->write_conf(conf(allow => '"echo **"', deny => '"echo bad"',
                    ask => '"exit *", "echo ask **"',
                    hooks => 'answer = "wait"; wait = 0.3; after_wait = "deny";'));
like($t->reload // '', qr/reloaded/, 'reload: a human who answers deny');
$r = call(['echo', 'ask', 'y']);
is($r->{exit}, 126, 'denied by the human: 126');
unlike($r->{out}, qr/ask/, 'and it did not run');
is(call(['echo', 'plain'])->{out}, "plain\n", 'a call only allow covers is not asked');

# ---- audit and logs ----------------------------------------------------------
my @a = $t->wait_audit(sub { grep { ($_->{event} // '') eq 'cli_exit'
                                      && ($_->{exit} // -1) == 42 } @_ });
my ($d) = grep { ($_->{event} // '') eq 'decision' && ($_->{detail} // '') eq 'fake exit 42' } @a;
ok($d && $d->{action} eq 'allowed' && $d->{decided_by} eq 'cli',
   'the decision is audited by the core, decided by cli') or diag(explain($d));
my ($e) = grep { ($_->{event} // '') eq 'cli_exit' && ($_->{exit} // -1) == 42 } @a;
ok($e && defined $e->{duration} && $e->{bytes_out} == 0,
   'the end: exit, duration, bytes') or diag(explain($e));
($d) = grep { ($_->{event} // '') eq 'decision' && ($_->{detail} // '') =~ /^fake echo bad/ } @a;
ok($d && $d->{action} eq 'denied' && $d->{reason} =~ /deny-rule: echo bad/,
   'a denial audited with its reason');
my $all = $t->read_file('audit.jsonl') . $t->error_log;
unlike($all, qr/\Q$secret\E/, 'the secret is in neither the audit nor the error log');
like($t->read_file('audit.jsonl'), qr/fake echo \[REDACTED\]/, 'the argv is redacted');

# kap why-denied shows a cli denial with the command and a rule that
# would allow it, in the daemon's words
my $kap = $t->builddir . '/kap';
my $wd = -x $kap ? qx{sh '$kap' why-denied --log '${\$t->path('audit.jsonl')}' 2>&1} : '';
like($wd, qr/cli\s+fake env x  no-allow-rule\n\s+-> cli tool fake: a rule that would allow it: "env x"/,
     'kap why-denied: the command and a rule that would allow it') or diag($wd);

$t->allow_log(qr/reload|allow rule|client went away/);
$t->stop;
$t->finish;
