#!/usr/bin/perl
# 600-capsule-basic.t -- `kap run`: a capsule (own network, mount and pid
# namespaces; kap-shim bridge inside; a private kapd outside) whose only way
# out is kapd.  From inside the capsule: an allowed name through the proxy
# reaches the fake origin, a denied one gets 403, DNS answers allowed names
# and NXDOMAIN for denied ones; a direct connection to the origin, curl
# without the proxy, DNS to another resolver, UDP and IPv6 egress all fail.
# Outside: the exit status propagates, SIGKILL of the command leaves
# nothing behind, two capsules side by side do not share sockets, and the
# unprivileged path (user namespace) works when the kernel allows it.
#
# The test itself runs in Test::Kapd's private namespace (loopback only),
# so the fakes on 127.0.0.1 are reachable from kapd but not from the
# capsule, whose loopback is its own.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::FakeDNS;
use Test::Kapd::FakeHTTP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);

my $t = Test::Kapd->new;
$t->has_kapd->has_module(qw/http_connect dns/);

my ($kap, $shim, $sh) = $t->has_capsule(qw/unshare ip curl setpriv/);

$t->plan(28);

my $dir = $t->testdir;
my $oport = $t->port('origin');
my $dport = $t->port('dns');

my $dns = Test::Kapd::FakeDNS->new($t, port => $dport, zone => {
    'allowed.test' => ['A 127.0.0.1'],
    'denied.test'  => ['A 127.0.0.1'],
});
my $origin = Test::Kapd::FakeHTTP->new($t, port => $oport, name => 'origin');

$t->write_file_expand('policy.conf', <<'EOF');
# the project's policy, as a user writes it
kapd: { log_level = "info"; };
network: {
    # the origin lives on loopback: allow the name and (on purpose) the
    # address, both only on the origin's port
    allow = ["allowed.test:%%PORT_origin%%", "127.0.0.1:%%PORT_origin%%"];
};
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { };
dns: { };
EOF

# the capsule's own tools: a DNS query and an egress probe, in Perl (the
# capsule sees the host's filesystem)
$t->write_file('dnsq.pl', <<'EOF');
# dnsq.pl SERVER PORT NAME [tcp]: prints "RCODE addr,addr" or "TIMEOUT"
use strict; use warnings; use Net::DNS;
my ($srv, $port, $name, $tcp) = @ARGV;
my $r = Net::DNS::Resolver->new(nameservers => [$srv], port => $port,
    usevc => $tcp ? 1 : 0, udp_timeout => 2, tcp_timeout => 2, retry => 1,
    retrans => 1, defnames => 0, dnsrch => 0);
my $p = $r->send($name, 'A');
if (!$p) { print "TIMEOUT\n"; exit 0 }
print $p->header->rcode, ' ',
    join(',', map { $_->address } grep { $_->type eq 'A' } $p->answer), "\n";
EOF
$t->write_file('egress.pl', <<'EOF');
# egress.pl: can a UDP or IPv6 socket get a route anywhere but loopback?
# connect(2) on UDP only looks up a route: no packet is ever sent.
use strict; use warnings; use Socket qw(:all);
for my $a (['udp4', AF_INET, '192.0.2.1'], ['udp6', AF_INET6, '2001:db8::1']) {
    my ($name, $fam, $ip) = @$a;
    socket(my $s, $fam, SOCK_DGRAM, 0) or do { print "$name=nosocket\n"; next };
    my $sa = $fam == AF_INET ? pack_sockaddr_in(53, inet_aton($ip))
                             : pack_sockaddr_in6(53, inet_pton(AF_INET6, $ip));
    print "$name=", (connect($s, $sa) ? 'route' : 'noroute'), "\n";
}
EOF

