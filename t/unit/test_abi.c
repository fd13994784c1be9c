/*
 * test_abi.c -- the module ABI gate: every rejection (magic, major,
 * minor, size, build signature, name) has its own message naming both
 * values, for descriptors checked directly and for the deliberately
 * mis-versioned kap_bad_*.so test modules loaded from the build tree;
 * a good module loads, is shared by reference and released.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kapd.h"
#include "kapd_cycle.h"
#include "tap.h"

#ifndef KAPD_TEST_MODDIR
#define KAPD_TEST_MODDIR ".libs"
#endif

static int
has(const char *msg, const char *a, const char *b)
{
    return strstr(msg, a) != NULL && (b == NULL || strstr(msg, b) != NULL);
}

static void
check(const struct kap_module *m, const char *name, const char *a,
      const char *b, const char *what)
{
    struct kap_err err = { 0 };

    is_int(kapd_module_check_abi(m, name, &err), KAP_ERROR, what);
    if (!ok(has(err.msg, a, b), "%s: message names \"%s\" and \"%s\"", what, a,
       b ? b : ""))
        diag("%s", err.msg);
}

static void
check_so(const char *name, const char *a, const char *b)
{
    const char *dirs[] = { KAPD_TEST_MODDIR, NULL };
    struct kap_err err = { 0 };
    struct kapd_modref *ref;
    char path[600];

    snprintf(path, sizeof(path), "%s/kap_%s.so", KAPD_TEST_MODDIR, name);
    if (access(path, R_OK) != 0) {
        ok(1, "# SKIP %s not built", path);
        ok(1, "# SKIP");
        ok(1, "# SKIP");
        return;
    }
    ref = kapd_module_get(name, dirs, &err);
    ok(ref == NULL, "%s refused", name);
    if (!ok(has(err.msg, a, b), "%s: message names both values", name))
        diag("%s", err.msg);
    if (!ok(has(err.msg, path, NULL), "%s: message names the file", name))
        diag("%s", err.msg);
    if (ref != NULL)
        kapd_module_unref(ref);
}

int
main(void)
{
    struct kap_module m;
    const struct kap_module good = { KAP_MODULE_V1("good") };
    struct kap_err err = { 0 };
    char exp[64];


    is_int(kapd_module_check_abi(&good, "good", &err), KAP_OK,
           "a good descriptor passes");

    m = good;
    m.magic = 0xdeadbeefU;
    check(&m, "good", "0xdeadbeef", "0x4b41504d", "bad magic");

    m = good;
    m.abi_major = KAP_ABI_MAJOR + 1;
    snprintf(exp, sizeof(exp), "ABI %d.%d", KAP_ABI_MAJOR + 1, KAP_ABI_MINOR);
    {
        char exp2[64];
        snprintf(exp2, sizeof(exp2), "kapd has ABI %d.%d", KAP_ABI_MAJOR,
                 KAP_ABI_MINOR);
        check(&m, "good", exp, exp2, "major mismatch");
        m = good;
        m.abi_minor = KAP_ABI_MINOR + 1;
        snprintf(exp, sizeof(exp), "ABI %d.%d", KAP_ABI_MAJOR,
                 KAP_ABI_MINOR + 1);
        check(&m, "good", exp, exp2, "module minor newer than kapd");
    }

    m = good;
    m.size = 64;
    snprintf(exp, sizeof(exp), "%zu", sizeof(struct kap_module));
    check(&m, "good", "size 64", exp, "descriptor too small");

    m = good;
    m.build_sig = "p4,t4,o4,ev3,lc1,dbg0";
    check(&m, "good", "\"p4,t4,o4,ev3,lc1,dbg0\"", "\"" KAP_BUILD_SIG "\"",
          "build signature");

    m = good;
    m.build_sig = NULL;
    check(&m, "good", "(null)", KAP_BUILD_SIG, "no build signature");

    m = good;
    check(&m, "other", "\"good\"", "\"other\"", "name mismatch");
    m.name = NULL;
    check(&m, "good", "(null)", "\"good\"", "no name");

    /* checks run in order: magic first even if everything is wrong */
    m = good;
    m.magic = 1;
    m.abi_major = 9;
    m.build_sig = "x";
    check(&m, "good", "magic", NULL, "magic is checked first");
    m.magic = KAP_MODULE_MAGIC;
    check(&m, "good", "ABI 9.", NULL, "then the major");

    /* the shared objects */
    {
        char maj[64], min[64], have[64], sz[64];
        snprintf(maj, sizeof(maj), "ABI %d.%d", KAP_ABI_MAJOR + 1,
                 KAP_ABI_MINOR);
        snprintf(min, sizeof(min), "ABI %d.%d", KAP_ABI_MAJOR,
                 KAP_ABI_MINOR + 1);
        snprintf(have, sizeof(have), "kapd has ABI %d.%d", KAP_ABI_MAJOR,
                 KAP_ABI_MINOR);
        snprintf(sz, sizeof(sz), "%zu", sizeof(struct kap_module));
        check_so("bad_magic", "0xdeadbeef", "0x4b41504d");
        check_so("bad_major", maj, have);
        check_so("bad_minor", min, have);
        check_so("bad_size", "size 64", sz);
        check_so("bad_sig", "\"p4,t4,o4,ev3,lc1,dbg0\"",
                 "\"" KAP_BUILD_SIG "\"");
        check_so("bad_name", "\"not_bad_name\"", "\"bad_name\"");
    }

    /* not found, and a file without the symbol */
    {
        const char *dirs[] = { "/nonexistent-a", "/nonexistent-b", NULL };
        int notfound = 0;
        memset(&err, 0, sizeof(err));
        ok(kapd_module_find("nosuch", dirs, &notfound, &err) == NULL,
           "missing module");
        ok(notfound, "reported as not found");
        if (!ok(has(err.msg, "kap_nosuch.so", "/nonexistent-a"),
           "not found: names file and directory"))
            diag("%s", err.msg);
        memset(&err, 0, sizeof(err));
        if (!ok(kapd_module_get("../evil", dirs, &err) == NULL
           && has(err.msg, "invalid module name", NULL),
           "a name with a slash is refused"))
            diag("%s", err.msg);
    }
    {
        char tmp[] = "/tmp/kapd-test-abi-XXXXXX", src[600], dst[600];
        const char *dirs[2];
        struct kapd_modref *ref;
        FILE *in, *out;
        int ch;

        snprintf(src, sizeof(src), "%s/kap_bad_magic.so", KAPD_TEST_MODDIR);
        if (mkdtemp(tmp) != NULL && (in = fopen(src, "rb")) != NULL) {
            snprintf(dst, sizeof(dst), "%s/kap_nosym.so", tmp);
            out = fopen(dst, "wb");
            while (out != NULL && (ch = fgetc(in)) != EOF)
                fputc(ch, out);
            fclose(in);
            if (out != NULL)
                fclose(out);
            dirs[0] = tmp;
            dirs[1] = NULL;
            memset(&err, 0, sizeof(err));
            ref = kapd_module_get("nosym", dirs, &err);
            if (!ok(ref == NULL && has(err.msg, "kap_nosym_module", dst),
               "a file without kap_<name>_module"))
                diag("%s", err.msg);
            unlink(dst);
            rmdir(tmp);
        } else {
            ok(1, "# SKIP kap_bad_magic.so not built");
        }
    }

    /* a good module: loaded once, shared, released */
    {
        const char *dirs[] = { KAPD_TEST_MODDIR, NULL };
        struct kapd_modref *a, *b;
        char path[600];

        snprintf(path, sizeof(path), "%s/kap_test_hooks.so",
                 KAPD_TEST_MODDIR);
        if (access(path, R_OK) == 0) {
            memset(&err, 0, sizeof(err));
            a = kapd_module_get("test_hooks", dirs, &err);
            if (!ok(a != NULL, "test_hooks loads"))
                diag("%s", err.msg);
            b = kapd_module_get("test_hooks", dirs, &err);
            ok(a != NULL && a == b && a->refs == 2,
               "a second get shares the same handle");
            ok(a != NULL && !a->builtin && a->handle != NULL
               && strcmp(a->mod->name, "test_hooks") == 0,
               "descriptor from the shared object");
            kapd_module_unref(b);
            kapd_module_unref(a);
        } else {
            ok(1, "# SKIP test_hooks not built");
        }
    }
    return done_testing();
}
