/*
 * kapd_match.c -- the allowlist matcher: rule compilation and lookup.
 *
 * Every rule is keyed in one open-addressing hash table: a name rule by
 * its name ("github.com" for both `github.com` and `*.github.com`; the
 * rule says which), an address rule by a binary key (family, prefix
 * length, masked address bytes), which can never collide with a name
 * (names are LDH text).  A lookup hashes the normalised name once, right
 * to left, and probes the table at every label boundary: the suffix to
 * the right of each dot is looked up for wildcard rules, the whole name
 * for exact rules.  So the cost is one probe per label whatever the size
 * of the list.  Address lookups probe once per prefix length present in
 * the rules.  The table is heap memory released by a cleanup of the
 * generation pool; rules and keys live in the pool.
 */
#include "kapd.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kapd/kap_addr.h>
#include "kapd_match.h"

#define MATCH_NAME_MAX   KAP_HOST_NAME_MAX
#define MATCH_RULE_MAX   512     /* longest rule text accepted */
#define MATCH_KEY_V4     0x01    /* first byte of an IPv4 address key */
#define MATCH_KEY_V6     0x02    /* first byte of an IPv6 address key */

struct match_slot {
    uint64_t                hash;
    const char             *key;      /* NULL: empty slot */
    size_t                  klen;
    struct kapd_match_rule *rules;
    struct kapd_match_rule *tail;
};

struct kapd_match {
    struct kap_pool   *pool;
    struct match_slot *slots;         /* heap, power-of-two size */
    size_t             cap;
    uint64_t          *filter;        /* heap: 8 bits per slot, one set
                                         per key: most misses never touch
                                         the (large) slot array */
    size_t             fmask;         /* filter bits - 1 */
    const char        *last_file;     /* interned file name of rules */
    size_t             used;
    size_t             nrules;
    uint64_t           seed;
    uint16_t           dports[KAPD_MATCH_MAX_PORTS];
    size_t             ndports;
    uint64_t           v4plens;       /* bit n: a /n IPv4 rule exists */
    uint64_t           v6plens[3];    /* bits 0..128 */
};

/* ---- errors with file:line ------------------------------------------ */

static void match_err(struct kap_err *err, const char *file, int line,
                      const char *fmt, ...) KAP_PRINTF(4, 5);

static void
match_err(struct kap_err *err, const char *file, int line,
          const char *fmt, ...)
{
    va_list ap;
    size_t  n;

    if (err == NULL || err->set)
        return;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->file[0] = '\0';
    if (file != NULL) {
        n = strlen(file);
        if (n >= sizeof(err->file))
            n = sizeof(err->file) - 1;
        memcpy(err->file, file, n);
        err->file[n] = '\0';
    }
    err->line = line;
    err->set = 1;
}

/* ---- hashing -------------------------------------------------------- */

#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t
hash_start(const struct kapd_match *m)
{
    return 0xcbf29ce484222325ULL ^ m->seed;
}

static inline uint64_t
hash_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * FNV_PRIME;
}

/* The key's hash, fed right to left like the lookup does. */
static uint64_t
hash_key(const struct kapd_match *m, const char *key, size_t klen)
{
    uint64_t h = hash_start(m);
    while (klen > 0)
        h = hash_step(h, (unsigned char)key[--klen]);
    return h;
}

static inline size_t
hash_index(uint64_t h, size_t mask)
{
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    return (size_t)h & mask;
}

static inline size_t
filter_index(uint64_t h, size_t fmask)
{
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (size_t)h & fmask;
}

