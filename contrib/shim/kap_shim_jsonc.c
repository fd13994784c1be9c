/*
 * kap_shim_jsonc.c -- the JSONC reader: a recursive-descent parser
 * (depth bounded) that records each value's span, and the queries on it
 * (member lookup, string decoding, compact output, quoting).
 *
 * Grammar: RFC 8259 JSON, plus // line comments, block comments and one
 * trailing comma before a closing } or ].  Strict otherwise: control
 * characters in strings, bad escapes, leading zeros, a lone comma, or
 * anything after the top-level value are errors with their offset.
 */
#include "kap_shim_jsonc.h"
#include "kap_shim_jsonc_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- buffer ----------------------------------------------------------------- */

void
kap_jsonc_buf_add(struct kap_jsonc_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > ((size_t)-1) / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

int
kap_jsonc_buf_take(struct kap_jsonc_buf *b, char **out, size_t *outlen)
{
    if (b->p == NULL && !b->oom)
        kap_jsonc_buf_add(b, "", 0);
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return -1;
    }
    *out = b->p;
    *outlen = b->len;
    b->p = NULL;
    return 0;
}

/* ---- lexing ----------------------------------------------------------------- */

size_t
kap_jsonc_skip(const char *t, size_t len, size_t i)
{
    while (i < len) {
        char c = t[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
        } else if (c == '/' && i + 1 < len && t[i + 1] == '/') {
            while (i < len && t[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < len && t[i + 1] == '*') {
            i += 2;
            while (i + 1 < len && !(t[i] == '*' && t[i + 1] == '/'))
                i++;
            i = i + 1 < len ? i + 2 : len;
        } else {
            break;
        }
    }
    return i;
}

struct parser {
    struct kap_jsonc *doc;
    const char       *t;
    size_t            len, i;
    int               depth;
};

static int
fail(struct parser *p, size_t at, const char *why)
{
    if (p->doc->error == NULL) {
        p->doc->error = why;
        p->doc->error_at = at;
    }
    return -1;
}

/* whitespace and comments, with an unterminated comment an error */
static int
ws(struct parser *p)
{
    size_t j = p->i;
    p->i = kap_jsonc_skip(p->t, p->len, p->i);
    /* the skipper runs to the end on an open block comment: find it */
    while (j < p->i) {
        if (p->t[j] == '/' && j + 1 < p->len && p->t[j + 1] == '*') {
            size_t k = j + 2;
            while (k + 1 < p->len && !(p->t[k] == '*' && p->t[k + 1] == '/'))
                k++;
            if (k + 1 >= p->len)
                return fail(p, j, "unterminated comment");
            j = k + 2;
        } else if (p->t[j] == '/') {
            while (j < p->len && p->t[j] != '\n')
                j++;
        } else {
            j++;
        }
    }
    if (p->i < p->len && p->t[p->i] == '/')
        return fail(p, p->i, "'/' that does not start a comment");
    return 0;
}

static int
new_node(struct parser *p, int type, int parent)
{
    struct kap_jsonc *d = p->doc;
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 32;
        struct kap_jsonc_node *nn = realloc(d->nodes, (size_t)cap * sizeof *nn);
        if (nn == NULL)
            return fail(p, p->i, "out of memory");
        d->nodes = nn;
        d->cap = cap;
    }
    struct kap_jsonc_node *n = &d->nodes[d->n];
    n->type = type;
    n->start = p->i;
    n->end = p->i;
    n->key_start = n->key_end = KAP_JSONC_NONE;
    n->comma = KAP_JSONC_NONE;
    n->parent = parent;
    n->next = n->first = n->last = -1;
    n->count = 0;
    if (parent >= 0) {
        struct kap_jsonc_node *pa = &d->nodes[parent];
        if (pa->last >= 0)
            d->nodes[pa->last].next = d->n;
        else
            pa->first = d->n;
        pa->last = d->n;
        pa->count++;
    }
    return d->n++;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* a string literal at p->i; p->i ends after the closing quote */
static int
string(struct parser *p)
{
    size_t open = p->i++;
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->t[p->i];
        if (c == '"') {
            p->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(p, p->i, c == '\n' ? "newline in a string (unterminated string?)"
                                           : "control character in a string");
        if (c == '\\') {
            if (p->i + 1 >= p->len)
                break;
            char e = p->t[p->i + 1];
            if (e == 'u') {
                for (int k = 2; k < 6; k++) {
                    if (p->i + (size_t)k >= p->len || hexval(p->t[p->i + (size_t)k]) < 0)
                        return fail(p, p->i, "bad \\u escape (want four hex digits)");
                }
                p->i += 6;
                continue;
            }
            if (strchr("\"\\/bfnrt", e) == NULL || e == '\0')
                return fail(p, p->i, "bad escape in a string");
            p->i += 2;
            continue;
        }
        p->i++;
    }
    return fail(p, open, "unterminated string");
}

static int
digits(struct parser *p)
{
    size_t s = p->i;
    while (p->i < p->len && p->t[p->i] >= '0' && p->t[p->i] <= '9')
        p->i++;
    return p->i > s ? 0 : fail(p, p->i, "digit expected in a number");
}

static int
number(struct parser *p)
{
    if (p->t[p->i] == '-')
        p->i++;
    if (p->i < p->len && p->t[p->i] == '0') {
        p->i++;
        if (p->i < p->len && p->t[p->i] >= '0' && p->t[p->i] <= '9')
            return fail(p, p->i, "leading zero in a number");
    } else if (digits(p) < 0) {
        return -1;
    }
    if (p->i < p->len && p->t[p->i] == '.') {
        p->i++;
        if (digits(p) < 0)
            return -1;
    }
    if (p->i < p->len && (p->t[p->i] == 'e' || p->t[p->i] == 'E')) {
        p->i++;
        if (p->i < p->len && (p->t[p->i] == '+' || p->t[p->i] == '-'))
            p->i++;
        if (digits(p) < 0)
            return -1;
    }
    return 0;
}

static int value(struct parser *p, int parent, size_t key_start, size_t key_end);

/* the members or elements of container node c, p->i after its opener */
static int
items(struct parser *p, int c, char close)
{
    int is_obj = close == '}';
    for (;;) {
        if (ws(p) < 0)
            return -1;
        if (p->i >= p->len)
            return fail(p, p->i, is_obj ? "unexpected end of input in an object (missing '}')"
                                        : "unexpected end of input in an array (missing ']')");
        if (p->t[p->i] == close) {
            p->i++;
            return 0;
        }
        if (p->doc->nodes[c].count > 0 && p->doc->nodes[p->doc->nodes[c].last].comma
                                          == KAP_JSONC_NONE)
            return fail(p, p->i, is_obj ? "',' or '}' expected" : "',' or ']' expected");
        size_t ks = KAP_JSONC_NONE, ke = KAP_JSONC_NONE;
        if (is_obj) {
            if (p->t[p->i] != '"')
                return fail(p, p->i, p->t[p->i] == ',' ? "unexpected ','"
                                                       : "a member name in double quotes expected");
            ks = p->i;
            if (string(p) < 0)
                return -1;
            ke = p->i;
            if (ws(p) < 0)
                return -1;
            if (p->i >= p->len || p->t[p->i] != ':')
                return fail(p, p->i, "':' expected after a member name");
            p->i++;
            if (ws(p) < 0)
                return -1;
        } else if (p->t[p->i] == ',') {
            return fail(p, p->i, "unexpected ','");
        }
        int e = value(p, c, ks, ke);
        if (e < 0)
            return -1;
        if (ws(p) < 0)
            return -1;
        if (p->i < p->len && p->t[p->i] == ',') {
            p->doc->nodes[e].comma = p->i;
            p->i++;
        }
    }
}

static int
value(struct parser *p, int parent, size_t key_start, size_t key_end)
{
    if (p->i >= p->len)
        return fail(p, p->i, "unexpected end of input (a value expected)");
    char c = p->t[p->i];
    int type, rc = 0;
    switch (c) {
    case '{': type = KAP_JSONC_OBJECT; break;
    case '[': type = KAP_JSONC_ARRAY; break;
    case '"': type = KAP_JSONC_STRING; break;
    case 't': type = KAP_JSONC_TRUE; break;
    case 'f': type = KAP_JSONC_FALSE; break;
    case 'n': type = KAP_JSONC_NULL; break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            type = KAP_JSONC_NUMBER;
            break;
        }
        return fail(p, p->i, "a value expected");
    }
    int n = new_node(p, type, parent);
    if (n < 0)
        return -1;
    p->doc->nodes[n].key_start = key_start;
    p->doc->nodes[n].key_end = key_end;
    if (type == KAP_JSONC_OBJECT || type == KAP_JSONC_ARRAY) {
        if (++p->depth > KAP_JSONC_MAX_DEPTH)
            return fail(p, p->i, "nested too deep");
        p->i++;
        rc = items(p, n, type == KAP_JSONC_OBJECT ? '}' : ']');
        p->depth--;
    } else if (type == KAP_JSONC_STRING) {
        rc = string(p);
    } else if (type == KAP_JSONC_NUMBER) {
        rc = number(p);
    } else {
        const char *w = type == KAP_JSONC_TRUE ? "true"
                      : type == KAP_JSONC_FALSE ? "false" : "null";
        size_t wl = strlen(w);
        if (p->len - p->i < wl || memcmp(p->t + p->i, w, wl) != 0)
            return fail(p, p->i, "a value expected");
        p->i += wl;
    }
    if (rc < 0)
        return -1;
    /* a literal or number runs into no letter or digit ("truex", "1a") */
    if (type >= KAP_JSONC_NUMBER && p->i < p->len) {
        char d = p->t[p->i];
        if ((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || (d >= '0' && d <= '9')
            || d == '_' || d == '.' || d == '-' || d == '+')
            return fail(p, p->i, "unexpected character after a value");
    }
    p->doc->nodes[n].end = p->i;
    return n;
}

int
kap_jsonc_parse(struct kap_jsonc *doc, const char *text, size_t len)
{
    memset(doc, 0, sizeof *doc);
    doc->text = text;
    doc->len = len;
    struct parser p = { doc, text, len, 0, 0 };
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        p.i = 3;
    if (ws(&p) < 0 || value(&p, -1, KAP_JSONC_NONE, KAP_JSONC_NONE) < 0 || ws(&p) < 0)
        goto bad;
    if (p.i < len) {
        fail(&p, p.i, "unexpected text after the top-level value");
        goto bad;
    }
    return 0;
bad:
    free(doc->nodes);
    doc->nodes = NULL;
    doc->n = doc->cap = 0;
    return -1;
}

void
kap_jsonc_free(struct kap_jsonc *doc)
{
    free(doc->nodes);
    doc->nodes = NULL;
    doc->n = doc->cap = 0;
}

void
kap_jsonc_linecol(const char *text, size_t len, size_t off,
                  unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* ---- queries ------------------------------------------------------------------ */

/* whether the key literal text[s..e) decodes to key[0..kl) */
static int
key_is(const char *text, size_t s, size_t e, const char *key, size_t kl)
{
    /* no escape: compare the bytes in place */
    if (memchr(text + s, '\\', e - s) == NULL)
        return e - s - 2 == kl && memcmp(text + s + 1, key, kl) == 0;
    char *d;
    size_t dl;
    if (kap_jsonc_decode(text, s, e, &d, &dl) < 0)
        return 0;
    int r = dl == kl && memcmp(d, key, kl) == 0;
    free(d);
    return r;
}

int
kap_jsonc_member(const struct kap_jsonc *doc, int obj,
                 const char *key, size_t keylen, size_t *dup_at)
{
    if (obj < 0 || obj >= doc->n || doc->nodes[obj].type != KAP_JSONC_OBJECT)
        return -1;
    int found = -1;
    for (int c = doc->nodes[obj].first; c >= 0; c = doc->nodes[c].next) {
        const struct kap_jsonc_node *n = &doc->nodes[c];
        if (!key_is(doc->text, n->key_start, n->key_end, key, keylen))
            continue;
        if (found >= 0) {
            if (dup_at != NULL)
                *dup_at = n->key_start;
            return -2;
        }
        found = c;
    }
    return found;
}

int
kap_jsonc_element(const struct kap_jsonc *doc, int arr, int index)
{
    if (arr < 0 || arr >= doc->n || doc->nodes[arr].type != KAP_JSONC_ARRAY || index < 0)
        return -1;
    int c = doc->nodes[arr].first;
    while (c >= 0 && index-- > 0)
        c = doc->nodes[c].next;
    return c;
}

static void
utf8(struct kap_jsonc_buf *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp; n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    kap_jsonc_buf_add(b, u, n);
}

static unsigned long
hex4(const char *s)
{
    unsigned long v = 0;
    for (int k = 0; k < 4; k++)
        v = v * 16 + (unsigned long)hexval(s[k]);
    return v;
}

int
kap_jsonc_decode(const char *text, size_t start, size_t end,
                 char **out, size_t *outlen)
{
    struct kap_jsonc_buf b = { 0 };
    *out = NULL;
    for (size_t i = start + 1; i + 1 < end; i++) {
        if (text[i] != '\\') {
            size_t j = i;
            while (j + 1 < end && text[j] != '\\')
                j++;
            kap_jsonc_buf_add(&b, text + i, j - i);
            i = j - 1;
            continue;
        }
        char e = text[++i];
        const char *m = strchr("\"\"\\\\//b\bf\fn\nr\rt\t", e);
        if (e != 'u' && m != NULL) {
            kap_jsonc_buf_add(&b, m + 1, 1);
            continue;
        }
        unsigned long cp = hex4(text + i + 1);
        i += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < end && text[i + 1] == '\\'
            && text[i + 2] == 'u') {
            unsigned long lo = hex4(text + i + 3);
            if (lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
        }
        if (cp >= 0xd800 && cp < 0xe000)
            cp = 0xfffd;
        if (cp == 0) {
            free(b.p);
            return -1;
        }
        utf8(&b, cp);
    }
    return kap_jsonc_buf_take(&b, out, outlen);
}

int
kap_jsonc_compact(const struct kap_jsonc *doc, int i, char **out, size_t *outlen)
{
    struct kap_jsonc_buf b = { 0 };
    const char *t = doc->text;
    size_t e = doc->nodes[i].end;
    for (size_t k = doc->nodes[i].start; k < e;) {
        k = kap_jsonc_skip(t, e, k);
        if (k >= e)
            break;
        if (t[k] == '"') {
            size_t s = k++;
            while (k < e && t[k] != '"')
                k += t[k] == '\\' ? 2 : 1;
            kap_jsonc_buf_add(&b, t + s, ++k - s);
        } else if (t[k] == ',') {
            size_t n = kap_jsonc_skip(t, e, k + 1);
            if (n < e && t[n] != '}' && t[n] != ']')
                kap_jsonc_buf_add(&b, ",", 1);
            k++;
        } else {
            kap_jsonc_buf_add(&b, t + k, 1);
            k++;
        }
    }
    return kap_jsonc_buf_take(&b, out, outlen);
}

int
kap_jsonc_quote(const char *s, size_t n, char **out, size_t *outlen)
{
    static const char hx[] = "0123456789abcdef";
    struct kap_jsonc_buf b = { 0 };
    kap_jsonc_buf_add(&b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char q[2] = { '\\', (char)c };
            kap_jsonc_buf_add(&b, q, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char q[6] = { '\\', 'u', '0', '0', hx[c >> 4], hx[c & 15] };
            kap_jsonc_buf_add(&b, q, 6);
        } else {
            kap_jsonc_buf_add(&b, s + i, 1);
        }
    }
    kap_jsonc_buf_add(&b, "\"", 1);
    return kap_jsonc_buf_take(&b, out, outlen);
}
