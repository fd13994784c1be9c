/*
 * fuzz_connect_first.c -- libFuzzer target for the ClientHello inspector and the
 * client-first-bytes classifier (kap_http_connect_first.h).
 *
 * Checks, besides memory errors: every strict prefix of an input that
 * gives a final answer must answer "need more" or the same final class
 * (the answer must not depend on TCP segmentation, except that a prefix
 * may already be recognisably bad), and an SNI result is a valid name.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_http_connect_first.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hc_hello h, h2;
    struct hc_first f;

    int rc = kap_http_connect_hello_parse(data, size, &h);
    if (rc == HC_HELLO_SNI &&
        (kap_host_name_norm(h.sni, h.sni_len, NULL, 0) < 0 ||
         strlen(h.sni) != h.sni_len))
        abort();
    if (rc == HC_HELLO_SNI || rc == HC_HELLO_NO_SNI || rc == HC_HELLO_ECH ||
        rc == HC_HELLO_MULTI_SNI) {
        /* a complete hello: its records end at records_len, and the
           shorter input just before that must still need more */
        if (h.records_len == 0 || h.records_len > size)
            abort();
        if (kap_http_connect_hello_parse(data, h.records_len - 1, &h2)
            != HC_HELLO_NEED_MORE)
            abort();
    }
    (void)kap_http_connect_hello_result(rc);

    int k = kap_http_connect_first_classify(data, size, &f);
    if (k == HC_FIRST_HTTP && strlen(f.host) == 0)
        abort();
    return 0;
}
