#!/usr/bin/perl
# 708-kap-mcp-oauth.t -- `kap mcp add NAME URL` without headers runs the
# OAuth 2.1 flow through kap-mcp against Test::Kapd::FakeOAuth, the
# browser replaced by a script (KAP_OPEN) that follows the authorize
# redirect with curl: protected resource metadata found from the 401's
# WWW-Authenticate and from the well-known path, authorization server
# metadata, dynamic registration with a loopback redirect URI, PKCE S256
# verified by the server, state checked (a wrong one refused, nothing
# written), the resource parameter sent; the registration holds the token
# as its Authorization header and the oauth member, 0600 in a 0700
# directory, and kapd's reader (kap_mcp_reg_load, through kap-mcp check)
# accepts it; initialize + tools/list printed as a table (server text made
# terminal-safe) with a kap.conf snippet; no token ever printed; --reauth
# replaces the registration; an open server is registered without
# credentials; URL/mcp is probed when URL is not an MCP endpoint; a server
# without S256 is refused; no browser answer times out.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::FakeOAuth;
use Test::Kapd::FakeMCP;
use JSON::PP;
use Digest::SHA qw(sha256);
use MIME::Base64 qw(encode_base64url);

my $t = Test::Kapd->new;
my $k = Test::KapInit->new($t);
plan(skip_all => 'kap-mcp not built') unless -x $t->builddir . '/kap-mcp';
plan(skip_all => 'no curl for the browser stand-in') unless -x '/usr/bin/curl';
$t->plan(50);
my $dir = $t->testdir;
my $auth = "$dir/home/.kap/auth";

sub mode { my @s = lstat $_[0]; return @s ? sprintf('%04o', $s[2] & 07777) : 'none' }
sub json { my $s = slurp($_[0]); return defined $s ? eval { decode_json($s) } : undef }

# the browser: follows the authorize redirect to kap-mcp's callback
my $open = "$dir/open.sh";
spew($open, <<"SH");
#!/bin/sh
printf '%s\\n' "\$1" >> "$dir/browser.urls"
exec /usr/bin/curl -sS -L --noproxy '*' --max-redirs 2 -o "$dir/browser.out" "\$1" 2>>"$dir/browser.err"
SH
chmod 0755, $open;
my %env = (KAP_OPEN => $open, KAP_MCP_TIMEOUT => 20);
sub mcp { return $k->kap({ env => { %env, %{ref $_[0] eq 'HASH' ? shift : {}} } }, 'mcp', @_) }

my $o = Test::Kapd::FakeOAuth->new($t);
my $base = $o->base;

