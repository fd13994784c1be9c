#!/usr/bin/perl
# 602-capsule-policy-tamper.t -- adversarial: the agent inside a `kap run`
# capsule rewrites the policy kapd is running.
#
# bypass-classes.md #9: "config inside the workspace let the agent
# downgrade isolation" (sandy), and enforcement the agent can switch off.
# The capsule sees the host's filesystem as the user who started kap, and
# kapd reloads any configuration file whose content changes (reload_check,
# about every 2 s).  So the agent must not be able to change what kapd
# enforces by writing: the project policy it was started from, the global
# ~/.kap/kap.conf, or the copies in kap's runtime directory.  From inside
# the capsule each file is rewritten to allow denied.test (and observe
# mode, which allows everything), then the agent polls denied.test for 6 s
# (three reload checks): it must stay 403.  Run as root and, where the
# kernel allows it, unprivileged (user namespace), as t/600 does.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use POSIX qw(WNOHANG);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);

my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare ip curl setpriv/);

my $dir = $t->testdir;
my $oport = $t->port('origin');
Test::Kapd::FakeDNS->new($t, port => $t->port('dns'), zone => {
    'allowed.test' => ['A 127.0.0.1'],
    'denied.test'  => ['A 127.0.0.1'],
});
Test::Kapd::FakeHTTP->new($t, port => $oport, name => 'origin');

my $policy = <<'EOF';
kapd: { log_level = "info"; };
network: {
    allow = ["allowed.test:%%PORT_origin%%", "127.0.0.1:%%PORT_origin%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { };
dns: { };
EOF
$t->write_file_expand('policy.conf', $policy);

# inside the capsule: rewrite every policy file it can find to allow
# denied.test and switch observe mode on, then poll denied.test
$t->write_file_expand('tamper.sh', <<'EOF');
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@"; }
echo "before=$(code http://denied.test:%%PORT_origin%%/before)"
n=0
POLICY=$1    # the environment does not pass into the capsule
tried=0
for f in "$POLICY" "$HOME/.kap/kap.conf" "$XDG_RUNTIME_DIR"/kap/*/kapd.conf \
         "$XDG_RUNTIME_DIR"/kap/*/global.conf; do
    [ -f "$f" ] || continue
    tried=$((tried + 1))
    sed -e 's/allow = \[/allow = ["denied.test:%%PORT_origin%%", "*.test", /' \
        -e 's/^kapd: {/kapd: { policy = { observe = true; };/' "$f" > "$f.new" 2>/dev/null \
        && cat "$f.new" > "$f" 2>/dev/null && n=$((n + 1))
    rm -f "$f.new"
done
echo "rewritten=$n"
echo "tried=$tried"
i=0; last=
while [ $i -lt 12 ]; do
    last=$(code http://denied.test:%%PORT_origin%%/after$i)
    [ "$last" = 200 ] && break
    sleep 0.5; i=$((i + 1))
done
echo "after=$last"
EOF

sub run_kap {
    my ($o, @args) = @_;
    my $tag = $o->{tag};
    my ($out, $err) = ("$dir/$tag.out", "$dir/$tag.err");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        # the capsule has a private /tmp: it sees its working directory
        # (the test's prefix, holding the scripts it runs) and $HOME
        chdir $dir or exit 127;
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        $ENV{KAPD} = $t->binary;
        $ENV{KAP_SHIM} = $shim;
        $ENV{KAP_MODULE_PATH} = $t->module_path;
        $ENV{HOME} = $o->{home};
        $ENV{XDG_RUNTIME_DIR} = $o->{xdg};
        $ENV{POLICY} = $o->{policy};
        delete $ENV{XDG_STATE_HOME};
        my @pre = $o->{as} ? ('setpriv', "--reuid=$o->{as}", "--regid=$o->{as}",
                              '--clear-groups', '--') : ();
        exec(@pre, $sh, $kap, @args) or exit 127;
    }
    my $st;
    wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } }, kapd_tmo(60))
        or do { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 };
    my %v = map { /^(\w+)=(.*)$/ ? ($1, $2) : () } split /\n/, $t->read_file("$tag.out") // '';
    return (\%v, $t->read_file("$tag.err") // '');
}

sub tamper_case {
    my ($name, %o) = @_;
    for my $d ($o{home}, "$o{home}/.kap", $o{xdg}) {
        mkdir $d, 0700;
        chown $o{as}, $o{as}, $d if $o{as};
    }
    # a project policy and a global one, both the user's own files
    $t->write_file_expand("$name-project.conf", $policy);
    $t->write_file_expand("$name-home.conf", "network: { allow = [\"allowed.test:%%PORT_origin%%\"]; };\n");
    rename("$dir/$name-home.conf", "$o{home}/.kap/kap.conf");
    chown $o{as}, $o{as}, "$dir/$name-project.conf", "$o{home}/.kap/kap.conf" if $o{as};
    # the global policy is the user's: approved once, outside the capsule
    $t->kap_allow({ home => $o{home}, as => $o{as} }, "$o{home}/.kap/kap.conf");
    my ($v, $err) = run_kap({ %o, tag => $name, policy => "$dir/$name-project.conf" },
                            'run', '-c', "$dir/$name-project.conf", '--', 'sh', "$dir/tamper.sh",
                            "$dir/$name-project.conf");
    is($v->{before}, '403', "$name: denied.test refused before") or diag($err);
    # the policy it was started from is in its working directory: it
    # sees it (read-only now), so the rewrite was really tried
    ok(($v->{tried} // 0) >= 1, "$name: the agent tried to rewrite "
       . ($v->{tried} // 0) . ' policy file(s), ' . ($v->{rewritten} // 0) . ' writable');
    is($v->{after}, '403', "$name: denied.test still refused after the agent rewrote the policy");
}

tamper_case('root', home => "$dir/home-root", xdg => "$dir/run-root");

SKIP: {
    my $uid = 65534;
    my $probe = `setpriv --reuid=$uid --regid=$uid --clear-groups -- unshare --user --map-root-user --net true 2>&1`;
    skip "unprivileged user namespaces unavailable: $probe", 3 if $?;
    my $ok_access = !system('setpriv', "--reuid=$uid", "--regid=$uid", '--clear-groups', '--',
                            'sh', '-c', "test -r '$kap' && test -x '$shim' && test -x '"
                            . $t->binary . "' && test -r '$dir/tamper.sh'");
    skip "build tree not readable by uid $uid", 3 unless $ok_access;
    tamper_case('nobody', as => $uid, home => "$dir/home-nobody", xdg => "$dir/run-nobody");
}

$t->done_testing;
