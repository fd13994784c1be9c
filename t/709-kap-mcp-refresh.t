#!/usr/bin/perl
# 709-kap-mcp-refresh.t -- token refresh of an OAuth registration
# (modules/mcp/kap_mcp_token.c through kap-mcp) against
# Test::Kapd::FakeOAuth: a token far from expiry is left alone; one within
# the margin is refreshed (grant_type=refresh_token, the rotated refresh
# token stored, expires_at moved); `kap mcp check` after the server
# refuses the token (401) refreshes once and succeeds; two processes
# refreshing the same stale token at once make one refresh (the second
# waits for the lock and finds the new token); a refused refresh leaves
# the file as it was and says to --reauth; the file stays 0600 with no
# temporary file left, and no token is printed.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use Test::Kapd::FakeOAuth;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use POSIX ();

my $t = Test::Kapd->new;
my $k = Test::KapInit->new($t);
my $helper = $t->builddir . '/kap-mcp';
plan(skip_all => 'kap-mcp not built') unless -x $helper;
plan(skip_all => 'no curl for the browser stand-in') unless -x '/usr/bin/curl';
$t->plan(27);
my $dir = $t->testdir;
my $auth = "$dir/home/.kap/auth";

sub mode { my @s = lstat $_[0]; return @s ? sprintf('%04o', $s[2] & 07777) : 'none' }
sub json { my $s = slurp($_[0]); return defined $s ? eval { decode_json($s) } : undef }
sub token { (json("$auth/docs.json")->{headers}{Authorization} // '') =~ s/^Bearer //r }
sub grants { $_[0]->state->{grants}{refresh_token} // 0 }

my $open = "$dir/open.sh";
spew($open, "#!/bin/sh\nexec /usr/bin/curl -sS -L --noproxy '*' --max-redirs 2 -o /dev/null \"\$1\"\n");
chmod 0755, $open;
my %env = (KAP_OPEN => $open, KAP_MCP_TIMEOUT => 20);
sub mcp { return $k->kap({ env => \%env }, 'mcp', @_) }
sub helper { return $k->run({ env => \%env }, $helper, @_) }

my $o = Test::Kapd::FakeOAuth->new($t, ttl => 3600);
my $r = mcp('add', 'docs', $o->url);
is($r->{rc}, 0, 'registered with OAuth') or diag($r->{err});
my $printed = '';

# -- far from expiry: nothing to do -------------------------------------------------
$r = helper('refresh', 'docs');
is($r->{rc}, 0, 'refresh of a fresh token: exit 0');
like($r->{out}, qr/token is current/, 'says the token is current');
is(grants($o), 0, 'the token endpoint was not asked');
$printed .= $r->{out} . $r->{err};

# -- near expiry: refreshed ------------------------------------------------------------
$o->set(ttl => 30);
my ($tok0, $rt0) = (token(), json("$auth/docs.json")->{oauth}{refresh_token});
$r = mcp('refresh', 'docs');
is($r->{rc}, 0, 'kap mcp refresh: exit 0') or diag($r->{err});
is(grants($o), 1, 'one refresh');
my $reg = json("$auth/docs.json");
ok($reg->{oauth}{expires_at} <= time + 30 && $reg->{oauth}{expires_at} > time, 'expires_at from the new expires_in');
isnt(token(), $tok0, 'a new access token');
isnt($reg->{oauth}{refresh_token}, $rt0, 'the rotated refresh token stored');
$printed .= $r->{out} . $r->{err};
$r = helper('refresh', 'docs');
like($r->{out}, qr/token refreshed/, 'a token within 60 s of expiry is refreshed');
is(grants($o), 2, 'by one more refresh');
is(mode("$auth/docs.json"), '0600', 'the file is still 0600');
is_deeply([sort grep { !/^\.\.?$/ } map { s{.*/}{}r } glob("$auth/* $auth/.*")],
          ['docs.json', 'docs.lock'], 'the lock file, no temporary file');
$printed .= $r->{out} . $r->{err};

# -- a 401: check refreshes once -----------------------------------------------------
$o->set(ttl => 3600);
helper('refresh', 'docs');          # near expiry still: a long-lived one
is(grants($o), 3, 'a long-lived token');
$o->revoke;
$r = mcp('check', 'docs');
is($r->{rc}, 0, 'check after the server refused the token: exit 0') or diag($r->{err});
like($r->{out}, qr/refused; refreshed it/, 'says it refreshed');
like($r->{out}, qr/^\(2 tools\)$/m, 'and the check passed with the new token');
is(grants($o), 4, 'one refresh for the 401');
$printed .= $r->{out} . $r->{err};

# -- two processes with the same stale token: one refresh ------------------------------
$o->set(token_delay => 1);
my $stale = sha256_hex(token());
my @kids;
for my $i (1, 2) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$dir/race$i.out";
        open STDERR, '>', "$dir/race$i.err";
        $ENV{HOME} = "$dir/home";
        delete $ENV{KAP_AUTH_DIR};
        exec($helper, 'refresh', 'docs', '--stale', $stale) or POSIX::_exit(127);
    }
    push @kids, $pid;
}
my @rc = map { waitpid($_, 0); $? >> 8 } @kids;
is_deeply(\@rc, [0, 0], 'both processes: exit 0');
is(grants($o), 5, 'one refresh between them');
my $outs = join '', map { slurp("$dir/race$_.out") } 1, 2;
is(scalar(() = $outs =~ /token refreshed/g), 1, 'one process refreshed');
is(scalar(() = $outs =~ /token is current/g), 1, 'the other found the new token');
$printed .= $outs . join '', map { slurp("$dir/race$_.err") } 1, 2;
$o->set(token_delay => 0);
$r = mcp('check', 'docs');
ok($r->{rc} == 0 && grants($o) == 5, 'the new token works without another refresh');

# -- a refused refresh ---------------------------------------------------------------
my $before = slurp("$auth/docs.json");
$o->_update(sub { $_[0]{refresh} = {} });
$r = helper('refresh', 'docs', '--force');
isnt($r->{rc}, 0, 'a refused refresh fails');
like($r->{err}, qr/refused the refresh \(HTTP 400\).*--reauth/, 'says to --reauth');
is(slurp("$auth/docs.json"), $before, 'the file is unchanged');
$printed .= $r->{out} . $r->{err};

my $st = $o->state;
my @secrets = (keys %{$st->{tokens}}, $rt0, json("$auth/docs.json")->{oauth}{refresh_token});
ok(!grep({ index($printed, $_) >= 0 } @secrets), 'no token printed');
$t->done_testing;
