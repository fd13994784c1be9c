#!/usr/bin/perl
# 380-cli-direct.t -- the cli module's configuration and its direct mode,
# over real sockets (TCP loopback and a unix socket).
#
# A direct-mode tool's environment (its credentials: literal, ${VAR} from
# kapd's environment, a 0600 file through kap_secret, or, for a known
# tool without env, the table's names set in kapd's environment) comes
# back to POST /<tool> with a strict JSON body; non-string args, unknown
# keys, other methods and unknown tools are refused with JSON errors; no
# credential reaches the error log.  Config errors name file:line:
# proxy mode without rules suggests allow = ["**"], a proxy-mode tool
# without a profile is refused (only direct mode can serve it), a direct
# tool with rules is refused, and a binary in a directory others may write is
# refused.  A reload with a bad edit keeps the old tools.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('cli');
$t->plan(44);

# a fake tool outside any capsule directory (never run in direct mode,
# but its path must be safe)
my $bin = $t->write_file('bin/fake', "#!/bin/sh\nexit 0\n");
chmod 0755, $bin;
chmod 0755, $t->path('bin');
mkdir $t->path('secrets'), 0700;
my $tokf = $t->write_file('secrets/tok', "file-secret-ABCDEFGH\n");
chmod 0600, $tokf;
chmod 0700, $t->path('secrets');

$ENV{KAP_TEST_CLI_VAR} = 'env-secret-QRSTUVWX';
$ENV{GH_TOKEN} = 'gh-secret-0123456789';
delete $ENV{$_} for qw(GITHUB_TOKEN GH_ENTERPRISE_TOKEN GITHUB_ENTERPRISE_TOKEN);

