#!/usr/bin/perl
# 707-kap-mcp.t -- `kap mcp add|get|list|remove` (contrib/kap/kap-mcp.sh)
# under dash, with a private HOME.  add writes ~/.kap/auth/NAME.json, mode
# 0600 in a 0700 directory (kap_secret's rule), as JSON holding the
# upstream and the headers exactly as given (${VAR} references kept for
# kapd to fill in, literal values stored); a value can come from standard
# input; get and list show header names and what kind each value is but
# never a literal value, and hide a URL's query; a second add is refused
# without --reauth and replaces with it; bad names (path tricks
# included), URLs (other schemes, user:password@, controls), header names,
# headers kapd sets itself, duplicates and empty or control-character
# values are refused before anything is written; an existing auth
# directory open to others is made 0700, a symlinked one refused; a file
# kapd would refuse is reported; remove deletes the file and its lock;
# KAP_AUTH_DIR moves the directory.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::FakeMCP;
use JSON::PP;
use File::Path qw(make_path remove_tree);

my $t = Test::Kapd->new;
my $k = Test::KapInit->new($t);
plan(skip_all => 'kap-shim not built') unless -x $k->shim;
$t->plan(62);
my $dir = $t->testdir;
my $auth = "$dir/home/.kap/auth";
my $secret = 'sk-TOPSECRET-0123456789';

sub mode { my @s = lstat $_[0]; return @s ? sprintf('%04o', $s[2] & 07777) : 'none' }
sub json { my $s = slurp($_[0]); return defined $s ? eval { decode_json($s) } : undef }
sub mcp { return $k->kap(ref $_[0] eq 'HASH' ? shift : {}, 'mcp', @_) }

# -- add ------------------------------------------------------------------------
my $r = mcp('add', 'github', 'https://mcp.example.test/mcp',
            '--header', 'Authorization=Bearer ${GH_TOKEN}',
            '--header', "X-Api-Key=$secret");
is($r->{rc}, 0, 'add: exit 0') or diag($r->{err});
like($r->{out}, qr{^registered github: https://mcp\.example\.test/mcp }m,
     'add: says what it registered');
like($r->{out}, qr/mcp: \{ servers = \( \{ name = "github"; allow = \["\*"\]; \} \); \};/,
     'add: a kap.conf snippet to paste');
is(mode($auth), '0700', 'the auth directory is 0700');
is(mode("$auth/github.json"), '0600', 'the file is 0600');
is_deeply(json("$auth/github.json"),
          { name => 'github', upstream => 'https://mcp.example.test/mcp',
            headers => { 'Authorization' => 'Bearer ${GH_TOKEN}',
                         'X-Api-Key' => $secret } },
          'the file: upstream and headers exactly as given');
unlike($r->{out} . $r->{err}, qr/\Q$secret\E/, 'add prints no literal value');
is_deeply([grep { !/^github\.json$/ } map { s{.*/}{}r } glob("$auth/* $auth/.*")],
          ['.', '..'], 'no temporary file left');

# a value from standard input, quotes and backslashes in values
$r = mcp({ stdin => "in-$secret\n" }, 'add', 'ctx', 'https://ctx.example.test/mcp?key=abc',
         '--header', 'Key', '--header', 'X-Q=a"b\\c');
is($r->{rc}, 0, 'add with --header K (value on stdin)') or diag($r->{err});
is(json("$auth/ctx.json")->{headers}{Key}, "in-$secret", 'the value read from stdin');
is(json("$auth/ctx.json")->{headers}{'X-Q'}, 'a"b\\c', 'quotes and backslashes kept');
like($r->{out}, qr{ctx\.example\.test/mcp\?\[hidden\]}, 'the query is hidden');
unlike($r->{out}, qr/key=abc/, 'the query is not printed');

# without headers kap-mcp probes the server (t/708 has the OAuth flow):
# an open one is registered as it is
my $open = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'plain');
my $plain = $open->url;
$r = mcp('add', 'plain', $plain);
is($r->{rc}, 0, 'add without headers (an open server)') or diag($r->{err});
ok(!exists json("$auth/plain.json")->{headers}, 'no headers member');

