/*
 * kapd_conf.c -- typed getters for modules' conf_parse (kap_conf.h).
 *
 * Every getter looks up one direct member of a group and returns KAP_OK
 * (stored), KAP_DECLINED (absent, output untouched) or KAP_ERROR (wrong
 * type or range, err set with the setting's file:line).  Messages name
 * the key the way the operator wrote it:
 *   "port" must be an integer between 1 and 65535
 *   unknown directive "alow" in group "network" (did you mean "allow"?)
 * Strings are copied into the caller's pool: libconfig's own strings die
 * with the config_t.  kap_conf_get_strlist() also takes a single string
 * as a list of one (listen = "127.0.0.1:53";).
 */
#include "kapd.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The member `key` of group, or NULL (also when group is NULL). */
static config_setting_t *
conf_member(const config_setting_t *group,
            const char *key)
{
    if (group == NULL || key == NULL || !config_setting_is_group(group))
        return NULL;
    return config_setting_get_member(group, key);
}

static const char *
conf_type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:  return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:  return "an integer";
    case CONFIG_TYPE_FLOAT:  return "a number";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL:   return "a boolean";
    case CONFIG_TYPE_ARRAY:  return "an array";
    case CONFIG_TYPE_LIST:   return "a list";
    default:                 return "a setting";
    }
}

int
kap_conf_get_str(const config_setting_t *group, const char *key,
                 struct kap_pool *pool, const char **out,
                 struct kap_err *err)
{
    config_setting_t *s = conf_member(group, key);
    const char *v;
    char *copy;

    if (s == NULL)
        return KAP_DECLINED;
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        kap_err_at(err, s, "\"%s\" must be a string, not %s", key,
                   conf_type_name(config_setting_type(s)));
        return KAP_ERROR;
    }
    v = config_setting_get_string(s);
    copy = kap_pstrdup(pool, v ? v : "");
    if (copy == NULL) {
        kap_err_at(err, s, "\"%s\": out of memory", key);
        return KAP_ERROR;
    }
    *out = copy;
    return KAP_OK;
}

int
kap_conf_get_int(const config_setting_t *group, const char *key,
                 long long min, long long max, long long *out,
                 struct kap_err *err)
{
    config_setting_t *s = conf_member(group, key);
    long long v;
    int t;

    if (s == NULL)
        return KAP_DECLINED;
    t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        kap_err_at(err, s, "\"%s\" must be an integer between %lld and %lld",
                   key, min, max);
        return KAP_ERROR;
    }
    v = config_setting_get_int64(s);
    if (v < min || v > max) {
        kap_err_at(err, s, "\"%s\" must be an integer between %lld and %lld",
                   key, min, max);
        return KAP_ERROR;
    }
    *out = v;
    return KAP_OK;
}

int
kap_conf_get_bool(const config_setting_t *group, const char *key,
                  int *out, struct kap_err *err)
{
    config_setting_t *s = conf_member(group, key);

    if (s == NULL)
        return KAP_DECLINED;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        kap_err_at(err, s, "\"%s\" must be true or false", key);
        return KAP_ERROR;
    }
    *out = config_setting_get_bool(s) ? 1 : 0;
    return KAP_OK;
}

/* "500ms" "10s" "1.5m" "2h" "1d" "30" (seconds); -1 when invalid. */
static double
parse_secs(const char *str)
{
    char *end;
    double v, mul;

    while (isspace((unsigned char)*str))
        str++;
    if (!isdigit((unsigned char)*str) && *str != '.')
        return -1;
    errno = 0;
    v = strtod(str, &end);
    if (errno != 0 || end == str || !isfinite(v) || v < 0)
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1;
    else if (strcmp(end, "ms") == 0)
        mul = 0.001;
    else if (strcmp(end, "m") == 0)
        mul = 60;
    else if (strcmp(end, "h") == 0)
        mul = 3600;
    else if (strcmp(end, "d") == 0)
        mul = 86400;
    else
        return -1;
    v *= mul;
    if (!isfinite(v))
        return -1;
    return v;
}

