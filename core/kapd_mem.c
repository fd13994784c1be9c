/*
 * kapd_mem.c -- hand memory freed after a burst back to the kernel.
 *
 * Setting up a connection costs far more memory than holding it (request
 * parser, policy question, resolver query, dial state: ~10 KiB against
 * ~3 KiB for an idle tunnel).  After thousands of connections were set up
 * at once, what they freed lies in the heap between the connections that
 * stayed, where the allocator can reuse it but never returns it: an idle
 * kapd would keep the peak.  So a burst of accepts or closes arms a short
 * one-shot timer; when it fires and the heap holds more than
 * KAPD_TRIM_MIN free bytes, malloc_trim() gives the free pages back
 * (glibc releases whole free pages anywhere in the heap, not only at its
 * top).  An idle kapd arms nothing and never wakes for this.
 */
#include "kapd.h"

#include <ev.h>
#if defined(HAVE_MALLINFO2) && defined(HAVE_MALLOC_TRIM)
#include <malloc.h>
#define KAPD_CAN_TRIM 1
#endif

#define KAPD_TRIM_DELAY 0.25                 /* s after the first event */
#define KAPD_TRIM_MIN   (2u * 1024 * 1024)   /* free heap bytes worth it */
#define KAPD_TRIM_PAD   (256u * 1024)        /* kept at the heap's top */

static ev_timer trim_timer;
static int      trim_init;

#ifdef KAPD_CAN_TRIM
static void
trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mallinfo2 mi = mallinfo2();

    (void)w; (void)revents;
    ev_ref(loop);                    /* the expired one-shot was unref'd */
    if (mi.fordblks >= KAPD_TRIM_MIN)
        malloc_trim(KAPD_TRIM_PAD);
}
#endif

void
kapd_mem_activity(void)
{
#ifdef KAPD_CAN_TRIM
    struct ev_loop *loop = kap_loop();

    if (!trim_init) {
        ev_timer_init(&trim_timer, trim_cb, KAPD_TRIM_DELAY, 0.0);
        trim_init = 1;
    }
    if (!ev_is_active(&trim_timer)) {
        ev_timer_set(&trim_timer, KAPD_TRIM_DELAY, 0.0);
        ev_timer_start(loop, &trim_timer);
        ev_unref(loop);              /* never keeps the loop alive */
    }
#endif
}

void
kapd_mem_stop(void)
{
#ifdef KAPD_CAN_TRIM
    if (trim_init && ev_is_active(&trim_timer)) {
        ev_ref(kap_loop());
        ev_timer_stop(kap_loop(), &trim_timer);
    }
#endif
}