static const struct match_slot *
slot_find(const struct kapd_match *m, uint64_t h, const char *key,
          size_t klen)
{
    size_t mask, i, f;

    if (m->used == 0)
        return NULL;
    f = filter_index(h, m->fmask);
    if (!(m->filter[f / 64] & (1ULL << (f % 64))))
        return NULL;
    mask = m->cap - 1;
    for (i = hash_index(h, mask);; i = (i + 1) & mask) {
        const struct match_slot *s = &m->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

static int
table_resize(struct kapd_match *m, size_t ncap)
{
    size_t             i, j, f, mask, fbits = ncap * 8;
    struct match_slot *ns;
    uint64_t          *nf;

    ns = calloc(ncap, sizeof(*ns));
    nf = calloc(fbits / 64, sizeof(*nf));
    if (ns == NULL || nf == NULL) {
        free(ns);
        free(nf);
        return KAP_ERROR;
    }
    mask = ncap - 1;
    for (i = 0; i < m->cap; i++) {
        if (m->slots[i].key == NULL)
            continue;
        for (j = hash_index(m->slots[i].hash, mask); ns[j].key != NULL;
             j = (j + 1) & mask)
            ;
        ns[j] = m->slots[i];
        f = filter_index(m->slots[i].hash, fbits - 1);
        nf[f / 64] |= 1ULL << (f % 64);
    }
    free(m->slots);
    free(m->filter);
    m->slots = ns;
    m->filter = nf;
    m->cap = ncap;
    m->fmask = fbits - 1;
    return KAP_OK;
}

static int
table_grow(struct kapd_match *m)
{
    return table_resize(m, m->cap ? m->cap * 2 : 64);
}

int
kapd_match_reserve(struct kapd_match *m, size_t n)
{
    size_t ncap = m->cap ? m->cap : 64;

    while ((m->used + n) * 10 > ncap * 7)
        ncap *= 2;
    return ncap == m->cap ? KAP_OK : table_resize(m, ncap);
}

/* Add rule r under key (copied into the pool when new, unless stable:
 * then key lives as long as the matcher already). */
static int
table_add(struct kapd_match *m, const char *key, size_t klen, int stable,
          struct kapd_match_rule *r)
{
    uint64_t           h = hash_key(m, key, klen);
    size_t             mask, i, f;
    struct match_slot *s;
    char              *k;

    if ((m->used + 1) * 10 > m->cap * 7 && table_grow(m) != KAP_OK)
        return KAP_ERROR;
    mask = m->cap - 1;
    for (i = hash_index(h, mask);; i = (i + 1) & mask) {
        s = &m->slots[i];
        if (s->key == NULL)
            break;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) {
            s->tail->next = r;
            s->tail = r;
            return KAP_OK;
        }
    }
    if (stable) {
        s->key = key;
    } else {
        k = kap_palloc(m->pool, klen + 1);
        if (k == NULL)
            return KAP_ERROR;
        memcpy(k, key, klen);
        s->key = k;
    }
    s->hash = h;
    f = filter_index(h, m->fmask);
    m->filter[f / 64] |= 1ULL << (f % 64);
    s->klen = klen;
    s->rules = s->tail = r;
    m->used++;
    return KAP_OK;
}

/* ---- construction --------------------------------------------------- */

static void
match_cleanup(void *data)
{
    struct kapd_match *m = data;
    free(m->slots);
    free(m->filter);
    m->slots = NULL;
    m->filter = NULL;
    m->cap = m->used = 0;
}

struct kapd_match *
kapd_match_create(struct kap_pool *pool)
{
    struct kapd_match *m;
    struct timespec    ts;

    m = kap_palloc(pool, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->pool = pool;
    if (kap_pool_cleanup_add(pool, match_cleanup, m) != KAP_OK)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    m->seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec
              ^ ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)m;
    m->dports[0] = 80;
    m->dports[1] = 443;
    m->ndports = 2;
    return m;
}

int
kapd_match_set_default_ports(struct kapd_match *m, const uint16_t *ports,
                             size_t n)
{
    if (n > KAPD_MATCH_MAX_PORTS)
        return KAP_ERROR;
    if (n > 0)
        memcpy(m->dports, ports, n * sizeof(*ports));
    m->ndports = n;
    return KAP_OK;
}

size_t
kapd_match_count(const struct kapd_match *m)
{
    return m ? m->nrules : 0;
}

/* Digits only, value in [min, max]. */
static int
parse_uint(const char *s, size_t len, unsigned long min, unsigned long max,
           unsigned long *out)
{
    unsigned long v = 0;
    size_t        i;

    if (len == 0 || len > 5)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Pieces of a rule: host [/prefix] [:ports]. */
struct rule_parts {
    const char *host;
    size_t      hlen;
    const char *cidr;      /* NULL: none */
    size_t      clen;
    const char *ports;     /* NULL: none */
    size_t      plen;
};

static int
split_rule(const char *t, size_t len, struct rule_parts *p)
{
    const char *end = t + len, *s, *colon = NULL, *slash;
    size_t      ncolon = 0;

    memset(p, 0, sizeof(*p));
    if (t[0] == '[') {
        const char *close = memchr(t, ']', len);
        if (close == NULL)
            return -1;
        p->host = t;
        p->hlen = (size_t)(close + 1 - t);
        s = close + 1;
        if (s < end && *s == '/') {
            const char *c = memchr(s, ':', (size_t)(end - s));
            p->cidr = s + 1;
            p->clen = (size_t)((c ? c : end) - p->cidr);
            s = c ? c : end;
        }
        if (s < end) {
            if (*s != ':')
                return -1;
            p->ports = s + 1;
            p->plen = (size_t)(end - p->ports);
        }
        return 0;
    }
    for (s = t; s < end; s++)
        if (*s == ':') {
            if (ncolon++ == 0)
                colon = s;
        }
    if (ncolon == 1) {
        p->ports = colon + 1;
        p->plen = (size_t)(end - p->ports);
        end = colon;
    }
    p->host = t;
    slash = memchr(t, '/', (size_t)(end - t));
    if (slash != NULL) {
        p->cidr = slash + 1;
        p->clen = (size_t)(end - p->cidr);
        end = slash;
    }
    p->hlen = (size_t)(end - t);
    return 0;
}

/* Address and prefix of an address rule.  KAP_OK or KAP_ERROR. */
static int
parse_addr_rule(const char *text, const struct rule_parts *p, int deny,
                struct sockaddr_storage *ss, unsigned *plenp,
                const char *file, int line, struct kap_err *err)
{
    unsigned long  plen;
    unsigned       max;
    unsigned char *a;
    unsigned char  masked[16];
    int            mapped;

    if (kap_addr_parse_literal_n(p->host, p->hlen, ss) != KAP_OK) {
        match_err(err, file, line, "invalid IP address in \"%s\"", text);
        return KAP_ERROR;
    }
    mapped = ss->ss_family == AF_INET && memchr(p->host, ':', p->hlen);
    max = ss->ss_family == AF_INET ? 32 : 128;
    if (p->cidr == NULL) {
        *plenp = max;
        return KAP_OK;
    }
    if (parse_uint(p->cidr, p->clen, mapped ? 96 : 0, mapped ? 128 : max,
                   &plen) != 0) {
        match_err(err, file, line, "bad prefix length in \"%s\" (0-%u)",
                  text, mapped ? 128 : max);
        return KAP_ERROR;
    }
    if (mapped)
        plen -= 96;
    if (plen == 0 && !deny) {
        match_err(err, file, line,
                  "\"%s\" would allow every address and defeat the sandbox;"
                  " list the networks the agent needs", text);
        return KAP_ERROR;
    }
    a = ss->ss_family == AF_INET
        ? (unsigned char *)&((struct sockaddr_in *)ss)->sin_addr
        : ((struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    memset(masked, 0, sizeof(masked));
    memcpy(masked, a, plen / 8);
    if (plen % 8)
        masked[plen / 8] =
            (unsigned char)(a[plen / 8] & (0xff << (8 - plen % 8)));
    if (memcmp(masked, a, max / 8) != 0) {
        match_err(err, file, line,
                  "\"%s\" has host bits set after the /%lu prefix", text,
                  plen);
        return KAP_ERROR;
    }
    *plenp = (unsigned)plen;
    return KAP_OK;
}

int
kapd_match_parse_cidr(const char *text, struct sockaddr_storage *ss,
                      unsigned *plen, const char *file, int line,
                      struct kap_err *err)
{
    struct rule_parts p;
    size_t            len = text ? strlen(text) : 0;

    if (len == 0 || len > MATCH_RULE_MAX || split_rule(text, len, &p) != 0
        || p.ports != NULL || p.hlen == 0) {
        match_err(err, file, line, "invalid address or CIDR \"%s\"",
                  text ? text : "");
        return KAP_ERROR;
    }
    return parse_addr_rule(text, &p, 1, ss, plen, file, line, err);
}

/* Address key: tag, prefix length, masked address bytes. */
static size_t
addr_key(char *key, int family, const unsigned char *a, unsigned plen)
{
    size_t n = family == AF_INET ? 4 : 16, i, full = plen / 8;

    key[0] = family == AF_INET ? MATCH_KEY_V4 : MATCH_KEY_V6;
    key[1] = (char)plen;
    for (i = 0; i < n; i++) {
        unsigned char b = 0;
        if (i < full)
            b = a[i];
        else if (i == full && plen % 8)
            b = (unsigned char)(a[i] & (0xff << (8 - plen % 8)));
        key[2 + i] = (char)b;
    }
    return 2 + n;
}

int
kapd_match_add(struct kapd_match *m, int deny, const char *text,
               const char *file, int line, struct kap_err *err)
{
    struct rule_parts       p;
    struct kapd_match_rule *r;
    size_t                  len;
    const char             *host;
    size_t                  hlen;
    char                    norm[MATCH_NAME_MAX + 2];
    char                    key[18];
    const char             *k;
    size_t                  klen;
    int                     n, stable = 0;

    len = text ? strlen(text) : 0;
    if (len == 0) {
        match_err(err, file, line, "empty rule");
        return KAP_ERROR;
    }
    if (len > MATCH_RULE_MAX || split_rule(text, len, &p) != 0
        || p.hlen == 0) {
        match_err(err, file, line, "invalid rule \"%.*s\"",
                  len > 300 ? 300 : (int)len, text);
        return KAP_ERROR;
    }
    r = kap_palloc(m->pool, sizeof(*r));
    if (r == NULL) {
        match_err(err, file, line, "out of memory");
        return KAP_ERROR;
    }
    r->text = kap_pstrdup(m->pool, text);
    if (file == NULL)
        file = "";
    if (m->last_file != NULL && strcmp(m->last_file, file) == 0)
        r->file = m->last_file;      /* one copy per file, not per rule */
    else
        r->file = m->last_file = kap_pstrdup(m->pool, file);
    if (r->text == NULL || r->file == NULL) {
        match_err(err, file, line, "out of memory");
        return KAP_ERROR;
    }
    r->line = line;
    r->deny = deny ? 1 : 0;

    /* ports */
    if (p.ports != NULL) {
        const char *s = p.ports, *end = p.ports + p.plen;
        while (1) {
            const char   *c = memchr(s, ',', (size_t)(end - s));
            const char   *e = c ? c : end;
            unsigned long v;
            if (r->nports == KAPD_MATCH_MAX_PORTS) {
                match_err(err, file, line, "more than %d ports in \"%s\"",
                          KAPD_MATCH_MAX_PORTS, text);
                return KAP_ERROR;
            }
            if (parse_uint(s, (size_t)(e - s), 1, 65535, &v) != 0) {
                match_err(err, file, line,
                          "bad port \"%.*s\" in \"%s\" (1-65535)",
                          (int)(e - s > 10 ? 10 : e - s), s, text);
                return KAP_ERROR;
            }
            r->ports[r->nports++] = (uint16_t)v;
            if (c == NULL)
                break;
            s = c + 1;
        }
    }

    host = p.host;
    hlen = p.hlen;
    if (hlen == 1 && host[0] == '*') {
        match_err(err, file, line,
                  "\"*\" would allow every name and defeat the sandbox;"
                  " list the names the agent needs (network.observe shows"
                  " them)");
        return KAP_ERROR;
    }
    if (host[0] == '*') {
        if (hlen < 3 || host[1] != '.') {
            match_err(err, file, line,
                      "bad wildcard \"%s\": only a leading \"*.\" is"
                      " allowed (\"*.example.com\")", text);
            return KAP_ERROR;
        }
        r->wildcard = 1;
        host += 2;
        hlen -= 2;
    }

    {
        struct sockaddr_storage ss;
        int rc = kap_addr_parse_literal_n(host, hlen, &ss);

        if (rc == KAP_ERROR) {
            match_err(err, file, line, "invalid IP address in \"%s\"", text);
            return KAP_ERROR;
        }
        if (rc == KAP_OK && r->wildcard) {
            match_err(err, file, line,
                      "\"%s\": a wildcard cannot cover an IP address"
                      " (use a CIDR such as 10.0.0.0/8)", text);
            return KAP_ERROR;
        }
        if (rc == KAP_OK) {
            unsigned             plen;
            const unsigned char *a;

            if (parse_addr_rule(text, &p, deny, &ss, &plen, file, line, err)
                != KAP_OK)
                return KAP_ERROR;
            r->addr = 1;
            r->plen = (uint16_t)plen;
            if (ss.ss_family == AF_INET) {
                a = (const unsigned char *)
                    &((struct sockaddr_in *)&ss)->sin_addr;
                m->v4plens |= 1ULL << plen;
            } else {
                a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
                m->v6plens[plen / 64] |= 1ULL << (plen % 64);
            }
            klen = addr_key(key, ss.ss_family, a, plen);
            k = key;
            goto add;
        }
    }
    if (p.cidr != NULL) {
        match_err(err, file, line,
                  "\"%s\": a prefix length needs an IP address", text);
        return KAP_ERROR;
    }
    n = kap_host_name_norm(host, hlen, norm, sizeof(norm));
    if (n < 0 || memchr(host, '\0', hlen) != NULL) {
        match_err(err, file, line,
                  "invalid name in \"%s\" (ASCII letters, digits, '-', '_'"
                  " and non-empty labels; IDNs as xn-- A-labels)", text);
        return KAP_ERROR;
    }
    k = norm;
    klen = (size_t)n;
    if ((size_t)n == hlen && memcmp(host, norm, hlen) == 0) {
        /* already normal: the key is a piece of the rule's own copy */
        k = r->text + (host - text);
        stable = 1;
    }

add:
    if (table_add(m, k, klen, stable, r) != KAP_OK) {
        match_err(err, file, line, "out of memory");
        return KAP_ERROR;
    }
    m->nrules++;
    return KAP_OK;
}

/* ---- lookup --------------------------------------------------------- */

static int
port_in(const uint16_t *ports, size_t n, uint16_t port)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (ports[i] == port)
            return 1;
    return 0;
}

static int
port_ok(const struct kapd_match *m, const struct kapd_match_rule *r,
        uint16_t port)
{
    if (port == 0)                         /* DNS: any port */
        return r->deny ? r->nports == 0 : 1;
    if (r->nports == 0)
        return r->deny ? 1 : port_in(m->dports, m->ndports, port);
    return port_in(r->ports, r->nports, port);
}

/* A candidate slot and whether its wildcard or its exact rules apply. */
struct cand {
    const struct match_slot *slot;
    int                      wildcard;
};

/* Decide over candidates, most specific first. */
static int
decide(const struct kapd_match *m, const struct cand *c, size_t nc,
       uint16_t port, struct kapd_match_result *res)
{
    const struct kapd_match_rule *r, *port_miss = NULL;
    size_t i;

    for (i = 0; i < nc; i++)
        for (r = c[i].slot->rules; r; r = r->next)
            if (r->deny && r->wildcard == (unsigned)c[i].wildcard
                && port_ok(m, r, port)) {
                res->verdict = KAP_DENY;
                res->why = KAPD_MATCH_DENIED;
                res->rule = r;
                return KAP_DENY;
            }
    for (i = 0; i < nc; i++)
        for (r = c[i].slot->rules; r; r = r->next) {
            if (r->deny || r->wildcard != (unsigned)c[i].wildcard)
                continue;
            if (port_ok(m, r, port)) {
                res->verdict = KAP_ALLOW;
                res->why = KAPD_MATCH_ALLOWED;
                res->rule = r;
                return KAP_ALLOW;
            }
            if (port_miss == NULL)
                port_miss = r;
        }
    res->verdict = KAP_DENY;
    res->why = port_miss ? KAPD_MATCH_PORT : KAPD_MATCH_NOT_LISTED;
    res->rule = port_miss;
    return KAP_DENY;
}

int
kapd_match_lookup_addr(const struct kapd_match *m, const struct sockaddr *sa,
                       uint16_t port, struct kapd_match_result *res)
{
    struct cand          c[130];
    size_t               nc = 0;
    unsigned char        a[16];
    int                  family, plen;
    char                 key[18];

    memset(res, 0, sizeof(*res));
    res->verdict = KAP_DENY;
    res->why = KAPD_MATCH_NOT_LISTED;
    if (sa == NULL || m == NULL) {
        res->why = KAPD_MATCH_INVALID_ADDR;
        return KAP_DENY;
    }
    family = kap_addr_raw(sa, a, NULL);
    if (family == 0) {
        res->why = KAPD_MATCH_INVALID_ADDR;
        return KAP_DENY;
    }

    for (plen = family == AF_INET ? 32 : 128; plen >= 0; plen--) {
        const struct match_slot *s;
        size_t                   klen;

        if (family == AF_INET ? !(m->v4plens & (1ULL << plen))
            : !(m->v6plens[plen / 64] & (1ULL << (plen % 64))))
            continue;
        klen = addr_key(key, family, a, (unsigned)plen);
        s = slot_find(m, hash_key(m, key, klen), key, klen);
        if (s != NULL) {
            c[nc].slot = s;
            c[nc].wildcard = 0;
            nc++;
        }
    }
    return decide(m, c, nc, port, res);
}

int
kapd_match_lookup(const struct kapd_match *m, const char *subject,
                  uint16_t port, struct kapd_match_result *res)
{
    struct sockaddr_storage  ss;
    char                     name[MATCH_NAME_MAX + 2];
    const struct match_slot *sfx[MATCH_NAME_MAX / 2 + 2];
    struct cand              c[MATCH_NAME_MAX / 2 + 3];
    size_t                   nsfx = 0, nc = 0, len;
    const struct match_slot *s;
    uint64_t                 h;
    int                      n, i, rc;

    memset(res, 0, sizeof(*res));
    res->verdict = KAP_DENY;
    res->why = KAPD_MATCH_INVALID_NAME;
    if (subject == NULL || m == NULL)
        return KAP_DENY;
    len = strlen(subject);
    rc = kap_addr_parse_literal_n(subject, len, &ss);
    if (rc == KAP_OK)
        return kapd_match_lookup_addr(m, (struct sockaddr *)&ss, port, res);
    if (rc == KAP_ERROR) {
        res->why = KAPD_MATCH_INVALID_ADDR;
        return KAP_DENY;
    }
    n = kap_host_name_norm(subject, len, name, sizeof(name));
    if (n < 0)
        return KAP_DENY;

    h = hash_start(m);
    for (i = n - 1; i >= 0; i--) {
        h = hash_step(h, (unsigned char)name[i]);
        if (i > 0 && name[i - 1] == '.') {
            s = slot_find(m, h, name + i, (size_t)(n - i));
            if (s != NULL)
                sfx[nsfx++] = s;
        }
    }
    s = slot_find(m, h, name, (size_t)n);
    if (s != NULL) {
        c[nc].slot = s;
        c[nc].wildcard = 0;
        nc++;
    }
    while (nsfx > 0) {                 /* longest suffix first */
        c[nc].slot = sfx[--nsfx];
        c[nc].wildcard = 1;
        nc++;
    }
    return decide(m, c, nc, port, res);
}

/* Reason text pieces, truncated at the end of the buffer like snprintf
 * (one audit line per policy question: no printf on that path). */
struct reason_out {
    char *p, *end;                     /* end: the terminator's place */
};

static void
reason_put(struct reason_out *o, const char *s)
{
    size_t n = strlen(s), room = (size_t)(o->end - o->p);

    if (n > room)
        n = room;
    memcpy(o->p, s, n);
    o->p += n;
}

static void
reason_uint(struct reason_out *o, unsigned v)
{
    char d[12], *e = d + sizeof(d);

    *--e = '\0';
    do {
        *--e = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    reason_put(o, e);
}

char *
kapd_match_reason(const struct kapd_match_result *res, uint16_t port,
                  char *buf, size_t len)
{
    const struct kapd_match_rule *r = res->rule;
    struct reason_out o = { buf, buf + len - 1 };

    if (len == 0)
        return buf;
    switch (res->why) {
    case KAPD_MATCH_ALLOWED:
    case KAPD_MATCH_DENIED:
    case KAPD_MATCH_PORT:
        if (res->why == KAPD_MATCH_PORT) {
            reason_put(&o, "port ");
            reason_uint(&o, port);
            reason_put(&o, " not allowed for \"");
        } else
            reason_put(&o, res->why == KAPD_MATCH_ALLOWED ? "allow \""
                                                          : "deny \"");
        reason_put(&o, r ? r->text : "");
        reason_put(&o, "\"");
        if (r != NULL && r->file != NULL && r->file[0] != '\0') {
            reason_put(&o, " (");
            reason_put(&o, r->file);
            reason_put(&o, ":");
            reason_uint(&o, (unsigned)r->line);
            reason_put(&o, ")");
        } else if (r != NULL && r->line > 0) {
            reason_put(&o, " (line ");
            reason_uint(&o, (unsigned)r->line);
            reason_put(&o, ")");
        }
        break;
    case KAPD_MATCH_INVALID_NAME:
        reason_put(&o, "invalid name");
        break;
    case KAPD_MATCH_INVALID_ADDR:
        reason_put(&o, "invalid IP address");
        break;
    case KAPD_MATCH_NOT_LISTED:
    default:
        reason_put(&o, "not in network.allow");
        break;
    }
    *o.p = '\0';
    return buf;
}
