/*
 * fuzz_json.c -- libFuzzer target for kap_json (kap_json.h).
 *
 * Besides memory errors it aborts when:
 *   - the scan and cJSON disagree ("parser disagreement");
 *   - an accepted document does not print, or its printed form is not
 *     accepted again with the same printed form (what a proxy forwards
 *     is stable and itself strict);
 *   - an accepted document is refused by cJSON in its strictest use, or
 *     cJSON reads it as a different tree (cJSON's own printing of both
 *     trees differs);
 *   - a refusal carries no message;
 *   - a string written by the writer does not parse back to the same
 *     bytes (valid UTF-8 without NUL) or at all (any bytes but NUL).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include "kapd_json_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_accepted(const char *buf, size_t size, struct kap_json *j,
               const struct kap_json_limits *lim)
{
    struct kap_buf   b1 = { 0 }, b2 = { 0 };
    struct kap_err   err = { 0 };
    struct kap_json *j2;
    char            *z, *p1, *p2;
    cJSON           *c;

    if (kap_json_print(j, &b1) != KAP_OK || b1.data == NULL)
        abort();
    j2 = kap_json_parse(b1.data, b1.len, lim, &err);
    if (j2 == NULL || kap_json_print(j2, &b2) != KAP_OK
        || b2.len != b1.len || memcmp(b1.data, b2.data, b1.len) != 0)
        abort();
    kap_json_free(j2);

    /* cJSON, strict use (NUL-terminated, nothing after the value) */
    z = malloc(size + 1);
    if (z == NULL)
        abort();
    memcpy(z, buf, size);
    z[size] = '\0';
    c = cJSON_ParseWithOpts(z, NULL, 1);
    if (c == NULL)
        abort();
    p1 = cJSON_PrintUnformatted(c);
    p2 = cJSON_PrintUnformatted((const cJSON *)(const void *)j);
    if (p1 == NULL || p2 == NULL || strcmp(p1, p2) != 0)
        abort();
    cJSON_free(p1);
    cJSON_free(p2);
    cJSON_Delete(c);
    free(z);
    kap_buf_free(&b1);
    kap_buf_free(&b2);
}

/* kap_json's own disagreement messages: matched from their start, since
 * other messages quote the input ("duplicate key \"...\"") and the input
 * may hold the word */
static int
is_disagreement(const char *msg)
{
    static const char *const m[] = {
        "parser disagreement", "out of memory (or parser disagreement)"
    };
    size_t i;

    for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (strncmp(msg, m[i], strlen(m[i])) == 0)
            return 1;
    return 0;
}

static void
parse_with(const char *buf, size_t size, const struct kap_json_limits *lim)
{
    struct kap_err   err = { 0 };
    struct kap_json *j = kap_json_parse(buf, size, lim, &err);

    if (j == NULL) {
        if (!err.set || is_disagreement(err.msg))
            abort();
        return;
    }
    check_accepted(buf, size, j, lim);
    kap_json_free(j);
}

/* 1: buf is valid UTF-8 without NUL, quotes, backslashes or control
 * bytes (the strict parser reads it as a plain string); 0: it is not;
 * -1: it holds bytes that would need escaping, so it was not tried. */
static int
clean_utf8(const char *buf, size_t size)
{
    struct kap_buf   b = { 0 };
    struct kap_json *j;
    int              clean;

    /* a string with exactly these bytes: clean if it parses back equal */
    if (memchr(buf, 0, size) != NULL)
        return 0;
    if (kap_buf_append(&b, "\"", 1) != KAP_OK
        || kap_buf_append(&b, buf, size) != KAP_OK
        || kap_buf_append(&b, "\"", 1) != KAP_OK)
        abort();
    /* quotes, backslashes and control bytes make it no plain string */
    clean = 1;
    for (size_t i = 0; i < size; i++)
        if (buf[i] == '"' || buf[i] == '\\' || (unsigned char)buf[i] < 0x20)
            clean = -1;
    if (clean == 1) {
        j = kap_json_parse(b.data, b.len, NULL, NULL);
        clean = j != NULL;
        kap_json_free(j);
    }
    kap_buf_free(&b);
    return clean;
}

static void
writer(const char *buf, size_t size)
{
    struct kap_json_writer w;
    struct kap_buf         b = { 0 };
    struct kap_err         err = { 0 };
    struct kap_json       *j;
    const char            *s;
    int                    clean = clean_utf8(buf, size);

    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "k");
    kap_json_w_strn(&w, buf, size);
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK)
        abort();
    j = kap_json_parse(b.data, b.len, NULL, &err);
    if (memchr(buf, 0, size) != NULL) {
        /* \u0000 is refused on purpose */
        if (j != NULL)
            abort();
    } else {
        if (j == NULL)
            abort();
        s = kap_json_get_string(j, "k");
        if (s == NULL)
            abort();
        /* valid UTF-8 comes back byte for byte */
        if (clean == 1 && (strlen(s) != size || memcmp(s, buf, size) != 0))
            abort();
    }
    kap_json_free(j);
    kap_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct kap_json_limits loose = { .flags = KAP_JSON_LOOSE_NUMBERS };
    struct kap_json_limits tight = { .max_depth = 3, .max_members = 4 };

    parse_with(buf, size, NULL);
    parse_with(buf, size, &loose);
    parse_with(buf, size, &tight);
    if (size <= 4096)
        writer(buf, size);
    return 0;
}
