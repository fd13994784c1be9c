/*
 * kapd_lineq.h -- whole lines to a pipe (or a terminal, a socket) that
 * must never stall the event loop: kapd's audit log on stdout, read by a
 * container runtime that may stop reading.  The descriptor is made
 * non-blocking; what the pipe does not take now is queued (up to a cap)
 * and written when it becomes writable; whole lines that do not fit are
 * dropped and counted.  A line once begun is always finished, so a
 * reader never sees a torn line.  Core-internal.
 */
#ifndef KAPD_LINEQ_H
#define KAPD_LINEQ_H

#include "kapd.h"

#include <stddef.h>

struct kapd_lineq {
    int            fd;        /* owned; -1 when closed */
    char          *buf;       /* heap: bytes queued, lines in order */
    size_t         len;
    size_t         cap;       /* new lines are dropped beyond this */
    unsigned long  dropped;   /* whole lines dropped */
    double         last_warn;
    const char    *name;      /* for log lines (borrowed, static) */
    ev_io          io;        /* EV_WRITE while bytes are queued */
    int            io_on;
};

/*
 * Take fd (owned from now on) and make it non-blocking.  cap: queued
 * bytes beyond which whole lines are dropped.  KAP_OK or KAP_ERROR.
 */
int kapd_lineq_init(struct kapd_lineq *q, int fd, size_t cap,
                    const char *name);

/*
 * Write n bytes holding nlines whole lines (p borrowed): now if nothing
 * is queued and the descriptor takes them, the rest queued; dropped (and
 * counted) when the queue is over its cap.  Never blocks.
 */
void kapd_lineq_write(struct kapd_lineq *q, const char *p, size_t n,
                      unsigned long nlines);

/* Bytes still queued. */
size_t kapd_lineq_pending(const struct kapd_lineq *q);

/*
 * One last non-blocking attempt to write what is queued, then close the
 * descriptor and free the queue (what is left is counted as dropped).
 */
void kapd_lineq_close(struct kapd_lineq *q);

#endif /* KAPD_LINEQ_H */
