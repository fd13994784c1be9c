/*
 * kapd_json_writer.c -- writing JSON: the streaming writer
 * (kap_json_w_*) and the printer of checked trees (kap_json_print),
 * kap_json.h.
 *
 * Output is compact (no whitespace).  Strings are scanned eight bytes at
 * a time for bytes that need escaping and escaped byte by byte from there;
 * bytes that are not valid UTF-8 become \u00XX so the output is valid
 * JSON whatever the input.  A checked tree's strings are valid UTF-8, so
 * printing one changes no string; its numbers are written as their
 * checked text (strict mode) or from their double (loose mode).
 */
#include "kapd.h"
#include "kapd_json_int.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
w_raw(struct kap_json_writer *w, const char *s, size_t n)
{
    struct kap_buf *b = w->out;

    if (w->failed)
        return;
    /* Most pieces are a few bytes into a buffer with room for them and
     * the terminator: copied here without kap_buf_append's checks and
     * calls (an audit line is a few hundred pieces). */
    if (b->data != NULL && b->cap > b->len && n < b->cap - b->len) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    if (kap_buf_append(b, s, n) != KAP_OK)
        w->failed = 1;
}

/* Length of the valid UTF-8 sequence (>= 0x80 lead) at s, 0 if invalid. */
static size_t
w_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t        need, i;

    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < need + 1 || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i <= need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need + 1;
}

/* 1 for bytes copied as they are: printable ASCII but '"' and '\\'. */
#define W_PLAIN_ROW(b) \
    ((b) + 0 >= 0x20 && (b) + 0 != '"' && (b) + 0 != '\\' && (b) + 0 != 0x7f), \
    ((b) + 1 >= 0x20 && (b) + 1 != '"' && (b) + 1 != '\\' && (b) + 1 != 0x7f), \
    ((b) + 2 >= 0x20 && (b) + 2 != '"' && (b) + 2 != '\\' && (b) + 2 != 0x7f), \
    ((b) + 3 >= 0x20 && (b) + 3 != '"' && (b) + 3 != '\\' && (b) + 3 != 0x7f), \
    ((b) + 4 >= 0x20 && (b) + 4 != '"' && (b) + 4 != '\\' && (b) + 4 != 0x7f), \
    ((b) + 5 >= 0x20 && (b) + 5 != '"' && (b) + 5 != '\\' && (b) + 5 != 0x7f), \
    ((b) + 6 >= 0x20 && (b) + 6 != '"' && (b) + 6 != '\\' && (b) + 6 != 0x7f), \
    ((b) + 7 >= 0x20 && (b) + 7 != '"' && (b) + 7 != '\\' && (b) + 7 != 0x7f)
static const unsigned char w_plain_tab[256] = {
    W_PLAIN_ROW(0x00), W_PLAIN_ROW(0x08), W_PLAIN_ROW(0x10),
    W_PLAIN_ROW(0x18), W_PLAIN_ROW(0x20), W_PLAIN_ROW(0x28),
    W_PLAIN_ROW(0x30), W_PLAIN_ROW(0x38), W_PLAIN_ROW(0x40),
    W_PLAIN_ROW(0x48), W_PLAIN_ROW(0x50), W_PLAIN_ROW(0x58),
    W_PLAIN_ROW(0x60), W_PLAIN_ROW(0x68), W_PLAIN_ROW(0x70),
    W_PLAIN_ROW(0x78)                    /* 0x80 and above: 0 */
};
#undef W_PLAIN_ROW

/*
 * 1 when one of the 8 bytes in v is not plain: below 0x20, '"', '\\',
 * 0x7f or above.  Each term is the exact "some byte is zero / below n"
 * test on the whole word (a borrow can only mark bytes above one that
 * really matches), so the answer does not depend on byte order.
 */
static int
w_word_special(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t high = 0x8080808080808080ULL;
    uint64_t       q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    uint64_t       d = v ^ (ones * 0x7f);

    return (((v - ones * 0x20) & ~v)          /* a byte < 0x20 */
            | ((q - ones) & ~q)               /* a '"' */
            | ((b - ones) & ~b)               /* a '\\' */
            | ((d - ones) & ~d)               /* 0x7f */
            | v) & high ? 1 : 0;              /* 0x80 and above */
}

/* Length of the run of plain bytes at the start of s[0..n): eight bytes
 * at a time; a tail shorter than eight is checked as the last eight
 * bytes (overlapping the word before) when the string has them; the rest
 * (a short string, the word that has a special byte) byte by byte. */
static size_t
w_plain_run(const unsigned char *s, size_t n)
{
    size_t   i = 0;
    uint64_t v;

    for (; i + 8 <= n; i += 8) {
        memcpy(&v, s + i, 8);
        if (w_word_special(v))
            break;
    }
    if (i + 8 > n && n >= 8) {          /* no special byte before i */
        memcpy(&v, s + n - 8, 8);
        if (!w_word_special(v))
            return n;
    }
    while (i < n && w_plain_tab[s[i]])
        i++;
    return i;
}

