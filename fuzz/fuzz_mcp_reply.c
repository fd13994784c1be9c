/*
 * fuzz_mcp_reply.c -- libFuzzer target for the mcp module's reply filter
 * (modules/mcp/kap_mcp_reply.c): one JSON reply body from a server.
 *
 * Policy: allow get_*, deny get_secret*.  Besides memory errors it aborts
 * when a rewritten reply is not strict JSON, or filtering it again
 * removes anything or prints it differently (the filter's output is a
 * fixed point: nothing it lets through would be filtered), or a passed
 * reply lists a tool at all (a passed reply lists none), or a refusal
 * comes without a reason, or a pin's canonical text of the input read
 * back and made canonical again differs.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kap_mcp.h"
#include "fuzz_mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kap_mcp_filter f;

static void
setup(void)
{
    static const char *const allow[] = { "get_*", NULL };
    static const char *const deny[] = { "get_secret*", NULL };

    if (f.tools == NULL)
        f.tools = fuzz_mcp_policy(allow, deny);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_mcp_reply_stats st, st2;
    struct kap_buf out = { 0 }, out2 = { 0 };
    struct kap_json_limits lim = { .flags = KAP_JSON_LOOSE_NUMBERS };
    struct kap_json *j, *j2;
    struct kap_err err;
    int rc, rc2;

    setup();
    memset(&st, 0, sizeof(st));
    memset(&st2, 0, sizeof(st2));
    memset(&err, 0, sizeof(err));
    rc = kap_mcp_reply_json(&f, (const char *) data, size, NULL, &out, &st, &err);
    if (rc == KAP_MCP_REFUSED && err.msg[0] == '\0')
        abort();
    if (rc == KAP_MCP_PASS && (st.lists != 0 || out.len != 0))
        abort();
    if (rc == KAP_MCP_REWRITTEN) {
        rc2 = kap_mcp_reply_json(&f, out.data, out.len, NULL, &out2, &st2, &err);
        if (rc2 == KAP_MCP_REFUSED || rc2 == KAP_ERROR)
            abort();
        if (st2.removed != 0 || st2.dropped != 0)
            abort();
        if (rc2 == KAP_MCP_REWRITTEN
            && (out2.len != out.len || memcmp(out2.data, out.data, out.len) != 0))
            abort();
    }
    /* a pin's canonical text is a fixed point too */
    kap_buf_reset(&out);
    kap_buf_reset(&out2);
    j = kap_json_parse((const char *) data, size, &lim, NULL);
    if (j != NULL && kap_mcp_pin_text(j, &out) == KAP_OK) {
        j2 = kap_json_parse(out.data, out.len, &lim, NULL);
        if (j2 == NULL || kap_mcp_pin_text(j2, &out2) != KAP_OK
            || out.len != out2.len || memcmp(out.data, out2.data, out.len) != 0)
            abort();
        kap_json_free(j2);
    }
    kap_json_free(j);
    kap_buf_free(&out);
    kap_buf_free(&out2);
    return 0;
}
