/*
 * kapd_buf.c -- growable heap byte buffers (struct kap_buf, kap_core.h).
 *
 * data is always NUL-terminated once allocated (the terminator is not
 * counted in len), so a buffer of text can be handed to C string APIs.
 * Capacity doubles; every append either succeeds whole or leaves the
 * buffer exactly as it was (apart from compaction, which moves the unread
 * bytes data[off..len) to the front without changing them).
 */
#include "kapd.h"
#include "kapd_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN 64

/* Make room for `more` bytes plus the terminator.  KAP_OK or KAP_ERROR. */
static int
buf_reserve(struct kap_buf *b, size_t more)
{
    size_t need, cap;
    char *d;

    if (more > SIZE_MAX - b->len - 1)
        return KAP_ERROR;
    need = b->len + more + 1;
    if (b->data != NULL && need <= b->cap)
        return KAP_OK;
    if (b->off > 0) {                   /* compact: unread to the front */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        b->data[b->len] = '\0';
        need = b->len + more + 1;
        if (need <= b->cap)
            return KAP_OK;
    }
    cap = b->cap ? b->cap : BUF_MIN;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    if (kapd_alloc_fail())
        return KAP_ERROR;
    d = realloc(b->data, cap);
    if (d == NULL)
        return KAP_ERROR;
    if (b->data == NULL)
        d[0] = '\0';
    b->data = d;
    b->cap = cap;
    return KAP_OK;
}

int
kap_buf_append(struct kap_buf *b, const void *p, size_t n)
{
    if (b == NULL || (p == NULL && n > 0))
        return KAP_ERROR;
    if (buf_reserve(b, n) != KAP_OK)
        return KAP_ERROR;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return KAP_OK;
}

int
kap_buf_printf(struct kap_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    size_t room;

    if (b == NULL)
        return KAP_ERROR;
    room = b->data ? b->cap - b->len : 0;
    va_start(ap, fmt);
    n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (b->data)
            b->data[b->len] = '\0';
        return KAP_ERROR;
    }
    if ((size_t)n < room) {
        b->len += (size_t)n;
        return KAP_OK;
    }
    /* Did not fit: the old terminator may be overwritten; restore it. */
    if (b->data)
        b->data[b->len] = '\0';
    if (buf_reserve(b, (size_t)n) != KAP_OK)
        return KAP_ERROR;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return KAP_OK;
}

void
kap_buf_reset(struct kap_buf *b)
{
    if (b == NULL)
        return;
    b->len = 0;
    b->off = 0;
    if (b->data)
        b->data[0] = '\0';
}

void
kap_buf_free(struct kap_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->off = 0;
}

size_t
kap_buf_used(const struct kap_buf *b)
{
    return b ? b->len - b->off : 0;
}

void
kap_buf_consume(struct kap_buf *b, size_t n)
{
    if (b == NULL)
        return;
    if (n >= b->len - b->off) {
        b->off = b->len = 0;
        if (b->data)
            b->data[0] = '\0';
        return;
    }
    b->off += n;
}

int
kap_buf_reserve(struct kap_buf *b, size_t more)
{
    if (b == NULL)
        return KAP_ERROR;
    return buf_reserve(b, more);
}

size_t
kap_buf_room(const struct kap_buf *b)
{
    return (b && b->data) ? b->cap - b->len - 1 : 0;
}

void
kap_buf_added(struct kap_buf *b, size_t n)
{
    if (b == NULL || b->data == NULL || n > b->cap - b->len - 1)
        return;
    b->len += n;
    b->data[b->len] = '\0';
}
