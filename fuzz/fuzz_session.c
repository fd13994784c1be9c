/*
 * fuzz_session.c -- libFuzzer target for the Claude Code session parser
 * (modules/remote/kap_remote_session.c) and the Docker routes' exec
 * stream demultiplexer (modules/remote/kap_remote_dkparse.c): the
 * first byte picks one.
 *
 * Besides memory errors it aborts when a timeline is not one valid JSON
 * value (kap_json reads it back), when the counters do not add up, or
 * when the demultiplexed output runs past its limits.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_json.h>

#include "kap_remote.h"
#include "kap_remote_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_timeline(const char *p, size_t n)
{
    struct kr_session_meta m;
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    struct kap_json *j;

    kap_json_w_init(&w, &b);
    if (kr_session_parse(p, n, &w, &m) != KAP_OK
        || kap_json_w_finish(&w) != KAP_OK)
        abort();
    j = kap_json_parse(b.data, b.len, NULL, NULL);
    if (j == NULL || kap_json_size(j) != m.events
        || m.events + m.skipped + m.malformed + m.huge + m.dropped
           != m.lines)
        abort();
    kap_json_free(j);
    kap_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_buf out = { 0 }, err = { 0 };
    const char *why = NULL;
    int cut;

    if (size < 1 || size > 1024 * 1024)
        return 0;
    if (data[0] % 2 == 0) {
        fz_timeline((const char *) data + 1, size - 1);
        return 0;
    }
    if (kr_demux((const char *) data + 1, size - 1, data[0] & 2, &out, 64,
                 &err, 16, &cut, &why) != KAP_OK
        && (why == NULL || why[0] == '\0'))
        abort();
    if (out.len > 64 || err.len > 16)
        abort();
    kap_buf_free(&out);
    kap_buf_free(&err);
    return 0;
}
