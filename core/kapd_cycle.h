/*
 * kapd_cycle.h -- core-internal additions for the lifecycle:
 * everything main() and the unit tests need from kapd_cycle.c,
 * kapd_module.c and kapd_builtin.c beyond core/kapd.h.
 * kapd_ prefix: never exported to modules.
 */
#ifndef KAPD_CYCLE_H
#define KAPD_CYCLE_H

#include "kapd.h"

/* kapd_builtin.c --------------------------------------------------------- */
/*
 * Tests only: when non-NULL, replaces kapd_builtin_modules (NULL-terminated
 * array).  Set before the first kapd_gen_build(); borrowed for the process
 * lifetime.
 */
extern const struct kap_module *const *kapd_builtin_override;
/* The built-in list in effect (override or kapd_builtin_modules). */
const struct kap_module *const *kapd_builtin_list(void);
/* Default sidecar modules loaded when the config has no kapd.load. */
extern const char *const kapd_default_modules[];

/* kapd_cycle.c ----------------------------------------------------------- */
/*
 * Start (or re-arm with the current generation's kapd.reload_check) the
 * config content watch.  No-op when reload_check is 0.
 */
void kapd_watch_start(void);
void kapd_watch_stop(void);
/*
 * Process exit: stop the content watch, then kapd_gen_exit() (the current
 * generation retires, started modules shut down).
 */
void kapd_cycle_exit(void);

/* kapd_module.c ---------------------------------------------------------- */
/*
 * Like kapd_module_get(), with *notfound set to 1 (and err set) when no
 * file kap_<name>.so exists in any directory of dirs (other failures set 0).
 * dirs: NULL-terminated list of directories, NULL = KAPD_MODULEDIR.
 */
struct kapd_modref *kapd_module_find(const char *name, const char **dirs,
                                     int *notfound, struct kap_err *err);
/* Non-zero when name is a built-in module or a known first-party module. */
int kapd_module_known(const char *name, const char **dirs);

#endif /* KAPD_CYCLE_H */