my $head = <<'EOF2';
kapd: {
    load = ["cli"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
EOF2

sub conf_with {
    my ($tools) = @_;
    return $head . <<"EOF2";
cli: {
    listen = ["127.0.0.1:%%PORT_cli%%", "unix:cli.sock"];
    tools = ( $tools );
};
EOF2
}

my $good = <<'EOF2';
        { name = "fake"; mode = "direct"; path = "%%TESTDIR%%/bin/fake";
          env = [ "FAKE_TOKEN=literal-secret-1234567",
                  "FROM_ENV=${KAP_TEST_CLI_VAR}",
                  "FROM_FILE=file:secrets/tok" ]; },
        { name = "gh"; mode = "direct"; path = "/bin/true"; }
EOF2

# ---- config errors ----------------------------------------------------------

sub conf_error {
    my ($tools, $re, $name) = @_;
    $t->write_conf(conf_with($tools));
    my $r = $t->kapd_cmd('-t', '-c', $t->conf_path, '-p', $t->testdir);
    isnt($r->{rc}, 0, "$name: refused");
    like($r->{all}, $re, "$name: the message") or diag($r->{all});
}

conf_error('{ name = "x"; path = "/bin/true"; }',
           qr/allow = \["\*\*"\].*kap\.conf:\d+/,
           'proxy mode without rules suggests allow = ["**"] at file:line');
conf_error('{ name = "x"; path = "/bin/true"; allow = ["**"]; }',
           qr/no profile.*can only be mode = "direct"/,
           'a proxy-mode tool without a profile is refused');
conf_error('{ name = "x"; mode = "direct"; path = "/bin/true"; allow = ["**"]; }',
           qr/direct-mode tool.*allow\/deny/,
           'a direct tool with rules');
conf_error('{ name = "x"; mode = "direct"; path = "bin/fake"; }',
           qr/not absolute/, 'a relative path');
mkdir $t->path('open'), 0755;
chmod 0777, $t->path('open');
my $ob = $t->write_file('open/tool', "#!/bin/sh\n");
chmod 0755, $ob;
conf_error(qq{{ name = "x"; mode = "direct"; path = "$ob"; }},
           qr/writable by others.*could replace/,
           'a binary in a world-writable directory');
conf_error('{ name = "x"; mode = "direct"; path = "/bin/true"; env = ["A=${KAP_NO_SUCH_VAR_X}"]; }',
           qr/KAP_NO_SUCH_VAR_X.*not set/, 'an unset ${VAR}');
conf_error('{ name = "x"; mode = "direct"; path = "/bin/true"; env = ["1A=b"]; }',
           qr/NAME=value/, 'a bad variable name');
conf_error('{ name = "x"; mode = "direct"; path = "/bin/true"; }, '
           . '{ name = "x"; mode = "direct"; path = "/bin/true"; }',
           qr/defined twice/, 'a tool twice');

# ---- direct mode --------------------------------------------------------------

$t->write_conf(conf_with($good));
ok($t->try_run, 'kapd runs the cli module') or diag($t->{run_error});
my $port = $t->port('cli');

sub http {
    my ($sock, $req) = @_;
    print $sock $req;
    local $/;
    my $resp = <$sock> // '';
    my ($h, $b) = split /\r\n\r\n/, $resp, 2;
    my ($st) = ($h // '') =~ m{^HTTP/1\.1 (\d+)};
    return ($st // 0, $b // '', $h // '');
}

sub post {
    my ($path, $body, $unix) = @_;
    my $s = $unix
        ? IO::Socket::UNIX->new(Peer => $t->path('cli.sock'))
        : IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    die "connect: $!" unless $s;
    return http($s, "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  . "Content-Type: application/json\r\n"
                  . "Content-Length: " . length($body) . "\r\n\r\n$body");
}

my ($st, $b, $h) = post('/fake', '{"args":["pr","list"],"cwd":"/ws"}');
is($st, 200, 'POST /fake answers 200');
my $j = eval { decode_json($b) } // {};
is($j->{mode}, 'direct', 'mode direct');
is($j->{path}, $bin, 'the resolved path');
is($j->{env}{FAKE_TOKEN}, 'literal-secret-1234567', 'a literal credential');
is($j->{env}{FROM_ENV}, 'env-secret-QRSTUVWX', 'one from ${VAR}');
is($j->{env}{FROM_FILE}, 'file-secret-ABCDEFGH', 'one from a 0600 file');
is(scalar keys %{$j->{env}}, 3, 'nothing else');
like($h, qr/^Cache-Control: no-store/mi, 'not to be cached');

($st, $b) = post('/gh', '{"args":[]}', 1);
is($st, 200, 'POST /gh over the unix socket');
$j = eval { decode_json($b) } // {};
is_deeply($j->{env}, { GH_TOKEN => 'gh-secret-0123456789' },
          'a known tool without env: its table names set in kapd\'s env');
is($j->{path}, '/bin/true', 'its path');

($st, $b) = post('/fake', '{"args":["a",1]}');
is($st, 400, 'a non-string arg: 400');
like($b, qr/\\"args\\"\[1\] is not a string/, 'says which');
unlike($b, qr/secret/, 'and no credential');
($st, $b) = post('/fake', '{"args":["a"],"env":{"GH_TOKEN":"x"}}');
is($st, 400, 'an unknown key (the agent cannot set env): 400');
like($b, qr/unknown key/, 'says so');
($st, $b) = post('/fake', '{"args":["a"],"args":["b"]}');
is($st, 400, 'a duplicate key: 400');
($st, $b) = post('/fake', '{"cwd":"/"}');
is($st, 400, 'no args: 400');
($st, $b) = post('/fake', '["a"]');
is($st, 400, 'not an object: 400');
($st, $b) = post('/nope', '{"args":[]}');
is($st, 404, 'an unknown tool: 404');
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
($st) = http($s, "GET /fake HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
is($st, 405, 'GET: 405');

# ---- reload keeps the old tools on a bad edit -------------------------------
$t->write_conf(conf_with('{ name = "fake"; path = "/bin/true"; }'));
like($t->reload // '', qr/reload failed/, 'a bad edit: the reload fails');
like($t->error_log, qr/allow = \["\*\*"\]/, 'and says why');
($st, $b) = post('/fake', '{"args":[]}');
is($st, 200, 'after a bad edit the old tool still answers');
$j = eval { decode_json($b) } // {};
is($j->{env}{FAKE_TOKEN}, 'literal-secret-1234567', 'with its old env');

my $log = $t->error_log;
unlike($log, qr/literal-secret|env-secret|file-secret|gh-secret/,
       'no credential in the error log');
like($log, qr/direct tool fake: 3 variable/, 'the log says what was given');
$t->allow_log(qr/allow = \["\*\*"\]|reload/);
$t->stop;
$t->finish;
