/*
 * kap_pool.h -- memory pools with cleanups.
 *
 * A pool owns every allocation made from it and a list of cleanups; both
 * are released together by kap_pool_destroy() (cleanups first, in reverse
 * order of registration).  Generations, connections and requests each
 * have a pool.  Allocation failure returns NULL; the caller closes the
 * connection (while serving) or fails the load (while configuring).
 */
#ifndef KAP_POOL_H
#define KAP_POOL_H

#include <stddef.h>

struct kap_pool;

typedef void (*kap_cleanup_fn)(void *data);

/* New empty pool.  Owned by the caller; free with kap_pool_destroy(). */
struct kap_pool *kap_pool_create(void);
/* Run cleanups (reverse order), free all memory and the pool.  NULL ok. */
void  kap_pool_destroy(struct kap_pool *p);
/* Zeroed memory owned by p, aligned for any type; NULL on failure. */
void *kap_palloc(struct kap_pool *p, size_t n);
/* NUL-terminated copies owned by p; NULL on failure (or when s is NULL). */
char *kap_pstrdup(struct kap_pool *p, const char *s);
char *kap_pstrndup(struct kap_pool *p, const char *s, size_t n);
/* printf into memory owned by p; NULL on failure. */
char *kap_psprintf(struct kap_pool *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Register fn(data) to run when p is destroyed.  Returns KAP_OK or
 * KAP_ERROR (out of memory: fn is NOT registered, the caller must undo).
 */
int   kap_pool_cleanup_add(struct kap_pool *p, kap_cleanup_fn fn, void *data);
/* Run and unregister the first cleanup matching fn and data now, if any. */
void  kap_pool_cleanup_run(struct kap_pool *p, kap_cleanup_fn fn, void *data);

#endif /* KAP_POOL_H */
