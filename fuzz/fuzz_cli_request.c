/*
 * fuzz_cli_request.c -- libFuzzer target for the cli module's request
 * decoder (modules/cli/kap_cli_req.c): the body of POST /<tool> from the
 * capsule.
 *
 * Besides memory errors it aborts when a refusal carries no message,
 * or when an accepted request breaks what the decoder promises: a
 * NULL-terminated args array of nargs strings, each within the word
 * limit, at most KAP_CLI_MAX_ARGS of them.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_core.h>
#include "kap_cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_pool   *pool = kap_pool_create();
    struct kap_cli_req r;
    struct kap_err     err;
    size_t             i;

    if (pool == NULL)
        return 0;
    memset(&err, 0, sizeof(err));
    if (kap_cli_req_decode(pool, (const char *)data, size, &r, &err)
        != KAP_OK) {
        if (err.msg[0] == '\0')
            abort();
    } else {
        if (r.args == NULL || r.nargs > KAP_CLI_MAX_ARGS)
            abort();
        for (i = 0; i < r.nargs; i++)
            if (r.args[i] == NULL || strlen(r.args[i]) > KAP_CLI_MAX_ARG)
                abort();
        if (r.args[r.nargs] != NULL)
            abort();
    }
    kap_pool_destroy(pool);
    return 0;
}
