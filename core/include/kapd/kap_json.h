/*
 * kap_json.h -- strict JSON: parse, look up, re-serialise, write.
 *
 * For JSON that kapd checks and then forwards (JSON-RPC through a proxy,
 * the phone UI).  The parser accepts only what every reasonable JSON
 * parser reads the same way, so that a check made here cannot be undone
 * by a lax parser behind the proxy (a "parser differential").  It
 * refuses, with the byte offset in the message:
 *
 *   - duplicate member names in any object, compared after unescaping
 *     ("a" and "\u0061" are the same name);
 *   - invalid UTF-8 (overlong forms, encoded surrogates, > U+10FFFF),
 *     lone or mismatched surrogate escapes, unescaped control characters;
 *   - NUL: a raw 0 byte anywhere, and the escape \u0000;
 *   - anything but whitespace (space, tab, CR, LF) after the value, a
 *     byte order mark, and every non-RFC 8259 form (01, 1., +1, [1,], ...);
 *   - nesting deeper, input longer, or objects/arrays with more members
 *     than the caller's limits;
 *   - numbers that cannot be read exactly (unless KAP_JSON_LOOSE_NUMBERS):
 *     an integer (no fraction, no exponent) beyond +-2^53, a number with
 *     more than 15 significant digits, or one outside the normal range of
 *     a double (overflow to infinity, underflow to zero or a subnormal).
 *     Within these bounds the double kapd reads identifies the written
 *     number exactly (integers) or to every digit written (DBL_DIG), so an
 *     upstream reading the text as int64, double or decimal agrees.
 *
 * The tree is cJSON's inside but opaque here: modules need no cJSON
 * headers.  Every string in a checked tree is valid UTF-8 without NUL.
 * kap_json_print() writes the checked tree, not the input: a proxy
 * forwards the bytes it validated (numbers as their checked text, strings
 * re-escaped, no whitespace), never the client's original bytes.
 *
 * Single-threaded like the rest of the API (cJSON's error pointer is
 * process-wide).
 */
#ifndef KAP_JSON_H
#define KAP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <kapd/kap_core.h>

/* A node of a JSON tree (opaque). */
struct kap_json;

enum kap_json_type {
    KAP_JSON_INVALID = 0,      /* NULL node */
    KAP_JSON_NULL,
    KAP_JSON_BOOL,
    KAP_JSON_NUMBER,
    KAP_JSON_STRING,
    KAP_JSON_ARRAY,
    KAP_JSON_OBJECT
};

#define KAP_JSON_MAX_BYTES_DEFAULT   (1024 * 1024)
#define KAP_JSON_MAX_DEPTH_DEFAULT   64
#define KAP_JSON_MAX_DEPTH_LIMIT     1000    /* cJSON's nesting limit */
#define KAP_JSON_MAX_MEMBERS_DEFAULT 10000
/* numbers are read as the nearest double and printed from that double:
 * kap_json_print() forwards what kapd read, which may differ from what
 * the client wrote (9007199254740993 goes out as 9007199254740992) */
#define KAP_JSON_LOOSE_NUMBERS       0x1u

/* Limits of one parse; 0 in a field means its default. */
struct kap_json_limits {
    size_t   max_bytes;    /* input length */
    unsigned max_depth;    /* nested arrays/objects; capped at _LIMIT */
    size_t   max_members;  /* members of one object or array */
    unsigned flags;        /* KAP_JSON_LOOSE_NUMBERS */
};

/*
 * Parse len bytes of data (need not be NUL-terminated) under lim (NULL:
 * all defaults).  Returns a tree owned by the caller, freed with
 * kap_json_free(); NULL on refusal or out of memory, with the reason in
 * err (may be NULL), e.g. "duplicate key \"id\" at offset 17".
 */
struct kap_json *kap_json_parse(const char *data, size_t len,
                                const struct kap_json_limits *lim,
                                struct kap_err *err);
/*
 * As kap_json_parse(), but the tree is owned by pool p and freed when p
 * is destroyed (a pool cleanup); do not kap_json_free() it.
 */
struct kap_json *kap_json_parse_pool(struct kap_pool *p, const char *data,
                                     size_t len,
                                     const struct kap_json_limits *lim,
                                     struct kap_err *err);
/* Free a tree returned by kap_json_parse().  NULL ok. */
void kap_json_free(struct kap_json *j);

/*
 * Look-up.  Every returned node and string is borrowed from the tree and
 * lives as long as it.  A NULL j is allowed everywhere and behaves as a
 * node of the wrong type.
 */
