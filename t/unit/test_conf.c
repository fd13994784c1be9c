/*
 * test_conf.c -- unit tests of the kap_conf_get_* helpers, check_keys and
 * kap_conf_path: each getter ok / absent / wrong type, with file:line.
 */
#include "kapd.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static const char conf_text[] =
    "network: {\n"                                  /* 1 */
    "  name = \"kap\";\n"                           /* 2 */
    "  port = 3128;\n"                              /* 3 */
    "  big = 5000000000L;\n"                        /* 4 */
    "  on = true;\n"                                /* 5 */
    "  t_int = 10;\n"                               /* 6 */
    "  t_float = 1.5;\n"                            /* 7 */
    "  t_ms = \"500ms\";\n"                         /* 8 */
    "  t_min = \"5m\";\n"                           /* 9 */
    "  t_bad = \"5 parsecs\";\n"                    /* 10 */
    "  s_int = 4096;\n"                             /* 11 */
    "  s_k = \"64k\";\n"                            /* 12 */
    "  s_m = \"10M\";\n"                            /* 13 */
    "  s_bad = \"lots\";\n"                         /* 14 */
    "  list = [\"a.com\", \"b.com\"];\n"            /* 15 */
    "  mixed = (\"a\", 2);\n"                       /* 16 */
    "  empty = [];\n"                               /* 17 */
    "  mode = \"deny\";\n"                          /* 18 */
    "  bad_mode = \"maybe\";\n"                     /* 19 */
    "  neg = -5;\n"                                 /* 20 */
    "  alow = [];\n"                                /* 21 */
    "  t_neg = -1;\n"                               /* 22 */
    "};\n";

static char path[64];
static config_t cfg;

#define CHECK_ERR(e, line_, substr, name)                                  \
    do {                                                                    \
        ok((e).set && (e).line == (line_) && strcmp((e).file, path) == 0   \
           && strstr((e).msg, (substr)) != NULL, "%s", name);              \
        if (!((e).set && (e).line == (line_)))                              \
            diag("got %s:%d: %s", (e).file, (e).line, (e).msg);            \
        memset(&(e), 0, sizeof(e));                                         \
    } while (0)

