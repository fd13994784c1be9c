#!/usr/bin/perl
# 901-k8s-policy-model.t -- a MODEL, not a cluster: which connections the
# rendered NetworkPolicies of deploy/k8s allow, by the API's rules
# (Test::Kapd::K8sModel; no network plugin runs here, and what a plugin
# really enforces is kap-check's to prove).  First the evaluator on the
# example of the Kubernetes NetworkPolicy documentation; then the matrix of
# the layout: the base applied in namespace "agents" and again in "other"
# (another team's gateway), pods at made-up addresses, Service traffic
# after its DNAT.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::K8sLint;
use Test::Kapd::K8sModel;

my $t = Test::Kapd->new;
for my $tool (qw(kubectl python3)) {
    plan(skip_all => "$tool is not installed (contrib/install-deps --test)")
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}
note('this test is a model of NetworkPolicy semantics over the rendered objects, not a cluster');

# ---- the evaluator on the documentation's example ----------------------------------
{
    my $doc = { kind => 'NetworkPolicy', spec => {
        podSelector => { matchLabels => { role => 'db' } },
        policyTypes => ['Ingress', 'Egress'],
        ingress => [{ from => [
                { ipBlock => { cidr => '172.17.0.0/16', except => ['172.17.1.0/24'] } },
                { namespaceSelector => { matchLabels => { project => 'myproject' } } },
                { podSelector => { matchLabels => { role => 'frontend' } } } ],
            ports => [{ protocol => 'TCP', port => 6379 }] }],
        egress => [{ to => [{ ipBlock => { cidr => '10.0.0.0/24' } }],
                     ports => [{ protocol => 'TCP', port => 5978 }] }] } };
    my $m = Test::Kapd::K8sModel->new(policies => { default => [$doc] });
    my $db = { ns => 'default', labels => { role => 'db' }, ip => '10.244.0.5' };
    my $fe = { ns => 'default', labels => { role => 'frontend' }, ip => '10.244.0.6' };
    my $other = { ns => 'default', labels => { role => 'x' }, ip => '10.244.0.7' };
    my $proj = { ns => 'p', ns_labels => { project => 'myproject' }, labels => {}, ip => '10.244.0.8' };
    is($m->allowed($fe, $db, 'TCP', 6379), 1, 'model (doc example): frontend -> db:6379 allowed');
    is($m->allowed($fe, $db, 'TCP', 6380), 0, 'model (doc example): another port refused');
    is($m->allowed($other, $db, 'TCP', 6379), 0, 'model (doc example): another pod refused');
    is($m->allowed($proj, $db, 'TCP', 6379), 1, 'model (doc example): a pod of namespace project=myproject allowed');
    is($m->allowed({ ip => '172.17.2.1' }, $db, 'TCP', 6379), 1, 'model (doc example): 172.17.0.0/16 allowed');
    is($m->allowed({ ip => '172.17.1.9' }, $db, 'TCP', 6379), 0, 'model (doc example): its except 172.17.1.0/24 refused');
    is($m->allowed($db, { ip => '10.0.0.9' }, 'TCP', 5978), 1, 'model (doc example): db -> 10.0.0.0/24:5978 allowed');
    is($m->allowed($db, { ip => '10.0.1.9' }, 'TCP', 5978), 0, 'model (doc example): db -> elsewhere refused');
    is($m->allowed($fe, $other, 'TCP', 80), 1, 'model (doc example): pods no policy selects are open');
}

# ---- the layout ---------------------------------------------------------------------
my @base = Test::Kapd::K8sLint::render($t->srcdir . '/deploy/k8s/base');
my @agent_job = Test::Kapd::K8sLint::render($t->srcdir . '/deploy/k8s/example-agent');
my @pol = grep { $_->{kind} eq 'NetworkPolicy' } @base;
my ($svc) = grep { $_->{kind} eq 'Service' } @base;
my ($dep) = grep { $_->{kind} eq 'Deployment' } @base;
my %named = map { ($_->{name} => $_->{containerPort}) } @{ $dep->{spec}{template}{spec}{containers}[0]{ports} };
my $kapd_labels = $dep->{spec}{template}{metadata}{labels};
my $agent_labels = $agent_job[0]{spec}{template}{metadata}{labels};
my $m = Test::Kapd::K8sModel->new(policies => { agents => \@pol, other => \@pol });

