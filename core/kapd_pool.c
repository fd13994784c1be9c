/*
 * kapd_pool.c -- memory pools with cleanups (kap_pool.h).
 *
 * A pool is a chain of malloc'd blocks carved linearly; the pool header
 * lives in its first block, so an empty pool costs one malloc.  Blocks
 * grow from 1 KiB to 16 KiB; a request larger than a quarter of the next
 * block gets a block of its own so it does not waste the current one.
 * Memory is handed out zeroed and aligned for any type and released only
 * when the pool is destroyed.  Cleanups form a LIFO list (so they run in
 * reverse order of registration); their nodes are allocated from the pool
 * itself.  In debug builds, KAPD_FAILALLOC=N makes the Nth allocation
 * fail (see kapd_alloc.h).
 */
#include "config.h"
/*
 * Capture the debug switch before kapd.h: configure --enable-debug defines
 * KAPD_DEBUG in config.h (a KAP_DEBUG given with -D counts too, and must be
 * tested here: after kapd.h that name is the KAP_DEBUG() logging macro of
 * kap_log.h).
 */
#if defined(KAP_DEBUG) || defined(KAPD_DEBUG)
#define POOL_TORTURE 1
#endif
#include "kapd.h"
#include "kapd_alloc.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_ALIGN      (alignof(max_align_t))
#define POOL_ROUND(n)   (((n) + POOL_ALIGN - 1) & ~(POOL_ALIGN - 1))
/* first block, header included: a connection's core record and an
   http_connect tunnel's state fit in it, one malloc per idle tunnel */
#define POOL_FIRST      2048u
#define POOL_MAX_BLOCK  16384u          /* growth stops here */

struct pool_block {
    struct pool_block *next;            /* all blocks of the pool */
    size_t             size;            /* usable bytes after the header */
    size_t             used;
};

struct pool_cleanup {
    kap_cleanup_fn       fn;            /* NULL once run */
    void                *data;
    struct pool_cleanup *next;          /* older registrations */
};

struct kap_pool {
    struct pool_block   *cur;           /* block being carved */
    struct pool_block   *blocks;        /* every block, newest first */
    struct pool_cleanup *cleanups;      /* newest first */
    size_t               next_size;     /* size of the next regular block */
};

#define BLOCK_HDR   POOL_ROUND(sizeof(struct pool_block))
#define POOL_HDR    POOL_ROUND(sizeof(struct kap_pool))

static inline unsigned char *
block_data(struct pool_block *b)
{
    return (unsigned char *)b + BLOCK_HDR;
}

/* ---- debug torture: KAPD_FAILALLOC=N -------------------------------- */

#ifdef POOL_TORTURE
static long alloc_count;
static long alloc_fail_at = -1;         /* -1: not read yet, 0: off */

void
kapd_alloc_reset(void)
{
    const char *s = getenv("KAPD_FAILALLOC");
    char *end;
    long v = 0;

    if (s && *s) {
        v = strtol(s, &end, 10);
        if (*end != '\0' || v < 0)
            v = 0;
    }
    alloc_fail_at = v;
    alloc_count = 0;
}

int
kapd_alloc_fail(void)
{
    if (alloc_fail_at < 0)
        kapd_alloc_reset();
    if (alloc_fail_at == 0)
        return 0;
    return ++alloc_count == alloc_fail_at;
}
#else
void
kapd_alloc_reset(void)
{
}

int
kapd_alloc_fail(void)
{
    return 0;
}
#endif

/* ---- pools ---------------------------------------------------------- */

struct kap_pool *
kap_pool_create(void)
{
    struct pool_block *b;
    struct kap_pool *p;

    if (kapd_alloc_fail())
        return NULL;
    b = malloc(POOL_FIRST);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = POOL_FIRST - BLOCK_HDR;
    b->used = POOL_HDR;
    p = (struct kap_pool *)block_data(b);
    p->cur = b;
    p->blocks = b;
    p->cleanups = NULL;
    p->next_size = 2 * POOL_FIRST;
    return p;
}

void
kap_pool_destroy(struct kap_pool *p)
{
    struct pool_block *b, *next;
    struct pool_cleanup *c;

    if (p == NULL)
        return;
    /* A cleanup may register another one: always pop the head. */
    while ((c = p->cleanups) != NULL) {
        p->cleanups = c->next;
        if (c->fn != NULL) {
            kap_cleanup_fn fn = c->fn;
            c->fn = NULL;
            fn(c->data);
        }
    }
    /* The pool header lives in the oldest block: free that one last. */
    for (b = p->blocks; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
}

static void *
pool_alloc(struct kap_pool *p, size_t n)
{
    struct pool_block *b;
    size_t want, size;
    unsigned char *m;

    if (p == NULL)
        return NULL;
    if (kapd_alloc_fail())
        return NULL;
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 2)
        return NULL;
    want = POOL_ROUND(n);

    b = p->cur;
    if (b->size - b->used >= want) {
        m = block_data(b) + b->used;
        b->used += want;
        memset(m, 0, n);
        return m;
    }

    if (want > p->next_size / 4) {
        /* Big: a block of its own, the current block stays current. */
        b = malloc(BLOCK_HDR + want);
        if (b == NULL)
            return NULL;
        b->size = want;
        b->used = want;
        /* Insert after the head so the oldest block stays last. */
        b->next = p->blocks;
        p->blocks = b;
        m = block_data(b);
        memset(m, 0, n);
        return m;
    }

    size = p->next_size;
    b = malloc(size);
    if (b == NULL)
        return NULL;
    if (p->next_size < POOL_MAX_BLOCK)
        p->next_size *= 2;
    b->size = size - BLOCK_HDR;
    b->used = want;
    b->next = p->blocks;
    p->blocks = b;
    p->cur = b;
    m = block_data(b);
    memset(m, 0, n);
    return m;
}

void *
kap_palloc(struct kap_pool *p, size_t n)
{
    return pool_alloc(p, n);
}

char *
kap_pstrndup(struct kap_pool *p, const char *s, size_t n)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = pool_alloc(p, n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
kap_pstrdup(struct kap_pool *p, const char *s)
{
    if (s == NULL)
        return NULL;
    return kap_pstrndup(p, s, strlen(s));
}

char *
kap_psprintf(struct kap_pool *p, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    d = pool_alloc(p, (size_t)n + 1);
    if (d == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

int
kap_pool_cleanup_add(struct kap_pool *p, kap_cleanup_fn fn, void *data)
{
    struct pool_cleanup *c;

    if (p == NULL || fn == NULL)
        return KAP_ERROR;
    c = pool_alloc(p, sizeof(*c));
    if (c == NULL)
        return KAP_ERROR;
    c->fn = fn;
    c->data = data;
    c->next = p->cleanups;
    p->cleanups = c;
    return KAP_OK;
}

void
kap_pool_cleanup_run(struct kap_pool *p, kap_cleanup_fn fn, void *data)
{
    struct pool_cleanup *c, **pp;

    if (p == NULL || fn == NULL)
        return;
    for (pp = &p->cleanups; (c = *pp) != NULL; pp = &c->next) {
        if (c->fn == fn && c->data == data) {
            *pp = c->next;          /* unregister first: fn may add more */
            c->fn = NULL;
            fn(data);
            return;
        }
    }
}
