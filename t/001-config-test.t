#!/usr/bin/perl
# 001-config-test.t -- `kapd -t`, `-T` and `-V`: a good config is ok; a
# typo in a key, an unknown group, a bad type and a syntax error each
# print file:line and exit 1; an error in an @include'd file names that
# file; -T dumps the chains in order; -V prints version, ABI and the
# build signature.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;

my $t = Test::Kapd->new->has_kapd;
$t->plan(31);

my $base = <<'EOF';
kapd: {
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
network: {
    allow = ["github.com", "*.github.com"];
    deny = ["gist.github.com"];
};
audit_log: { path = "audit.jsonl"; };
EOF

sub check {
    my ($name, $text) = @_;
    my $p = $t->write_file_expand($name, $text);
    return $t->kapd_cmd('-t', '-c', $p, '-p', $t->testdir);
}

# -- good ------------------------------------------------------------------
my $r = check('good.conf', $base);
is($r->{rc}, 0, '-t on a good config exits 0') or diag($r->{all});
like($r->{all}, qr/good\.conf.*syntax is ok/, 'says syntax is ok');
like($r->{all}, qr/good\.conf.*test is successful/, 'says test is successful');

# -- typo in a key (line 6) -------------------------------------------------
(my $typo = $base) =~ s/allow = /alow = /;
$r = check('typo.conf', $typo);
is($r->{rc}, 1, 'typo in a key: exit 1');
like($r->{all}, qr/typo\.conf:6\b/, 'typo: file:line') or diag($r->{all});
like($r->{all}, qr/"alow"/, 'typo: names the key');
like($r->{all}, qr/\bnetwork\b/, 'typo: names the group');

# -- unknown group (line 10) ------------------------------------------------
$r = check('group.conf', $base . "netwrk: { allow = [\"a.test\"]; };\n");
is($r->{rc}, 1, 'unknown group: exit 1');
like($r->{all}, qr/group\.conf:10\b/, 'unknown group: file:line') or diag($r->{all});
like($r->{all}, qr/unknown group "netwrk"/, 'unknown group: names it');

# -- bad type (line 6: a string where a list is wanted) ----------------------
(my $type = $base) =~ s/allow = \[[^\]]*\]/allow = 42/;
$r = check('type.conf', $type);
is($r->{rc}, 1, 'bad type: exit 1');
like($r->{all}, qr/type\.conf:6\b/, 'bad type: file:line') or diag($r->{all});
like($r->{all}, qr/\ballow\b/, 'bad type: names the key');

# -- syntax error (line 7: missing ']') ------------------------------------
(my $syn = $base) =~ s/(deny = \["gist\.github\.com")\];/$1;/;
$r = check('syntax.conf', $syn);
is($r->{rc}, 1, 'syntax error: exit 1');
like($r->{all}, qr/syntax\.conf:7\b/, 'syntax error: file:line') or diag($r->{all});

# -- error inside an @include'd file -----------------------------------------
$t->write_file_expand('conf.d/net.conf', <<'EOF');
network: {
    allow = ["github.com"];
    colour = "blue";
};
EOF
$r = check('inc.conf', <<'EOF');
kapd: {
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
};
@include "conf.d/net.conf"
EOF
is($r->{rc}, 1, 'error in an included file: exit 1');
like($r->{all}, qr{conf\.d/net\.conf:3\b}, 'names the included file and line')
    or diag($r->{all});
like($r->{all}, qr/"colour"/, 'and the key');

# the included file itself being fine works too
$t->write_file_expand('conf.d/net.conf', "network: { allow = [\"github.com\"]; };\n");
$r = check('inc.conf', $t->read_file('inc.conf'));
is($r->{rc}, 0, 'good included file: exit 0') or diag($r->{all});

# -- a missing file; a group of a module that is not loaded ------------------
$r = $t->kapd_cmd('-t', '-c', $t->path('nosuch.conf'), '-p', $t->testdir);
is($r->{rc}, 1, 'missing config file: exit 1');
like($r->{all}, qr/nosuch\.conf/, 'missing config file: names it');
$r = check('notloaded.conf', $base
    . "test_hooks: { listen = \"127.0.0.1:%%PORT_hooks%%\"; };\n");
