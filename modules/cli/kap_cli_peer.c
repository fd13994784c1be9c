/*
 * kap_cli_peer.c -- which peers may receive a direct-mode environment:
 * a unix-socket peer or a loopback TCP peer.  See kap_cli.h.
 */
#include "kap_cli.h"

#include <netinet/in.h>
#include <string.h>

int
kap_cli_peer_local(const struct sockaddr_storage *ss, socklen_t len)
{
    const struct sockaddr_in  *s4;
    const struct sockaddr_in6 *s6;
    const unsigned char       *b;
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                              0xff, 0xff };

    if (ss->ss_family == AF_UNIX)
        return 1;
    if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(*s4)) {
        s4 = (const struct sockaddr_in *)ss;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(*s6)) {
        s6 = (const struct sockaddr_in6 *)ss;
        b = s6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
            return 1;
        return memcmp(b, mapped, 12) == 0 && b[12] == 127;
    }
    return 0;
}
