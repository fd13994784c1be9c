/*
 * kap_shim_jsonc.h -- a JSONC reader and textual editor for
 * devcontainer.json (kap init): JSON plus // and block comments and
 * trailing commas, as VS Code and the devcontainer CLI read it.
 *
 * The parser records where every value (and every member's key) lies in
 * the text; the editor changes a document by splicing bytes at those
 * places, so everything it does not touch -- the user's keys, their
 * order, comments and formatting -- stays byte for byte.  Pure functions
 * on a buffer (no I/O, no global state) so that fuzz/fuzz_jsonc.c and
 * t/unit/test_jsonc.c call them directly.  libc only (kap-shim is
 * linked static).
 */
#ifndef KAP_SHIM_JSONC_H
#define KAP_SHIM_JSONC_H

#include <stddef.h>

#define KAP_JSONC_MAX_DEPTH 128      /* nesting deeper is refused */

enum kap_jsonc_type {
    KAP_JSONC_OBJECT = 1, KAP_JSONC_ARRAY, KAP_JSONC_STRING,
    KAP_JSONC_NUMBER, KAP_JSONC_TRUE, KAP_JSONC_FALSE, KAP_JSONC_NULL
};

#define KAP_JSONC_NONE ((size_t)-1)

struct kap_jsonc_node {
    int    type;                 /* enum kap_jsonc_type */
    size_t start, end;           /* the value's bytes: text[start..end) */
    size_t key_start, key_end;   /* a member's key, quotes included;
                                    KAP_JSONC_NONE when not a member */
    size_t comma;                /* the ',' after this element, or NONE */
    int    parent, next;         /* node indexes; -1 for none */
    int    first, last;          /* children of a container; -1: none */
    int    count;                /* number of children */
};

struct kap_jsonc {
    const char            *text; /* borrowed from the caller */
    size_t                 len;
    struct kap_jsonc_node *nodes; /* owned; node 0 is the root */
    int                    n, cap;
    const char            *error; /* static message when parsing failed */
    size_t                 error_at; /* offset of the error in text */
};

/*
 * Parse text[0..len) (a UTF-8 BOM is skipped).  Returns 0 and fills doc
 * (nodes allocated; free with kap_jsonc_free), or -1 with doc->error and
 * doc->error_at set (nothing left to free, but kap_jsonc_free is
 * harmless).  text is borrowed and must outlive doc.
 */
int kap_jsonc_parse(struct kap_jsonc *doc, const char *text, size_t len);

/* Free what kap_jsonc_parse allocated; doc itself is the caller's. */
void kap_jsonc_free(struct kap_jsonc *doc);

/* 1-based line and column (in characters) of offset off in text. */
void kap_jsonc_linecol(const char *text, size_t len, size_t off,
                       unsigned *line, unsigned *col);

/*
 * The member named key[0..keylen) of the object node obj: its node index,
 * -1 when there is none, -2 when the name occurs twice (*dup_at, when not
 * NULL, is then the offset of the second one).
 */
int kap_jsonc_member(const struct kap_jsonc *doc, int obj,
                     const char *key, size_t keylen, size_t *dup_at);

/* The index-th element of the array node arr, or -1. */
int kap_jsonc_element(const struct kap_jsonc *doc, int arr, int index);

/*
 * Decode the string literal text[start..end) (quotes included) into a
 * new NUL-terminated buffer (*out, owned by the caller; *outlen without
 * the NUL).  Lone surrogates become U+FFFD.  Returns 0, or -1 when out
 * of memory or when the string holds U+0000 (*out is then NULL).
 */
int kap_jsonc_decode(const char *text, size_t start, size_t end,
                     char **out, size_t *outlen);

/*
 * Node i as compact JSON (comments, whitespace and trailing commas
 * dropped) in a new NUL-terminated buffer owned by the caller.
 * Returns 0, or -1 when out of memory.
 */
int kap_jsonc_compact(const struct kap_jsonc *doc, int i, char **out,
                      size_t *outlen);

/*
 * s[0..n) as a JSON string literal (quotes included), in a new
 * NUL-terminated buffer owned by the caller.  Returns 0 or -1 (memory).
 */
int kap_jsonc_quote(const char *s, size_t n, char **out, size_t *outlen);

/*
 * Edits.  Each returns a new document (a NUL-terminated buffer *out of
 * *outlen bytes, owned by the caller) in which only the bytes the edit
 * needs changed; doc is not modified.  value[0..vlen) must be one JSON
 * value (checked: -1 with *why = "the new value is not valid JSON").
 * Returns 0, or -1 with *why set to a static message.
 *
 * kap_jsonc_set: the member key of object obj gets value (its value
 *   replaced when it exists, else a member appended after the last one,
 *   indented like it, on its own line when the object spans lines).
 * kap_jsonc_remove: member node m (a member of an object) and the comma
 *   and the line(s) only it occupied go.
 * kap_jsonc_append: value appended to array node arr.
 */
int kap_jsonc_set(const struct kap_jsonc *doc, int obj, const char *key,
                  size_t keylen, const char *value, size_t vlen,
                  char **out, size_t *outlen, const char **why);
int kap_jsonc_remove(const struct kap_jsonc *doc, int m, char **out,
                     size_t *outlen, const char **why);
int kap_jsonc_append(const struct kap_jsonc *doc, int arr, const char *value,
                     size_t vlen, char **out, size_t *outlen,
                     const char **why);

/* The `kap-shim jsonc` role (kap_shim_jsonc_cmd.c). */
int kap_shim_jsonc(int argc, char **argv);

#endif /* KAP_SHIM_JSONC_H */
