/*
 * kap_mcp_pin.c -- what a tool pin remembers (kap_mcp.h): a tool's
 * definition in one canonical JSON text and its SHA-256.
 *
 * The canonical text is the tool object without "_meta" (server
 * bookkeeping), members of every object sorted by name (bytes), no
 * white space, strings and numbers as kap_json prints them.  A server
 * that only reorders members or re-spaces its JSON keeps its pins; one
 * that changes a description, a schema, a title or an annotation -- all
 * of which reach the model -- does not.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kap_mcp.h"

static int
by_key(const void *a, const void *b)
{
    const char *ka = kap_json_key(*(const struct kap_json *const *) a);
    const char *kb = kap_json_key(*(const struct kap_json *const *) b);

    return strcmp(ka, kb);
}

/* Write j with sorted members; skip: a top-level member left out. */
static int
canon(struct kap_json_writer *w, const struct kap_json *j, const char *skip,
      unsigned depth)
{
    const struct kap_json **m, *c;
    size_t n, i;

    if (depth > KAP_JSON_MAX_DEPTH_LIMIT)
        return KAP_ERROR;
    if (kap_json_type(j) == KAP_JSON_ARRAY) {
        kap_json_w_arr_begin(w);
        for (c = kap_json_child(j); c; c = kap_json_next(c))
            if (canon(w, c, NULL, depth + 1) != KAP_OK)
                return KAP_ERROR;
        kap_json_w_arr_end(w);
        return KAP_OK;
    }
    if (kap_json_type(j) != KAP_JSON_OBJECT) {
        kap_json_w_tree(w, j);
        return KAP_OK;
    }
    n = kap_json_size(j);
    m = n ? malloc(n * sizeof(*m)) : NULL;
    if (n && m == NULL)
        return KAP_ERROR;
    for (i = 0, c = kap_json_child(j); c; c = kap_json_next(c))
        m[i++] = c;
    if (n > 1)
        qsort(m, n, sizeof(*m), by_key);
    kap_json_w_obj_begin(w);
    for (i = 0; i < n; i++) {
        if (skip != NULL && strcmp(kap_json_key(m[i]), skip) == 0)
            continue;
        kap_json_w_key(w, kap_json_key(m[i]));
        if (canon(w, m[i], NULL, depth + 1) != KAP_OK) {
            free(m);
            return KAP_ERROR;
        }
    }
    kap_json_w_obj_end(w);
    free(m);
    return KAP_OK;
}

int
kap_mcp_pin_text(const struct kap_json *tool, struct kap_buf *out)
{
    struct kap_json_writer w;
    size_t start = out->len;

    kap_json_w_init(&w, out);
    if (canon(&w, tool, "_meta", 0) != KAP_OK || kap_json_w_finish(&w) != KAP_OK) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return KAP_ERROR;
    }
    return KAP_OK;
}

int
kap_mcp_pin_digest(const struct kap_json *tool, char hex[KAP_MCP_PIN_HEX + 1])
{
    static const char d[] = "0123456789abcdef";
    struct kap_buf b = { 0 };
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;
    int rc = KAP_ERROR;

    hex[0] = '\0';
    if (kap_mcp_pin_text(tool, &b) == KAP_OK
        && EVP_Digest(b.data, b.len, md, &len, EVP_sha256(), NULL) == 1
        && len * 2 == KAP_MCP_PIN_HEX) {
        for (i = 0; i < len; i++) {
            hex[2 * i] = d[md[i] >> 4];
            hex[2 * i + 1] = d[md[i] & 15];
        }
        hex[2 * len] = '\0';
        rc = KAP_OK;
    }
    kap_buf_free(&b);
    return rc;
}
