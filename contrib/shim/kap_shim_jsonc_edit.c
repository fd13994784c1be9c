/*
 * kap_shim_jsonc_edit.c -- textual edits of a parsed JSONC document:
 * set (replace or add) a member, remove a member, append to an array.
 *
 * An edit is a few splices (delete a range, insert bytes at an offset) at
 * offsets the parser recorded; the rest of the text is copied as it is.
 * New members and elements follow the layout they join: on a line of
 * their own, indented like the last one, when the container spans lines;
 * inline after ", " when it does not; with a trailing comma when the
 * last one had one.
 */
#include "kap_shim_jsonc.h"
#include "kap_shim_jsonc_int.h"

#include <stdlib.h>
#include <string.h>

struct splice {
    size_t      at, del;        /* replace text[at..at+del) ... */
    const char *ins;            /* ... by ins[0..inslen) */
    size_t      inslen;
};

/* text with the splices (sorted by offset, not overlapping) applied */
static int
apply(const struct kap_jsonc *doc, const struct splice *s, int n,
      char **out, size_t *outlen, const char **why)
{
    struct kap_jsonc_buf b = { 0 };
    size_t pos = 0;
    for (int k = 0; k < n; k++) {
        kap_jsonc_buf_add(&b, doc->text + pos, s[k].at - pos);
        kap_jsonc_buf_add(&b, s[k].ins, s[k].inslen);
        pos = s[k].at + s[k].del;
    }
    kap_jsonc_buf_add(&b, doc->text + pos, doc->len - pos);
    if (kap_jsonc_buf_take(&b, out, outlen) < 0) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

/* the offset where the line holding off starts */
static size_t
line_start(const char *t, size_t off)
{
    while (off > 0 && t[off - 1] != '\n')
        off--;
    return off;
}

/* whether only spaces and tabs stand between offsets a and b */
static int
blank(const char *t, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++) {
        if (t[i] != ' ' && t[i] != '\t')
            return 0;
    }
    return 1;
}

/* the indentation (spaces and tabs) of the line holding off */
static void
indent_of(const char *t, size_t off, size_t *s, size_t *n)
{
    size_t ls = line_start(t, off), e = ls;
    while (t[e] == ' ' || t[e] == '\t')
        e++;
    *s = ls;
    *n = e - ls;
}

/*
 * From off, past spaces, tabs and comments that end on this line: the
 * offset of the line's end (a '\n'), or of the first other byte.
 */
static size_t
rest_of_line(const char *t, size_t len, size_t off)
{
    while (off < len) {
        if (t[off] == ' ' || t[off] == '\t' || t[off] == '\r') {
            off++;
        } else if (t[off] == '/' && off + 1 < len && t[off + 1] == '/') {
            while (off < len && t[off] != '\n')
                off++;
        } else if (t[off] == '/' && off + 1 < len && t[off + 1] == '*') {
            size_t e = kap_jsonc_skip(t, len, off);
            if (memchr(t + off, '\n', e - off) != NULL)
                return off;
            off = e;
        } else {
            break;
        }
    }
    return off;
}

/* one level of indentation: the root's first child's, else 4 spaces */
static void
unit_of(const struct kap_jsonc *doc, const char **u, size_t *ul)
{
    int f = doc->n > 0 ? doc->nodes[0].first : -1;
    *u = "    ";
    *ul = 4;
    if (f < 0)
        return;
    size_t at = doc->nodes[f].key_start != KAP_JSONC_NONE ? doc->nodes[f].key_start
                                                           : doc->nodes[f].start;
    size_t s, n;
    indent_of(doc->text, at, &s, &n);
    if (n > 0 && n <= 8 && memchr(doc->text, '\n', at) != NULL) {
        *u = doc->text + s;
        *ul = n;
    }
}

static int
valid_value(const char *v, size_t vl, const char **why)
{
    struct kap_jsonc d;
    if (kap_jsonc_parse(&d, v, vl) < 0) {
        *why = "the new value is not valid JSON";
        return -1;
    }
    kap_jsonc_free(&d);
    return 0;
}

/*
 * Add item[0..il) (a member "k": v or an element) as the last child of
 * container node c.
 */