int
kap_conf_get_secs(const config_setting_t *group, const char *key,
                  double *out, struct kap_err *err)
{
    config_setting_t *s = conf_member(group, key);
    double v;

    if (s == NULL)
        return KAP_DECLINED;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = (double)config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT:
        v = config_setting_get_float(s);
        break;
    case CONFIG_TYPE_STRING:
        v = parse_secs(config_setting_get_string(s));
        break;
    default:
        v = -1;
        break;
    }
    if (!isfinite(v) || v < 0) {
        kap_err_at(err, s, "\"%s\" must be a duration such as 10, \"500ms\", "
                   "\"10s\" or \"5m\"", key);
        return KAP_ERROR;
    }
    *out = v;
    return KAP_OK;
}

/* "64k" "10M" "1g" "512" "512b"; -1 when invalid or too large. */
static long long
parse_size(const char *str)
{
    char *end;
    unsigned long long v, mul = 1;

    while (isspace((unsigned char)*str))
        str++;
    if (!isdigit((unsigned char)*str))
        return -1;
    errno = 0;
    v = strtoull(str, &end, 10);
    if (errno != 0)
        return -1;
    switch (*end) {
    case '\0':                                  break;
    case 'b': case 'B': mul = 1;                end++; break;
    case 'k': case 'K': mul = 1024ULL;          end++; break;
    case 'm': case 'M': mul = 1024ULL * 1024;   end++; break;
    case 'g': case 'G': mul = 1024ULL << 20;    end++; break;
    default:            return -1;
    }
    if (mul > 1 && (*end == 'b' || *end == 'B'))
        end++;                                  /* "64kb", "10MB" */
    if (*end != '\0')
        return -1;
    if (v > (unsigned long long)LLONG_MAX / mul)
        return -1;
    return (long long)(v * mul);
}

int
kap_conf_get_size(const config_setting_t *group, const char *key,
                  long long *out, struct kap_err *err)
{
    config_setting_t *s = conf_member(group, key);
    long long v;

    if (s == NULL)
        return KAP_DECLINED;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_STRING:
        v = parse_size(config_setting_get_string(s));
        break;
    default:
        v = -1;
        break;
    }
    if (v < 0) {
        kap_err_at(err, s, "\"%s\" must be a size such as 4096, \"64k\" or "
                   "\"10M\"", key);
        return KAP_ERROR;
    }
    *out = v;
    return KAP_OK;
}

int
kap_conf_get_strlist(const config_setting_t *group, const char *key,
                     struct kap_pool *pool, const char ***out, size_t *n,
                     struct kap_err *err)
{
    config_setting_t *s = conf_member(group, key), *e;
    const char **v;
    int len, i, t;

    if (s == NULL)
        return KAP_DECLINED;
    t = config_setting_type(s);
    if (t == CONFIG_TYPE_STRING) {
        /* a single string is a list of one: listen = "127.0.0.1:53"; */
        v = kap_palloc(pool, 2 * sizeof(*v));
        if (v == NULL
            || (v[0] = kap_pstrdup(pool, config_setting_get_string(s)))
               == NULL) {
            kap_err_at(err, s, "\"%s\": out of memory", key);
            return KAP_ERROR;
        }
        v[1] = NULL;
        *out = v;
        if (n)
            *n = 1;
        return KAP_OK;
    }
    if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
        kap_err_at(err, s, "\"%s\" must be a list of strings, such as "
                   "[\"a\", \"b\"]", key);
        return KAP_ERROR;
    }
    len = config_setting_length(s);
    if (len < 0)
        len = 0;
    v = kap_palloc(pool, ((size_t)len + 1) * sizeof(*v));
    if (v == NULL) {
        kap_err_at(err, s, "\"%s\": out of memory", key);
        return KAP_ERROR;
    }
    for (i = 0; i < len; i++) {
        e = config_setting_get_elem(s, (unsigned)i);
        if (e == NULL || config_setting_type(e) != CONFIG_TYPE_STRING) {
            kap_err_at(err, e ? e : s, "\"%s\" must be a list of strings "
                       "(element %d is %s)", key, i + 1,
                       e ? conf_type_name(config_setting_type(e)) : "missing");
            return KAP_ERROR;
        }
        v[i] = kap_pstrdup(pool, config_setting_get_string(e));
        if (v[i] == NULL) {
            kap_err_at(err, e, "\"%s\": out of memory", key);
            return KAP_ERROR;
        }
    }
    v[len] = NULL;
    *out = v;
    if (n)
        *n = (size_t)len;
    return KAP_OK;
}