is($r->{rc}, 1, 'group of a module that is not loaded: exit 1');
like($r->{all}, qr/notloaded\.conf:10\b.*|test_hooks.*not loaded|not loaded.*test_hooks/s,
     'says the module is not loaded, with file:line') or diag($r->{all});

# -- -T dumps chains in order --------------------------------------------------
SKIP: {
    skip 'test_hooks module not built', 4
        unless -e $t->module_path . '/kap_test_hooks.so';
    my $chain = sub {
        my ($order) = @_;
        return <<"EOF";
kapd: {
    load = ["test_hooks"];
    module_path = ["%%MODULE_PATH%%"];
    error_log = "error.log";
    policy: { chain = [$order]; };
};
network: { allow = ["github.com"]; };
test_hooks: { listen = "127.0.0.1:%%PORT_hooks%%"; answer = "decline"; };
EOF
    };
    my $p = $t->write_file_expand('chain1.conf', $chain->('"test_hooks", "network"'));
    my $r1 = $t->kapd_cmd('-T', '-c', $p, '-p', $t->testdir);
    is($r1->{rc}, 0, '-T exits 0') or diag($r1->{all});
    ok(order_ok($r1->{out}, 'test_hooks', 'network'),
       '-T: test_hooks before network') or diag($r1->{out});
    $p = $t->write_file_expand('chain2.conf', $chain->('"network", "test_hooks"'));
    my $r2 = $t->kapd_cmd('-T', '-c', $p, '-p', $t->testdir);
    ok(order_ok($r2->{out}, 'network', 'test_hooks'),
       '-T: reversed chain printed reversed') or diag($r2->{out});
    # a hook module left out of an explicit chain is an error
    $p = $t->write_file_expand('chain3.conf', $chain->('"network"'));
    my $r3 = $t->kapd_cmd('-t', '-c', $p, '-p', $t->testdir);
    is($r3->{rc}, 1, 'a policy module missing from an explicit chain is an error')
        or diag($r3->{all});
}

# The chain for a kind is printed either on one line ("a -> b") or as a
# list below a line naming the policy chain; check the order either way.
sub order_ok {
    my ($out, $first, $second) = @_;
    for my $l (split /\n/, $out) {
        next unless $l =~ /\b\Q$first\E\b/ && $l =~ /\b\Q$second\E\b/;
        return index($l, $first) < index($l, $second);
    }
    my $i = index($out, 'policy');
    $i = index($out, 'Policy') if $i < 0;
    return 0 if $i < 0;
    my $rest = substr($out, $i);
    my ($a, $b) = (index($rest, $first), index($rest, $second));
    return $a >= 0 && $b >= 0 && $a < $b;
}

# -- -V ----------------------------------------------------------------------
my $v = $t->kapd_cmd('-V');
is($v->{rc}, 0, '-V exits 0') or diag($v->{all});
like($v->{all}, qr/kapd\b.*\d+\.\d+/, '-V prints the version');
my $mh = do { local (@ARGV, $/) = ($t->srcdir . '/core/include/kapd/kap_module.h'); <> } // '';
my ($amaj) = $mh =~ /#define KAP_ABI_MAJOR\s+(\d+)/;
my ($amin) = $mh =~ /#define KAP_ABI_MINOR\s+(\d+)/;
like($v->{all}, qr/ABI\D*\Q$amaj.$amin\E\b/, "-V prints the ABI major.minor of kap_module.h ($amaj.$amin)");
my $sig = build_sig();
ok(defined $sig && index($v->{all}, $sig) >= 0, "-V prints the build signature")
    or diag("expected '" . ($sig // 'undef') . "' in:\n$v->{all}");

sub build_sig {
    for my $f ($t->builddir . '/core/include/kapd/kap_build.h',
               $t->srcdir . '/core/include/kapd/kap_build.h') {
        open my $fh, '<', $f or next;
        while (<$fh>) { return $1 if /#define\s+KAP_BUILD_SIG\s+"([^"]*)"/ }
    }
    return undef;
}