/* Decimal text of v, right-aligned ending at end; returns its start. */
static char *
w_udigits(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* Integers without snprintf (the audit line has several per event). */
static void
w_ll(struct kap_json_writer *w, unsigned long long mag, int neg)
{
    char num[24], *p = w_udigits(num + sizeof(num), mag);

    if (neg)
        *--p = '-';
    w_raw(w, p, (size_t)(num + sizeof(num) - p));
}

/*
 * Shortest text of a double 1e-4 <= |v| < 1e9 with at most six decimals
 * (durations, rates), without snprintf/strtod: m = |v| * 10^6 rounded;
 * when m / 10^6 (an IEEE division of two exact values, so correctly
 * rounded like strtod) gives v back, the text is m's digits with the
 * point six places from the right and trailing zeros dropped -- at most
 * 15 significant digits, in %g's fixed range, so the same text "%.15g"
 * writes.  Returns 0 when v is not such a number.
 */
static int
w_double_fixed(struct kap_json_writer *w, double v)
{
    double a = fabs(v);
    unsigned long long m, ip, fp;
    char num[40], *end = num + sizeof(num), *p;
    int i, nz;

    if (!(a >= 1e-4 && a < 1e9))
        return 0;
    m = (unsigned long long)(a * 1e6 + 0.5);
    if ((double)m / 1e6 != a)
        return 0;
    ip = m / 1000000;
    fp = m % 1000000;
    p = end;
    for (i = 0, nz = 0; i < 6; i++, fp /= 10) {     /* the fraction */
        if (!nz && fp % 10 == 0)
            continue;                               /* trailing zero */
        nz = 1;
        *--p = (char)('0' + fp % 10);
    }
    if (p != end)
        *--p = '.';
    p = w_udigits(p, ip);
    if (v < 0)
        *--p = '-';
    w_raw(w, p, (size_t)(end - p));
    return 1;
}

static void
w_string(struct kap_json_writer *w, const char *str, size_t n)
{
    static const char    hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t               i = 0, run, k;
    char                 esc[6];

    run = w_plain_run(s, n);
    if (run == n) {
        /* nothing to escape (nearly every string): one piece */
        struct kap_buf *b = w->out;

        if (w->failed)
            return;
        if (b->data != NULL && b->cap > b->len && n + 2 < b->cap - b->len) {
            char *p = b->data + b->len;

            p[0] = '"';
            memcpy(p + 1, str, n);
            p[n + 1] = '"';
            p[n + 2] = '\0';
            b->len += n + 2;
            return;
        }
    }
    w_raw(w, "\"", 1);
    while (i < n && !w->failed) {
        run = i + w_plain_run(s + i, n - i);
        if (run > i) {
            w_raw(w, str + i, run - i);
            i = run;
            continue;
        }
        switch (s[i]) {
        case '"':  w_raw(w, "\\\"", 2); i++; continue;
        case '\\': w_raw(w, "\\\\", 2); i++; continue;
        case '\n': w_raw(w, "\\n", 2); i++; continue;
        case '\r': w_raw(w, "\\r", 2); i++; continue;
        case '\t': w_raw(w, "\\t", 2); i++; continue;
        default: break;
        }
        k = s[i] >= 0x80 ? w_utf8_seq(s + i, n - i) : 0;
        if (k == 3 && s[i] == 0xe2 && s[i + 1] == 0x80
            && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
            /* U+2028/U+2029: valid JSON, not valid JavaScript */
            w_raw(w, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
            i += 3;
        } else if (k > 0) {
            w_raw(w, str + i, k);
            i += k;
        } else {
            /* control character, DEL, or a byte of invalid UTF-8 */
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[s[i] >> 4];
            esc[5] = hex[s[i] & 15];
            w_raw(w, esc, 6);
            i++;
        }
    }
    w_raw(w, "\"", 1);
}

static void
w_double_text(struct kap_json_writer *w, double v)
{
    char num[40];
    int  n = 0, p;

    if (!isfinite(v)) {
        w_raw(w, "null", 4);
        return;
    }
    if (v == 0) {
        w_raw(w, signbit(v) ? "-0" : "0", signbit(v) ? 2 : 1);
        return;
    }
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0
        && v == (double)(long long)v) {
        long long iv = (long long)v;
        w_ll(w, iv < 0 ? 0ULL - (unsigned long long)iv
                       : (unsigned long long)iv, iv < 0);
        return;
    } else if (w_double_fixed(w, v)) {
        return;
    } else {
        /* The fewest digits that read back as v.  A normal double whose
         * shortest form has k <= 15 digits is within a relative 2^-53 of
         * that form, far inside half a 15-digit step, so "%.15g" prints
         * exactly those k digits (%g drops trailing zeros) and reads back;
         * when it does not, no form of 15 or fewer digits does.  So the
         * search starts at 15 (the same text as from 1, without up to 14
         * snprintf/strtod pairs: an audit line's duration took 17), except
         * for subnormals, whose precision is lower. */
        for (p = fabs(v) < DBL_MIN ? 1 : 15; p <= 17; p++) {
            n = snprintf(num, sizeof(num), "%.*g", p, v);
            if (n > 0 && (size_t)n < sizeof(num) && strtod(num, NULL) == v)
                break;
        }
    }
    if (n <= 0 || (size_t)n >= sizeof(num)) {
        w->failed = 1;
        return;
    }
    w_raw(w, num, (size_t)n);
}

/* Before a value: the comma, and the check that a value may come here. */
static int
w_value_start(struct kap_json_writer *w)
{
    if (w->failed)
        return 0;
    if (w->done) {
        w->failed = 1;               /* a second top-level value */
        return 0;
    }
    if (w->depth == 0)
        return 1;
    if (w->kind[w->depth - 1] == '{') {
        if (!w->key) {
            w->failed = 1;           /* a member without a name */
            return 0;
        }
        w->key = 0;
        return 1;
    }
    if (w->nonempty[w->depth - 1])
        w_raw(w, ",", 1);
    w->nonempty[w->depth - 1] = 1;
    return !w->failed;
}

static void
w_value_end(struct kap_json_writer *w)
{
    if (w->depth == 0)
        w->done = 1;
}

void
kap_json_w_init(struct kap_json_writer *w, struct kap_buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    if (out == NULL)
        w->failed = 1;
}

static void
w_open(struct kap_json_writer *w, char kind)
{
    if (!w_value_start(w))
        return;
    if (w->depth >= KAP_JSON_WRITER_DEPTH) {
        w->failed = 1;
        return;
    }
    w_raw(w, &kind, 1);
    w->kind[w->depth] = (unsigned char)kind;
    w->nonempty[w->depth] = 0;
    w->depth++;
}

static void
w_close(struct kap_json_writer *w, char kind)
{
    char end = (char)(kind + 2);     /* '}' or ']' */

    if (w->failed)
        return;
    if (w->depth == 0 || w->kind[w->depth - 1] != (unsigned char)kind
        || w->key) {
        w->failed = 1;
        return;
    }
    w_raw(w, &end, 1);
    w->depth--;
    w_value_end(w);
}

void
kap_json_w_obj_begin(struct kap_json_writer *w)
{
    w_open(w, '{');
}

void
kap_json_w_obj_end(struct kap_json_writer *w)
{
    w_close(w, '{');
}

void
kap_json_w_arr_begin(struct kap_json_writer *w)
{
    w_open(w, '[');
}

void
kap_json_w_arr_end(struct kap_json_writer *w)
{
    w_close(w, '[');
}

void
kap_json_w_key(struct kap_json_writer *w, const char *key)
{
    if (w->failed)
        return;
    if (key == NULL || w->depth == 0 || w->kind[w->depth - 1] != '{'
        || w->key) {
        w->failed = 1;
        return;
    }
    if (w->nonempty[w->depth - 1])
        w_raw(w, ",", 1);
    w->nonempty[w->depth - 1] = 1;
    {
        /* a key is nearly always a short plain constant: one piece */
        char   piece[68];
        size_t n = strlen(key);

        if (n <= 64 && w_plain_run((const unsigned char *)key, n) == n) {
            piece[0] = '"';
            memcpy(piece + 1, key, n);
            piece[n + 1] = '"';
            piece[n + 2] = ':';
            w_raw(w, piece, n + 3);
        } else {
            w_string(w, key, n);
            w_raw(w, ":", 1);
        }
    }
    w->key = 1;
}

/*
 * The key checks of kap_json_w_key() and the comma before a member: 1
 * when a member may start here (*comma: one is needed), else 0 (the
 * writer failed).
 */
static int
w_member_start(struct kap_json_writer *w, int *comma)
{
    if (w->failed)
        return 0;
    if (w->depth == 0 || w->kind[w->depth - 1] != '{' || w->key) {
        w->failed = 1;
        return 0;
    }
    *comma = w->nonempty[w->depth - 1];
    w->nonempty[w->depth - 1] = 1;
    return 1;
}

void
kapd_json_w_key_lit(struct kap_json_writer *w, const char *lit, size_t n)
{
    int comma;

    if (!w_member_start(w, &comma))
        return;
    if (comma)
        w_raw(w, ",", 1);
    w_raw(w, lit, n);
    w->key = 1;
}

void
kapd_json_w_member_strn(struct kap_json_writer *w, const char *lit,
                        size_t klen, const char *s, size_t n)
{
    struct kap_buf *b = w->out;
    int             comma;
    char           *p;

    if (s == NULL || w->failed || b->data == NULL || b->cap <= b->len
        || klen + n + 4 > b->cap - b->len
        || w_plain_run((const unsigned char *)s, n) != n) {
        kapd_json_w_key_lit(w, lit, klen);  /* the general way */
        kap_json_w_strn(w, s, n);
        return;
    }
    if (!w_member_start(w, &comma))
        return;
    /* ,"name":"value" and the terminator: klen + n + 4 bytes at most */
    p = b->data + b->len;
    if (comma)
        *p++ = ',';
    memcpy(p, lit, klen);
    p += klen;
    *p++ = '"';
    memcpy(p, s, n);
    p += n;
    *p++ = '"';
    *p = '\0';
    b->len = (size_t)(p - b->data);
}

void
kap_json_w_strn(struct kap_json_writer *w, const char *s, size_t n)
{
    if (s == NULL && n > 0) {
        w->failed = 1;
        return;
    }
    if (!w_value_start(w))
        return;
    w_string(w, s == NULL ? "" : s, n);
    w_value_end(w);
}

void
kap_json_w_str(struct kap_json_writer *w, const char *s)
{
    if (s == NULL) {
        kap_json_w_null(w);
        return;
    }
    kap_json_w_strn(w, s, strlen(s));
}

void
kap_json_w_int(struct kap_json_writer *w, long long v)
{
    if (!w_value_start(w))
        return;
    w_ll(w, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v,
         v < 0);
    w_value_end(w);
}

void
kap_json_w_uint(struct kap_json_writer *w, unsigned long long v)
{
    if (!w_value_start(w))
        return;
    w_ll(w, v, 0);
    w_value_end(w);
}

void
kap_json_w_double(struct kap_json_writer *w, double v)
{
    if (!w_value_start(w))
        return;
    w_double_text(w, v);
    w_value_end(w);
}

void
kap_json_w_bool(struct kap_json_writer *w, int v)
{
    if (!w_value_start(w))
        return;
    w_raw(w, v ? "true" : "false", v ? 4 : 5);
    w_value_end(w);
}

void
kap_json_w_null(struct kap_json_writer *w)
{
    if (!w_value_start(w))
        return;
    w_raw(w, "null", 4);
    w_value_end(w);
}

/* A tree, recursively (its depth is bounded by the parse limits). */
static void
w_node(struct kap_json_writer *w, const cJSON *c)
{
    const cJSON *k;

    if (w->failed)
        return;
    switch (c->type & 0xff) {
    case cJSON_NULL:
        w_raw(w, "null", 4);
        break;
    case cJSON_False:
        w_raw(w, "false", 5);
        break;
    case cJSON_True:
        w_raw(w, "true", 4);
        break;
    case cJSON_Number:
        if (c->valuestring != NULL)
            w_raw(w, c->valuestring, strlen(c->valuestring));
        else
            w_double_text(w, c->valuedouble);
        break;
    case cJSON_String:
        if (c->valuestring == NULL) {
            w->failed = 1;
            break;
        }
        w_string(w, c->valuestring, strlen(c->valuestring));
        break;
    case cJSON_Array:
        w_raw(w, "[", 1);
        for (k = c->child; k != NULL && !w->failed; k = k->next) {
            if (k != c->child)
                w_raw(w, ",", 1);
            w_node(w, k);
        }
        w_raw(w, "]", 1);
        break;
    case cJSON_Object:
        w_raw(w, "{", 1);
        for (k = c->child; k != NULL && !w->failed; k = k->next) {
            if (k->string == NULL) {
                w->failed = 1;
                break;
            }
            if (k != c->child)
                w_raw(w, ",", 1);
            w_string(w, k->string, strlen(k->string));
            w_raw(w, ":", 1);
            w_node(w, k);
        }
        w_raw(w, "}", 1);
        break;
    default:                         /* cJSON_Raw, cJSON_Invalid */
        w->failed = 1;
        break;
    }
}

void
kap_json_w_tree(struct kap_json_writer *w, const struct kap_json *j)
{
    if (j == NULL) {
        w->failed = 1;
        return;
    }
    if (!w_value_start(w))
        return;
    w_node(w, KAPD_JSON_C(j));
    w_value_end(w);
}

int
kap_json_w_finish(struct kap_json_writer *w)
{
    if (w->failed || !w->done || w->depth != 0 || w->key)
        return KAP_ERROR;
    return KAP_OK;
}

int
kap_json_print(const struct kap_json *j, struct kap_buf *out)
{
    struct kap_json_writer w;

    kap_json_w_init(&w, out);
    kap_json_w_tree(&w, j);
    return kap_json_w_finish(&w);
}
