#!/usr/bin/perl
# 301-mcp-config.t -- the mcp group: errors with file:line (an empty or
# missing allow suggests ["*"], bad names, urls, headers kapd sets
# itself, an unset ${VAR}, a server with no url and no registration);
# a server whose url and credential come from its `kap mcp add`
# registration (auth_dir, 0700/0600); a unix-socket listener; a path
# prefix; reload adding, re-filtering and removing servers, and a bad
# edit keeping the old policy running.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use IO::Socket::UNIX;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('mcp');
$t->plan(31);

my $REGTOK = 'reg-secret-Hq2Vn8Rt5Yx0';
$ENV{KAP_TEST_MCP_REG} = $REGTOK;
delete $ENV{KAP_TEST_MCP_UNSET};

my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'a',
                                  addr => '127.0.0.2', sessions => 0);
my $J = JSON::PP->new->canonical;

my $head = <<'EOF';
kapd: {
    load = ["mcp"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
audit_log: { path = "audit.jsonl"; };
EOF

sub conf_with {
    my ($servers, $extra) = @_;
    return $head . <<"EOF";
mcp: {
    listen = ["127.0.0.1:%%PORT_kap%%", "unix:mcp.sock"];
    prefix = "/mcp";
    auth_dir = "auth";
    ${\ ($extra // '')}
    servers = ( $servers );
};
EOF
}

sub conf_error {
    my ($servers, $re, $name) = @_;
    $t->write_conf(conf_with($servers));
    my $r = $t->kapd_cmd('-t', '-c', $t->conf_path, '-p', $t->testdir);
    isnt($r->{rc}, 0, "$name: refused");
    like($r->{all}, $re, "$name: the message") or diag($r->{all});
}

my $url = 'http://127.0.0.2:%%PORT_mcp%%/mcp';
conf_error(qq({ name = "a"; url = "$url"; allow = []; }),
           qr/allow is empty.*allow = \["\*"\]/s, 'empty allow');
conf_error(qq({ name = "a"; url = "$url"; }),
           qr/allow is missing.*\["\*"\].*kap\.conf:\d+/s, 'missing allow');
conf_error(qq({ name = "a b"; url = "$url"; allow = ["*"]; }),
           qr/server name.*kap\.conf:\d+/s, 'bad name');
conf_error(qq({ name = "a"; url = "ftp://x/"; allow = ["*"]; }),
           qr/http:\/\/ or https:\/\/.*kap\.conf:\d+/s, 'bad url');
conf_error(qq({ name = "a"; url = "$url"; allow = ["*"]; },
              { name = "a"; url = "$url"; allow = ["*"]; }),
           qr/listed twice/, 'a name twice');
conf_error(qq({ name = "a"; url = "$url"; allow = ["*"];
                headers = { Mcp-Session-Id = "x"; }; }),
           qr/Mcp-Session-Id is one kapd sets.*kap\.conf:\d+/s,
           'a header kapd sets');
conf_error(qq({ name = "a"; url = "$url"; allow = ["*"];
                headers = { X-Key = "\${KAP_TEST_MCP_UNSET}"; }; }),
           qr/KAP_TEST_MCP_UNSET/, 'an unset variable');
conf_error(qq({ name = "nourl"; allow = ["*"]; }),
           qr/"nourl": no url.*kap mcp add nourl.*kap\.conf:\d+/s, 'no url, no registration');
conf_error(qq({ name = "a"; url = "$url"; allow = ["*"]; colour = 1; }),
           qr/colour/, 'an unknown key');

# -- a registered server (kap mcp add's file), on the unix socket too ---------
mkdir $t->path('auth'), 0700;
chmod 0700, $t->path('auth');
my $reg = $t->write_file('auth/reg.json', $J->encode({
    upstream => $t->expand($url),
    headers  => { 'X-Api-Key' => '${KAP_TEST_MCP_REG}' } }));
chmod 0600, $reg;
$m->set(require => { 'X-Api-Key' => $REGTOK });

$t->write_conf(conf_with(qq({ name = "reg"; allow = ["get_*"]; })));
$t->run;
my $kap = '127.0.0.1:' . $t->port('kap');

sub call {
    my ($path, $msg, %o) = @_;
    my $body = $J->encode($msg);
    my $req = "POST $path HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . "Accept: application/json, text/event-stream\r\nConnection: close\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $s = $o{unix} ? IO::Socket::UNIX->new(Peer => $t->path('mcp.sock'))
                     : tcp_connect($kap);
    return http_parse(http_raw($s, $req)) // { status => 0, body => '' };
}
sub list { my $r = call($_[0], { jsonrpc => '2.0', id => 1, method => 'tools/list' }, @_[1 .. $#_]);
           my $b = eval { decode_json($r->{body}) };
           return $r->{status} . ' ' . join(',', map { $_->{name} } @{$b->{result}{tools} // []}) }

is(list('/mcp/reg'), '200 get_issue', 'the registration: url and credential');
is(list('/mcp/reg', unix => 1), '200 get_issue', 'over the unix socket');
is(call('/reg', { jsonrpc => '2.0', id => 1, method => 'ping' })->{status}, 404,
   'outside the prefix: 404');

# -- reload: add, re-filter, remove ---------------------------------------------
$t->write_conf(conf_with(qq({ name = "reg"; allow = ["*"]; deny = ["delete_*"]; },
                            { name = "two"; url = "$url"; allow = ["*"];
                              headers = { X-Api-Key = "\${KAP_TEST_MCP_REG}"; }; })));
like($t->reload // '', qr/reloaded/, 'reload with a second server');
is(list('/mcp/two'), '200 get_issue,delete_repo', 'the added server answers');
is(list('/mcp/reg'), '200 get_issue', 'the re-filtered one');
my $r = call('/mcp/reg', { jsonrpc => '2.0', id => 2, method => 'tools/call',
                           params => { name => 'delete_repo', arguments => {} } });
like($r->{body}, qr/delete_\*/, 'a call the new deny rule names is refused');

$t->write_conf(conf_with(qq({ name = "two"; url = "$url"; allow = []; })));
like($t->reload // '', qr/reload failed/, 'a bad edit is refused');
is(list('/mcp/reg'), '200 get_issue', 'the old policy keeps running');

$t->write_conf(conf_with(qq({ name = "two"; url = "$url"; allow = ["get_*"];
                              headers = { X-Api-Key = "\${KAP_TEST_MCP_REG}"; }; })));
like($t->reload // '', qr/reloaded/, 'reload without reg');
is(call('/mcp/reg', { jsonrpc => '2.0', id => 3, method => 'ping' })->{status},
   404, 'the removed server: 404');
is(list('/mcp/two'), '200 get_issue', 'the other one re-filtered');

my $all = ($t->read_file('error.log') // '') . ($t->read_file('audit.jsonl') // '')
          . ($t->read_file('kapd-cmd.log') // '');
unlike($all, qr/\Q$REGTOK\E/, 'the registered credential is in no log');

$t->finish;
