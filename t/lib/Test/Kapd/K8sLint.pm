package Test::Kapd::K8sLint;

# Test::Kapd::K8sLint -- the invariants of deploy/k8s, checked on rendered
# objects (`kubectl kustomize` output, parsed).  No cluster is involved:
# this reads manifests, it does not ask a Kubernetes server.
#
#   my @objs = Test::Kapd::K8sLint::render($dir);   # kubectl kustomize + parse
#   my @problems = Test::Kapd::K8sLint::lint(@objs);
#
# lint() returns one line per broken invariant (none: all hold):
#   - only the kinds deploy/k8s ships;
#   - every container (init ones too): non-root, no privilege escalation,
#     read-only root filesystem, every capability dropped and none added,
#     not privileged, seccomp RuntimeDefault;
#   - every pod: no host network/PID/IPC, no hostPath, no subPath, no
#     service-account token;
#   - Secrets only in kapd pods, there of defaultMode 0440 with an
#     fsGroup (the group kapd's secret loader reads them through);
#     agent pods: no service links, dnsPolicy
#     None with kapd's fixed ClusterIP as the only nameserver,
#     HTTP(S)_PROXY to it, a kap-gate init container, a uid not kapd's;
#   - every agent pod selected by a policy with Egress; every egress peer of
#     an agent-selecting policy (the SandboxTemplate's too) is the kapd
#     pods on their target ports, and no agent ingress is allowed;
#   - kapd's ingress only from agents; its egress the world minus the
#     private, loopback, CGNAT, link-local and unique-local ranges (plus
#     kube-dns);
#   - the Service maps 3128 and 53 (UDP, TCP) to kapd's 3128 and 5353;
#   - the ConfigMap kapd-config has that fixed name and is mounted whole.

use strict;
use warnings;
use File::Temp ();
use JSON::PP;

our %KINDS = map { $_ => 1 } qw(Deployment Service ConfigMap Secret
                                NetworkPolicy Job SandboxTemplate);
our %AGENT = ('kap.dev/role' => 'agent');
our %KAPD = ('kap.dev/role' => 'kapd');
# the ranges kapd's egress must leave out (NetworkPolicy ipBlock.except)
our @V4_EXCEPT = qw(10.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16
                    172.16.0.0/12 192.168.0.0/16);
our @V6_EXCEPT = qw(::1/128 fc00::/7 fe80::/10);
our %KAPD_PORTS = ('TCP/3128' => 1, 'UDP/5353' => 1, 'TCP/5353' => 1);

# render(dir): kubectl kustomize dir, parsed; dies with kubectl's words
sub render {
    my ($dir) = @_;
    my $yaml = qx{kubectl kustomize '$dir' 2>&1};
    die "kubectl kustomize $dir failed:\n$yaml" if $?;
    return parse_yaml($yaml);
}

# parse_yaml(text): the documents, through python3's yaml (safe_load_all)
sub parse_yaml {
    my ($yaml) = @_;
    my $tmp = File::Temp->new;
    print $tmp $yaml;
    close $tmp;
    my $py = 'import sys, json, yaml; '
        . 'json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)';
    my $json = qx{python3 -c '$py' '$tmp'};
    die "python3 yaml could not parse the output\n" if $? || $json eq '';
    return @{ JSON::PP->new->decode($json) };
}

