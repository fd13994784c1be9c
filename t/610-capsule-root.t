#!/usr/bin/perl
# 610-capsule-root.t -- issue 10 item 6: `kap run` started by root does
# not give the command the host's root.
#
# As root, the command is root only of a user namespace mapped to an
# unprivileged uid: it cannot read /etc/shadow, write /etc/cron.d or
# /usr/local/bin, change /proc/sys or /sys; it still writes the project
# (root's here: an idmapped mount), and what it creates there is root's
# on disk.  Skipped unless the test runs as root (CI does).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t);
my $dir = $t->testdir;

plan(skip_all => 'not root: kap run as root is what this tests') if $> != 0;
# a capsule that fails this test writes the host: clean up after it
my $parent = $$;
END { unlink('/etc/cron.d/kap-root-test', '/usr/local/bin/kap-root-test', '/etc/kap-root-test') if $$ == $parent }
$t->plan(11);

mkdir "$dir/proj", 0755;
$t->write_file('proj/probe.sh', <<'EOS');
echo "uid=$(id -u)"
echo "map=$(awk '{print $1 "/" $2 "/" $3}' /proc/self/uid_map)"
if head -c1 /etc/shadow >/dev/null 2>&1; then echo shadow=read; else echo shadow=denied; fi
for d in /etc/cron.d /usr/local/bin /etc; do
    if (echo '* * * * * root touch /tmp/pwned' > "$d/kap-root-test") 2>/dev/null; then
        echo "write_$d=yes"; else echo "write_$d=no"; fi
done
if (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null; then echo procsys=yes; else echo procsys=no; fi
if (echo x > /sys/kernel/uevent_helper) 2>/dev/null; then echo sys=yes; else echo sys=no; fi
echo made > made.txt && echo project=yes
EOS
my $r = $c->run({ tag => 'probe', cwd => "$dir/proj" },
                '-c', "$dir/policy.conf", '--', 'sh', "$dir/proj/probe.sh");
is($r->{rc}, 0, 'kap run as root ran the command') or diag($r->{err});
my $v = Test::Kapd::Capsule::kv($r->{out});
is($v->{uid}, 0, 'the command is root of its user namespace');
my ($in, $out, $n) = split m{/}, $v->{map} // '//';
ok(defined $out && $out ne '' && $out != 0 && $n == 1,
   "which maps it to an unprivileged uid outside ($v->{map})");
is($v->{shadow}, 'denied', 'it cannot read /etc/shadow');
is($v->{'write_/etc/cron.d'}, 'no', 'it cannot write /etc/cron.d');
is($v->{'write_/usr/local/bin'}, 'no', 'it cannot write /usr/local/bin');
ok(!-e '/etc/cron.d/kap-root-test' && !-e '/usr/local/bin/kap-root-test' && !-e '/etc/kap-root-test',
   'nothing was written on the host');
is($v->{procsys}, 'no', '/proc/sys is read-only');
is($v->{sys}, 'no', '/sys is read-only');
is($v->{project}, 'yes', 'the project (root\'s) is writable');
is((stat "$dir/proj/made.txt")[4], 0, 'and what the command creates there is root\'s on disk');
$t->done_testing;
