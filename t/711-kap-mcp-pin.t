#!/usr/bin/perl
# 711-kap-mcp-pin.t -- `kap mcp pin NAME [--accept]` (kap-mcp) against a
# FakeMCP and the pins file the mcp module keeps for a server with
# pin = true, AUTH_DIR/NAME.pins.json {"server", "tools": {TOOL: {sha256,
# definition}}} (definition: the tool as canonical JSON, members sorted,
# compact, without _meta): each tool shown as pinned, CHANGED (both
# definitions, terminal-safe), new or gone; without --accept nothing is
# written; --accept pins the definitions shown (SHA-256 of the canonical
# text), keeps the pins of tools that are gone, 0600; with no pins file
# yet every tool is new and --accept creates it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::FakeMCP;
use JSON::PP;
use Digest::SHA qw(sha256_hex);

my $t = Test::Kapd->new;
my $k = Test::KapInit->new($t);
plan(skip_all => 'kap-mcp not built') unless -x $t->builddir . '/kap-mcp';
$t->plan(22);
my $dir = $t->testdir;
my $auth = "$dir/home/.kap/auth";
my $J = JSON::PP->new->canonical;

sub mode { my @s = lstat $_[0]; return @s ? sprintf('%04o', $s[2] & 07777) : 'none' }
sub json { my $s = slurp($_[0]); return defined $s ? eval { decode_json($s) } : undef }
sub mcp { return $k->kap({ env => { K => 'v' } }, 'mcp', @_) }
sub canon { my %t = %{$_[0]}; delete $t{_meta}; return $J->encode(\%t) }

my @tools = (
    { name => 'get_issue', description => "Read an issue\e[2J", _meta => { x => 1 },
      inputSchema => { type => 'object', properties => { n => { type => 'number' } } } },
    { name => 'delete_repo', description => 'Delete a repository',
      inputSchema => { type => 'object' } },
);
my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'gh',
                                 tools => \@tools);
my $r = mcp('add', 'gh', $m->url, '--header', 'X-K=${K}');
is($r->{rc}, 0, 'registered') or diag($r->{err});

# pins as kapd wrote them at first sight: get_issue has changed since
my %old = (%{$tools[0]}, description => 'Read an issue');
my $pins = { server => 'gh', tools => {
    get_issue => { sha256 => sha256_hex(canon(\%old)), definition => canon(\%old) },
    delete_repo => { sha256 => sha256_hex(canon($tools[1])), definition => canon($tools[1]) },
    old_tool => { sha256 => sha256_hex('{"name":"old_tool"}'), definition => '{"name":"old_tool"}' } } };
spew("$auth/gh.pins.json", $J->encode($pins));
chmod 0600, "$auth/gh.pins.json";
my $before = slurp("$auth/gh.pins.json");

$r = mcp('pin', 'gh');
is($r->{rc}, 0, 'pin: exit 0') or diag($r->{err});
like($r->{out}, qr/^  CHANGED  get_issue$/m, 'the changed tool');
like($r->{out}, qr/^      pinned: \Q{"description":"Read an issue","inputSchema"\E/m, 'its pinned definition');
like($r->{out}, qr/^      now:    \{"description":"Read an issue\\u001b\[2J"/m,
     'its definition now (the escape byte as JSON writes it)');
unlike($r->{out}, qr/\e/, 'no escape byte reaches the terminal');
like($r->{out}, qr/^  pinned   delete_repo$/m, 'an unchanged tool');
like($r->{out}, qr/^  gone     old_tool$/m, 'a pinned tool the server dropped');
like($r->{out}, qr/kap mcp pin gh --accept/, 'how to approve');
is(slurp("$auth/gh.pins.json"), $before, 'without --accept nothing is written');

$r = mcp('pin', 'gh', '--accept');
is($r->{rc}, 0, 'pin --accept: exit 0') or diag($r->{err});
like($r->{out}, qr/accepted: 1 changed, 0 new tools pinned/, 'says what it accepted');
my $p = json("$auth/gh.pins.json");
is($p->{tools}{get_issue}{definition}, canon($tools[0]), 'the new definition pinned, canonical, without _meta');
is($p->{tools}{get_issue}{sha256}, sha256_hex(canon($tools[0])), 'with its SHA-256');
is_deeply($p->{tools}{old_tool}, $pins->{tools}{old_tool}, 'a gone tool keeps its pin');
is($p->{server}, 'gh', 'the server named');
is(mode("$auth/gh.pins.json"), '0600', 'the pins file is 0600');
$r = mcp('pin', 'gh');
ok($r->{out} =~ /^  pinned   get_issue$/m && $r->{out} !~ /--accept/, 'then everything is pinned');

# no pins yet
$r = mcp('add', 'fresh', $m->url, '--header', 'X-K=${K}');
$r = mcp('pin', 'fresh');
like($r->{out}, qr/fresh has no pins yet.*^  new      get_issue\n.*^  new      delete_repo\n/ms, 'no pins file: every tool new');
ok(!-e "$auth/fresh.pins.json", 'nothing written');
$r = mcp('pin', 'fresh', '--accept');
is(json("$auth/fresh.pins.json")->{tools}{delete_repo}{sha256}, sha256_hex(canon($tools[1])),
   '--accept creates the pins');
$r = mcp('pin', 'nosuch');
like($r->{err}, qr/nosuch is not registered/, 'an unknown server');
$t->done_testing;
