/*
 * kap_conf.h -- helpers for modules' conf_parse.
 *
 * Getters return KAP_OK when the key is present and valid (the value is
 * stored), KAP_DECLINED when absent (out untouched), KAP_ERROR on a wrong
 * type or range (err set with file:line).  Strings are copied into pool.
 */
#ifndef KAP_CONF_H
#define KAP_CONF_H

#include <libconfig.h>
#include <stdint.h>

struct kap_pool;
struct kap_err;
struct kap_gen;

int kap_conf_get_str(const config_setting_t *group, const char *key,
                     struct kap_pool *pool, const char **out,
                     struct kap_err *err);
int kap_conf_get_int(const config_setting_t *group, const char *key,
                     long long min, long long max, long long *out,
                     struct kap_err *err);
int kap_conf_get_bool(const config_setting_t *group, const char *key,
                      int *out, struct kap_err *err);
/* Duration in seconds: an int, a float, or a string "500ms" "10s" "5m". */
int kap_conf_get_secs(const config_setting_t *group, const char *key,
                      double *out, struct kap_err *err);
/* Size in bytes: an int or a string "64k" "10M". */
int kap_conf_get_size(const config_setting_t *group, const char *key,
                      long long *out, struct kap_err *err);
/*
 * A list or array of strings: *out is a NULL-terminated array in pool,
 * *n its length (n may be NULL).
 */
int kap_conf_get_strlist(const config_setting_t *group, const char *key,
                         struct kap_pool *pool, const char ***out, size_t *n,
                         struct kap_err *err);
/* One of the strings in choices (NULL-terminated): *out = its index. */
int kap_conf_get_enum(const config_setting_t *group, const char *key,
                      const char *const *choices, int *out,
                      struct kap_err *err);
/*
 * Every member of group must be named in known (NULL-terminated); the
 * first unknown one is an error "unknown directive \"x\" in group \"g\"".
 */
int kap_conf_check_keys(const config_setting_t *group,
                        const char *const *known, struct kap_err *err);

/*
 * Paths in the config are relative to the prefix (-p) when not absolute.
 * Returns a copy in pool, or NULL on out of memory.
 */
const char *kap_conf_path(struct kap_gen *gen, const char *path);

#endif /* KAP_CONF_H */
