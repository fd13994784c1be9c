/*
 * fuzz_config.c -- libFuzzer target: the bytes become a configuration
 * file and go through kapd_gen_build() (our @include expansion and line
 * mapping, libconfig, the kapd group, every built-in module's
 * conf_parse/conf_check, chain building).  A generation that builds is
 * released again; nothing is activated.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kapd.h"
#include "kapd_cycle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_err err;
    static struct kapd_build b;
    struct kap_gen *gen;
    FILE *f;

    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/kapd-fuzz-config-XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        snprintf(path, sizeof(path), "%s/kapd.conf", dir);
    }
    f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);

    memset(&err, 0, sizeof(err));
    gen = kapd_gen_build(path, dir, &b, &err);
    kapd_build_free(&b);
    if (gen != NULL)
        kap_gen_unref(gen);
    else if (!err.set)
        abort();        /* a failure always says why */
    return 0;
}
