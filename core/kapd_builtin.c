/*
 * kapd_builtin.c -- the registry of modules compiled into kapd.
 *
 * Built-in modules are always loaded, before the modules kapd.load names,
 * in the order of this list.  They go through the same ABI checks as a
 * shared object (minus dlopen).  Unit tests may replace the list with
 * kapd_builtin_override.
 */
#include "config.h"

#include <stddef.h>

#include "kapd.h"
#include "kapd_cycle.h"

extern const struct kap_module kapd_resolver_module;     /* kapd_resolver.c */

const struct kap_module *const kapd_builtin_modules[] = {
    &kapd_resolver_module,
    &kapd_network_module,
    &kapd_audit_log_module,
    NULL
};

const struct kap_module *const *kapd_builtin_override;

/* loaded (when installed) if the config has no kapd.load */
const char *const kapd_default_modules[] = {
    "http_connect", "dns", "mcp", "cli", NULL
};

const struct kap_module *const *
kapd_builtin_list(void)
{
    return kapd_builtin_override ? kapd_builtin_override
                                 : kapd_builtin_modules;
}
