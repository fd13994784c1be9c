#!/usr/bin/perl
# 522-remote-agent-ws.t -- WS /ws/agent/ID: a session's live timeline
# through the fake Docker Engine API.  The socket first gets the timeline
# (the events GET /api/agent/session/ID returns), then, as the session
# file grows, the events of the appended lines (read with `tail -c +N`
# from where it stopped); a half-written line waits for its newline.
# The device token comes as the subprotocol; the id is a UUID or 400; an
# unknown session closes the socket with 4404.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapWS;
use Test::Kapd::FakeDocker;
use Test::Kapd::Remote qw(remote_pair);
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('remote');
$t->plan(14);
$t->write_conf(<<'EOF');
kapd: { load = ["remote"]; module_path = ["%%MODULE_PATH%%"];
        error_log = "error.log"; log_level = "info"; };
remote: { listen = ["127.0.0.1:%%PORT_remote%%"]; state_dir = "state";
          docker_socket = "docker.sock"; docker_timeout = "3s"; };
EOF

my $SID = '5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
my $sample = do { local (@ARGV, $/) = ($t->srcdir . "/t/data/claude/$SID.jsonl"); <> };
my $file = $t->path('session.data');
$t->write_file('session.data', $sample);
my $APP = 'a' x 64;
my $KAP = 'b' x 64;
my @containers = map {
    { Id => $_->[0], Names => ["/$_->[1]"], State => 'running', Status => 'Up',
      Labels => { 'com.docker.compose.project' => 'alpha',
                  'com.docker.compose.service' => $_->[2], 'kap.project' => '/src/alpha' },
      NetworkSettings => { Networks => { alpha_kap_sandbox => {} } } }
} [$APP, 'alpha-app-1', 'app'], [$KAP, 'alpha-kap-1', 'kap'];
my $tails = $t->path('tails.log');
# the app container: find names the session file, tail reads our copy
sub fake_exec {
    my ($c) = @_;
    my @a = @{$c->{Cmd}};
    my $data = do { local (@ARGV, $/) = ($file); <> } // '';
    if ($a[0] eq 'find') {
        my ($name) = map { $a[$_ + 1] } grep { $a[$_] eq '-name' } 0 .. $#a;
        return ('', '', 0) unless $name eq "$SID.jsonl";
        return (sprintf("%.3f %d /home/dev/.claude/projects/-home-dev-src-alpha/%s.jsonl\n",
                        (stat $file)[9], length $data, $SID), '', 0);
    }
    if ($a[0] eq 'tail') {
        open my $fh, '>>', $tails or die;
        print $fh "$a[2]\n";
        close $fh;
        return (substr($data, $1 - 1), '', 0) if $a[2] =~ /^\+(\d+)$/;
        return (substr($data, -$a[2]), '', 0);
    }
    return ('', "unknown\n", 127);
}
my $dk = Test::Kapd::FakeDocker->new($t, path => $t->path('docker.sock'),
    containers => \@containers, exec => \&fake_exec);
$t->run;
my $port = $t->port('remote');
my ($tok) = remote_pair($port, $t->path('state'), 'phone');
like($tok, qr/^[A-Za-z0-9_-]{43}$/, 'a device is paired');

sub ws {
    my ($path, %o) = @_;
    return Test::KapWS->connect(port => $port, path => $path,
                                protocols => "kap.v1, kap.token.$tok", %o);
}
my $raw = http_get("/api/agent/session/$SID", addr => "127.0.0.1:$port",
                headers => ["Authorization: Bearer $tok"]);
my $get = eval { decode_json((http_parse($raw) // {})->{body} // '') } // {};
ok(@{ $get->{events} // [] } > 3, 'GET /api/agent/session/ID has the timeline');

# ---- the timeline, then what is appended ----------------------------------------
my $w = ws("/ws/agent/$SID");
is($w->{status}, 101, 'WS /ws/agent/ID with the token as subprotocol: 101');
my $m = $w->recv_json_until(sub { $_[0]{type} eq 'timeline' }, kapd_tmo(10));
ok($m && $m->{id} eq $SID, 'first a "timeline" message') or diag(explain($m));
is_deeply([map { $_->{uuid} // '' } @{ $m->{events} // [] }],
          [map { $_->{uuid} // '' } @{ $get->{events} }],
          'with the events GET returns');
my $line = qq({"sessionId":"$SID","type":"user","uuid":"aaaaaaaa-0000-4000-8000-0000000000f1",)
    . qq("timestamp":"2026-12-07T10:00:00.000Z","message":{"role":"user","content":"appended-marker one"}}\n);
my $line2 = qq({"sessionId":"$SID","type":"user","uuid":"aaaaaaaa-0000-4000-8000-0000000000f2",)
    . qq("timestamp":"2026-12-07T10:00:01.000Z","message":{"role":"user","content":"appended-marker two"}}\n);
open my $fh, '>>', $file or die;
print $fh $line, substr($line2, 0, 40);         # one line and half of the next
close $fh;
$m = $w->recv_json_until(sub { $_[0]{type} eq 'events' && @{ $_[0]{events} } }, kapd_tmo(10));
ok($m && @{ $m->{events} } == 1 && ($m->{events}[0]{summary} // '') =~ /appended-marker one/,
   'an appended line comes as an "events" message with its event') or diag(explain($m));
open $fh, '>>', $file or die;
print $fh substr($line2, 40);
close $fh;
$m = $w->recv_json_until(sub { $_[0]{type} eq 'events' && @{ $_[0]{events} } }, kapd_tmo(10));
ok($m && @{ $m->{events} } == 1 && ($m->{events}[0]{summary} // '') =~ /appended-marker two/,
   'a line completed later comes once, whole') or diag(explain($m));
my @t = split /\n/, ($t->read_file('tails.log') // '');
my $len = length($sample) + length($line);
ok((grep { $_ eq '+' . ($len + 1) } @t), 'read from where the last complete line ended')
    or diag(join ' ', @t);
$w->close;

# ---- auth and ids ---------------------------------------------------------------------
is(ws("/ws/agent/$SID", protocols => 'kap.v1')->{status}, 401, 'without a token: 401');
is(ws('/ws/agent/5F0C1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B')->{status}, 400, 'an id in upper case: 400');
is(ws('/ws/agent/..%2f..%2fetc')->{status}, 400, 'an id that is no UUID: 400');
is(ws("/ws/agent/$SID?project=BAD")->{status}, 400, 'a project name that is not one: 400');
$w = ws('/ws/agent/00000000-0000-4000-8000-000000000000');
my $f = $w->recv(kapd_tmo(10));
$f = $w->recv(kapd_tmo(10)) while $f && $f->{op} != 8;
is(Test::KapWS::close_code($f), 4404, 'an unknown session: close 4404');
like($f ? $f->{data} : '', qr/no such session/, 'saying why');
$t->done_testing;