# -- the flow, metadata from WWW-Authenticate ---------------------------------------
my $r = mcp('add', 'docs', $o->url);
is($r->{rc}, 0, 'add with OAuth: exit 0') or diag($r->{out}, $r->{err});
my $s = $o->state;
is($s->{grants}{authorization_code}, 1, 'one code exchanged');
like($r->{out}, qr{^registered docs: \Q$base\E/mcp .*OAuth, refreshable$}m, 'says it registered with OAuth');
like($r->{out}, qr{^  search\s+Search the docs$}m, 'the tools table (a newline in a description flattened)');
like($r->{out}, qr{^  fetch\s+Fetch a page$}m, 'every tool listed');
like($r->{out}, qr{^\(2 tools\)$}m, 'the count');
like($r->{out}, qr/mcp: \{ servers = \( \{ name = "docs"; allow = \["\*"\]; \} \); \};/, 'a kap.conf snippet');
like($r->{out}, qr{Authorize kap in your browser.*\n  \Q$base\E/authorize\?}, 'the authorize URL printed');
my ($url) = split /\n/, slurp("$dir/browser.urls") // '';
ok(defined $url && $url =~ m{^\Q$base\E/authorize\?}, 'the browser command got the URL');
like(slurp("$dir/browser.out") // '', qr/authorized/, 'the browser saw the callback page');
my %q = map { my ($a, $b) = split /=/, $_, 2; $b =~ s/%([0-9A-F]{2})/chr hex $1/ge; ($a, $b) } split /&/, ($url =~ s/^[^?]*\?//r);
is($q{code_challenge_method}, 'S256', 'PKCE S256');
is($q{resource}, "$base/mcp", 'the resource parameter');
like($q{state}, qr/^[A-Za-z0-9_-]{22,}$/, 'a random state');
like($q{redirect_uri}, qr{^http://127\.0\.0\.1:\d+/callback$}, 'a loopback redirect on an ephemeral port');
is($q{scope}, 'tools', 'the scope the resource metadata offers');
is(encode_base64url(sha256($s->{verifiers}[0])), $s->{challenges}[0],
   'the verifier sent to the token endpoint matches the challenge');
my $reg = json("$auth/docs.json");
my ($tok) = keys %{$s->{tokens}};
is($reg->{headers}{Authorization}, "Bearer $tok", 'the access token is the Authorization header');
is($reg->{upstream}, "$base/mcp", 'the upstream');
is($reg->{oauth}{token_endpoint}, "$base/token", 'the token endpoint kept for refresh');
is($reg->{oauth}{client_id}, 'client-1', 'the registered client');
like($reg->{oauth}{refresh_token}, qr/^rt-/, 'the refresh token kept');
ok($reg->{oauth}{expires_at} > time + 3000 && $reg->{oauth}{expires_at} <= time + 3600, 'expires_at from expires_in');
is(mode($auth), '0700', 'the auth directory is 0700');
is(mode("$auth/docs.json"), '0600', 'the registration is 0600');
my $all = $r->{out} . $r->{err};
unlike($all, qr/\Q$tok\E|\Q$reg->{oauth}{refresh_token}\E|code-\d/, 'no token or code printed');
is_deeply([sort grep { !/^\.\.?$/ } map { s{.*/}{}r } glob("$auth/* $auth/.*")],
          ['docs.json'], 'no temporary file left');

# kapd's reader accepts the file (kap-mcp check loads it with kap_mcp_reg_load)
$r = mcp('check', 'docs');
is($r->{rc}, 0, 'check: the registration works') or diag($r->{err});
like($r->{out}, qr/^\(2 tools\)$/m, 'check lists the tools');
$r = mcp('list');
like($r->{out}, qr{^docs\t\Q$base\E/mcp\toauth \(\Q$base\E\)$}m, 'list: an OAuth registration');

# -- a wrong state is refused ---------------------------------------------------------
$o->set(bad_state => 1);
$r = mcp('add', 'evil', $o->url);
isnt($r->{rc}, 0, 'a callback with another state: refused');
like($r->{err}, qr/wrong state/, 'says why');
ok(!-e "$auth/evil.json", 'nothing written');
is($o->state->{grants}{authorization_code}, 1, 'the code was not exchanged');
$o->set(bad_state => 0);

# -- metadata from the well-known path; --reauth ---------------------------------------
$o->set(no_resource_metadata => 1);
$r = mcp('add', 'docs', $o->url);
like($r->{out}, qr/docs is already registered/, 'a second add without --reauth: refused');
$r = mcp('add', 'docs', $o->url, '--reauth');
is($r->{rc}, 0, 'add --reauth, metadata from the well-known path') or diag($r->{err});
is($o->state->{grants}{authorization_code}, 2, 'a new code exchanged');
isnt(json("$auth/docs.json")->{headers}{Authorization}, "Bearer $tok", 'the registration replaced');
$o->set(no_resource_metadata => 0);

# -- no S256: refused -----------------------------------------------------------------
$o->set(no_s256 => 1);
$r = mcp('add', 'nos256', $o->url);
isnt($r->{rc}, 0, 'an authorization server without PKCE S256: refused');
like($r->{err}, qr/S256/, 'says why');
$o->set(no_s256 => 0);

# -- no answer from the browser: the timeout ---------------------------------------------
spew("$dir/noop.sh", "#!/bin/sh\nexit 0\n");
chmod 0755, "$dir/noop.sh";
$r = mcp({ KAP_OPEN => "$dir/noop.sh", KAP_MCP_TIMEOUT => 2 }, 'add', 'slow', $o->url);
isnt($r->{rc}, 0, 'no browser answer: fails');
like($r->{err}, qr/within 2 seconds/, 'after the timeout');

# -- an open server, found at URL/mcp ---------------------------------------------------
my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'), name => 'open');
$r = mcp('add', 'open', $m->url('/'));
is($r->{rc}, 0, 'an open server: exit 0') or diag($r->{err});
like($r->{out}, qr{answers at .*/mcp}, 'found at URL/mcp');
is_deeply(json("$auth/open.json"), { name => 'open', upstream => $m->url },
          'registered without credentials, at URL/mcp');

# -- header mode: the registration checked with its headers ---------------------------
my $h = Test::Kapd::FakeMCP->new($t, port => $t->port('mcph'), name => 'hdr',
                                 require => { 'X-Api-Key' => 'k-SECRET-1' });
$r = mcp({ KEY => 'k-SECRET-1' }, 'add', 'hdr', $h->url, '--header', 'X-Api-Key=${KEY}');
is($r->{rc}, 0, 'add with a header: exit 0') or diag($r->{err});
like($r->{out}, qr/^  get_issue\s+Read an issue$/m, 'checked with the header: the tools');
$r = mcp('add', 'hdr2', $h->url, '--header', 'X-Api-Key=${KEY}');
is($r->{rc}, 0, 'a variable not set here: still registered');
like($r->{err}, qr/not checked.*KEY is not set/s, 'but not checked, and says why');
$r = mcp({ KEY => 'wrong' }, 'check', 'hdr');
isnt($r->{rc}, 0, 'check with a wrong key fails');
like($r->{err}, qr/HTTP 401/, 'with the status');
$t->done_testing;