sub _name { my ($o) = @_; "$o->{kind}/" . ($o->{metadata}{name} // '?') }

sub _matches {   # selector matchLabels, labels -> true when selected
    my ($sel, $labels) = @_;
    return 0 unless ref $sel eq 'HASH';
    return 0 if $sel->{matchExpressions};      # not used by deploy/k8s
    my $ml = $sel->{matchLabels} // {};
    for my $k (keys %$ml) {
        return 0 unless defined $labels->{$k} && $labels->{$k} eq $ml->{$k};
    }
    return 1;
}

sub _is { my ($labels, $want) = @_; _matches({ matchLabels => $want }, $labels) }

# the pods of an object: [name, labels, pod spec]
sub pods {
    my (@objs) = @_;
    my @p;
    for my $o (@objs) {
        my $s = $o->{spec} // {};
        if ($o->{kind} eq 'Deployment' || $o->{kind} eq 'Job') {
            push @p, [_name($o), $s->{template}{metadata}{labels} // {}, $s->{template}{spec} // {}];
        } elsif ($o->{kind} eq 'SandboxTemplate') {
            push @p, [_name($o), $s->{podTemplate}{metadata}{labels} // {}, $s->{podTemplate}{spec} // {}];
        }
    }
    return @p;
}

sub _ports_ok {   # policy ports -> the ones that are not kapd's target ports
    my ($ports) = @_;
    return ('no port restriction') unless ref $ports eq 'ARRAY' && @$ports;
    return map { ($_->{protocol} // 'TCP') . '/' . ($_->{port} // 'any') }
        grep { !$KAPD_PORTS{($_->{protocol} // 'TCP') . '/' . ($_->{port} // '')} || $_->{endPort} } @$ports;
}

# egress rules aimed at agents must reach only kapd: problems, prefixed
sub _agent_egress {
    my ($what, $rules) = @_;
    my @bad;
    for my $r (@{ $rules // [] }) {
        my $to = $r->{to};
        push @bad, "$what: an egress rule without 'to' (anywhere)" unless ref $to eq 'ARRAY' && @$to;
        for my $peer (@{ $to // [] }) {
            my @keys = sort keys %$peer;
            push @bad, "$what: egress peer other than the kapd pods (@keys)"
                unless "@keys" eq 'podSelector' && _is({ %{ $peer->{podSelector}{matchLabels} // {} } }, \%KAPD)
                       && !$peer->{podSelector}{matchExpressions};
        }
        push @bad, "$what: egress to kapd on a port that is not its target port ($_)" for _ports_ok($r->{ports});
    }
    return @bad;
}

sub _container_problems {
    my ($where, $pod, $c) = @_;
    my $ps = $pod->{securityContext} // {};
    my $cs = $c->{securityContext} // {};
    my @bad;
    my $w = "$where container $c->{name}";
    push @bad, "$w: runAsNonRoot is not true"
        unless ($cs->{runAsNonRoot} // $ps->{runAsNonRoot} // JSON::PP::false);
    my $uid = $cs->{runAsUser} // $ps->{runAsUser};
    push @bad, "$w: runAsUser 0" if defined $uid && $uid == 0;
    push @bad, "$w: allowPrivilegeEscalation is not false"
        unless defined $cs->{allowPrivilegeEscalation} && !$cs->{allowPrivilegeEscalation};
    push @bad, "$w: readOnlyRootFilesystem is not true" unless $cs->{readOnlyRootFilesystem};
    push @bad, "$w: privileged" if $cs->{privileged};
    my $caps = $cs->{capabilities} // {};
    push @bad, "$w: capabilities.drop is not [ALL]"
        unless ref $caps->{drop} eq 'ARRAY' && grep { $_ eq 'ALL' } @{ $caps->{drop} };
    push @bad, "$w: capabilities added (@{ $caps->{add} })" if ref $caps->{add} eq 'ARRAY' && @{ $caps->{add} };
    my $sec = ($cs->{seccompProfile} // $ps->{seccompProfile} // {})->{type} // '';
    push @bad, "$w: seccompProfile is not RuntimeDefault" unless $sec eq 'RuntimeDefault';
    for my $m (@{ $c->{volumeMounts} // [] }) {
        push @bad, "$w: volume $m->{name} mounted with subPath (never updated)"
            if exists $m->{subPath} || exists $m->{subPathExpr};
    }
    return @bad;
}

sub lint {
    my (@objs) = @_;
    my @bad;
    my (%by, @policies, $svc);
    for my $o (@objs) {
        push @bad, _name($o) . ": kind not shipped by deploy/k8s" unless $KINDS{$o->{kind} // ''};
        $by{ _name($o) } = $o;
        push @policies, $o if ($o->{kind} // '') eq 'NetworkPolicy';
        $svc = $o if ($o->{kind} // '') eq 'Service' && ($o->{metadata}{name} // '') eq 'kapd';
    }
    my $ip = $svc ? $svc->{spec}{clusterIP} // '' : '';
    if ($svc) {
        push @bad, "Service/kapd: no fixed clusterIP" unless $ip =~ /^\d+\.\d+\.\d+\.\d+$/;
        push @bad, "Service/kapd: does not select the kapd pods"
            unless _is($svc->{spec}{selector} // {}, \%KAPD) && keys %{ $svc->{spec}{selector} } == 1;
    }

    # ports of the kapd container, to resolve the Service's named target ports
    my %kapd_port;
    my $kapd_uid;
    for my $p (pods(@objs)) {
        my ($name, $labels, $spec) = @$p;
        next unless _is($labels, \%KAPD);
        $kapd_uid = $spec->{securityContext}{runAsUser};
        for my $c (@{ $spec->{containers} // [] }) {
            for my $cp (@{ $c->{ports} // [] }) {
                $kapd_port{ $cp->{name} } = ($cp->{protocol} // 'TCP') . "/$cp->{containerPort}" if $cp->{name};
                $kapd_port{ $cp->{containerPort} } = ($cp->{protocol} // 'TCP') . "/$cp->{containerPort}";
            }
        }
    }
    if ($svc) {
        my %map = map {
            my $t = $kapd_port{ $_->{targetPort} // $_->{port} } // '?';
            (($_->{protocol} // 'TCP') . "/$_->{port}" => $t)
        } @{ $svc->{spec}{ports} // [] };
        my %want = ('TCP/3128' => 'TCP/3128', 'UDP/53' => 'UDP/5353', 'TCP/53' => 'TCP/5353');
        for (sort keys %want) {
            push @bad, "Service/kapd: $_ does not go to kapd's $want{$_} (" . ($map{$_} // 'absent') . ")"
                unless ($map{$_} // '') eq $want{$_};
        }
        push @bad, "Service/kapd: a port beyond 3128 and 53 ($_)" for grep { !$want{$_} } sort keys %map;
    }

    for my $p (pods(@objs)) {
        my ($name, $labels, $spec) = @$p;
        for my $k (qw(hostNetwork hostPID hostIPC)) {
            push @bad, "$name: $k" if $spec->{$k};
        }
        push @bad, "$name: automountServiceAccountToken is not false"
            unless defined $spec->{automountServiceAccountToken} && !$spec->{automountServiceAccountToken};
        push @bad, "$name: shareProcessNamespace" if $spec->{shareProcessNamespace};
        my @all = (@{ $spec->{initContainers} // [] }, @{ $spec->{containers} // [] });
        push @bad, _container_problems($name, $spec, $_) for @all;
        my %secret_vols;
        for my $v (@{ $spec->{volumes} // [] }) {
            push @bad, "$name: hostPath volume $v->{name}" if $v->{hostPath};
            $secret_vols{ $v->{name} } = 1 if $v->{secret}
                || grep { $_->{secret} } @{ $v->{projected}{sources} // [] };
        }
        my $kapd = _is($labels, \%KAPD);
        my $agent = _is($labels, \%AGENT);
        # kapd reads the kubelet's root-owned Secret files through its
        # group: defaultMode 0440 (no other bit) and an fsGroup
        for my $v (grep { $_->{secret} } @{ $spec->{volumes} // [] }) {
            last unless $kapd;
            my $m = $v->{secret}{defaultMode} // 0644;
            push @bad, sprintf("%s: Secret volume %s has defaultMode %04o, not 0440 (kapd's loader: group read only)",
                               $name, $v->{name}, $m) unless $m == 0440;
            push @bad, "$name: Secret volume $v->{name} without an fsGroup (kapd cannot read root's 0440 files)"
                unless defined $spec->{securityContext}{fsGroup};
        }
        push @bad, "$name: neither an agent nor kapd (kap.dev/role)" unless $kapd || $agent;
        if (!$kapd) {
            push @bad, "$name: mounts a Secret (only kapd may)" if %secret_vols;
            for my $c (@all) {
                push @bad, "$name container $c->{name}: envFrom" if $c->{envFrom};
                push @bad, "$name container $c->{name}: env from a Secret ($_->{name})"
                    for grep { $_->{valueFrom} && $_->{valueFrom}{secretKeyRef} } @{ $c->{env} // [] };
            }
        }
        next unless $agent;
        push @bad, "$name: enableServiceLinks is not false"
            unless defined $spec->{enableServiceLinks} && !$spec->{enableServiceLinks};
        push @bad, "$name: dnsPolicy is not None" unless ($spec->{dnsPolicy} // '') eq 'None';
        my $ns = $spec->{dnsConfig}{nameservers} // [];
        push @bad, "$name: the nameservers are not kapd's ClusterIP alone (@$ns)"
            unless @$ns == 1 && $ns->[0] eq $ip;
        my $uid = $spec->{securityContext}{runAsUser};
        push @bad, "$name: runs as kapd's uid" if defined $uid && defined $kapd_uid && $uid == $kapd_uid;
        for my $c (@{ $spec->{containers} // [] }) {
            next if grep { $_ eq 'kap-probe' } @{ $c->{command} // [] };   # kap-check
            my %env = map { ($_->{name} => $_->{value} // '') } @{ $c->{env} // [] };
            for my $v (qw(HTTP_PROXY HTTPS_PROXY)) {
                push @bad, "$name container $c->{name}: $v is not http://$ip:3128 (" . ($env{$v} // 'unset') . ")"
                    unless ($env{$v} // '') eq "http://$ip:3128";
            }
        }
        my ($gate) = grep { $_->{name} eq 'kap-gate' } @{ $spec->{initContainers} // [] };
        my $is_check = grep { grep { $_ eq 'kap-probe' } @{ $_->{command} // [] } } @{ $spec->{containers} // [] };
        if (!$gate && !$is_check) {
            push @bad, "$name: no kap-gate init container (fail closed without policy)";
        }
        # the gate and kap-check: a direct connection probed, kapd's proxy at its ClusterIP
        for my $c ($gate // (), grep { grep { $_ eq 'kap-probe' } @{ $_->{command} // [] } } @{ $spec->{containers} // [] }) {
            my $cmd = join ' ', @{ $c->{command} // [] };
            push @bad, "$name container $c->{name}: does not probe a direct connection (--blocked)" unless $cmd =~ /--blocked /;
            push @bad, "$name container $c->{name}: does not check kapd's proxy at $ip:3128"
                unless $cmd =~ /--proxy [^=]+=\Q$ip\E:3128(?: |$)|--open (?:tcp|connect):\Q$ip\E:3128(?:[ \/]|$)/;
        }
        # policy coverage
        my @sel = grep { _matches($_->{spec}{podSelector}, $labels) } @policies;
        my $sandbox = $by{$name} && $name =~ m{^SandboxTemplate/};
        push @bad, "$name: no NetworkPolicy with Egress selects it"
            unless $sandbox || grep { grep { $_ eq 'Egress' } @{ $_->{spec}{policyTypes} // [] } } @sel;
        push @bad, "$name: no NetworkPolicy with Ingress selects it"
            unless $sandbox || grep { grep { $_ eq 'Ingress' } @{ $_->{spec}{policyTypes} // [] } } @sel;
    }

    for my $np (@policies) {
        my $n = _name($np);
        my $s = $np->{spec} // {};
        my $sel = $s->{podSelector} // {};
        my $all = !%{ $sel->{matchLabels} // {} } && !$sel->{matchExpressions};
        my $for_agents = $all || _matches($sel, \%AGENT);
        my $for_kapd = !$all && _matches($sel, \%KAPD);
        if ($for_agents) {
            push @bad, _agent_egress($n, $s->{egress});
            push @bad, "$n: allows ingress to agent pods" if @{ $s->{ingress} // [] };
        }
        if ($all) {
            my %t = map { $_ => 1 } @{ $s->{policyTypes} // [] };
            push @bad, "$n: a namespace-wide policy that is not deny-all" unless $t{Ingress} && $t{Egress};
        }
        next unless $for_kapd;
        for my $r (@{ $s->{ingress} // [] }) {
            for my $peer (@{ $r->{from} // [] }) {
                push @bad, "$n: kapd ingress from something other than the agent pods"
                    unless join(' ', sort keys %$peer) eq 'podSelector' && _matches($peer->{podSelector}, \%AGENT)
                           && keys %{ $peer->{podSelector}{matchLabels} // {} } == 1;
            }
            push @bad, "$n: kapd ingress from anywhere" unless ref $r->{from} eq 'ARRAY' && @{ $r->{from} };
            push @bad, "$n: kapd ingress on a port beyond its own ($_)" for _ports_ok($r->{ports});
        }
        for my $r (@{ $s->{egress} // [] }) {
            push @bad, "$n: kapd egress rule without 'to'" unless ref $r->{to} eq 'ARRAY' && @{ $r->{to} };
            for my $peer (@{ $r->{to} // [] }) {
                if (my $b = $peer->{ipBlock}) {
                    my %ex = map { $_ => 1 } @{ $b->{except} // [] };
                    my @want = ($b->{cidr} // "") =~ /:/ ? @V6_EXCEPT : @V4_EXCEPT;
                    push @bad, "$n: kapd egress to " . ($b->{cidr} // "?") . " does not leave out $_" for grep { !$ex{$_} } @want;
                } elsif (_matches($peer->{podSelector}, { 'k8s-app' => 'kube-dns' })
                         && ($peer->{namespaceSelector}{matchLabels}{'kubernetes.io/metadata.name'} // '') eq 'kube-system') {
                    my @p = grep { ($_->{port} // 0) != 53 } @{ $r->{ports} // [{}] };
                    push @bad, "$n: kapd egress to kube-dns beyond port 53" if @p;
                } else {
                    push @bad, "$n: kapd egress to a peer that is not the world or kube-dns ("
                        . join(' ', sort keys %$peer) . ")";
                }
            }
        }
    }

    for my $o (@objs) {
        next unless ($o->{kind} // '') eq 'SandboxTemplate';
        my $s = $o->{spec};
        push @bad, _name($o) . ": networkPolicyManagement is not Managed"
            unless ($s->{networkPolicyManagement} // '') eq 'Managed';
        push @bad, _name($o) . ": no networkPolicy of its own (the default allows the internet)"
            unless ref $s->{networkPolicy} eq 'HASH' && @{ $s->{networkPolicy}{egress} // [] };
        push @bad, _agent_egress(_name($o), $s->{networkPolicy}{egress});
        push @bad, _name($o) . ": networkPolicy allows ingress" if @{ $s->{networkPolicy}{ingress} // [] };
    }

    # the ConfigMap: fixed name, mounted whole by kapd
    my @cms = grep { ($_->{kind} // '') eq 'ConfigMap' } @objs;
    for my $cm (@cms) {
        push @bad, _name($cm) . ": not the fixed name kapd-config (a hash suffix cuts hot reload)"
            unless $cm->{metadata}{name} eq 'kapd-config';
    }
    if (@cms) {
        my $mounted = 0;
        for my $p (pods(@objs)) {
            next unless _is($p->[1], \%KAPD);
            $mounted ||= grep { ($_->{configMap}{name} // '') eq 'kapd-config' } @{ $p->[2]{volumes} // [] };
        }
        push @bad, "ConfigMap/kapd-config: no kapd pod mounts it" unless $mounted;
    }
    return @bad;
}

1;
