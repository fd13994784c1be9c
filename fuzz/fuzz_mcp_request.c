/*
 * fuzz_mcp_request.c -- libFuzzer target for the mcp module's request
 * check (modules/mcp/kap_mcp_request.c and what it uses).
 *
 * Input: a request body, checked under a fixed policy (allow get_* and
 * ok_*, deny get_secret*), with application/json.  Besides memory
 * errors it aborts when:
 *   - the status is not one of 0, 200, 400, 415, or bytes are both
 *     forwarded and answered;
 *   - a local answer is not strict JSON;
 *   - a tools/call the policy allows is marked denied, or one it denies
 *     goes through;
 *   - what is forwarded does not pass the check again unchanged with no
 *     denied call in it (kapd forwards only what it checked, printed
 *     once: printing the checked tree is a fixed point).
 * The same bytes also go through the Content-Type reader, the router (a
 * name it returns is a valid name, from a target without a query) and,
 * as "name:value" lines, the header pick (what it picks is printable).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kap_mcp.h"
#include "fuzz_mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kap_mcp_tools *tools;

static void
setup(void)
{
    static const char *const allow[] = { "get_*", "ok_*", NULL };
    static const char *const deny[] = { "get_secret*", NULL };

    if (tools == NULL)
        tools = fuzz_mcp_policy(allow, deny);
}

/* Lines "name:value" of s as request headers: what is picked is unique
 * per name and visible ASCII. */
static void
pick_headers(const char *s, size_t size)
{
    struct kap_http_header h[16];
    struct kap_mcp_fwd_headers fwd;
    const struct kap_http_header *const *slot;
    const char *p = s, *e = s + size, *nl, *colon, *why;
    size_t n = 0, i, k;

    while (p < e && n < 16) {
        nl = memchr(p, '\n', (size_t) (e - p));
        if (nl == NULL)
            nl = e;
        colon = memchr(p, ':', (size_t) (nl - p));
        if (colon != NULL) {
            h[n].name.data = p;
            h[n].name.len = (size_t) (colon - p);
            h[n].value.data = colon + 1;
            h[n].value.len = (size_t) (nl - colon - 1);
            n++;
        }
        p = nl + 1;
    }
    if (kap_mcp_headers_pick(h, n, &fwd, &why) != KAP_OK) {
        if (why == NULL)
            abort();
        return;
    }
    slot = &fwd.session;
    for (k = 0; k < 5; k++) {
        if (slot[k] == NULL)
            continue;
        for (i = 0; i < slot[k]->value.len; i++)
            if ((unsigned char) slot[k]->value.data[i] < 0x20
                || (unsigned char) slot[k]->value.data[i] > 0x7e)
                abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_mcp_req r, r2;
    struct kap_mcp_ctype ct;
    struct kap_mcp_verdict v;
    struct kap_json *j;
    char name[KAP_MCP_NAME_MAX + 1];
    const char *why;
    char *s;
    size_t i;

    setup();
    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    (void) kap_mcp_ctype_parse(s, &ct);
    (void) kap_mcp_ctype_request(s);
    (void) kap_mcp_reply_kind(200, s);
    if (kap_mcp_route(s, size % 2 ? "/mcp" : NULL, name, sizeof(name), &why)
        == KAP_OK) {
        if (!kap_mcp_name_ok(name, strlen(name)) || strpbrk(s, "?#") != NULL)
            abort();
    } else if (why == NULL) {
        abort();
    }
    pick_headers(s, size);
    free(s);

    if (kap_mcp_req_check(&r, tools, "application/json", (const char *) data,
                          size, NULL) != KAP_OK) {
        kap_mcp_req_free(&r);
        return 0;
    }
    if (r.status != 0 && r.status != 200 && r.status != 400 && r.status != 415)
        abort();
    if ((r.status == 0) != (r.forward.len > 0) || (r.status != 0) != (r.answer.len > 0))
        abort();
    if (r.status != 0) {
        j = kap_json_parse(r.answer.data, r.answer.len, NULL, NULL);
        if (j == NULL)
            abort();
        kap_json_free(j);
    }
    for (i = 0; i < r.nmsgs; i++) {
        const struct kap_mcp_msg *m = &r.msgs[i];

        if (m->tool == NULL)
            continue;
        kap_mcp_tools_match(tools, m->tool, &v);
        /* a denied call is refused; an allowed one is never "denied" */
        if ((m->denied && v.allow) || (!v.allow && m->code == 0)
            || (m->denied && m->code != KAP_MCP_INVALID_PARAMS))
            abort();
    }
    if (r.status == 0) {
        if (kap_mcp_req_check(&r2, tools, "application/json; charset=UTF-8",
                              r.forward.data, r.forward.len, NULL) != KAP_OK) {
            kap_mcp_req_free(&r2);
            kap_mcp_req_free(&r);
            return 0;
        }
        if (r2.status != 0 || r2.ndenied != 0 || r2.forward.len != r.forward.len
            || memcmp(r2.forward.data, r.forward.data, r.forward.len) != 0
            || r2.nrequests != r.nrequests || r2.lists != r.lists)
            abort();
        kap_mcp_req_free(&r2);
    }
    kap_mcp_req_free(&r);
    return 0;
}
