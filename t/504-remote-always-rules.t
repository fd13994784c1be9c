#!/usr/bin/perl
# 504-remote-always-rules.t -- "allow always" for mcp and cli questions:
# a capsule kapd (mcp, cli, channel after them) asks the host kapd
# (channel listener, remote last on the chain) about a tools/call under
# an mcp ask pattern and a cli call under an ask rule; a device answers
# "always" through POST /api/asks/ID and the host adds the tool's name to
# that server's allow in mcp.servers, and the call's canonical rule to
# that tool's allow in cli.tools, of the capsule's policy file (comments
# kept, file:line in the answer and the audit).  The same call is then
# allowed without a question, in the running capsule and after it
# restarts on the edited file; another call under the same ask rule is
# still asked.  A tool name or a command that could inject config syntax
# (or widen the rule) gets no rule and leaves the file unchanged.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeMCP;
use Test::Kapd::Cli qw(cli_call);
use Test::Kapd::Remote qw(remote_pair);
use File::Copy qw(copy);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);

my $h = Test::Kapd->new->has_kapd->has_module(qw/channel remote/);
my $c = Test::Kapd->new->has_kapd->has_module(qw/channel mcp cli/);
$h->plan(27);

# ---- the host: the channel for capsules, a human answers asks -------------------
my $sock = $h->path('channel.sock');
my $csecret = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
mkdir $h->path('secrets'), 0700;
$h->write_file('secrets/proj', "$csecret\n");
chmod 0600, $h->path('secrets/proj');
$h->write_conf(<<"EOF");
kapd: { load = ["channel", "remote"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "remote", "channel"]; }; };
audit_log: { path = "audit.jsonl"; };
channel: { listen = ["unix:$sock"]; secrets_dir = "%%PREFIX%%/secrets"; };
remote: { listen = ["127.0.0.1:%%PORT_remote%%"]; state_dir = "state"; };
EOF
$h->run;
my $port = $h->port('remote');

sub api {
    my ($method, $path, $tok, $body) = @_;
    my $raw = http_get($path, addr => "127.0.0.1:$port", method => $method,
        headers => [defined $tok ? ("Authorization: Bearer $tok") : (),
                    defined $body ? ('Content-Type: application/json') : ()],
        defined $body ? (body => $body) : ());
    my $r = http_parse($raw) // { status => 0, body => '' };
    $r->{json} = eval { decode_json($r->{body}) };
    return $r;
}
my ($tok) = remote_pair($port, $h->path('state'), 'phone');
like($tok, qr/^[A-Za-z0-9_-]{43}$/, 'a device is paired');

# ---- the capsule: its kapd.conf is the policy file the host edits ---------------
my $m = Test::Kapd::FakeMCP->new($c, port => $c->port('mcp'), name => 'k',
                                  addr => '127.0.0.2', sessions => 0);
mkdir $c->path('bin'), 0755;
copy($c->srcdir . '/t/tools/fake-cli', $c->path('bin/fake')) or die $!;
chmod 0755, $c->path('bin/fake');
copy($c->srcdir . '/t/tools/fake-cli.prof', $c->path('fake.prof')) or die $!;
mkdir $c->path('ws'), 0755;
mkdir $c->path('homes'), 0700;
mkdir $c->path('secrets'), 0700;
$c->write_file('secrets/channel', "$csecret\n");
chmod 0600, $c->path('secrets/channel');
my $cpath = $c->conf_path;
my ($cname) = $cpath =~ m{([^/]+)$};
my $cto = int(kapd_tmo(30));
$c->write_conf(<<"EOF");
# the capsule's policy: "allow always" adds to it on the host
kapd: { load = ["mcp", "cli", "channel"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "mcp", "cli", "channel"]; }; };
network: { allow = ["127.0.0.2:%%PORT_mcp%%"]; };
audit_log: { path = "audit.jsonl"; };
channel: { connect = "unix:$sock"; name = "proj"; secret_file = "secrets/channel";
           timeout = $cto; kinds = ["mcp_call", "cli"]; policy_file = "$cpath"; };
