/*
 * kap_shim_netcheck.h -- the `kap-shim netcheck` role (`kap netcheck`):
 * expected-open and expected-blocked network probes, one PASS/FAIL line
 * each, exit 0 only when every probe passed.  For an agent pod's init
 * step: refuse to start the agent when a direct connection succeeds.
 */
#ifndef KAP_SHIM_NETCHECK_H
#define KAP_SHIM_NETCHECK_H

int kap_shim_netcheck(int argc, char **argv);

#endif
