
# ---- kap netcheck: expected-open and expected-blocked probes ---------------
#
# For an agent's init step (Kubernetes: refuse to start the agent when a
# direct connection succeeds, i.e. the network plugin ignores the
# NetworkPolicy).  The probes are kap-shim's netcheck role (static, no
# resolver, no other tool needed).

help_netcheck() {
    cat <<EOF
usage: kap netcheck [--timeout SECONDS] [--wait SECONDS] PROBE...

  --open    tcp:HOST:PORT                  a TCP connection succeeds
  --blocked tcp:HOST:PORT                  it does not
  --open    dns:HOST:PORT/NAME             the resolver answers (any rcode)
  --blocked dns:HOST:PORT/NAME             it does not answer
  --open    connect:HOST:PORT/TARGET:TPORT kapd's proxy answers 200
  --blocked connect:HOST:PORT/TARGET:TPORT it answers anything else

HOST is a numeric IPv4 or [IPv6] address.  Prints PASS or FAIL per probe;
exits 0 when every probe passed, 1 when one failed, 2 on a usage error.
Timeout per probe: 3 s.  --wait: run the probes again, a second apart,
until all pass or SECONDS have gone by; only the last round is printed.
EOF
}

cmd_netcheck() {
    case ${1:-} in -h|--help) help_netcheck; return 0 ;; esac
    [ -x "$KAP_SHIM" ] || die "netcheck: kap-shim not found at $KAP_SHIM (set KAP_SHIM=...)"
    exec "$KAP_SHIM" netcheck "$@"
}