mcp: {
    listen = "127.0.0.1:%%PORT_kap%%";
    servers = (
        { name = "other"; url = "http://127.0.0.2:%%PORT_mcp%%/mcp"; allow = ["*"]; },
        { name = "gh"; url = "http://127.0.0.2:%%PORT_mcp%%/mcp";
          allow = ["get_*", "create_*"];    # reads and creates
          ask = ["create_*"]; }             # a human decides creates
    );
};
cli: {
    listen = ["127.0.0.1:%%PORT_cli%%"]; workspace = "ws"; home_dir = "homes";
    tools = (
        { name = "fake"; path = "%%TESTDIR%%/bin/fake"; profile = "fake.prof";
          allow = ["echo **"];   // prints
          ask = ["exit *"]; }
    );
};
EOF
$c->run;
ok($c->wait_log(qr/channel to unix:\S+ ready as "proj"/), 'the capsule\'s channel is ready');
my $conf0 = $c->read_file($cname);
my $J = JSON::PP->new->canonical;

sub tcall {
    my ($tool) = @_;
    my $kap = '127.0.0.1:' . $c->port('kap');
    my $raw = http_get('/gh', addr => $kap, host => $kap, method => 'POST',
                       body => $J->encode({ jsonrpc => '2.0', id => 1,
                                            method => 'tools/call',
                                            params => { name => $tool,
                                                        arguments => {} } }),
                       headers => ['Content-Type: application/json',
                                   'Accept: application/json, text/event-stream'],
                       timeout => kapd_tmo(60));
    my $r = http_parse($raw) // { status => 0, body => '' };
    return { status => $r->{status}, body => $r->{body} };
}
sub ccall {
    my (@args) = @_;
    return cli_call('127.0.0.1:' . $c->port('cli'), 'fake', \@args,
                    timeout => kapd_tmo(60));
}
# a call in a child (it waits for the answer); bg_wait returns its result
my $n = 0;
sub bg {
    my ($code) = @_;
    my $f = $c->path('bg' . ++$n . '.json');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = $code->();
        open my $fh, '>', $f or POSIX::_exit(1);
        print $fh encode_json($r);
        close $fh;
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $f };
}
sub bg_wait {
    my ($b) = @_;
    wait_until(sub { waitpid($b->{pid}, WNOHANG) == $b->{pid} }, kapd_tmo(60))
        or do { kill 'KILL', $b->{pid}; waitpid($b->{pid}, 0) };
    return eval { decode_json($c->read_file($b->{file}) // '') } // {};
}
# the waiting question whose "detail subject" matches re
sub pending {
    my ($re) = @_;
    my $q;
    wait_until(sub {
        ($q) = grep { (($_->{detail} // '') . " $_->{subject}") =~ $re }
               @{ api('GET', '/api/asks', $tok)->{json}{asks} // [] };
        $q }, kapd_tmo(30));
    return $q;
}
sub asks_seen {
    my ($subject) = @_;
    return scalar grep { ($_->{event} // '') eq 'ask' && ($_->{subject} // '') eq $subject }
        $h->audit;
}
sub line_of { my ($text, $re) = @_; my $i = 0;
              for (split /\n/, $text) { $i++; return $i if /$re/ } return 0 }

# ---- mcp: the tool's name into its server's allow -------------------------------
my $b = bg(sub { tcall('create_issue') });
my $q = pending(qr{^tools/call create_issue$});
ok($q && $q->{kind} eq 'mcp_call' && $q->{subject} eq 'create_issue'
   && ($q->{project} // '') eq 'proj', 'an mcp tools/call under an ask pattern waits on the host')
    or diag(explain($q));
my $r = api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"always"}');
my $mline = line_of($conf0, qr/allow = \["get_\*", "create_\*"\]/);
is($r->{json}{rule_file} // $r->{body}, "$cpath:$mline", 'always: the answer says where the rule went');
like(bg_wait($b)->{body} // '', qr/called create_issue/, 'the call completes');
(my $conf1 = $conf0) =~ s/(allow = \["get_\*", "create_\*"\])/allow = ["get_*", "create_*", "create_issue"]/;
is($c->read_file($cname), $conf1,
   'the policy file got "create_issue" in the gh server\'s allow, the rest kept');
my @ev = $h->wait_audit(sub { grep { ($_->{event} // '') eq 'ask_answered'
                                     && ($_->{subject} // '') eq 'create_issue' } @_ });
my ($ae) = grep { ($_->{event} // '') eq 'ask_answered' && ($_->{subject} // '') eq 'create_issue' } @ev;
ok($ae && ($ae->{rule} // '') eq 'create_issue' && ($ae->{rule_file} // '') eq "$cpath:$mline",
   'host audit: the rule and its file:line') or diag(explain($ae));
like(tcall('create_issue')->{body}, qr/called create_issue/, 'the same call again ...');
is(asks_seen('create_issue'), 1, '... is not asked (the capsule keeps the answer)');

# ---- cli: the call's canonical rule into its tool's allow -------------------------
$b = bg(sub { ccall('exit', '3') });
$q = pending(qr/^fake exit 3 fake$/);
ok($q && $q->{kind} eq 'cli' && $q->{subject} eq 'fake', 'a cli call under an ask rule waits on the host')
    or diag(explain($q));
$r = api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"always"}');
my $cline = line_of($conf0, qr/allow = \["echo \*\*"\]/);
is($r->{json}{rule_file} // $r->{body}, "$cpath:$cline", 'always: the answer says where the rule went');
is(bg_wait($b)->{exit}, 3, 'the call runs');
(my $conf2 = $conf1) =~ s/allow = \["echo \*\*"\]/allow = ["echo **", "exit 3"]/;
is($c->read_file($cname), $conf2,
   'the policy file got "exit 3" in the fake tool\'s allow, the rest kept');
is(ccall('exit', '3')->{exit}, 3, 'the same call again runs ...');
is(asks_seen('fake'), 1, '... without a question');
$b = bg(sub { ccall('exit', '4') });
$q = pending(qr/^fake exit 4 fake$/);
ok($q, 'another call under the ask rule is still asked');
api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"deny"}') if $q;
is(bg_wait($b)->{exit}, 126, 'and a deny refuses it');

# ---- the capsule restarts on the edited file: the rules answer -----------------------
$c->stop;
$c->run;
ok($c->wait_log(qr/channel to unix:\S+ ready as "proj"/), 'the capsule runs again on the edited file');
like(tcall('create_issue')->{body}, qr/called create_issue/, 'the mcp call is allowed ...');
is(asks_seen('create_issue'), 1, '... without a question (an exact allow is not asked)');
is(ccall('exit', '3')->{exit}, 3, 'the cli call runs ...');
is(asks_seen('fake'), 2, '... without a question');
$b = bg(sub { tcall('create_repo') });
$q = pending(qr{^tools/call create_repo$});
ok($q, 'another tool under the ask pattern is still asked');

# ---- what could inject syntax or widen the rule gets none ---------------------------------
my $before = $c->read_file($cname);
$r = api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"always"}') if $q;
is($r->{json}{rule_file} // '', "$cpath:$mline", '(a plain tool name is written)');
bg_wait($b);
$before = $c->read_file($cname);
$b = bg(sub { tcall('create_x"];y') });
$q = pending(qr{^tools/call create_x});
$r = $q ? api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"always"}') : { json => {} };
like($r->{json}{rule_error} // $r->{body} // '', qr/tool's name is not letters/,
     'a tool name with a quote gets no rule, saying why');
bg_wait($b);
$b = bg(sub { ccall('exit', 'a"]; b') });
$q = pending(qr/^fake exit \S*a"\]; b\S* fake$/);
$r = $q ? api('POST', "/api/asks/$q->{id}", $tok, '{"answer":"always"}') : { json => {} };
like($r->{json}{rule_error} // $r->{body} // '', qr/wildcard/,
     'a command whose rule would hold a wildcard gets none, saying why');
bg_wait($b);
is($c->read_file($cname), $before, 'the policy file is unchanged by both');

$c->stop;
$h->done_testing;