$t->write_file_expand('capsule.sh', <<'EOF');
# runs inside the capsule; prints key=value lines
cd %%PREFIX%%
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; echo " rc=$?"; }
echo "proxy_env=$HTTP_PROXY $HTTPS_PROXY"
echo "links=$(ip -o link show | awk -F': ' '{printf "%s ", $2}')"
echo "allowed=$(code http://allowed.test:%%PORT_origin%%/hello)"
echo "denied=$(code http://denied.test:%%PORT_origin%%/hello)"
echo "connect_allowed=$(code -p http://allowed.test:%%PORT_origin%%/tunnel)"
echo "direct=$(code --noproxy '*' http://127.0.0.1:%%PORT_origin%%/direct)"
echo "noproxy_env=$(env -u HTTP_PROXY -u http_proxy -u HTTPS_PROXY -u https_proxy curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://allowed.test:%%PORT_origin%%/noproxy; echo " rc=$?")"
echo "dns_allowed=$(perl dnsq.pl 127.0.0.1 53 allowed.test)"
echo "dns_allowed_tcp=$(perl dnsq.pl 127.0.0.1 53 allowed.test tcp)"
echo "dns_denied=$(perl dnsq.pl 127.0.0.1 53 denied.test)"
echo "dns_other=$(perl dnsq.pl 127.0.0.1 %%PORT_dns%% allowed.test)"
perl egress.pl
exit 42
EOF

