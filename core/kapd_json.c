/*
 * kapd_json.c -- strict JSON parsing and look-up (kap_json.h).
 *
 * Three steps, all of which must agree:
 *
 *   1. scan: a validator over the raw bytes (RFC 8259 grammar, UTF-8,
 *      surrogates, NUL, limits, strict numbers).  It records the offset
 *      of every member name and every number token in document order.
 *   2. cJSON_ParseWithLengthOpts builds the tree.  It must end where the
 *      scan ended; cJSON alone accepts duplicate names, invalid UTF-8,
 *      \u0000 (and truncates the string there), a raw NUL, trailing
 *      bytes, a byte order mark, 01, 1., control characters and reads
 *      9007199254740993 as ...992.
 *   3. walk: the tree in document order, which is the scan's order: the
 *      k-th member name and the n-th number of the walk are the scan's
 *      k-th and n-th, which gives duplicate names (compared after
 *      unescaping) their offsets.  Strict number nodes get their checked
 *      text (kapd_json_int.h).  The counts must match the scan's.
 *
 * A disagreement between the scan and cJSON is refused ("parser
 * disagreement"); the fuzz target (fuzz/fuzz_json.c) looks for one.
 *
 * Numbers are read with strtod, which assumes the "C" locale (kapd never
 * calls setlocale).
 */
#include "kapd.h"
#include "kapd_alloc.h"
#include "kapd_json_int.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_NUM_MAX  100            /* bytes of one number token */
#define JSON_SIG_MAX  15             /* DBL_DIG */

struct json_num {
    size_t off;
    size_t len;
    double value;
};

struct json_scan {
    const unsigned char *s;
    size_t               n;
    size_t               i;
    unsigned             max_depth;
    size_t               max_members;
    unsigned             flags;
    struct kap_err      *err;
    size_t              *keys;       /* offset of each member name */
    size_t               nkeys, capkeys;
    struct json_num     *nums;
    size_t               nnums, capnums;
    size_t               max_obj;    /* most members of one object */
    size_t               end;        /* just after the value */
    int                  nomem;
};

/* ---- 1. the scan ---------------------------------------------------- */

static int
scan_grow(void **v, size_t *cap, size_t size)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    void  *p;

    if (ncap > SIZE_MAX / size || kapd_alloc_fail())
        return KAP_ERROR;
    p = realloc(*v, ncap * size);
    if (p == NULL)
        return KAP_ERROR;
    *v = p;
    *cap = ncap;
    return KAP_OK;
}

static int
scan_fail(struct json_scan *sc, const char *what, size_t off)
{
    kap_err_set(sc->err, "%s at offset %zu", what, off);
    return KAP_ERROR;
}

static int
scan_nomem(struct json_scan *sc)
{
    sc->nomem = 1;
    kap_err_set(sc->err, "out of memory");
    return KAP_ERROR;
}

static void
scan_ws(struct json_scan *sc)
{
    while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t'
                             || sc->s[sc->i] == '\n' || sc->s[sc->i] == '\r'))
        sc->i++;
}

/* Length of the valid UTF-8 sequence (>= 0x80 lead) at s, 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t        need, i;

    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;               /* no overlong */
        else if (c == 0xed)
            hi = 0x9f;               /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;               /* <= U+10FFFF */
    } else
        return 0;
    if (n < need + 1 || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i <= need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need + 1;
}

