/*
 * kapd_alloc.h -- core-internal allocation helpers shared by the pool,
 * the buffers and the listener code.
 *
 * kapd_alloc_fail() implements the torture switch of debug builds: with
 * KAPD_DEBUG (configure --enable-debug) and the environment variable
 * KAPD_FAILALLOC=N, the Nth counted allocation (pool creation, pool block,
 * buffer growth) fails, so tests can walk every out-of-memory path.
 * Release builds always return 0.
 */
#ifndef KAPD_ALLOC_H
#define KAPD_ALLOC_H

#include <stddef.h>

/* Non-zero when the allocation being attempted must fail (debug torture). */
int kapd_alloc_fail(void);
/* Reset the allocation counter and re-read KAPD_FAILALLOC (tests). */
void kapd_alloc_reset(void);

#endif /* KAPD_ALLOC_H */