my %ep = (
    agent       => { ns => 'agents', labels => $agent_labels, ip => '10.244.1.20' },
    agent2      => { ns => 'agents', labels => $agent_labels, ip => '10.244.1.21' },
    unlabelled  => { ns => 'agents', labels => { app => 'x' }, ip => '10.244.1.22' },
    kapd        => { ns => 'agents', labels => $kapd_labels, ip => '10.244.1.10' },
    'other kapd'  => { ns => 'other', labels => $kapd_labels, ip => '10.244.2.10' },
    'other agent' => { ns => 'other', labels => $agent_labels, ip => '10.244.2.20' },
    'kube-dns'  => { ns => 'kube-system', labels => { 'k8s-app' => 'kube-dns' }, ip => '10.244.0.3' },
    'api server' => { ns => 'default', labels => { component => 'apiserver' }, ip => '10.244.0.2' },
    world       => { ip => '140.82.112.3' },
    'world v6'  => { ip => '2606:4700:4700::1111' },
    metadata    => { ip => '169.254.169.254' },
    'node 10/8' => { ip => '10.0.0.7' },
    '172.16/12' => { ip => '172.16.5.1' },
    '192.168/16' => { ip => '192.168.1.1' },
    'CGNAT'     => { ip => '100.64.0.1' },
    'ULA v6'    => { ip => 'fd00::1' },
    'link-local v6' => { ip => 'fe80::1' },
);

# [from, to, proto, port, expected]; a port given as "svc:N" goes through
# the kapd Service's DNAT to its target port
my @matrix = (
    ['agent', 'kapd', 'TCP', 'svc:3128', 1],
    ['agent', 'kapd', 'UDP', 'svc:53', 1],
    ['agent', 'kapd', 'TCP', 'svc:53', 1],
    ['agent', 'kapd', 'TCP', 22, 0],
    ['agent', 'world', 'TCP', 443, 0],
    ['agent', 'world v6', 'TCP', 443, 0],
    ['agent', 'kube-dns', 'UDP', 53, 0],
    ['agent', 'kube-dns', 'TCP', 53, 0],
    ['agent', 'metadata', 'TCP', 80, 0],
    ['agent', 'node 10/8', 'TCP', 10250, 0],
    ['agent', 'api server', 'TCP', 443, 0],
    ['agent', 'agent2', 'TCP', 8080, 0],
    ['agent', 'other kapd', 'TCP', 3128, 0],
    ['agent', 'other agent', 'TCP', 8080, 0],
    ['other agent', 'kapd', 'TCP', 3128, 0],
    ['unlabelled', 'kapd', 'TCP', 3128, 0],
    ['unlabelled', 'world', 'TCP', 443, 0],
    ['kapd', 'world', 'TCP', 443, 1],
    ['kapd', 'world v6', 'TCP', 443, 1],
    ['kapd', 'kube-dns', 'UDP', 53, 1],
    ['kapd', 'kube-dns', 'TCP', 53, 1],
    ['kapd', 'kube-dns', 'TCP', 8080, 0],
    ['kapd', 'metadata', 'TCP', 80, 0],
    ['kapd', 'node 10/8', 'TCP', 10250, 0],
    ['kapd', '172.16/12', 'TCP', 443, 0],
    ['kapd', '192.168/16', 'TCP', 443, 0],
    ['kapd', 'CGNAT', 'TCP', 443, 0],
    ['kapd', 'ULA v6', 'TCP', 443, 0],
    ['kapd', 'link-local v6', 'TCP', 443, 0],
    ['kapd', 'agent', 'TCP', 8080, 0],
    ['kapd', 'api server', 'TCP', 443, 0],
);
for my $row (@matrix) {
    my ($from, $to, $proto, $port, $want) = @$row;
    my $p = $port;
    if ($p =~ /^svc:(\d+)$/) {
        $p = Test::Kapd::K8sModel::via_service($svc, \%named, $proto, $1);
        ok(defined $p, "model: the Service kapd has $proto $1") or next;
    }
    is($m->allowed($ep{$from}, $ep{$to}, $proto, $p), $want,
       sprintf('model: %s -> %s %s/%s %s', $from, $to, $proto, $port, $want ? 'allowed' : 'refused'));
}

$t->done_testing;
