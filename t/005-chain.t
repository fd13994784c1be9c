#!/usr/bin/perl
# 005-chain.t -- the policy chain end to end, through the test_hooks line
# protocol: its configured answer (allow / deny / decline / error / wait)
# decides or passes on; decline falls through to the default, which is
# deny; error fails closed; wait (AGAIN + resume) answers later.  Then
# the built-in `network` allowlist decides CONNECT-kind questions
# ("CHECK <subject> connect <port>").  The audit JSONL file gets exactly
# one decision line per CHECK, with its reason.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use JSON::PP;
use Time::HiRes qw(time);

my $t = Test::Kapd->new->has_kapd->has_module('test_hooks');
$t->plan(41);

sub conf {
    my ($answer, $chain) = @_;
    $chain //= '"test_hooks", "network"';
    return <<"EOF";
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = [$chain]; };
};
network: {
    allow = ["github.com", "*.github.com", "gitlab.test:22"];
    deny = ["gist.github.com", "blocked.test"];
};
audit_log: { path = "audit.jsonl"; };
test_hooks: {
    listen = "127.0.0.1:%%PORT_hooks%%";
    answer = "$answer";
    wait = 0.3;
    kinds = ["test", "connect", "http", "dns"];
};
EOF
}

sub norm { my $x = lc shift; $x =~ s/\.$//; $x }

my %asked;    # subject => [verdict, decided_by, reason] from the reply

sub ask {
    my ($subject, @rest) = @_;
    my $s = tcp_connect($t->port('hooks')) or return '';
    my $r = line_cmd($s, join(' ', 'CHECK', $subject, @rest), 10) // '';
    my ($v, $by, $why) = $r =~ /^(ALLOW|DENY) (\S+) ?(.*)$/;
    $asked{$subject} = [$v, $by, $why] if $v;
    return $r;
}

$t->write_conf(conf('allow'));
$t->run;

# -- each answer of the test hook ---------------------------------------------------
like(ask('a1.test'), qr/^ALLOW test_hooks\b/, 'answer=allow: allowed by test_hooks');

$t->write_conf(conf('deny'));
like($t->reload // '', qr/reloaded/, 'reload: deny');
like(ask('d1.test'), qr/^DENY test_hooks\b/, 'answer=deny: denied by test_hooks');

$t->write_conf(conf('decline'));
like($t->reload // '', qr/reloaded/, 'reload: decline');
my $r = ask('n1.test');
like($r, qr/^DENY default\b/, 'answer=decline: falls through to the default');
like($r, qr/no rule allows it/, 'default: deny with its reason');

$t->write_conf(conf('error'));
like($t->reload // '', qr/reloaded/, 'reload: error');
like(ask('e1.test'), qr/^DENY \S+ .*policy error/, 'answer=error: fails closed');

$t->write_conf(conf('wait'));
like($t->reload // '', qr/reloaded/, 'reload: wait');
my $t0 = time;
$r = ask('w1.test');
my $took = time - $t0;
like($r, qr/^(ALLOW|DENY) test_hooks\b/, 'answer=wait: decided after resuming');
ok($took >= 0.25, sprintf('answer=wait: the answer waited (%.2fs)', $took));
# several waiting questions at once do not block each other
my @ws = map { tcp_connect($t->port('hooks')) } 1 .. 5;
$t0 = time;
for my $i (1 .. 5) {
    syswrite($ws[$i - 1], "CHECK w-par$i.test\n") if $ws[$i - 1];
}
my @wr = map { $_ ? read_line($_, 10) // '' : '' } @ws;
$took = time - $t0;
is(scalar(grep { /^(ALLOW|DENY) test_hooks/ } @wr), 5, 'five waiting checks all answered');
ok($took < 1.2, sprintf('and concurrently (%.2fs for 5 x 0.3s)', $took));
$asked{"w-par$_.test"} = [($wr[$_ - 1] =~ /^(\S+) (\S+) ?(.*)$/)] for 1 .. 5;

# -- the network allowlist (CONNECT kind) -----------------------------------------
$t->write_conf(conf('decline'));
like($t->reload // '', qr/reloaded/, 'reload: decline, network decides');
like(ask('github.com', 'connect', 443), qr/^ALLOW network\b/, 'network: exact allow');
like(ask('api.github.com', 'connect', 443), qr/^ALLOW network\b/, 'network: wildcard allow');
like(ask('gist.github.com', 'connect', 443), qr/^DENY network\b/, 'network: deny wins');
like(ask('evil.test', 'connect', 443), qr/^DENY (network|default)\b/, 'network: not listed is denied');
like(ask('api2.github.com', 'connect', 8443), qr/^DENY (network|default)\b/, 'network: other port denied');
like(ask('gitlab.test', 'connect', 22), qr/^ALLOW network\b/, 'network: rule with its own port');
like(ask('Deep.Api.GitHub.COM.', 'connect', 443), qr/^ALLOW network\b/, 'network: case-folded, trailing dot');
like(ask('169.254.169.254', 'connect', 80), qr/^DENY (network|default)\b/, 'network: unlisted IP literal denied');

# the order of the chain matters: network first decides before test_hooks
$t->write_conf(conf('deny', '"network", "test_hooks"'));
like($t->reload // '', qr/reloaded/, 'reload: network first');
like(ask('www.github.com', 'connect', 443), qr/^ALLOW network\b/,
     'network first: its allow wins over test_hooks deny');
like(ask('blocked.test', 'connect', 443), qr/^DENY network\b/,
     'network first: its deny rule ends the chain');
like(ask('other.test', 'connect', 443), qr/^DENY test_hooks\b/,
     'network first: a name no rule mentions goes on to the next hook');

# -- the audit log: one decision line per CHECK -------------------------------------
my @lines;
my $want = scalar keys %asked;
wait_until(sub {
    @lines = grep { ($_->{event} // '') eq 'decision' } audit();
    return @lines >= $want;
}, kapd_tmo(5));
my %by;
push @{$by{norm($_->{subject} // '')}}, $_ for @lines;
my @multi = grep { @{$by{norm $_} // []} != 1 } keys %asked;
is_deeply(\@multi, [], "exactly one decision line per CHECK ($want)")
    or diag(join "\n", map { "$_: " . scalar(@{$by{norm $_} // []}) } @multi);
my ($bad_action, $bad_reason, $bad_by) = (0, 0, 0);
for my $s (keys %asked) {
    my $l = ($by{norm $s} // [])->[0] or next;
    my ($v, $dby, $why) = @{$asked{$s}};
    $bad_action++ unless ($l->{action} // '') eq ($v eq 'ALLOW' ? 'allowed' : 'denied');
    $bad_by++ unless ($l->{decided_by} // '') eq $dby;
    $bad_reason++ unless defined $l->{reason} && length $l->{reason}
        && (!length($why) || $l->{reason} eq $why);
}
is($bad_action, 0, 'audit: action matches the verdict');
is($bad_by, 0, 'audit: decided_by matches');
is($bad_reason, 0, 'audit: the reason is recorded');
my ($d) = @{$by{'n1.test'} // [{}]};
is($d->{decided_by} // '', 'default', 'audit: the default decision is recorded as such');
my ($g) = @{$by{'gist.github.com'} // [{}]};
like($g->{reason} // '', qr/gist\.github\.com/, 'audit: the network reason names the rule');
ok(!grep({ !defined $_->{ts} || $_->{ts} !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/ } @lines),
   'audit: every line has an RFC 3339 UTC timestamp');
ok(!grep({ !defined $_->{gen} } @lines), 'audit: every line has its generation');

# -- a request kind a module defines (test_hooks defines th_custom) -------------------------
$t->write_conf(conf('deny') =~ s/kinds = \["test", "connect", "http", "dns"\];/kinds = ["th_custom"];/r);
like($t->reload // '', qr/reloaded/, 'reload: test_hooks answers only the kind it defines');
like(ask('k1.test', 'th_custom'), qr/^DENY test_hooks\b/,
     'a kind a module defines: asked and answered by name');
like(ask('k2.test', 'test'), qr/^DENY default\b/, 'and the built-in kinds are left to the rest');
my $dump = $t->kapd_cmd('-T', '-c', $t->conf_path);
like($dump->{out}, qr/^#\s+policy th_custom: test_hooks -> default deny$/m,
     'kapd -T lists its chain under its name');
ok(scalar $t->wait_audit(sub { grep { ($_->{kind} // '') eq 'th_custom'
                                      && ($_->{subject} // '') eq 'k1.test' } @_ }),
   'its decisions are audited with its kind name');
# two modules defining one kind: refused, naming both
{
    my $u = Test::Kapd->new;
    $u->write_conf(qq|kapd: { load = ["test_hooks", "bad_kind"]; module_path = ["%%MODULE_PATH%%"];\n|
                   . qq|        error_log = "error.log"; };\n|);
    my $v = $u->kapd_cmd('-t', '-c', $u->conf_path);
    isnt($v->{rc}, 0, 'two modules define one kind: the configuration is refused');
    like($v->{all}, qr/modules "test_hooks" and "bad_kind" both define the request kind "th_custom"/,
         'naming both modules and the kind');
    $u->finish_quiet;
}

sub audit {
    my $c = $t->read_file('audit.jsonl') // '';
    return map { my $v = eval { decode_json($_) }; $v ? $v : () } split /\n/, $c;
}
