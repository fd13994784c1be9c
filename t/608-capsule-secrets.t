#!/usr/bin/perl
# 608-capsule-secrets.t -- issue 10 item 4: credentials in the real home
# and in the environment do not reach the command in a `kap run` capsule.
#
# The real home holds ssh keys, AWS, gh, netrc, docker, kube credentials
# and a browser profile; the environment GH_TOKEN, AWS_*, an SSH agent
# socket and an API key.  The policy lists ~/.ssh in capsule.home_ro (kap
# refuses it, a credential store), ~/.gitconfig, and ANTHROPIC_API_KEY in
# capsule.env.  From inside, none of the files can be read (they are not
# there), only the named variable is in the environment, and git's
# configuration is readable but not writable.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::Capsule;

my $t = Test::Kapd->new;
my $c = Test::Kapd::Capsule->setup($t);
my $dir = $t->testdir;

$t->plan(8);

my @secrets = ('.ssh/id_rsa', '.aws/credentials', '.config/gh/hosts.yml', '.netrc',
               '.docker/config.json', '.kube/config',
               '.mozilla/firefox/abc.default/logins.json', '.git-credentials');
for my $f (@secrets) {
    $t->write_file("home/$f", "SECRET-$f\n");
}
$t->write_file('home/.gitconfig', "[user]\n\tname = Kap Test\n\temail = kap\@test.invalid\n");
$t->write_file_expand('secrets.conf', <<'EOC');
network: { allow = ["allowed.test"]; };
resolver: { upstream = ["127.0.0.1:%%PORT_dns%%"]; };
http_connect: { };
dns: { };
capsule: {
    home_ro = [".ssh", ".gitconfig", "~/.aws/credentials"];
    env = ["ANTHROPIC_API_KEY"];
};
EOC
$t->write_file('probe.sh', <<'EOS');
n=0
for f in "$@"; do
    if cat "$HOME/$f" 2>/dev/null | grep -q SECRET; then echo "read=$f"; n=$((n + 1)); fi
done
echo "readable=$n"
# anything of the real home's secrets anywhere in the capsule's view
echo "found=$(grep -rls SECRET- "$HOME" /tmp /run /var/tmp /etc "$PWD" 2>/dev/null | grep -v probe.sh | head -3 | tr '\n' ' ')"
env | sed -n 's/^\(GH_TOKEN\|AWS_[A-Z_]*\|ANTHROPIC_API_KEY\|SSH_AUTH_SOCK\|OTHER_SECRET\)=\(.*\)/env_\1=\2/p'
echo "gitname=$(git config --global user.name)"
if echo x >> "$HOME/.gitconfig" 2>/dev/null; then echo gitconfig=writable; else echo gitconfig=readonly; fi
EOS
my $r = $c->run({ tag => 'probe', env => {
        GH_TOKEN => 'ghp_SECRET', AWS_ACCESS_KEY_ID => 'AKIASECRET',
        AWS_SECRET_ACCESS_KEY => 'SECRET', SSH_AUTH_SOCK => "$dir/home/agent.sock",
        OTHER_SECRET => 'SECRET', ANTHROPIC_API_KEY => 'sk-ant-passed' } },
    '-c', "$dir/secrets.conf", '--', 'sh', "$dir/probe.sh", @secrets);
is($r->{rc}, 0, 'kap run ran the probe') or diag($r->{err});
my $v = Test::Kapd::Capsule::kv($r->{out});
is($v->{readable}, 0, 'no credential file of the real home is readable') or diag($r->{out});
is($v->{found} // '', '', 'no credential found anywhere in the capsule');
like($r->{err}, qr/home_ro: not showing ~\/\.ssh .*\n(.|\n)*home_ro: not showing ~\/\.aws\/credentials/,
     'kap refuses credential stores in capsule.home_ro, and says so');
is(join(',', sort grep { /^env_/ } keys %$v), 'env_ANTHROPIC_API_KEY',
   'GH_TOKEN, AWS_*, SSH_AUTH_SOCK and other variables are not in the environment');
is($v->{env_ANTHROPIC_API_KEY}, 'sk-ant-passed', 'capsule.env passes the variable it names');
is($v->{gitname}, 'Kap Test', "git's configuration (in home_ro) is readable");
is($v->{gitconfig}, 'readonly', 'and read-only');
$t->done_testing;