/* The code unit of "\uXXXX" at s (6 bytes available), -1 if malformed. */
static long
hex4(const unsigned char *s)
{
    long v = 0;
    int  k;

    if (s[0] != '\\' || s[1] != 'u')
        return -1;
    for (k = 2; k < 6; k++) {
        unsigned char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* A string at sc->i (its opening quote). */
static int
scan_string(struct json_scan *sc)
{
    const unsigned char *s = sc->s;
    size_t               start = sc->i, k;
    long                 u, lo;
    char                 what[64];

    sc->i++;
    for (;;) {
        if (sc->i >= sc->n)
            return scan_fail(sc, "unterminated string", start);
        unsigned char c = s[sc->i];
        if (c == '"') {
            sc->i++;
            return KAP_OK;
        }
        if (c == '\\') {
            if (sc->i + 1 >= sc->n)
                return scan_fail(sc, "unterminated string", start);
            if (strchr("\"\\/bfnrt", s[sc->i + 1]) != NULL
                && s[sc->i + 1] != '\0') {
                sc->i += 2;
                continue;
            }
            u = sc->n - sc->i >= 6 ? hex4(s + sc->i) : -1;
            if (u < 0)
                return scan_fail(sc, "invalid escape", sc->i);
            if (u == 0)
                return scan_fail(sc, "escaped NUL (\\u0000)", sc->i);
            if (u >= 0xdc00 && u <= 0xdfff) {
                snprintf(what, sizeof(what), "lone surrogate \\u%04lx", u);
                return scan_fail(sc, what, sc->i);
            }
            if (u >= 0xd800 && u <= 0xdbff) {
                lo = sc->n - sc->i >= 12 ? hex4(s + sc->i + 6) : -1;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    snprintf(what, sizeof(what), "lone surrogate \\u%04lx",
                             u);
                    return scan_fail(sc, what, sc->i);
                }
                sc->i += 12;
                continue;
            }
            sc->i += 6;
            continue;
        }
        if (c == 0)
            return scan_fail(sc, "NUL byte", sc->i);
        if (c < 0x20) {
            snprintf(what, sizeof(what),
                     "unescaped control character 0x%02x", c);
            return scan_fail(sc, what, sc->i);
        }
        if (c < 0x80) {
            sc->i++;
            continue;
        }
        k = utf8_seq(s + sc->i, sc->n - sc->i);
        if (k == 0)
            return scan_fail(sc, "invalid UTF-8", sc->i);
        sc->i += k;
    }
}

/* Compare the digit string d (n digits, no sign) with 2^53. */
static int
beyond_2_53(const unsigned char *d, size_t n)
{
    static const char max[] = "9007199254740992";

    if (n != sizeof(max) - 1)
        return n > sizeof(max) - 1;
    return memcmp(d, max, n) > 0;
}

/* A number at sc->i ('-' or a digit). */
static int
scan_number(struct json_scan *sc)
{
    const unsigned char *s = sc->s;
    size_t start = sc->i, i = sc->i, int_start, int_len, sig = 0, zeros = 0;
    int    is_int = 1, nonzero = 0, seen = 0;
    char   tok[JSON_NUM_MAX + 1];
    double v;

    if (i < sc->n && s[i] == '-')
        i++;
    int_start = i;
    if (i < sc->n && s[i] == '0')
        i++;
    else if (i < sc->n && s[i] >= '1' && s[i] <= '9')
        while (i < sc->n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return scan_fail(sc, "invalid number", start);
    int_len = i - int_start;
    if (i < sc->n && s[i] == '.') {
        is_int = 0;
        if (++i >= sc->n || s[i] < '0' || s[i] > '9')
            return scan_fail(sc, "invalid number", start);
        while (i < sc->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    size_t mant_end = i;
    if (i < sc->n && (s[i] == 'e' || s[i] == 'E')) {
        is_int = 0;
        i++;
        if (i < sc->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= sc->n || s[i] < '0' || s[i] > '9')
            return scan_fail(sc, "invalid number", start);
        while (i < sc->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < sc->n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'
                      || s[i] == 'e' || s[i] == 'E' || s[i] == '+'
                      || s[i] == '-'))
        return scan_fail(sc, "invalid number", start);
    if (i - start > JSON_NUM_MAX)
        return scan_fail(sc, "number longer than 100 bytes", start);
    /* significant digits: first to last non-zero digit of the mantissa */
    for (size_t k = int_start; k < mant_end; k++) {
        if (s[k] == '.')
            continue;
        if (s[k] == '0') {
            if (seen)
                zeros++;
            continue;
        }
        sig += (seen ? zeros : 0) + 1;
        zeros = 0;
        seen = nonzero = 1;
    }
    memcpy(tok, s + start, i - start);
    tok[i - start] = '\0';
    v = strtod(tok, NULL);
    if (!(sc->flags & KAP_JSON_LOOSE_NUMBERS)) {
        if (is_int && beyond_2_53(s + int_start, int_len))
            return scan_fail(sc, "integer beyond +-2^53", start);
        if (!is_int && sig > JSON_SIG_MAX)
            return scan_fail(sc, "number with more than 15 significant"
                             " digits", start);
        if (nonzero && (v == 0 || fabs(v) < DBL_MIN))
            return scan_fail(sc, "number too small for a double", start);
    }
    if (!isfinite(v))
        return scan_fail(sc, "number too large for a double", start);
    if (sc->nnums == sc->capnums
        && scan_grow((void **)&sc->nums, &sc->capnums, sizeof(*sc->nums))
           != KAP_OK)
        return scan_nomem(sc);
    sc->nums[sc->nnums].off = start;
    sc->nums[sc->nnums].len = i - start;
    sc->nums[sc->nnums].value = v;
    sc->nnums++;
    sc->i = i;
    return KAP_OK;
}

static int
scan_literal(struct json_scan *sc)
{
    static const char *const lit[] = { "true", "false", "null" };
    size_t k, len;

    for (k = 0; k < 3; k++) {
        len = strlen(lit[k]);
        if (sc->n - sc->i >= len && memcmp(sc->s + sc->i, lit[k], len) == 0
            && (sc->n - sc->i == len
                || !((sc->s[sc->i + len] >= 'a' && sc->s[sc->i + len] <= 'z')
                     || (sc->s[sc->i + len] >= '0'
                         && sc->s[sc->i + len] <= '9')))) {
            sc->i += len;
            return KAP_OK;
        }
    }
    return scan_fail(sc, "invalid literal", sc->i);
}

static int
scan_unexpected(struct json_scan *sc, const char *expected)
{
    char what[96];

    if (sc->i >= sc->n)
        return scan_fail(sc, "unexpected end of input", sc->i);
    if (sc->s[sc->i] == 0)
        return scan_fail(sc, "NUL byte", sc->i);
    snprintf(what, sizeof(what), "unexpected byte 0x%02x (%s)",
             sc->s[sc->i], expected);
    return scan_fail(sc, what, sc->i);
}

/* One member more in the container at depth d.  KAP_OK or KAP_ERROR. */
static int
scan_member(struct json_scan *sc, size_t *count, size_t start, int obj)
{
    char what[96];

    if (++*count > sc->max_members) {
        snprintf(what, sizeof(what), "more than %zu members in the %s"
                 " opened at offset %zu", sc->max_members,
                 obj ? "object" : "array", start);
        return scan_fail(sc, what, sc->i);
    }
    if (obj && *count > sc->max_obj)
        sc->max_obj = *count;
    return KAP_OK;
}

static int
scan_doc(struct json_scan *sc)
{
    unsigned char kind[KAP_JSON_MAX_DEPTH_LIMIT];
    size_t        count[KAP_JSON_MAX_DEPTH_LIMIT];
    size_t        start[KAP_JSON_MAX_DEPTH_LIMIT];
    unsigned      depth = 0;
    char          what[64];

value:
    scan_ws(sc);
    if (sc->i >= sc->n)
        return scan_unexpected(sc, "a value");
    switch (sc->s[sc->i]) {
    case '{':
    case '[':
        if (depth >= sc->max_depth) {
            snprintf(what, sizeof(what), "nesting deeper than %u",
                     sc->max_depth);
            return scan_fail(sc, what, sc->i);
        }
        kind[depth] = sc->s[sc->i];
        count[depth] = 0;
        start[depth] = sc->i;
        depth++;
        sc->i++;
        scan_ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == kind[depth - 1] + 2) {
            sc->i++;                 /* {} or [] */
            depth--;
            goto after;
        }
        if (kind[depth - 1] == '{')
            goto key;
        if (scan_member(sc, &count[depth - 1], start[depth - 1], 0)
            != KAP_OK)
            return KAP_ERROR;
        goto value;
    case '"':
        if (scan_string(sc) != KAP_OK)
            return KAP_ERROR;
        goto after;
    case 't':
    case 'f':
    case 'n':
        if (scan_literal(sc) != KAP_OK)
            return KAP_ERROR;
        goto after;
    default:
        if (sc->s[sc->i] == '-'
            || (sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9')) {
            if (scan_number(sc) != KAP_OK)
                return KAP_ERROR;
            goto after;
        }
        return scan_unexpected(sc, "a value");
    }

key:
    if (sc->i >= sc->n || sc->s[sc->i] != '"')
        return scan_unexpected(sc, "a member name");
    if (scan_member(sc, &count[depth - 1], start[depth - 1], 1) != KAP_OK)
        return KAP_ERROR;
    if (sc->nkeys == sc->capkeys
        && scan_grow((void **)&sc->keys, &sc->capkeys, sizeof(*sc->keys))
           != KAP_OK)
        return scan_nomem(sc);
    sc->keys[sc->nkeys++] = sc->i;
    if (scan_string(sc) != KAP_OK)
        return KAP_ERROR;
    scan_ws(sc);
    if (sc->i >= sc->n || sc->s[sc->i] != ':')
        return scan_unexpected(sc, "':'");
    sc->i++;
    goto value;

after:
    if (depth == 0) {
        sc->end = sc->i;
        scan_ws(sc);
        if (sc->i < sc->n)
            return sc->s[sc->i] == 0 ? scan_fail(sc, "NUL byte", sc->i)
                                     : scan_fail(sc, "trailing bytes", sc->i);
        return KAP_OK;
    }
    scan_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == ',') {
        sc->i++;
        scan_ws(sc);
        if (kind[depth - 1] == '{')
            goto key;
        if (scan_member(sc, &count[depth - 1], start[depth - 1], 0)
            != KAP_OK)
            return KAP_ERROR;
        goto value;
    }
    if (sc->i < sc->n && sc->s[sc->i] == kind[depth - 1] + 2) {
        sc->i++;
        depth--;
        goto after;
    }
    return scan_unexpected(sc, kind[depth - 1] == '{' ? "',' or '}'"
                                                      : "',' or ']'");
}

/* ---- 3. the walk over cJSON's tree ------------------------------------ */

struct json_walk {
    struct json_scan *sc;
    size_t            key;           /* next member name, document order */
    size_t            num;           /* next number */
    struct json_dup  *dup;           /* scratch: sc->max_obj entries */
};

struct json_dup {
    const cJSON *node;
    size_t       pos;
};

static int
dup_cmp(const void *a, const void *b)
{
    const struct json_dup *x = a, *y = b;
    int c = strcmp(x->node->string, y->node->string);

    if (c != 0)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The first member of obj (document order) whose name an earlier member
 * already has, or NULL, in *found.  KAP_ERROR when obj has more members
 * than the scan counted (a disagreement). */
static int
first_dup(struct json_walk *w, const cJSON *obj, const cJSON **found)
{
    const cJSON *c;
    size_t       n = 0, k, best = SIZE_MAX;

    *found = NULL;
    for (c = obj->child; c != NULL; c = c->next) {
        if (n == w->sc->max_obj || c->string == NULL)
            return KAP_ERROR;
        w->dup[n].node = c;
        w->dup[n].pos = n;
        n++;
    }
    if (n < 2)
        return KAP_OK;
    qsort(w->dup, n, sizeof(*w->dup), dup_cmp);
    for (k = 1; k < n; k++)
        if (strcmp(w->dup[k].node->string, w->dup[k - 1].node->string) == 0
            && w->dup[k].pos < best) {
            best = w->dup[k].pos;
            *found = w->dup[k].node;
        }
    return KAP_OK;
}

/* A member name fit for an error message: printable ASCII, cut short. */
static void
msg_key(char *buf, size_t len, const char *key)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (; *key != '\0' && o + 5 < len; key++) {
        unsigned char c = (unsigned char)*key;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    if (*key != '\0' && o + 4 <= len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

static int
walk_disagree(struct json_walk *w)
{
    kap_err_set(w->sc->err, "parser disagreement (kapd bug)");
    return KAP_ERROR;
}

static int
walk(struct json_walk *w, cJSON *node)
{
    const cJSON *dup;
    cJSON       *c;
    char         name[80];

    if (cJSON_IsNumber(node)) {
        struct json_num *t;
        if (w->num >= w->sc->nnums)
            return walk_disagree(w);
        t = &w->sc->nums[w->num++];
        if (!(node->valuedouble == t->value
              || (isnan(node->valuedouble) && isnan(t->value))))
            return walk_disagree(w);
        if (!(w->sc->flags & KAP_JSON_LOOSE_NUMBERS)) {
            char *lit = cJSON_malloc(t->len + 1);
            if (lit == NULL)
                return scan_nomem(w->sc);
            memcpy(lit, w->sc->s + t->off, t->len);
            lit[t->len] = '\0';
            node->valuestring = lit;
        }
        return KAP_OK;
    }
    if (cJSON_IsArray(node)) {
        for (c = node->child; c != NULL; c = c->next)
            if (walk(w, c) != KAP_OK)
                return KAP_ERROR;
        return KAP_OK;
    }
    if (!cJSON_IsObject(node))
        return KAP_OK;
    if (first_dup(w, node, &dup) != KAP_OK)
        return walk_disagree(w);
    for (c = node->child; c != NULL; c = c->next) {
        size_t k = w->key++;
        if (k >= w->sc->nkeys || c->string == NULL)
            return walk_disagree(w);
        if (c == dup) {
            msg_key(name, sizeof(name), c->string);
            kap_err_set(w->sc->err, "duplicate key \"%s\" at offset %zu",
                        name, w->sc->keys[k]);
            return KAP_ERROR;
        }
        if (walk(w, c) != KAP_OK)
            return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- parse ---------------------------------------------------------- */

struct kap_json *
kap_json_parse(const char *data, size_t len,
               const struct kap_json_limits *lim, struct kap_err *err)
{
    struct json_scan sc;
    struct json_walk w;
    size_t           max_bytes = KAP_JSON_MAX_BYTES_DEFAULT;
    const char      *end = NULL;
    cJSON           *root = NULL;

    memset(&sc, 0, sizeof(sc));
    sc.s = (const unsigned char *)data;
    sc.n = len;
    sc.err = err;
    sc.max_depth = KAP_JSON_MAX_DEPTH_DEFAULT;
    sc.max_members = KAP_JSON_MAX_MEMBERS_DEFAULT;
    if (lim != NULL) {
        if (lim->max_bytes)
            max_bytes = lim->max_bytes;
        if (lim->max_depth)
            sc.max_depth = lim->max_depth;
        if (lim->max_members)
            sc.max_members = lim->max_members;
        sc.flags = lim->flags;
    }
    if (sc.max_depth > KAP_JSON_MAX_DEPTH_LIMIT)
        sc.max_depth = KAP_JSON_MAX_DEPTH_LIMIT;
    if (data == NULL && len > 0) {
        kap_err_set(err, "no input");
        return NULL;
    }
    if (len > max_bytes) {
        kap_err_set(err, "input of %zu bytes is over the limit of %zu",
                    len, max_bytes);
        return NULL;
    }
    if (len == 0) {
        kap_err_set(err, "empty input");
        return NULL;
    }
    if (scan_doc(&sc) != KAP_OK)
        goto fail;

    root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (root == NULL) {
        /* valid per the scan: cJSON ran out of memory (or disagrees) */
        kap_err_set(err, "out of memory (or parser disagreement)");
        goto fail;
    }
    if (end == NULL || (size_t)(end - data) != sc.end) {
        kap_err_set(err, "parser disagreement (kapd bug)");
        goto fail;
    }
    memset(&w, 0, sizeof(w));
    w.sc = &sc;
    if (sc.max_obj > 0) {
        if (kapd_alloc_fail()
            || (w.dup = malloc(sc.max_obj * sizeof(*w.dup))) == NULL) {
            scan_nomem(&sc);
            goto fail;
        }
    }
    if (walk(&w, root) != KAP_OK) {
        free(w.dup);
        goto fail;
    }
    free(w.dup);
    if (w.key != sc.nkeys || w.num != sc.nnums) {
        kap_err_set(err, "parser disagreement (kapd bug)");
        goto fail;
    }
    free(sc.keys);
    free(sc.nums);
    return (struct kap_json *)(void *)root;

fail:
    cJSON_Delete(root);
    free(sc.keys);
    free(sc.nums);
    return NULL;
}

static void
json_cleanup(void *data)
{
    cJSON_Delete(data);
}

struct kap_json *
kap_json_parse_pool(struct kap_pool *p, const char *data, size_t len,
                    const struct kap_json_limits *lim, struct kap_err *err)
{
    struct kap_json *j;

    if (p == NULL) {
        kap_err_set(err, "no pool");
        return NULL;
    }
    j = kap_json_parse(data, len, lim, err);
    if (j == NULL)
        return NULL;
    if (kap_pool_cleanup_add(p, json_cleanup, j) != KAP_OK) {
        kap_json_free(j);
        kap_err_set(err, "out of memory");
        return NULL;
    }
    return j;
}

void
kap_json_free(struct kap_json *j)
{
    cJSON_Delete((cJSON *)(void *)j);
}

/* ---- look-up -------------------------------------------------------- */

enum kap_json_type
kap_json_type(const struct kap_json *j)
{
    const cJSON *c = KAPD_JSON_C(j);

    if (c == NULL)
        return KAP_JSON_INVALID;
    switch (c->type & 0xff) {
    case cJSON_NULL:   return KAP_JSON_NULL;
    case cJSON_False:
    case cJSON_True:   return KAP_JSON_BOOL;
    case cJSON_Number: return KAP_JSON_NUMBER;
    case cJSON_String: return KAP_JSON_STRING;
    case cJSON_Array:  return KAP_JSON_ARRAY;
    case cJSON_Object: return KAP_JSON_OBJECT;
    default:           return KAP_JSON_INVALID;
    }
}

const struct kap_json *
kap_json_get(const struct kap_json *j, const char *key)
{
    const cJSON *c = KAPD_JSON_C(j);

    if (c == NULL || key == NULL || !cJSON_IsObject(c))
        return NULL;
    return KAPD_JSON_K(cJSON_GetObjectItemCaseSensitive(c, key));
}

const char *
kap_json_string(const struct kap_json *j)
{
    const cJSON *c = KAPD_JSON_C(j);

    return cJSON_IsString(c) ? c->valuestring : NULL;
}

const char *
kap_json_get_string(const struct kap_json *j, const char *key)
{
    return kap_json_string(kap_json_get(j, key));
}

int
kap_json_number(const struct kap_json *j, double *out)
{
    const cJSON *c = KAPD_JSON_C(j);

    if (!cJSON_IsNumber(c))
        return KAP_ERROR;
    if (out != NULL)
        *out = c->valuedouble;
    return KAP_OK;
}

int
kap_json_int(const struct kap_json *j, int64_t *out)
{
    const double lim = 9007199254740992.0;   /* 2^53 */
    double       v;

    if (kap_json_number(j, &v) != KAP_OK || !(v >= -lim && v <= lim)
        || v != (double)(long long)v)
        return KAP_ERROR;
    if (out != NULL)
        *out = (int64_t)v;
    return KAP_OK;
}

int
kap_json_bool(const struct kap_json *j)
{
    const cJSON *c = KAPD_JSON_C(j);

    if (!cJSON_IsBool(c))
        return -1;
    return cJSON_IsTrue(c) ? 1 : 0;
}

size_t
kap_json_size(const struct kap_json *j)
{
    const cJSON *c = KAPD_JSON_C(j), *k;
    size_t       n = 0;

    if (!cJSON_IsArray(c) && !cJSON_IsObject(c))
        return 0;
    for (k = c->child; k != NULL; k = k->next)
        n++;
    return n;
}

const struct kap_json *
kap_json_child(const struct kap_json *j)
{
    const cJSON *c = KAPD_JSON_C(j);

    if (!cJSON_IsArray(c) && !cJSON_IsObject(c))
        return NULL;
    return KAPD_JSON_K(c->child);
}

const struct kap_json *
kap_json_next(const struct kap_json *j)
{
    const cJSON *c = KAPD_JSON_C(j);

    return c == NULL ? NULL : KAPD_JSON_K(c->next);
}

const char *
kap_json_key(const struct kap_json *j)
{
    const cJSON *c = KAPD_JSON_C(j);

    return c == NULL ? NULL : c->string;
}