# -- get and list ------------------------------------------------------------------
$r = mcp('get', 'github');
is($r->{rc}, 0, 'get: exit 0');
like($r->{out}, qr{^upstream: https://mcp\.example\.test/mcp$}m, 'get: upstream');
like($r->{out}, qr{^auth:\s+headers \(Authorization, X-Api-Key\)$}m, 'get: header names');
like($r->{out}, qr/^  Authorization: \[literal text with \$\{GH_TOKEN\}\]$/m,
     'get: a value with a reference and text');
like($r->{out}, qr/^  X-Api-Key: \[literal, 23 bytes\]$/m, 'get: a literal value: its length only');
unlike($r->{out} . $r->{err}, qr/\Q$secret\E|Bearer/, 'get prints no literal text');
mcp('add', 'refs', 'https://r.example.test/', '--header', 'X-A=${A}');
like(mcp('get', 'refs')->{out}, qr/^  X-A: \$\{A\}$/m, 'get: a pure reference is shown');

$r = mcp('list');
is($r->{rc}, 0, 'list: exit 0');
is($r->{out}, join('', "ctx\thttps://ctx.example.test/mcp?[hidden]\theaders (Key, X-Q)\n",
                   "github\thttps://mcp.example.test/mcp\theaders (Authorization, X-Api-Key)\n",
                   "plain\t$plain\tnone\n",
                   "refs\thttps://r.example.test/\theaders (X-A)\n"),
   'list: every server, sorted, no values');
unlike($r->{out} . $r->{err}, qr/\Q$secret\E|key=abc/, 'list prints no secret');
# kapd's tool pins beside the registrations are not registrations
spew("$auth/github.pins.json", '{"server":"github","tools":{}}');
is(mcp('list')->{out}, $r->{out}, 'list: a pins file is not listed');
unlink "$auth/github.pins.json";
# with a kap.conf: the servers it names that nobody registered
spew("$dir/kap.conf", <<'CONF');
mcp: { servers = ( { name = "github"; allow = ["*"]; },
                   { name = "linear"; allow = ["*"]; },
                   { name = "own"; url = "https://own.example.test/mcp"; allow = ["*"]; } ); };
CONF
$r = mcp('list', "$dir/kap.conf");
is($r->{rc}, 0, 'list KAP.CONF: exit 0') or diag($r->{err});
like($r->{out}, qr/^linear\t\(in \Q$dir\E\/kap\.conf, not registered: kap mcp add linear URL\)$/m,
     'a configured server without a url or a registration is named');
unlike($r->{out}, qr/^(github|own)\t\(in /m, 'registered ones and ones with a url are not');

# -- a second add ------------------------------------------------------------------
my $before = slurp("$auth/github.json");
$r = mcp('add', 'github', 'https://elsewhere.example.test/');
is($r->{rc}, 0, 'add of a registered name: exit 0');
like($r->{out}, qr/github is already registered \(https:\/\/mcp\.example\.test\/mcp\).*--reauth/s,
     'says so and how to replace it');
is(slurp("$auth/github.json"), $before, 'the file is unchanged');
$r = mcp('add', 'github', 'https://elsewhere.example.test/', '--reauth',
         '--header', 'Authorization=${T}');
is(json("$auth/github.json")->{upstream}, 'https://elsewhere.example.test/',
   '--reauth replaces it');

# -- refusals: nothing written --------------------------------------------------------
my @bad = (
    [['../evil', 'https://x.test/'], qr/bad server name/, 'a name with ../'],
    [['a/b', 'https://x.test/'], qr/bad server name/, 'a name with /'],
    [['-x', 'https://x.test/'], qr/bad server name/, 'a name starting with -'],
    [['x' x 65, 'https://x.test/'], qr/longer than 64/, 'a name of 65 characters'],
    [['n1', 'ftp://x.test/'], qr/http:\/\/ or https:\/\//, 'an ftp URL'],
    [['n1', 'file:///etc/passwd'], qr/http:\/\/ or https:\/\//, 'a file URL'],
    [['n1', 'https://u:pw@x.test/'], qr/user:password/, 'a URL with user:password@'],
    [['n1', "https://x.test/\x01"], qr/control character/, 'a URL with a control character'],
    [['n1', 'https://x.test/', '--header', 'Bad Name=v'], qr/bad header name/, 'a header name with a space'],
    [['n1', 'https://x.test/', '--header', 'Host=v'], qr/kapd's to set/, 'Host'],
    [['n1', 'https://x.test/', '--header', 'mcp-session-id=v'], qr/kapd's to set/, 'Mcp-Session-Id'],
    [['n1', 'https://x.test/', '--header', 'A=1', '--header', 'a=2'], qr/given twice/, 'a header twice'],
    [['n1', 'https://x.test/', '--header', 'A='], qr/empty/, 'an empty value'],
    [['n1', 'https://x.test/', '--header', "A=x\ry"], qr/control character/, 'a value with CR'],
    [['n1', 'https://x.test/', '--bogus'], qr/unknown argument/, 'an unknown option'],
);
for my $b (@bad) {
    my ($args, $re, $what) = @$b;
    $r = mcp('add', @$args);
    ok($r->{rc} != 0 && $r->{err} =~ $re, "refused: $what") or diag($r->{err});
}
ok(!-e "$auth/n1.json" && !-e "$dir/home/.kap/evil.json", 'nothing written for any of them');

# -- the directory and the file -----------------------------------------------------
chmod 0755, $auth;
mcp('add', 'n2', 'https://x.test/', '--header', 'X-K=${K}');
is(mode($auth), '0700', 'an auth directory open to others is made 0700');
chmod 0644, "$auth/n2.json";
$r = mcp('get', 'n2');
like($r->{err}, qr/not mode 0600.*kapd will refuse it/, 'a 0644 file is reported');

my $alt = "$dir/alt-auth";
$r = mcp({ env => { KAP_AUTH_DIR => $alt } }, 'add', 'moved', 'https://x.test/', '--header', 'X-K=${K}');
ok($r->{rc} == 0 && -f "$alt/moved.json" && mode($alt) eq '0700', 'KAP_AUTH_DIR moves the directory');
make_path("$dir/real");
symlink("$dir/real", "$dir/linked") or die "symlink: $!";
$r = mcp({ env => { KAP_AUTH_DIR => "$dir/linked" } }, 'add', 'x', 'https://x.test/', '--header', 'X-K=${K}');
ok($r->{rc} != 0 && !-e "$dir/real/x.json", 'a symlinked auth directory is refused');

# -- remove --------------------------------------------------------------------------
spew("$auth/github.lock", '');
spew("$auth/github.pins.json", '{}');
spew("$auth/github-2.pins.json", '{}');
$r = mcp('remove', 'github');
is($r->{rc}, 0, 'remove: exit 0');
ok(!-e "$auth/github.json" && !-e "$auth/github.lock", 'the file and its lock are gone');
ok(!-e "$auth/github.pins.json", 'remove: its pins are gone too');
ok(-e "$auth/github-2.pins.json", 'remove: another server\'s pins are kept');
$r = mcp('remove', 'github');
ok($r->{rc} != 0 && $r->{err} =~ /not registered/, 'remove of an unknown name: an error');
$r = mcp('get', 'github');
ok($r->{rc} != 0 && $r->{err} =~ /not registered/, 'get of an unknown name: an error');
$r = mcp('remove', '../home');
ok($r->{rc} != 0 && -d "$dir/home", 'remove of a path trick: refused');
remove_tree($auth);
like(mcp('list')->{out}, qr/^no MCP servers registered/, 'list with nothing registered');
like($k->kap({}, 'help', 'mcp')->{out}, qr/^usage: kap mcp add NAME URL/, 'kap help mcp');

$t->finish;
