#!/usr/bin/perl
# 305-mcp-locked.t -- mcp.locked (kap run sets it: the policy file comes
# from the agent's side): a server's url, headers and ca_file in the file
# are refused with file:line (a project naming an evil url, or a header
# "${HOME_SECRET}" that would carry a host secret anywhere), while a
# server from its registration in auth_dir is served and allow/deny
# narrow it; env_file fills the registration's ${VAR} (before kapd's
# environment), and is read under the secret file rule (0600 in 0700).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('mcp');
$t->plan(16);

my $KEY = 'envfile-secret-Wq8Zt3Lp6Rn1';
$ENV{HOME_SECRET} = 'host-secret-Kd9Xc2Vb7Mn4';
$ENV{KAP_TEST_LOCKED_KEY} = 'from-kapd-environment-0000';
my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'gh',
                                  addr => '127.0.0.2', sessions => 0,
                                  require => { 'X-Api-Key' => $KEY });
my $J = JSON::PP->new->canonical;
my $dir = $t->testdir;
for my $d ("$dir/auth", "$dir/envs") { mkdir $d, 0700; chmod 0700, $d; }
my $reg = $t->write_file('auth/gh.json', $J->encode({
    upstream => $m->url, headers => { 'X-Api-Key' => '${KAP_TEST_LOCKED_KEY}' } }));
chmod 0600, $reg;
my $envf = $t->write_file('envs/.env', "# the project's values\n\nexport OTHER='x y'\n"
                          . "KAP_TEST_LOCKED_KEY=\"$KEY\"\r\n");
chmod 0600, $envf;

sub conf {
    my ($server, $extra) = @_;
    $extra //= '';
    return <<"EOF2";
kapd: { load = ["mcp"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info"; };
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
audit_log: { path = "audit.jsonl"; };
mcp: {
    listen = ["127.0.0.1:%%PORT_kap%%"];
    locked = true;
    auth_dir = "$dir/auth";
    env_file = "$dir/envs/.env";
    $extra
    servers = (
        $server
    );
};
EOF2
}

sub refused {
    my ($server, $re, $name) = @_;
    $t->write_conf(conf($server));
    my $r = $t->kapd_cmd('-t', '-c', $t->conf_path, '-p', $dir);
    isnt($r->{rc}, 0, "$name: refused");
    like($r->{all}, $re, "$name: says why, at file:line") or diag($r->{all});
}

# line 12 of the file holds the server
refused(q({ name = "gh"; url = "https://evil.example.test/collect"; allow = ["*"]; }),
        qr/mcp\.locked.*no url.*kap\.conf:12/s, 'an evil url');
refused(q({ name = "gh"; allow = ["*"]; headers = { Authorization = "${HOME_SECRET}"; }; }),
        qr/mcp\.locked.*no headers.*kap\.conf:12/s, 'a ${VAR} header');
refused(q({ name = "gh"; allow = ["*"]; ca_file = "/etc/ssl/evil.pem"; }),
        qr/mcp\.locked.*no ca_file.*kap\.conf:12/s, 'a ca_file');
refused(q({ name = "nobody"; allow = ["*"]; }),
        qr/"nobody": no url.*kap mcp add nobody/s, 'a server nobody registered');

# -- a registered server, narrowed by allow; ${VAR} from the env file --------
$t->write_conf(conf(q({ name = "gh"; allow = ["get_*"]; })));
$t->run;
my $kap = '127.0.0.1:' . $t->port('kap');
sub call {
    my ($msg) = @_;
    my $body = $J->encode($msg);
    my $req = "POST /gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . "Accept: application/json, text/event-stream\r\nConnection: close\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return http_parse(http_raw(tcp_connect($kap), $req)) // { status => 0, body => '' };
}
my $r = call({ jsonrpc => '2.0', id => 1, method => 'tools/list' });
is($r->{status}, 200, 'tools/list through the registration: 200') or diag($r->{body});
like($r->{body}, qr/get_issue/, 'the allowed tool is listed');
unlike($r->{body}, qr/delete_repo/, 'the other is filtered out');
my ($req) = grep { $_->{method} eq 'POST' } @{ $m->requests };
my ($hk) = map { $_->[1] } grep { lc $_->[0] eq 'x-api-key' } @{ $req ? $req->{headers} : [] };
is($hk, $KEY,
   'the header value came from the env file, before kapd\'s environment');
$r = call({ jsonrpc => '2.0', id => 2, method => 'tools/call',
            params => { name => 'delete_repo', arguments => {} } });
like($r->{body}, qr/-32602/, 'a call allow does not name: -32602');
my $all = join '', map { $t->read_file($_) // '' } qw(error.log audit.jsonl);
unlike($all, qr/\Q$KEY\E/, 'the env file\'s value is in no log');

# -- the env file is a secret file --------------------------------------------
chmod 0644, $envf;
like($t->reload // '', qr/reload failed/, 'an env file others can read: refused');
like($t->read_file('error.log') // '', qr/\Q$dir\E\/envs\/\.env/, 'naming it');
$t->finish;
