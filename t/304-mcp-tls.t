#!/usr/bin/perl
# 304-mcp-tls.t -- an https:// MCP server is verified: with its CA as
# the server's ca_file the proxy works (tools filtered, credential
# injected); without it (the system's CAs) the certificate is refused
# and the agent gets 502, nothing sent.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use JSON::PP;

my $t = Test::Kapd->new->has_kapd->has_module('mcp');
$t->plan(5);

my $TOKEN = 'tls-secret-Pw4Jr9Ek2Ma6';
my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 's',
                                  addr => '127.0.0.2', tls => 1,
                                  cert_names => ['127.0.0.2'], sessions => 0,
                                  require => { 'X-Api-Key' => $TOKEN });
my $ca = $m->http->cert;
like($m->url, qr{^https://}, 'the fake speaks TLS');

$t->write_conf(<<"EOF2" =~ s/%%CA%%/$ca/r);
kapd: {
    load = ["mcp"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    log_level = "info";
};
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
mcp: {
    listen = "127.0.0.1:%%PORT_kap%%";
    servers = (
        { name = "good"; url = "https://127.0.0.2:%%PORT_mcp%%/mcp";
          ca_file = "%%CA%%"; allow = ["get_*"];
          headers = { X-Api-Key = "$TOKEN"; }; },
        { name = "bad"; url = "https://127.0.0.2:%%PORT_mcp%%/mcp";
          allow = ["get_*"]; headers = { X-Api-Key = "$TOKEN"; }; }
    );
};
EOF2
$t->run;
my $kap = '127.0.0.1:' . $t->port('kap');

sub list {
    my $raw = http_get("/$_[0]", addr => $kap, host => $kap, method => 'POST',
                       body => '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
                       headers => ['Content-Type: application/json',
                                   'Accept: application/json, text/event-stream']);
    return http_parse($raw) // { status => 0, body => '' };
}

my $r = list('good');
is($r->{status}, 200, 'verified with ca_file: 200');
is(join(',', map { $_->{name} } @{(eval { decode_json($r->{body}) } // {})->{result}{tools} // []}),
   'get_issue', 'and filtered');
my $n = $m->count;
is(list('bad')->{status}, 502, "an untrusted certificate: 502");
is($m->count, $n, 'no request reached the server');

$t->finish;
