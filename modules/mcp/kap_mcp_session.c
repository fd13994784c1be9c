/*
 * kap_mcp_session.c -- the per-client session map (kap_mcp_mod.h).
 *
 * The agent never sees an upstream's Mcp-Session-Id: kapd hands out its
 * own, 128 random bits as 32 hex digits, bound to the server and the
 * client it was issued for.  The earlier proxy kept one upstream session
 * per server for every client (kap-behaviour.md §5.2); here a session is
 * found only by the client and for the server it began with, so one
 * agent cannot ride, read or end another's.  At most SESS_MAX sessions
 * are kept; the least recently used one goes first.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/un.h>

#include "kap_mcp_mod.h"

#define SESS_MAX 4096

struct sess {
    char         sid[33];
    char        *server, *client, *up;
    double       used;
    struct sess *next;
};

static struct sess *sess_head;
static size_t       sess_count;

void
kap_mcp_client_key(const struct kap_conn *c, char *key, size_t n)
{
    char a[INET6_ADDRSTRLEN];
    const struct sockaddr_in *s4 = (const void *)&c->peer;
    const struct sockaddr_in6 *s6 = (const void *)&c->peer;

    if (c->peer.ss_family == AF_INET
        && inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a)) != NULL)
        snprintf(key, n, "%s", a);
    else if (c->peer.ss_family == AF_INET6
             && inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a)) != NULL)
        snprintf(key, n, "%s", a);
    else if (c->peer_cred)
        snprintf(key, n, "uid:%ld", (long)c->peer_uid);
    else
        snprintf(key, n, "conn:%llu", (unsigned long long)c->id);
}

static void
sess_free(struct sess *s)
{
    free(s->server);
    free(s->client);
    if (s->up != NULL)
        kap_secret_wipe(s->up, strlen(s->up));
    free(s->up);
    free(s);
}

static struct sess **
sess_find(const char *sid)
{
    struct sess **pp;

    for (pp = &sess_head; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->sid, sid) == 0)
            return pp;
    return NULL;
}

const char *
kap_mcp_session_get(const char *server, const char *client, const char *sid)
{
    struct sess **pp = sid != NULL ? sess_find(sid) : NULL;

    if (pp == NULL || strcmp((*pp)->server, server) != 0
        || strcmp((*pp)->client, client) != 0)
        return NULL;
    (*pp)->used = kap_now();
    return (*pp)->up;
}

static void
sess_evict(void)
{
    struct sess **pp, **old = NULL, *s;

    for (pp = &sess_head; *pp != NULL; pp = &(*pp)->next)
        if (old == NULL || (*pp)->used <= (*old)->used)  /* ties: the older */
            old = pp;
    if (old == NULL)
        return;
    s = *old;
    *old = s->next;
    sess_free(s);
    sess_count--;
}

int
kap_mcp_session_put(const char *server, const char *client, const char *sid,
                    const char *up, char *out)
{
    static const char hex[] = "0123456789abcdef";
    struct sess **pp = sid != NULL ? sess_find(sid) : NULL, *s;
    unsigned char rnd[16];
    char *copy;
    size_t i;

    if (pp != NULL && strcmp((*pp)->server, server) == 0
        && strcmp((*pp)->client, client) == 0) {
        if ((copy = strdup(up)) == NULL)
            return KAP_ERROR;
        kap_secret_wipe((*pp)->up, strlen((*pp)->up));
        free((*pp)->up);
        (*pp)->up = copy;
        (*pp)->used = kap_now();
        memcpy(out, (*pp)->sid, sizeof((*pp)->sid));
        return KAP_OK;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return KAP_ERROR;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return KAP_ERROR;
    for (i = 0; i < sizeof(rnd); i++) {
        s->sid[2 * i] = hex[rnd[i] >> 4];
        s->sid[2 * i + 1] = hex[rnd[i] & 15];
    }
    s->server = strdup(server);
    s->client = strdup(client);
    s->up = strdup(up);
    if (s->server == NULL || s->client == NULL || s->up == NULL) {
        sess_free(s);
        return KAP_ERROR;
    }
    if (sess_count >= SESS_MAX)
        sess_evict();
    s->used = kap_now();
    s->next = sess_head;
    sess_head = s;
    sess_count++;
    memcpy(out, s->sid, sizeof(s->sid));
    return KAP_OK;
}

void
kap_mcp_session_del(const char *sid)
{
    struct sess **pp = sid != NULL ? sess_find(sid) : NULL, *s;

    if (pp == NULL)
        return;
    s = *pp;
    *pp = s->next;
    sess_free(s);
    sess_count--;
}

void
kap_mcp_session_clear(void)
{
    struct sess *s;

    while ((s = sess_head) != NULL) {
        sess_head = s->next;
        sess_free(s);
    }
    sess_count = 0;
}
