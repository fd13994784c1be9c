#!/usr/bin/perl
# 900-k8s-render.t -- deploy/k8s without a cluster: a RENDER, a LINT and a
# CONFIG CHECK, not a Kubernetes server's verdict (no server runs here;
# what only a cluster can prove is kap-check's job, deploy/k8s/README.md).
#  - render: `kubectl kustomize` of every kustomization under deploy/k8s
#    (whatever kubectl is installed: Debian 12's kubernetes-client 1.20 with
#    its old embedded Kustomize, or a newer kubectl);
#  - lint: the layout's invariants on the rendered objects
#    (Test::Kapd::K8sLint: restricted security contexts, no token, no
#    host namespaces, no subPath, Secrets only in kapd, agents pinned to
#    kapd by policy, kapd's egress minus the private and metadata ranges,
#    the Service's ports, the fixed ConfigMap name), and the lint itself
#    on broken copies: each must be caught;
#  - schema: the rendered objects against the npm package
#    kubernetes-models, strictly (no unknown field; t/tools/k8s-schema.js);
#    skipped when it is not installed (contrib/install-deps --test installs it);
#  - config check: `kapd -t` on the rendered ConfigMap's kap.conf, with
#    this build's modules.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::Kapd::K8sLint;
use JSON::PP;

my $t = Test::Kapd->new;
my $src = $t->srcdir;
my $k8s = "$src/deploy/k8s";

for my $tool (qw(kubectl python3)) {
    plan(skip_all => "$tool is not installed (contrib/install-deps --test)")
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}
plan(skip_all => 'python3 has no yaml module (contrib/install-deps --test: python3-yaml)')
    if system('python3', '-c', 'import yaml') != 0;

