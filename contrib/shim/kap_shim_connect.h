/*
 * kap_shim_connect.h -- the `kap-shim connect HOST PORT` role: a byte
 * pipe between stdin/stdout and HOST:PORT through the HTTP proxy named by
 * $HTTPS_PROXY (CONNECT), for ssh's `ProxyCommand kap-shim connect %h %p`.
 */
#ifndef KAP_SHIM_CONNECT_H
#define KAP_SHIM_CONNECT_H

int kap_shim_connect(int argc, char **argv);

#endif