int
kap_conf_get_enum(const config_setting_t *group, const char *key,
                  const char *const *choices, int *out,
                  struct kap_err *err)
{
    config_setting_t *s = conf_member(group, key);
    const char *v = NULL;
    char list[256];
    size_t pos = 0;
    int i, w;

    if (s == NULL)
        return KAP_DECLINED;
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        v = config_setting_get_string(s);
        for (i = 0; v && choices && choices[i]; i++) {
            if (strcmp(v, choices[i]) == 0) {
                *out = i;
                return KAP_OK;
            }
        }
    }
    list[0] = '\0';
    for (i = 0; choices && choices[i]; i++) {
        w = snprintf(list + pos, sizeof(list) - pos, "%s\"%s\"",
                     i ? ", " : "", choices[i]);
        if (w < 0 || (size_t)w >= sizeof(list) - pos)
            break;
        pos += (size_t)w;
    }
    kap_err_at(err, s, "\"%s\" must be one of %s", key, list);
    return KAP_ERROR;
}

/* Edit distance of two short names, capped at 3 (for suggestions). */
static int
name_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    int row[33], prev, tmp, best;

    if (la > 32 || lb > 32)
        return 3;
    for (j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = (int)i;
        best = row[0];
        for (j = 1; j <= lb; j++) {
            tmp = row[j];
            row[j] = prev + (tolower((unsigned char)a[i - 1])
                             != tolower((unsigned char)b[j - 1]));
            if (row[j - 1] + 1 < row[j])
                row[j] = row[j - 1] + 1;
            if (tmp + 1 < row[j])
                row[j] = tmp + 1;
            prev = tmp;
            if (row[j] < best)
                best = row[j];
        }
        if (best >= 3)
            return 3;
    }
    return row[lb] < 3 ? row[lb] : 3;
}

int
kap_conf_check_keys(const config_setting_t *group,
                    const char *const *known, struct kap_err *err)
{
    const char *gname, *name, *hint;
    config_setting_t *e;
    int len, i, k, d, bestd;

    if (group == NULL)
        return KAP_OK;
    gname = config_setting_name(group);
    if (gname == NULL)
        gname = "(top level)";
    if (!config_setting_is_group(group)) {
        kap_err_at(err, group, "\"%s\" must be a group { ... }", gname);
        return KAP_ERROR;
    }
    len = config_setting_length(group);
    for (i = 0; i < len; i++) {
        e = config_setting_get_elem(group, (unsigned)i);
        if (e == NULL || (name = config_setting_name(e)) == NULL)
            continue;
        for (k = 0; known && known[k]; k++)
            if (strcmp(name, known[k]) == 0)
                break;
        if (known && known[k])
            continue;
        hint = NULL;
        bestd = 3;
        for (k = 0; known && known[k]; k++) {
            d = name_distance(name, known[k]);
            if (d < bestd && (size_t)d < strlen(known[k])) {
                bestd = d;
                hint = known[k];
            }
        }
        if (hint)
            kap_err_at(err, e, "unknown directive \"%s\" in group \"%s\" "
                       "(did you mean \"%s\"?)", name, gname, hint);
        else
            kap_err_at(err, e, "unknown directive \"%s\" in group \"%s\"",
                       name, gname);
        return KAP_ERROR;
    }
    return KAP_OK;
}

const char *
kap_conf_path(struct kap_gen *gen, const char *path)
{
    const char *prefix;
    size_t lp;

    if (gen == NULL || path == NULL)
        return NULL;
    prefix = gen->prefix;
    if (path[0] == '/' || prefix == NULL || prefix[0] == '\0')
        return kap_pstrdup(gen->pool, path);
    lp = strlen(prefix);
    while (lp > 1 && prefix[lp - 1] == '/')
        lp--;
    return kap_psprintf(gen->pool, "%.*s/%s", (int)lp, prefix, path);
}
