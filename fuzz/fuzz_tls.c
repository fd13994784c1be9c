/*
 * fuzz_tls.c -- libFuzzer target for the ClientHello inspector and the
 * client-first-bytes classifier (kap_tls.h).
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

#include <kapd/kap_tls.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_tls_hello h, h2;
    struct kap_first f;

    int rc = kap_tls_parse_hello(data, size, &h);
    if (rc == KAP_TLS_SNI &&
        (!kap_tls_valid_hostname(h.sni, h.sni_len) ||
         strlen(h.sni) != h.sni_len))
        abort();
    if (rc == KAP_TLS_SNI || rc == KAP_TLS_NO_SNI || rc == KAP_TLS_ECH ||
        rc == KAP_TLS_MULTI_SNI) {
        /* a complete hello: its records end at records_len, and the
           shorter input just before that must still need more */
        if (h.records_len == 0 || h.records_len > size)
            abort();
        if (kap_tls_parse_hello(data, h.records_len - 1, &h2)
            != KAP_TLS_NEED_MORE)
            abort();
    }
    (void)kap_tls_result_name(rc);

    int k = kap_first_classify(data, size, &f);
    if (k == KAP_FIRST_HTTP && strlen(f.host) == 0)
        abort();
    return 0;
}
