#!/usr/bin/perl
# 404-cli-aws.t -- the real aws through the cli module, against a
# loopback fake of S3 (plain HTTP on 127.0.0.1; the endpoint is the
# guarded global --endpoint-url, which the allow rule names): first
# posted to kapd directly, then inside a `kap run` capsule through the
# aws shim.  `aws s3 ls` prints the fake's bucket and exits 0, a denied
# `aws s3 rm` (126) and an `s3 ls` at another endpoint (126) never reach
# the fake, the fake saw the access key kapd holds (the signature's
# Credential), and neither key is in the capsule.  Skipped without aws
# or without the aws profile built from it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeHTTP;
use Test::Kapd::Cli qw(cli_call);
use JSON::PP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/cli/);
my $prof = $t->builddir . '/modules/cli/aws.prof';
plan(skip_all => 'no aws profile (aws was not installed at build time)')
    unless -s $prof && grep { -x "$_/aws" } split /:/, $ENV{PATH};
$t->plan(16);
my $dir = $t->testdir;
my $key = 'AKIAKAPTESTKEY000001';
my $secret = 'kap-test-secret-key-0123456789abcdefABCD';
my $sport = $t->port('s3');
my $ep = "http://127.0.0.1:$sport";

my $s3 = Test::Kapd::FakeHTTP->new($t, port => $sport, name => 's3', handler => sub {
    my ($req) = @_;
    return (200, ['Content-Type' => 'application/xml'],
        '<?xml version="1.0" encoding="UTF-8"?>'
        . '<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        . '<Owner><ID>kap</ID><DisplayName>kap</DisplayName></Owner><Buckets>'
        . '<Bucket><Name>kap-bucket</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket>'
        . '</Buckets></ListAllMyBucketsResult>')
        if $req->{method} eq 'GET' && $req->{target} =~ m{^/(\?|$)};
    return (404, ['Content-Type' => 'application/xml'],
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
        . '<Message>no</Message></Error>');
});

my $tools = <<"EOF2";
    tools = (
        { name = "aws"; profile = "$prof";
          env = [ "AWS_ACCESS_KEY_ID=$key", "AWS_SECRET_ACCESS_KEY=$secret",
                  "AWS_DEFAULT_REGION=us-east-1" ];
          allow = [ "s3 ls --endpoint-url=$ep" ]; deny = [ "s3 rm" ]; }
    );
EOF2

# ---- posted to kapd ----------------------------------------------------------
$t->write_conf(<<"EOF2");
kapd: { load = ["cli"]; module_path = ["%%MODULE_PATH%%"]; error_log = "error.log"; };
cli: { listen = ["127.0.0.1:%%PORT_cli%%"];
$tools
};
EOF2
# kapd runs `aws --version` once at load (a Python start: about a second,
# far more on a loaded machine)
ok($t->try_run(timeout => 90), 'kapd serves aws in proxy mode (its version matches the profile)')
    or diag($t->{run_error});

sub call { return cli_call('127.0.0.1:' . $t->port('cli'), 'aws', [@_], timeout => 60) }
sub s3_requests {
    return map { decode_json($_) } split /\n/, $t->read_file('fakehttp-s3.requests') // '';
}
# the global flag before the command, as people write it: canonicalised
my $r = call('--endpoint-url', $ep, 's3', 'ls');
is($r->{exit}, 0, 'aws s3 ls: exit 0') or diag($r->{err});
like($r->{out}, qr/\bkap-bucket$/m, "the fake's bucket");
my $n = () = s3_requests();
$r = call('s3', 'rm', 's3://kap-bucket/x', '--endpoint-url', $ep);
is($r->{exit}, 126, 'aws s3 rm: denied');
$r = call('s3', 'ls', '--endpoint-url', "http://127.0.0.2:$sport");
is($r->{exit}, 126, 'aws s3 ls at another endpoint: denied (the endpoint is guarded)');
like($r->{err}, qr/no-allow-rule/, '... by the rules');
my @req = s3_requests();
is(scalar @req, $n, 'the denied calls never reached the fake');
ok((grep { my $h = $_->{headers}; grep { lc $_->[0] eq 'authorization' && $_->[1] =~ /Credential=\Q$key\E\// } @$h } @req),
   'the fake saw the access key kapd holds');
my $all = ($t->read_file('audit.jsonl') // '') . $t->error_log;
unlike($all, qr/\Q$secret\E/, 'the secret key is in neither the audit nor the error log');
$t->stop;

# ---- inside a kap run capsule ---------------------------------------------------
SKIP: {
    skip 'kap run capsules need root here (root-owned tool and profile)', 7 unless $> == 0;
    my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare/);
    $t->write_file('policy.conf', "kapd: { log_level = \"info\"; };\ncli: {\n$tools};\n");
    $t->write_file('capsule.sh', <<"EOF2");
aws s3 ls --endpoint-url $ep; echo "rc_ls=\$?"
aws s3 rm s3://kap-bucket/x --endpoint-url $ep 2> rm.err; echo "rc_rm=\$?"
echo "rm_line=\$(cat rm.err)"
echo "key_inside=\${AWS_ACCESS_KEY_ID:-none}"
echo "secret_inside=\${AWS_SECRET_ACCESS_KEY:-none}"
EOF2
    mkdir "$dir/home", 0700;
    mkdir "$dir/run", 0700;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        chdir $dir or exit 127;
        open STDOUT, '>', "$dir/kap.out";
        open STDERR, '>', "$dir/kap.err";
        $ENV{KAPD} = $t->binary;
        $ENV{KAP_SHIM} = $shim;
        $ENV{KAP_CLI_TEST} = $t->builddir . '/kap-cli-test';
        $ENV{KAP_MODULE_PATH} = $t->module_path;
        $ENV{HOME} = "$dir/home";
        $ENV{XDG_RUNTIME_DIR} = "$dir/run";
        delete $ENV{XDG_STATE_HOME};
        exec($sh, $kap, 'run', '-c', 'policy.conf', '--', 'sh', "$dir/capsule.sh") or exit 127;
    }
    my $st;
    wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } }, kapd_tmo(120))
        or do { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 };
    my $out = $t->read_file('kap.out') // '';
    my %kv = $out =~ /^(\w+)=(.*)$/mg;
    is($st, 0, 'kap run exits 0') or diag($t->read_file('kap.err'));
    like($out, qr/\bkap-bucket$/m, 'aws s3 ls in the capsule: the bucket');
    is($kv{rc_ls}, 0, 'exit 0');
    is($kv{rc_rm}, 126, 'aws s3 rm: 126');
    like($kv{rm_line} // '', qr/denied: deny-rule: s3 rm/, 'one line: the rule that denied it');
    is($kv{key_inside}, 'none', 'no access key in the capsule');
    is($kv{secret_inside}, 'none', 'no secret key in the capsule');
}
$t->finish;