int
main(void)
{
    struct kap_pool *pool = kap_pool_create();
    struct kap_err e;
    config_setting_t *g;
    const char *s, **list;
    long long ll;
    double d;
    size_t n;
    int b, fd, idx;
    static const char *const modes[] = { "allow", "deny", NULL };
    static const char *const known_all[] = {
        "name", "port", "big", "on", "t_int", "t_float", "t_ms", "t_min",
        "t_bad", "s_int", "s_k", "s_m", "s_bad", "list", "mixed", "empty",
        "mode", "bad_mode", "neg", "alow", "t_neg", NULL };
    static const char *const known_some[] = {
        "name", "port", "big", "on", "t_int", "t_float", "t_ms", "t_min",
        "t_bad", "s_int", "s_k", "s_m", "s_bad", "list", "mixed", "empty",
        "mode", "bad_mode", "neg", "allow", "t_neg", NULL };
    struct kap_gen gen;

    memset(&e, 0, sizeof(e));
    snprintf(path, sizeof(path), "/tmp/kapd-test-conf-XXXXXX");
    fd = mkstemp(path);
    ok(fd >= 0 && write(fd, conf_text, sizeof(conf_text) - 1)
       == (ssize_t)(sizeof(conf_text) - 1), "temp config written");
    close(fd);
    config_init(&cfg);
    ok(config_read_file(&cfg, path) == CONFIG_TRUE, "config read");
    g = config_lookup(&cfg, "network");
    ok(g != NULL, "group found");

    /* strings */
    is_int(kap_conf_get_str(g, "name", pool, &s, &e), KAP_OK, "str ok");
    is_str(s, "kap", "str value");
    s = "untouched";
    is_int(kap_conf_get_str(g, "nope", pool, &s, &e), KAP_DECLINED,
           "str absent");
    is_str(s, "untouched", "absent leaves out untouched");
    is_int(kap_conf_get_str(NULL, "name", pool, &s, &e), KAP_DECLINED,
           "NULL group is absent");
    is_int(kap_conf_get_str(g, "port", pool, &s, &e), KAP_ERROR,
           "str wrong type");
    CHECK_ERR(e, 3, "\"port\" must be a string", "str error at file:3");

    /* integers */
    is_int(kap_conf_get_int(g, "port", 1, 65535, &ll, &e), KAP_OK, "int ok");
    is_int(ll, 3128, "int value");
    is_int(kap_conf_get_int(g, "big", 0, 6000000000LL, &ll, &e), KAP_OK,
           "int64 ok");
    is_int(ll, 5000000000LL, "int64 value");
    is_int(kap_conf_get_int(g, "nope", 1, 2, &ll, &e), KAP_DECLINED,
           "int absent");
    is_int(kap_conf_get_int(g, "neg", 1, 65535, &ll, &e), KAP_ERROR,
           "int out of range");
    CHECK_ERR(e, 20, "\"neg\" must be an integer between 1 and 65535",
              "int range error at file:20");
    is_int(kap_conf_get_int(g, "name", 1, 65535, &ll, &e), KAP_ERROR,
           "int wrong type");
    CHECK_ERR(e, 2, "\"name\" must be an integer", "int type error at file:2");
    is_int(kap_conf_get_int(g, "t_float", 0, 5, &ll, &e), KAP_ERROR,
           "float is not an int");
    CHECK_ERR(e, 7, "must be an integer", "float error at file:7");

    /* booleans */
    is_int(kap_conf_get_bool(g, "on", &b, &e), KAP_OK, "bool ok");
    is_int(b, 1, "bool value");
    is_int(kap_conf_get_bool(g, "nope", &b, &e), KAP_DECLINED, "bool absent");
    is_int(kap_conf_get_bool(g, "port", &b, &e), KAP_ERROR, "bool wrong type");
    CHECK_ERR(e, 3, "\"port\" must be true or false", "bool error at file:3");

    /* durations */
    is_int(kap_conf_get_secs(g, "t_int", &d, &e), KAP_OK, "secs int");
    ok(d == 10.0, "10 = 10 s");
    is_int(kap_conf_get_secs(g, "t_float", &d, &e), KAP_OK, "secs float");
    ok(d == 1.5, "1.5 = 1.5 s");
    is_int(kap_conf_get_secs(g, "t_ms", &d, &e), KAP_OK, "secs ms");
    ok(d > 0.4999 && d < 0.5001, "500ms = 0.5 s");
    is_int(kap_conf_get_secs(g, "t_min", &d, &e), KAP_OK, "secs m");
    ok(d == 300.0, "5m = 300 s");
    is_int(kap_conf_get_secs(g, "nope", &d, &e), KAP_DECLINED, "secs absent");
    is_int(kap_conf_get_secs(g, "t_bad", &d, &e), KAP_ERROR, "secs bad unit");
    CHECK_ERR(e, 10, "\"t_bad\" must be a duration", "secs error at file:10");
    is_int(kap_conf_get_secs(g, "t_neg", &d, &e), KAP_ERROR, "secs negative");
    CHECK_ERR(e, 22, "must be a duration", "negative secs error at file:22");
    is_int(kap_conf_get_secs(g, "list", &d, &e), KAP_ERROR, "secs wrong type");
    CHECK_ERR(e, 15, "must be a duration", "secs type error at file:15");

    /* sizes */
    is_int(kap_conf_get_size(g, "s_int", &ll, &e), KAP_OK, "size int");
    is_int(ll, 4096, "size int value");
    is_int(kap_conf_get_size(g, "s_k", &ll, &e), KAP_OK, "size k");
    is_int(ll, 65536, "64k");
    is_int(kap_conf_get_size(g, "s_m", &ll, &e), KAP_OK, "size M");
    is_int(ll, 10485760, "10M");
    is_int(kap_conf_get_size(g, "nope", &ll, &e), KAP_DECLINED, "size absent");
    is_int(kap_conf_get_size(g, "s_bad", &ll, &e), KAP_ERROR, "size bad");
    CHECK_ERR(e, 14, "\"s_bad\" must be a size", "size error at file:14");
    is_int(kap_conf_get_size(g, "neg", &ll, &e), KAP_ERROR, "size negative");
    CHECK_ERR(e, 20, "must be a size", "negative size error at file:20");

    /* string lists */
    is_int(kap_conf_get_strlist(g, "list", pool, &list, &n, &e), KAP_OK,
           "strlist ok");
    ok(n == 2 && strcmp(list[0], "a.com") == 0 && strcmp(list[1], "b.com") == 0
       && list[2] == NULL, "strlist values, NULL-terminated");
    is_int(kap_conf_get_strlist(g, "empty", pool, &list, &n, &e), KAP_OK,
           "empty strlist ok");
    ok(n == 0 && list && list[0] == NULL, "empty strlist");
    is_int(kap_conf_get_strlist(g, "nope", pool, &list, NULL, &e),
           KAP_DECLINED, "strlist absent");
    is_int(kap_conf_get_strlist(g, "mixed", pool, &list, &n, &e), KAP_ERROR,
           "strlist with a number");
    CHECK_ERR(e, 16, "element 2", "strlist element error at file:16");
    is_int(kap_conf_get_strlist(g, "name", pool, &list, &n, &e), KAP_OK,
           "a single string is a list of one");
    ok(n == 1 && strcmp(list[0], "kap") == 0 && list[1] == NULL,
       "  its value");
    is_int(kap_conf_get_strlist(g, "port", pool, &list, &n, &e), KAP_ERROR,
           "strlist wrong type");
    CHECK_ERR(e, 3, "\"port\" must be a list of strings",
              "strlist type error at file:3");

    /* enums */
    is_int(kap_conf_get_enum(g, "mode", modes, &idx, &e), KAP_OK, "enum ok");
    is_int(idx, 1, "enum index");
    is_int(kap_conf_get_enum(g, "nope", modes, &idx, &e), KAP_DECLINED,
           "enum absent");
    is_int(kap_conf_get_enum(g, "bad_mode", modes, &idx, &e), KAP_ERROR,
           "enum bad value");
    CHECK_ERR(e, 19, "\"bad_mode\" must be one of \"allow\", \"deny\"",
              "enum error at file:19");
    is_int(kap_conf_get_enum(g, "port", modes, &idx, &e), KAP_ERROR,
           "enum wrong type");
    CHECK_ERR(e, 3, "must be one of", "enum type error at file:3");

    /* check_keys */
    is_int(kap_conf_check_keys(g, known_all, &e), KAP_OK, "all keys known");
    is_int(kap_conf_check_keys(g, known_some, &e), KAP_ERROR,
           "unknown key found");
    CHECK_ERR(e, 21, "unknown directive \"alow\" in group \"network\"",
              "check_keys error at file:21");
    is_int(kap_conf_check_keys(NULL, known_some, &e), KAP_OK,
           "check_keys of absent group");
    is_int(kap_conf_check_keys(config_lookup(&cfg, "network.port"),
                               known_some, &e), KAP_ERROR,
           "check_keys of a non-group");
    CHECK_ERR(e, 3, "must be a group", "non-group error at file:3");

    /* first error wins */
    kap_conf_get_int(g, "neg", 1, 2, &ll, &e);
    kap_conf_get_bool(g, "port", &b, &e);
    CHECK_ERR(e, 20, "\"neg\"", "first error wins");

    /* kap_conf_path */
    memset(&gen, 0, sizeof(gen));
    gen.pool = pool;
    gen.prefix = "/srv/kap/";
    is_str(kap_conf_path(&gen, "logs/error.log"), "/srv/kap/logs/error.log",
           "relative path joined to the prefix");
    is_str(kap_conf_path(&gen, "/var/log/x"), "/var/log/x",
           "absolute path unchanged");
    gen.prefix = NULL;
    is_str(kap_conf_path(&gen, "x.sock"), "x.sock", "no prefix");

    config_destroy(&cfg);
    unlink(path);
    kap_pool_destroy(pool);
    return done_testing();
}
