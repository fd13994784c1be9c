/*
 * fuzz_mcp_oauth.c -- libFuzzer target for what kap-mcp reads from an MCP
 * server and its OAuth authorization server (modules/mcp/kap_mcp_oauth.c,
 * kap_mcp_token.c): the token answer, RFC 9728 and RFC 8414 metadata, a
 * client registration answer, a WWW-Authenticate challenge, the callback's
 * query string and an MCP reply (JSON or SSE).
 *
 * Input: the first byte picks the parser (modulo 8), the rest is its
 * input.  Every accepted result is checked for what the callers rely on:
 * a token of visible ASCII, https:// or loopback http:// endpoints, the
 * issuer asked for, decoded values without control bytes and within the
 * output buffer, a reply message with the id asked for.
 */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_json.h>
#include <kapd/kap_module.h>

#include "kap_mcp_oauth.h"
#include "kap_mcp_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the core's wipe (kapd_secret.c), without the rest of the secret store */
void
kap_secret_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n-- > 0)
        *v++ = 0;
}

static void
check_visible(const char *s)
{
    for (; *s != '\0'; s++)
        assert((unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f);
}

static void
check_decoded(const char *s, size_t cap)
{
    assert(strlen(s) < cap);
    for (; *s != '\0'; s++)
        assert((unsigned char)*s >= 0x20 && (unsigned char)*s != 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in;
    char *s, out[64], *id, *sec;
    struct kap_mcp_token t;
    struct kap_mcp_prm prm;
    struct kap_mcp_asm as;
    struct kap_json *j;
    int64_t v;

    if (size < 1)
        return 0;
    s = malloc(size);                   /* NUL-terminated copy of the rest */
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    in = s;
    switch (data[0] % 8) {
    case 0:
        if (kap_mcp_token_parse(in, size - 1, &t, NULL) == KAP_OK) {
            check_visible(t.access_token);
            if (t.refresh_token != NULL)
                check_visible(t.refresh_token);
            assert(t.expires_in >= -1);
            kap_mcp_token_clear(&t);
        }
        break;
    case 1:
        if (kap_mcp_prm_parse(in, size - 1, &prm, NULL) == KAP_OK) {
            assert(kap_mcp_url_safe(prm.resource));
            assert(kap_mcp_url_safe(prm.auth_server));
            kap_mcp_prm_clear(&prm);
        }
        break;
    case 2:
        if (kap_mcp_asm_parse(in, size - 1, "https://as.test", &as, NULL)
            == KAP_OK) {
            assert(strcmp(as.issuer, "https://as.test") == 0);
            assert(kap_mcp_url_safe(as.authorization_endpoint));
            assert(kap_mcp_url_safe(as.token_endpoint));
            assert(as.registration_endpoint == NULL
                   || kap_mcp_url_safe(as.registration_endpoint));
            kap_mcp_asm_clear(&as);
        }
        break;
    case 3:
        if (kap_mcp_dcr_parse(in, size - 1, &id, &sec, NULL) == KAP_OK) {
            assert(id != NULL && id[0] != '\0');
            free(id);
            free(sec);
        }
        break;
    case 4:
        if (kap_mcp_www_auth_param(in, "resource_metadata", out, sizeof(out))
            == KAP_OK)
            assert(strlen(out) > 0 && strlen(out) < sizeof(out));
        break;
    case 5:
        if (kap_mcp_query_get(in, "state", out, sizeof(out)) == KAP_OK)
            check_decoded(out, sizeof(out));
        break;
    case 6:
    case 7:
        if (kap_mcp_rpc_result(data[0] % 8 == 6 ? "application/json"
                               : "text/event-stream", in, size - 1, 7, &j,
                               NULL) == KAP_OK) {
            assert(kap_json_int(kap_json_get(j, "id"), &v) == KAP_OK
                   && v == 7);
            kap_json_free(j);
        }
        break;
    }
    free(s);
    return 0;
}
