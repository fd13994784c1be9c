/*
 * fuzz_mcp_sse.c -- libFuzzer target for the mcp module's event-stream
 * filter (modules/mcp/kap_mcp_sse.c, kap_mcp_sse_frame.c and the reply
 * filter under them): an upstream text/event-stream.
 *
 * Input: the first byte chooses how the rest is cut into reads (1 to
 * 256 bytes each); the rest is the stream.  Policy: allow get_*; events
 * at most 4096 bytes.  Besides memory errors it aborts when:
 *   - fed whole and fed in pieces, the output or the verdict differ
 *     (an event split across reads at any byte reads the same);
 *   - filtering the output again changes it or removes anything (the
 *     canonical framing is a fixed point and nothing denied got out).
 * The second pass allows events up to RECHECK_EVENT bytes: a re-serialised
 * event may be longer than the one read (the JSON writer spells DEL,
 * U+2028/U+2029 and stray bytes as 6-byte escapes; the canonical framing
 * adds a space after each colon), so an event near the limit can leave
 * kapd bigger than MAX_EVENT.  The bound is on what kapd holds while
 * reading, not on what it writes.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kap_mcp.h"
#include "fuzz_mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVENT 4096
#define RECHECK_EVENT (7 * MAX_EVENT)

static struct kap_mcp_filter f;

static void
setup(void)
{
    static const char *const allow[] = { "get_*", NULL };

    if (f.tools == NULL)
        f.tools = fuzz_mcp_policy(allow, NULL);
}

/* Filter p in reads of `step` bytes (0: whole), events of at most max
 * bytes; KAP_OK or KAP_ERROR. */
static int
run(const char *p, size_t n, size_t step, size_t max, struct kap_buf *out,
    struct kap_mcp_reply_stats *st)
{
    struct kap_mcp_sse_filter sf;
    struct kap_err err;
    size_t i, k;
    int rc = KAP_OK;

    memset(&err, 0, sizeof(err));
    kap_mcp_sse_filter_init(&sf, &f, max);
    if (step == 0)
        step = n ? n : 1;
    for (i = 0; i < n && rc == KAP_OK; i += k) {
        k = n - i < step ? n - i : step;
        rc = kap_mcp_sse_filter_feed(&sf, p + i, k, out, &err);
    }
    if (rc != KAP_OK && err.msg[0] == '\0')
        abort();
    *st = sf.st;
    kap_mcp_sse_filter_free(&sf);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_buf whole = { 0 }, split = { 0 }, again = { 0 };
    struct kap_mcp_reply_stats st, st2;
    const char *p = (const char *) data + 1;
    size_t n, step;
    int rc1, rc2;

    if (size < 1)
        return 0;
    setup();
    step = (size_t) data[0] + 1;
    n = size - 1;
    rc1 = run(p, n, 0, MAX_EVENT, &whole, &st);
    rc2 = run(p, n, step, MAX_EVENT, &split, &st2);
    if (rc1 != rc2 || whole.len != split.len
        || (whole.len && memcmp(whole.data, split.data, whole.len) != 0))
        abort();
    if (rc1 == KAP_OK && whole.len > 0) {
        if (run(whole.data, whole.len, 0, RECHECK_EVENT, &again, &st2)
            != KAP_OK)
            abort();
        if (st2.removed != 0 || st2.dropped != 0 || again.len != whole.len
            || memcmp(again.data, whole.data, whole.len) != 0)
            abort();
    }
    kap_buf_free(&whole);
    kap_buf_free(&split);
    kap_buf_free(&again);
    return 0;
}