my $ver = join ' ', map { s/\s+$//r } grep { /Version/ } `kubectl version --client 2>&1`;
note("render with: $ver");
note('this test renders and lints manifests: it is not a cluster');

# ---- render ---------------------------------------------------------------------
my %objs;
for my $dir (qw(. base example-agent kap-check agent-sandbox)) {
    my @o = eval { Test::Kapd::K8sLint::render("$k8s/$dir") };
    ok(!$@ && @o, "render: kubectl kustomize deploy/k8s/$dir") or diag($@);
    $objs{$dir} = \@o;
}
my %kinds;
$kinds{ $_->{kind} . '/' . $_->{metadata}{name} } = 1 for map { @$_ } values %objs;
is(join(' ', sort keys %kinds),
   'ConfigMap/kapd-config Deployment/kapd Job/example-agent Job/kap-check '
   . 'NetworkPolicy/agent-egress NetworkPolicy/default-deny NetworkPolicy/kapd-egress '
   . 'NetworkPolicy/kapd-ingress SandboxTemplate/kap-agent Secret/kapd-secrets Service/kapd',
   'render: exactly the objects of the layout');
ok(!grep({ $_->{metadata}{namespace} } map { @$_ } values %objs),
   'render: no namespace is written in (kubectl apply -n NAMESPACE chooses it)');

# ---- lint --------------------------------------------------------------------------
# each kustomization with the base's policies and Service (the Jobs are
# applied into the namespace of the base)
my @base = @{ $objs{base} };
for my $dir (sort keys %objs) {
    my %seen;
    my @set = grep { !$seen{ $_->{kind} . '/' . $_->{metadata}{name} }++ } (@{ $objs{$dir} }, @base);
    my @bad = Test::Kapd::K8sLint::lint(@set);
    is(scalar @bad, 0, "lint: deploy/k8s/$dir with the base keeps every invariant")
        or diag(join "\n", @bad);
}

# the lint catches what it is for: one break at a time, on a copy
my @all = do { my %s; grep { !$s{ $_->{kind} . '/' . $_->{metadata}{name} }++ } map { @$_ } @objs{qw(. kap-check agent-sandbox)} };
my $json = JSON::PP->new->canonical;
sub broken {
    my ($what, $re, $edit) = @_;
    my @copy = @{ $json->decode($json->encode(\@all)) };
    $edit->(\@copy);
    my @bad = Test::Kapd::K8sLint::lint(@copy);
    ok((grep { $_ =~ $re } @bad), "lint catches: $what") or diag(join "\n", @bad ? @bad : '(nothing reported)');
}
sub obj { my ($l, $name) = @_; (grep { "$_->{kind}/$_->{metadata}{name}" eq $name } @$l)[0] }
sub pod { my ($o) = @_; $o->{kind} eq 'SandboxTemplate' ? $o->{spec}{podTemplate}{spec} : $o->{spec}{template}{spec} }

broken('hostNetwork in an agent', qr/hostNetwork/, sub { pod(obj($_[0], 'Job/example-agent'))->{hostNetwork} = JSON::PP::true });
broken('an added capability', qr/capabilities added \(NET_ADMIN\)/,
       sub { pod(obj($_[0], 'Deployment/kapd'))->{containers}[0]{securityContext}{capabilities}{add} = ['NET_ADMIN'] });
broken('a writable root filesystem', qr/readOnlyRootFilesystem/,
       sub { delete pod(obj($_[0], 'Job/kap-check'))->{containers}[0]{securityContext}{readOnlyRootFilesystem} });
broken('privilege escalation allowed', qr/allowPrivilegeEscalation/,
       sub { pod(obj($_[0], 'SandboxTemplate/kap-agent'))->{initContainers}[0]{securityContext}{allowPrivilegeEscalation} = JSON::PP::true });
broken('the service-account token', qr/automountServiceAccountToken/,
       sub { delete pod(obj($_[0], 'Job/example-agent'))->{automountServiceAccountToken} });
broken('a subPath mount of the ConfigMap', qr/subPath/,
       sub { pod(obj($_[0], 'Deployment/kapd'))->{containers}[0]{volumeMounts}[0]{subPath} = 'kap.conf' });
broken('a Secret in an agent', qr/mounts a Secret/,
       sub { push @{ pod(obj($_[0], 'Job/example-agent'))->{volumes} }, { name => 's', secret => { secretName => 'kapd-secrets' } } });
broken('kapd\'s Secret volume readable by others', qr/defaultMode 0444, not 0440/,
       sub { $_->{secret}{defaultMode} = 0444 for grep { $_->{secret} } @{ pod(obj($_[0], 'Deployment/kapd'))->{volumes} } });
broken('kapd\'s Secret volume without an fsGroup', qr/without an fsGroup/,
       sub { delete pod(obj($_[0], 'Deployment/kapd'))->{securityContext}{fsGroup} });
broken('a secretKeyRef in an agent', qr/env from a Secret/,
       sub { push @{ pod(obj($_[0], 'Job/example-agent'))->{containers}[0]{env} },
                 { name => 'TOKEN', valueFrom => { secretKeyRef => { name => 'kapd-secrets', key => 't' } } } });
broken('the cluster DNS for an agent', qr/dnsPolicy is not None/,
       sub { pod(obj($_[0], 'Job/example-agent'))->{dnsPolicy} = 'ClusterFirst' });
broken('another ClusterIP in the agent', qr/HTTPS_PROXY is not/,
       sub { $_->{value} = 'http://10.96.0.99:3128' for grep { $_->{name} eq 'HTTPS_PROXY' } @{ pod(obj($_[0], 'Job/example-agent'))->{containers}[0]{env} } });
broken('the gate probing another address for kapd', qr/kap-gate: does not check kapd's proxy at/,
       sub { s/10\.96\.0\.53:3128/10.96.0.54:3128/ for @{ pod(obj($_[0], 'Job/example-agent'))->{initContainers}[0]{command} } });
broken('no kap-gate', qr/no kap-gate/, sub { delete pod(obj($_[0], 'Job/example-agent'))->{initContainers} });
broken('kap-check probing another address', qr/kap-check: does not check kapd's proxy at/,
       sub { s/10\.96\.0\.53/10.96.0.54/ for @{ pod(obj($_[0], 'Job/kap-check'))->{containers}[0]{command} } });
broken('service links', qr/enableServiceLinks/, sub { pod(obj($_[0], 'Job/kap-check'))->{enableServiceLinks} = JSON::PP::true });
broken('the agent running as kapd\'s uid', qr/kapd's uid/,
       sub { pod(obj($_[0], 'Job/example-agent'))->{securityContext}{runAsUser} = pod(obj($_[0], 'Deployment/kapd'))->{securityContext}{runAsUser} });
broken('agent egress to the world', qr/egress peer other than the kapd pods \(ipBlock\)/,
       sub { push @{ obj($_[0], 'NetworkPolicy/agent-egress')->{spec}{egress} }, { to => [{ ipBlock => { cidr => '0.0.0.0/0' } }] } });
broken('agent egress to kube-dns', qr/egress peer other than the kapd pods/,
       sub { push @{ obj($_[0], 'NetworkPolicy/agent-egress')->{spec}{egress}[0]{to} }, { namespaceSelector => {}, podSelector => { matchLabels => { 'k8s-app' => 'kube-dns' } } } });
broken('agent egress to kapd on the Service port 53 (before DNAT)', qr/not its target port \(UDP\/53\)/,
       sub { push @{ obj($_[0], 'NetworkPolicy/agent-egress')->{spec}{egress}[0]{ports} }, { protocol => 'UDP', port => 53 } });
broken('an agent no policy selects', qr/no NetworkPolicy with Egress selects it/, sub {
    @{ $_[0] } = grep { $_->{kind} ne 'NetworkPolicy' } @{ $_[0] };
});
broken('a namespace-wide allow', qr/namespace-wide policy that is not deny-all|egress rule without 'to'/,
       sub { obj($_[0], 'NetworkPolicy/default-deny')->{spec}{egress} = [{}] });
broken('kapd ingress from any pod', qr/kapd ingress from something other/,
       sub { obj($_[0], 'NetworkPolicy/kapd-ingress')->{spec}{ingress}[0]{from} = [{ podSelector => {} }] });
broken('kapd egress to the metadata range', qr/does not leave out 169\.254\.0\.0\/16/,
       sub { $_->{ipBlock}{except} = [grep { $_ ne '169.254.0.0/16' } @{ $_->{ipBlock}{except} }]
                 for grep { $_->{ipBlock} } map { @{ $_->{to} } } @{ obj($_[0], 'NetworkPolicy/kapd-egress')->{spec}{egress} } });
broken('kapd egress to the IPv6 unique-local range', qr/does not leave out fc00::\/7/,
       sub { $_->{ipBlock}{except} = [] for grep { $_->{ipBlock} && $_->{ipBlock}{cidr} eq '::/0' }
                 map { @{ $_->{to} } } @{ obj($_[0], 'NetworkPolicy/kapd-egress')->{spec}{egress} } });
broken('a sandbox template with the default policy', qr/no networkPolicy of its own/,
       sub { delete obj($_[0], 'SandboxTemplate/kap-agent')->{spec}{networkPolicy} });
broken('a hashed ConfigMap name', qr/not the fixed name kapd-config/,
       sub { obj($_[0], 'ConfigMap/kapd-config')->{metadata}{name} = 'kapd-config-5h2m9k' });
broken('DNS to kapd\'s port 53', qr/UDP\/53 does not go to kapd's UDP\/5353/,
       sub { $_->{targetPort} = 53 for grep { $_->{protocol} eq 'UDP' } @{ obj($_[0], 'Service/kapd')->{spec}{ports} } });
broken('a kind the layout does not ship', qr/kind not shipped/,
       sub { push @{ $_[0] }, { kind => 'DaemonSet', metadata => { name => 'x' }, spec => {} } });

# ---- schema: kubernetes-models, strict (no unknown field) ---------------------------
# node and the npm package kubernetes-models (installed by name beforehand:
# contrib/install-deps --test; nothing is fetched here), found through NODE_PATH
# and npm's global root
SKIP: {
    my $node = grep { -x "$_/node" } split /:/, $ENV{PATH};
    skip 'schema: node is not installed', 3 unless $node;
    my $groot = grep({ -x "$_/npm" } split /:/, $ENV{PATH}) ? `npm root -g 2>/dev/null` : '';
    chomp $groot;
    local $ENV{NODE_PATH} = join ':', grep { length } ($ENV{NODE_PATH} // '', $groot);
    my $schema = sub {
        my ($objs) = @_;
        $t->write_file('k8s-objects.json', $json->encode($objs));
        my $o = `node '$src/t/tools/k8s-schema.js' < '@{[ $t->path('k8s-objects.json') ]}' 2>&1`;
        return ($? >> 8, $o);
    };
    my ($rc, $o) = $schema->(\@all);
    skip "schema: $o", 3 if $rc == 3;
    note($o =~ /^(checked .*)$/m ? $1 : $o);
    is($rc, 0, 'schema: every object valid and no unknown field (kubernetes-models, strict)') or diag($o);
    my @copy = @{ $json->decode($json->encode(\@all)) };
    pod(obj(\@copy, 'Deployment/kapd'))->{containers}[0]{securityContext}{readOnlyRootFS} = JSON::PP::true;
    pod(obj(\@copy, 'SandboxTemplate/kap-agent'))->{hostNetwrk} = JSON::PP::true;
    obj(\@copy, 'Service/kapd')->{spec}{ports}[0]{protocol} = 'ICMP';
    ($rc, $o) = $schema->(\@copy);
    like($o, qr/securityContext: unknown field "readOnlyRootFS".*podTemplate\.spec: unknown field "hostNetwrk"/s,
         'schema catches: misspelt fields, in a known kind and in the SandboxTemplate') or diag($o);
    like($o, qr/protocol must be equal to one of the allowed values/, 'schema catches: a value outside an enum');
}

# ---- the image's build stage is the sidecar image's --------------------------------
# (instruction for instruction, so one engine builds it once for both images)
{
    my $stage = sub {
        my ($f) = @_;
        open my $fh, '<', "$src/$f" or return "cannot read $f: $!";
        my $text = do { local $/; <$fh> };
        my ($b) = $text =~ /^(FROM debian:bookworm-slim AS build\n.*?^LABEL kap\.stage=build\n)/ms;
        return join '', grep { !/^\s*(#|$)/ } split /^/, $b // "no build stage in $f";
    };
    is($stage->('deploy/k8s/Containerfile'), $stage->('contrib/docker/Dockerfile'),
       'image: the build stage of deploy/k8s/Containerfile is contrib/docker/Dockerfile\'s');
}

# ---- config check: kapd -t on the rendered ConfigMap --------------------------------
SKIP: {
    skip 'kapd is not built here', 2 unless -x $t->binary;
    my ($cm) = grep { $_->{kind} eq 'ConfigMap' } @{ $objs{base} };
    my $conf = $cm->{data}{'kap.conf'} // '';
    ok(length $conf, 'config check: the ConfigMap holds kap.conf');
    $t->write_file('k8s-kap.conf', $conf);
    my $r = $t->kapd_cmd('-t', '-c', $t->path('k8s-kap.conf'), '-p', $t->testdir);
    is($r->{rc}, 0, 'config check: kapd -t accepts the rendered kap.conf') or diag($r->{all});
}

$t->done_testing;
