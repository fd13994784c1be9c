/*
 * kap_cli_req.c -- the strict decoder of a cli request body.  See
 * kap_cli.h (kap_cli_req_decode) and docs/cli-protocol.md.
 */
#include "kap_cli.h"

#include <string.h>

#include <kapd/kap_json.h>

static int
kap_cli_req_args(struct kap_pool *pool, const struct kap_json *a,
                 struct kap_cli_req *out, struct kap_err *err)
{
    const struct kap_json *w;
    size_t                 n = kap_json_size(a), i = 0;

    if (kap_json_type(a) != KAP_JSON_ARRAY) {
        kap_err_set(err, "\"args\" must be an array of strings");
        return KAP_ERROR;
    }
    if (n > KAP_CLI_MAX_ARGS) {
        kap_err_set(err, "\"args\" has %zu words: at most %d", n,
                    KAP_CLI_MAX_ARGS);
        return KAP_ERROR;
    }
    out->args = kap_palloc(pool, (n + 1) * sizeof(*out->args));
    if (out->args == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (w = kap_json_child(a); w != NULL; w = kap_json_next(w), i++) {
        if (kap_json_type(w) != KAP_JSON_STRING) {
            kap_err_set(err, "\"args\"[%zu] is not a string", i);
            return KAP_ERROR;
        }
        out->args[i] = kap_json_string(w);
        if (strlen(out->args[i]) > KAP_CLI_MAX_ARG) {
            kap_err_set(err, "\"args\"[%zu] is over %d bytes", i,
                        KAP_CLI_MAX_ARG);
            return KAP_ERROR;
        }
    }
    out->args[i] = NULL;
    out->nargs = i;
    return KAP_OK;
}

int
kap_cli_req_decode(struct kap_pool *pool, const char *body, size_t len,
                   struct kap_cli_req *out, struct kap_err *err)
{
    struct kap_json_limits  lim;
    const struct kap_json  *j, *m;
    const char             *key;

    memset(out, 0, sizeof(*out));
    memset(&lim, 0, sizeof(lim));
    lim.max_depth = 2;
    lim.max_members = KAP_CLI_MAX_ARGS;
    j = kap_json_parse_pool(pool, body, len, &lim, err);
    if (j == NULL)
        return KAP_ERROR;
    if (kap_json_type(j) != KAP_JSON_OBJECT) {
        kap_err_set(err, "the request must be a JSON object");
        return KAP_ERROR;
    }
    for (m = kap_json_child(j); m != NULL; m = kap_json_next(m)) {
        key = kap_json_key(m);
        if (strcmp(key, "args") == 0) {
            if (kap_cli_req_args(pool, m, out, err) != KAP_OK)
                return KAP_ERROR;
        } else if (strcmp(key, "cwd") == 0) {
            out->cwd = kap_json_string(m);
            if (out->cwd == NULL) {
                kap_err_set(err, "\"cwd\" must be a string");
                return KAP_ERROR;
            }
        } else {
            kap_err_set(err, "unknown key \"%s\" in the request", key);
            return KAP_ERROR;
        }
    }
    if (out->args == NULL) {
        kap_err_set(err, "the request has no \"args\"");
        return KAP_ERROR;
    }
    return KAP_OK;
}
