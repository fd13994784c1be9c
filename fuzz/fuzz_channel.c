/*
 * fuzz_channel.c -- libFuzzer target for the channel's message parser
 * (modules/channel/kap_channel_wire.c): one line from the other kapd.
 *
 * Besides memory errors it aborts when a refusal carries no message, or
 * when an accepted "ask" or "answer" does not survive being written by
 * the builders and parsed again with the same fields (the two ends read
 * one message one way).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_core.h>
#include "kap_channel_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the one core function the builders use, without the whole chain */
const char *
kap_req_kind_name(uint32_t kind)
{
    static const char *const n[] = { "connect", "http", "dns", "mcp_list",
        "mcp_call", "cli", "test", "addr", "first" };
    for (unsigned i = 0; i < 9; i++)
        if (kind == (1u << i))
            return n[i];
    return "unknown";
}

static int
same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ch_msg m, m2;
    struct kap_err err;
    struct kap_buf b = { 0 };

    memset(&err, 0, sizeof(err));
    if (kap_channel_msg_parse((const char *) data, size, &m, &err) != KAP_OK) {
        if (err.msg[0] == '\0')
            abort();
        kap_channel_msg_free(&m);
        return 0;
    }
    if (m.type == CH_ASK) {
        struct ch_ask_attrs at = { m.server, m.rule, m.suggest };

        if (kap_channel_put_ask(&b, m.id, m.kind, m.subject, (unsigned) m.port,
                       m.detail, m.client, &at) != KAP_OK
            || kap_channel_msg_parse(b.data, b.len - 1, &m2, &err) != KAP_OK)
            abort();
        if (m2.id != m.id || !same(m2.kind, m.kind)
            || !same(m2.subject, m.subject) || m2.port != m.port
            || !same(m2.detail, m.detail) || !same(m2.client, m.client)
            || !same(m2.server, m.server) || !same(m2.rule, m.rule)
            || !same(m2.suggest, m.suggest))
            abort();
        kap_channel_msg_free(&m2);
    } else if (m.type == CH_ANSWER) {
        if (kap_channel_put_answer(&b, m.id, m.allow, m.always, m.reason, m.by)
            != KAP_OK
            || kap_channel_msg_parse(b.data, b.len - 1, &m2, &err) != KAP_OK)
            abort();
        if (m2.id != m.id || m2.allow != m.allow
            || m2.always != (m.allow && m.always)
            || !same(m2.reason, m.reason) || !same(m2.by, m.by))
            abort();
        kap_channel_msg_free(&m2);
    }
    kap_buf_free(&b);
    kap_channel_msg_free(&m);
    return 0;
}
