/*
 * kap_shim_jsonc_int.h -- what the JSONC reader (kap_shim_jsonc.c) and
 * editor (kap_shim_jsonc_edit.c) share: a growable byte buffer and the
 * skipping of whitespace and comments.
 */
#ifndef KAP_SHIM_JSONC_INT_H
#define KAP_SHIM_JSONC_INT_H

#include <stddef.h>

struct kap_jsonc_buf {
    char  *p;                  /* owned; NUL-terminated when not NULL */
    size_t len, cap;
    int    oom;                /* an append failed: the buffer is void */
};

/* Append s[0..n) (nothing once oom is set). */
void kap_jsonc_buf_add(struct kap_jsonc_buf *b, const char *s, size_t n);

/*
 * Hand the bytes over: *out (NUL-terminated, owned by the caller) and
 * *outlen.  Returns 0, or -1 (buffer freed) after a failed append.
 */
int kap_jsonc_buf_take(struct kap_jsonc_buf *b, char **out, size_t *outlen);

/*
 * The offset of the first byte at or after i in t[0..len) that is not
 * whitespace or inside a comment.  An unterminated block comment runs to
 * len (the parser reports it; callers only use it on parsed text).
 */
size_t kap_jsonc_skip(const char *t, size_t len, size_t i);

#endif /* KAP_SHIM_JSONC_INT_H */