enum kap_json_type kap_json_type(const struct kap_json *j);
/* The member called key (case-sensitive, exact bytes) of object j; NULL
 * when j is not an object or has no such member. */
const struct kap_json *kap_json_get(const struct kap_json *j,
                                    const char *key);
/* The string's value (UTF-8, NUL-terminated); NULL if not a string. */
const char *kap_json_string(const struct kap_json *j);
/* kap_json_string(kap_json_get(j, key)) */
const char *kap_json_get_string(const struct kap_json *j, const char *key);
/* KAP_OK and *out, or KAP_ERROR (-1) when j is not a number. */
int kap_json_number(const struct kap_json *j, double *out);
/* KAP_OK and *out, or KAP_ERROR when j is not a number with an integer
 * value within +-2^53 (the range a double holds exactly). */
int kap_json_int(const struct kap_json *j, int64_t *out);
/* 1 (true), 0 (false), or -1 when j is not a boolean. */
int kap_json_bool(const struct kap_json *j);
/* Members of an object or elements of an array; 0 for anything else. */
size_t kap_json_size(const struct kap_json *j);
/* First member/element of an object/array (NULL if empty or not one) and
 * the next one after j (NULL at the end), in document order. */
const struct kap_json *kap_json_child(const struct kap_json *j);
const struct kap_json *kap_json_next(const struct kap_json *j);
/* The member name of j within its object; NULL for an array element or
 * the root. */
const char *kap_json_key(const struct kap_json *j);

/*
 * Append j compactly to out (no whitespace): the checked tree, ready to
 * forward.  KAP_OK, or KAP_ERROR (out of memory; out may hold a part).
 */
int kap_json_print(const struct kap_json *j, struct kap_buf *out);

/*
 * A streaming writer into a kap_buf, for building JSON objects.  Calls
 * never fail one by one: the first misuse (a key outside an object, a
 * value without a key inside one, an unbalanced end, nesting beyond
 * KAP_JSON_WRITER_DEPTH) or out-of-memory is remembered and reported by
 * kap_json_w_finish().  Strings are escaped byte by byte: ", \ and
 * control characters, DEL, U+2028/U+2029, and every byte that is not
 * part of valid UTF-8 as \u00XX, so the output is always valid JSON
 * whatever the input (invalid bytes come out as U+0080..U+00FF).
 */
#define KAP_JSON_WRITER_DEPTH 32

struct kap_json_writer {
    struct kap_buf *out;                 /* borrowed */
    unsigned        depth;
    unsigned char   kind[KAP_JSON_WRITER_DEPTH];   /* '{' or '[' */
    unsigned char   nonempty[KAP_JSON_WRITER_DEPTH];
    int             key;                 /* a key waits for its value */
    int             done;                /* the top value is complete */
    int             failed;
};

/* Start writing one JSON value to out (appended to what it holds). */
void kap_json_w_init(struct kap_json_writer *w, struct kap_buf *out);
void kap_json_w_obj_begin(struct kap_json_writer *w);
void kap_json_w_obj_end(struct kap_json_writer *w);
void kap_json_w_arr_begin(struct kap_json_writer *w);
void kap_json_w_arr_end(struct kap_json_writer *w);
/* A member name; the next call must write its value. */
void kap_json_w_key(struct kap_json_writer *w, const char *key);
/* A string; NULL writes null.  _strn: n bytes of s, a NUL byte as
 * \u0000 (valid JSON, but kap_json_parse() refuses it). */
void kap_json_w_str(struct kap_json_writer *w, const char *s);
void kap_json_w_strn(struct kap_json_writer *w, const char *s, size_t n);
void kap_json_w_int(struct kap_json_writer *w, long long v);
void kap_json_w_uint(struct kap_json_writer *w, unsigned long long v);
/* Integral values within +-2^53 as integers, others with the fewest
 * digits that read back as v; NaN and infinities as null. */
void kap_json_w_double(struct kap_json_writer *w, double v);
void kap_json_w_bool(struct kap_json_writer *w, int v);
void kap_json_w_null(struct kap_json_writer *w);
/* A whole (checked) tree, as kap_json_print() writes it. */
void kap_json_w_tree(struct kap_json_writer *w, const struct kap_json *j);
/* KAP_OK when exactly one complete value was written without error,
 * else KAP_ERROR (out then holds a partial value: discard it). */
int kap_json_w_finish(struct kap_json_writer *w);

#endif /* KAP_JSON_H */
