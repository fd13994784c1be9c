package Test::Kapd::K8sModel;

# Test::Kapd::K8sModel -- a small MODEL of NetworkPolicy (networking.k8s.io/v1)
# over rendered objects: which connections the policies allow.  It is what
# the API documents, not what a network plugin does: no plugin runs here.
#
#   my $m = Test::Kapd::K8sModel->new(policies => {NS => [objects]});
#   $m->allowed($src, $dst, 'TCP', 3128)   # 1 or 0
#
# $src and $dst are endpoints: { ns => NAME, labels => {...}, ip => ADDR }
# for a pod, { ip => ADDR } for anything outside the cluster's pods.  The
# namespace labels are { 'kubernetes.io/metadata.name' => NAME } and the
# endpoint's ns_labels.
# The rules modelled:
#  - a pod no policy of its namespace selects for a direction is open in
#    that direction; once selected, only what some rule allows passes
#    (policies add up);
#  - a connection needs the source's egress and the destination's ingress;
#  - peers: podSelector (the policy's namespace), namespaceSelector (with a
#    podSelector: both), ipBlock (cidr minus except; applied to addresses
#    that are not pods, as the API recommends);
#  - a rule without `to`/`from` matches every peer, without ports every
#    port; ports are numbers (what deploy/k8s uses) and a protocol (TCP
#    by default); endPort ranges;
#  - the traffic to a Service is seen after its DNAT: the caller passes
#    the pod and target port (Test::Kapd::K8sModel::via_service).
# Not modelled: named ports, matchExpressions (refused), own-node traffic
# (always allowed by the API, plugin-specific), policy timing.

use strict;
use warnings;
use Carp;
use Socket qw(inet_pton AF_INET AF_INET6);

sub new {
    my ($class, %o) = @_;
    return bless { policies => $o{policies} // {} }, $class;
}

sub _sel {   # label selector, labels -> true when it selects
    my ($sel, $labels) = @_;
    croak 'matchExpressions are not modelled' if $sel->{matchExpressions};
    my $ml = $sel->{matchLabels} // {};
    for (keys %$ml) { return 0 unless defined $labels->{$_} && $labels->{$_} eq $ml->{$_} }
    return 1;
}

# in_cidr(addr, cidr): true when the address is in the block
sub in_cidr {
    my ($addr, $cidr) = @_;
    my ($net, $len) = split m{/}, $cidr;
    my $fam = $net =~ /:/ ? AF_INET6 : AF_INET;
    return 0 if ($addr =~ /:/ ? AF_INET6 : AF_INET) != $fam;
    my ($a, $n) = (inet_pton($fam, $addr), inet_pton($fam, $net));
    croak "bad address $addr or $cidr" unless defined $a && defined $n;
    my $bits = unpack('B*', $a);
    return substr($bits, 0, $len) eq substr(unpack('B*', $n), 0, $len);
}

sub _peer_ok {   # peer of a rule in namespace $ns, endpoint -> matches
    my ($peer, $ns, $ep) = @_;
    if (my $b = $peer->{ipBlock}) {
        return 0 if $ep->{ns};                         # a pod: not an ipBlock's
        return 0 unless in_cidr($ep->{ip}, $b->{cidr});
        return !grep { in_cidr($ep->{ip}, $_) } @{ $b->{except} // [] };
    }
    return 0 unless $ep->{ns};                         # outside: only ipBlocks
    if (my $nsel = $peer->{namespaceSelector}) {
        return 0 unless _sel($nsel, { 'kubernetes.io/metadata.name' => $ep->{ns}, %{ $ep->{ns_labels} // {} } });
        return $peer->{podSelector} ? _sel($peer->{podSelector}, $ep->{labels}) : 1;
    }
    return $ep->{ns} eq $ns && _sel($peer->{podSelector} // {}, $ep->{labels});
}

sub _port_ok {
    my ($ports, $proto, $port) = @_;
    return 1 unless ref $ports eq 'ARRAY' && @$ports;
    for my $p (@$ports) {
        next unless ($p->{protocol} // 'TCP') eq $proto;
        return 1 unless defined $p->{port};
        croak 'named ports are not modelled' if $p->{port} !~ /^\d+$/;
        my $end = $p->{endPort} // $p->{port};
        return 1 if $port >= $p->{port} && $port <= $end;
    }
    return 0;
}

# one direction: 'Egress' for the source pod, 'Ingress' for the destination
sub _side {
    my ($self, $dir, $pod, $other, $proto, $port) = @_;
    return 1 unless $pod->{ns};                         # not a pod: no policy
    my @sel = grep {
        my $types = $_->{spec}{policyTypes}
            // [ 'Ingress', ($_->{spec}{egress} ? 'Egress' : ()) ];
        (grep { $_ eq $dir } @$types) && _sel($_->{spec}{podSelector} // {}, $pod->{labels});
    } @{ $self->{policies}{ $pod->{ns} } // [] };
    return 1 unless @sel;
    my ($rules, $peers) = $dir eq 'Egress' ? ('egress', 'to') : ('ingress', 'from');
    for my $np (@sel) {
        for my $r (@{ $np->{spec}{$rules} // [] }) {
            next unless _port_ok($r->{ports}, $proto, $port);
            my $list = $r->{$peers};
            return 1 unless ref $list eq 'ARRAY' && @$list;
            return 1 if grep { _peer_ok($_, $pod->{ns}, $other) } @$list;
        }
    }
    return 0;
}

sub allowed {
    my ($self, $src, $dst, $proto, $port) = @_;
    return $self->_side('Egress', $src, $dst, $proto, $port)
        && $self->_side('Ingress', $dst, $src, $proto, $port) ? 1 : 0;
}

# via_service(service, pod ports {name => number}, proto, port): the target
# port behind the Service's port (undef: the Service has no such port)
sub via_service {
    my ($svc, $named, $proto, $port) = @_;
    for my $p (@{ $svc->{spec}{ports} // [] }) {
        next unless ($p->{protocol} // 'TCP') eq $proto && $p->{port} == $port;
        my $tp = $p->{targetPort} // $p->{port};
        return $tp =~ /^\d+$/ ? $tp : $named->{$tp};
    }
    return undef;
}

1;
