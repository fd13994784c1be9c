/*
 * kapd_json_writer.c -- writing JSON: the streaming writer
 * (kap_json_w_*) and the printer of checked trees (kap_json_print),
 * kap_json.h.
 *
 * Output is compact (no whitespace).  Strings are escaped byte by byte;
 * bytes that are not valid UTF-8 become \u00XX so the output is valid
 * JSON whatever the input.  A checked tree's strings are valid UTF-8, so
 * printing one changes no string; its numbers are written as their
 * checked text (strict mode) or from their double (loose mode).
 */
#include "kapd.h"
#include "kapd_json_int.h"

#include <float.h>
#include <math.h>
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
static int
w_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

static void
w_string(struct kap_json_writer *w, const char *str, size_t n)
{
    static const char    hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t               i = 0, run, k;
    char                 esc[6];

    w_raw(w, "\"", 1);
    while (i < n && !w->failed) {
        for (run = i; run < n && w_plain(s[run]); run++)
            ;
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
        n = snprintf(num, sizeof(num), "%lld", (long long)v);
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
    w_string(w, key, strlen(key));
    w_raw(w, ":", 1);
    w->key = 1;
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
    char num[24];
    int  n;

    if (!w_value_start(w))
        return;
    n = snprintf(num, sizeof(num), "%lld", v);
    w_raw(w, num, (size_t)n);
    w_value_end(w);
}

void
kap_json_w_uint(struct kap_json_writer *w, unsigned long long v)
{
    char num[24];
    int  n;

    if (!w_value_start(w))
        return;
    n = snprintf(num, sizeof(num), "%llu", v);
    w_raw(w, num, (size_t)n);
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