static int
add_last(const struct kap_jsonc *doc, int c, const char *item, size_t il,
         char **out, size_t *outlen, const char **why)
{
    const char *t = doc->text;
    const struct kap_jsonc_node *cn = &doc->nodes[c];
    size_t close = cn->end - 1;              /* the '}' or ']' */
    struct kap_jsonc_buf b = { 0 };
    struct splice s[2];
    int n = 0, rc;
    const char *u;
    size_t ul;
    unit_of(doc, &u, &ul);

    if (cn->last < 0) {
        /* empty: "{}" becomes "{ item }" over lines when the opener's
           line is indented, else inline */
        size_t is, in;
        indent_of(t, cn->start, &is, &in);
        if (memchr(t + cn->start, '\n', close - cn->start) != NULL
            && blank(t, line_start(t, close), close)) {
            /* the closer on a line of its own: the item on the line above it */
            size_t cs, cl;
            indent_of(t, close, &cs, &cl);
            kap_jsonc_buf_add(&b, t + cs, cl);
            kap_jsonc_buf_add(&b, u, ul);
            kap_jsonc_buf_add(&b, item, il);
            kap_jsonc_buf_add(&b, "\n", 1);
            s[n++] = (struct splice){ cs, 0, NULL, 0 };
        } else if (cn->parent < 0 || in > 0) {
            kap_jsonc_buf_add(&b, "\n", 1);
            kap_jsonc_buf_add(&b, t + is, in);
            kap_jsonc_buf_add(&b, u, ul);
            kap_jsonc_buf_add(&b, item, il);
            kap_jsonc_buf_add(&b, "\n", 1);
            kap_jsonc_buf_add(&b, t + is, in);
            s[n++] = (struct splice){ close, 0, NULL, 0 };
        } else {
            kap_jsonc_buf_add(&b, item, il);
            s[n++] = (struct splice){ close, 0, NULL, 0 };
        }
    } else {
        const struct kap_jsonc_node *last = &doc->nodes[cn->last];
        int had_comma = last->comma != KAP_JSONC_NONE;
        size_t after = had_comma ? last->comma + 1 : last->end;
        size_t from = last->key_start != KAP_JSONC_NONE ? last->key_start : last->start;
        if (!had_comma)
            s[n++] = (struct splice){ last->end, 0, ",", 1 };
        if (memchr(t + after, '\n', close - after) == NULL) {
            /* the closer on the last item's line: inline */
            kap_jsonc_buf_add(&b, " ", 1);
            kap_jsonc_buf_add(&b, item, il);
            if (had_comma)
                kap_jsonc_buf_add(&b, ",", 1);
            s[n++] = (struct splice){ after, 0, NULL, 0 };
        } else {
            size_t is, in;
            size_t at = rest_of_line(t, doc->len, after);
            int crlf = at < doc->len && t[at] == '\n' && at > after && t[at - 1] == '\r';
            if (crlf)
                at--;                           /* before a CRLF's CR */
            indent_of(t, from, &is, &in);
            kap_jsonc_buf_add(&b, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
            kap_jsonc_buf_add(&b, t + is, in);
            kap_jsonc_buf_add(&b, item, il);
            if (had_comma)
                kap_jsonc_buf_add(&b, ",", 1);
            s[n++] = (struct splice){ at, 0, NULL, 0 };
        }
    }
    if (b.oom) {
        free(b.p);
        *why = "out of memory";
        return -1;
    }
    s[n - 1].ins = b.p;
    s[n - 1].inslen = b.len;
    rc = apply(doc, s, n, out, outlen, why);
    free(b.p);
    return rc;
}

int
kap_jsonc_set(const struct kap_jsonc *doc, int obj, const char *key,
              size_t keylen, const char *value, size_t vlen,
              char **out, size_t *outlen, const char **why)
{
    if (obj < 0 || obj >= doc->n || doc->nodes[obj].type != KAP_JSONC_OBJECT) {
        *why = "not an object";
        return -1;
    }
    if (valid_value(value, vlen, why) < 0)
        return -1;
    int m = kap_jsonc_member(doc, obj, key, keylen, NULL);
    if (m == -2) {
        *why = "the member name occurs twice";
        return -1;
    }
    if (m >= 0) {
        struct splice s = { doc->nodes[m].start, doc->nodes[m].end - doc->nodes[m].start,
                            value, vlen };
        return apply(doc, &s, 1, out, outlen, why);
    }
    char *q;
    size_t ql;
    if (kap_jsonc_quote(key, keylen, &q, &ql) < 0) {
        *why = "out of memory";
        return -1;
    }
    struct kap_jsonc_buf b = { 0 };
    kap_jsonc_buf_add(&b, q, ql);
    kap_jsonc_buf_add(&b, ": ", 2);
    kap_jsonc_buf_add(&b, value, vlen);
    free(q);
    if (b.oom) {
        free(b.p);
        *why = "out of memory";
        return -1;
    }
    int rc = add_last(doc, obj, b.p, b.len, out, outlen, why);
    free(b.p);
    return rc;
}

int
kap_jsonc_append(const struct kap_jsonc *doc, int arr, const char *value,
                 size_t vlen, char **out, size_t *outlen, const char **why)
{
    if (arr < 0 || arr >= doc->n || doc->nodes[arr].type != KAP_JSONC_ARRAY) {
        *why = "not an array";
        return -1;
    }
    if (valid_value(value, vlen, why) < 0)
        return -1;
    return add_last(doc, arr, value, vlen, out, outlen, why);
}

int
kap_jsonc_remove(const struct kap_jsonc *doc, int m, char **out,
                 size_t *outlen, const char **why)
{
    if (m <= 0 || m >= doc->n || doc->nodes[m].key_start == KAP_JSONC_NONE) {
        *why = "not a member of an object";
        return -1;
    }
    const char *t = doc->text;
    const struct kap_jsonc_node *mn = &doc->nodes[m];
    int prev = -1;
    for (int c = doc->nodes[mn->parent].first; c != m; c = doc->nodes[c].next)
        prev = c;
    size_t s = mn->key_start;
    size_t e = mn->comma != KAP_JSONC_NONE ? mn->comma + 1 : mn->end;
    size_t pc = KAP_JSONC_NONE;            /* the previous item's comma */
    if (mn->comma == KAP_JSONC_NONE && prev >= 0)
        pc = doc->nodes[prev].comma;
    /* the member alone on its line(s), maybe with a comment after it:
       the whole lines go */
    size_t ls = line_start(t, s);
    size_t r = rest_of_line(t, doc->len, e);
    int whole = blank(t, ls, s) && (r == doc->len || t[r] == '\n');
    if (whole) {
        s = ls;
        e = r < doc->len ? r + 1 : r;
    } else {
        while (e < doc->len && (t[e] == ' ' || t[e] == '\t')
               && mn->comma != KAP_JSONC_NONE)
            e++;
    }
    struct splice sp[2];
    int n = 0;
    if (pc != KAP_JSONC_NONE && !whole)
        s = pc;                               /* inline: ", member" goes */
    else if (pc != KAP_JSONC_NONE)            /* (before s: it precedes the key) */
        sp[n++] = (struct splice){ pc, 1, NULL, 0 };
    sp[n++] = (struct splice){ s, e - s, NULL, 0 };
    return apply(doc, sp, n, out, outlen, why);
}