# run_kap(%o, args): run the kap script; returns {rc, out, err}.
#   env => {..}, as => uid, timeout => s, bg => 1 (return the pid)
sub run_kap {
    my ($o, @args) = @_;
    my $tag = $o->{tag} // 'kap';
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
        $ENV{HOME} = $o->{home} // "$dir/home";
        $ENV{XDG_RUNTIME_DIR} = $o->{xdg} // "$dir/run";
        delete $ENV{XDG_STATE_HOME};
        my @pre = $o->{as} ? ('setpriv', "--reuid=$o->{as}", "--regid=$o->{as}",
                              '--clear-groups', '--') : ();
        exec(@pre, $sh, $kap, @args) or exit 127;
    }
    return $pid if $o->{bg};
    my $st;
    my $done = wait_until(sub { waitpid($pid, WNOHANG) == $pid and do { $st = $?; 1 } },
                          kapd_tmo($o->{timeout} // 60));
    unless ($done) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $st = -1;
    }
    return { rc => $st < 0 ? -1 : ($st & 127 ? 128 + ($st & 127) : $st >> 8),
             out => $t->read_file("$tag.out") // '',
             err => $t->read_file("$tag.err") // '' };
}

sub kv {
    my ($text) = @_;
    return { map { /^(\w+)=(.*)$/ ? ($1, $2) : () } split /\n/, $text };
}

mkdir "$dir/home";
mkdir "$dir/run", 0700;

# -- the main capsule -----------------------------------------------------
my $r = run_kap({}, 'run', '-c', "$dir/policy.conf", '--keep', '--',
                'sh', "$dir/capsule.sh");
my $v = kv($r->{out});
diag("kap run stderr:\n$r->{err}") if $r->{rc} != 42;
is($r->{rc}, 42, 'exit status of the command propagates');
is($v->{proxy_env}, 'http://127.0.0.1:3128 http://127.0.0.1:3128',
   'HTTP_PROXY/HTTPS_PROXY point at the bridge');
is($v->{links}, 'lo ', 'the capsule has loopback only');
is($v->{allowed}, '200 rc=0', 'allowed name through the proxy reaches the origin');
ok($origin->count >= 1
   && grep({ $_->{target} eq '/hello' } @{$origin->requests}),
   'and the origin saw the request');
like($v->{denied} // '', qr/^403 /, 'denied name gets 403');
is($v->{connect_allowed}, '200 rc=0', 'CONNECT tunnel to an allowed name works');
like($v->{direct} // '', qr/^000 rc=(?!0)/, 'direct TCP to the origin address fails');
like($v->{noproxy_env} // '', qr/^000 rc=(?!0)/, 'curl without the proxy variables fails');
like($v->{dns_allowed} // '', qr/^NOERROR 127\.0\.0\.1$/, 'DNS through the bridge (UDP) answers an allowed name');
like($v->{dns_allowed_tcp} // '', qr/^NOERROR 127\.0\.0\.1$/, 'DNS through the bridge (TCP)');
like($v->{dns_denied} // '', qr/^NXDOMAIN/, 'denied name gets NXDOMAIN');
is($v->{dns_other}, 'TIMEOUT', 'DNS to another resolver gets nowhere');
is($v->{udp4}, 'noroute', 'no IPv4 route for UDP');
is($v->{udp6}, 'noroute', 'no IPv6 route');

my ($rtdir) = glob("$dir/run/kap/*");
ok($rtdir && -f "$rtdir/kapd.conf", 'runtime directory kept with --keep');
my $audit = join '', map { $t->read_file($_) // '' } glob("$dir/home/.local/state/kap/logs/*.jsonl");
like($audit, qr/"denied\.test"/, 'the denial is in the audit log');

my $why = run_kap({ tag => 'why' }, 'why-denied');
like($why->{out}, qr/denied\.test.*\n\s*-> network\.allow \+= "denied\.test(:\d+)?"/,
     'kap why-denied names the denial and the line that allows it');

# -- exit codes, SIGKILL and cleanup ----------------------------------------
$r = run_kap({ tag => 'kill' }, 'run', '-c', "$dir/policy.conf", '--',
             'sh', '-c', 'kill -KILL $$');
is($r->{rc}, 137, 'command killed by SIGKILL: 128+9');
my @left = glob("$dir/run/kap/*");
is(scalar(grep { $_ ne $rtdir } @left), 0, 'runtime directory removed');
my $ps = `ps -eo args`;
my @procs = grep { m{\Q$dir/run/kap/\E} && !m{\Q$rtdir\E} } split /\n/, $ps;
is(scalar @procs, 0, 'no kapd or bridge left behind') or diag(join "\n", @procs);

# -- two capsules side by side ----------------------------------------------
my $lport = $t->port('inner');
$t->write_file_expand('listener.pl', <<'EOF');
use strict; use warnings; use IO::Socket::INET; use Time::HiRes qw(sleep time);
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => %%PORT_inner%%,
    Listen => 5, ReuseAddr => 1) or die "listen: $!";
open my $f, '>', '%%PREFIX%%/a.ready'; close $f;
my $end = time + 30;
sleep 0.05 until -e '%%PREFIX%%/a.done' || time > $end;
exit 0;
EOF
my $apid = run_kap({ tag => 'capA', bg => 1 }, 'run', '-c', "$dir/policy.conf",
                   '--', 'perl', "$dir/listener.pl");
ok(wait_until(sub { -e "$dir/a.ready" }, kapd_tmo(30)), 'capsule A listens');
my $b = run_kap({ tag => 'capB' }, 'run', '-c', "$dir/policy.conf", '--',
    'sh', '-c', "curl -s -o /dev/null -w '%{http_code}' --max-time 5 "
    . "http://allowed.test:$oport/b; echo; "
    . "perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(\"127.0.0.1:$lport\") ? \"reached\\n\" : \"refused\\n\"'");
my @bl = split /\n/, $b->{out};
is($bl[0], '200', 'capsule B has its own working bridge on 127.0.0.1:3128');
is($bl[1], 'refused', "capsule B cannot reach capsule A's sockets");
open my $df, '>', "$dir/a.done"; close $df;
my $ast;
wait_until(sub { waitpid($apid, WNOHANG) == $apid and do { $ast = $?; 1 } }, kapd_tmo(30))
    or do { kill 'KILL', $apid; waitpid($apid, 0); $ast = -1 };
is($ast, 0, 'capsule A exits 0');

# -- unprivileged (user namespace) ---------------------------------------------
SKIP: {
    my $uid = 65534;
    my $probe = `setpriv --reuid=$uid --regid=$uid --clear-groups -- unshare --user --map-root-user --net true 2>&1`;
    skip "unprivileged user namespaces unavailable: $probe", 3 if $?;
    my $home = "$dir/home-nobody";
    my $xdg = "$dir/run-nobody";
    for ($home, $xdg) { mkdir $_, 0700; chown $uid, $uid, $_ }
    my $ok_access = !system('setpriv', "--reuid=$uid", "--regid=$uid", '--clear-groups', '--',
                            'sh', '-c', "test -r '$kap' && test -x '$shim' && test -x '" . $t->binary
                            . "' && test -r '$dir/policy.conf'");
    skip "build tree not readable by uid $uid", 3 unless $ok_access;
    $r = run_kap({ tag => 'nobody', as => $uid, home => $home, xdg => $xdg },
                 'run', '-c', "$dir/policy.conf", '--', 'sh', '-c',
                 "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://allowed.test:$oport/u; echo; "
                 . "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://denied.test:$oport/u; echo; exit 3");
    diag("unprivileged kap run stderr:\n$r->{err}") if $r->{rc} != 3;
    is($r->{rc}, 3, 'unprivileged: exit status propagates');
    my @ul = split /\n/, $r->{out};
    is($ul[0], '200', 'unprivileged: allowed name reaches the origin');
    is($ul[1], '403', 'unprivileged: denied name gets 403');
}
