/*
 * test_pool.c -- unit tests of pools, cleanups, kap_buf, kap_err, the
 * error log, and the KAPD_FAILALLOC torture switch of debug builds.
 */
#include "config.h"
#if defined(KAP_DEBUG) || defined(KAPD_DEBUG)
#define TORTURE 1       /* captured before kap_log.h's KAP_DEBUG() */
#endif
#include "kapd.h"
#include "kapd_alloc.h"

#include <fcntl.h>
#include <unistd.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

static char order[64];
static size_t norder;

static void
mark(void *data)
{
    if (norder + 1 < sizeof(order))
        order[norder++] = *(const char *)data;
    order[norder] = '\0';
}

static struct kap_pool *nested_pool;
static void
add_during_destroy(void *data)
{
    static const char z = 'z';
    (void)data;
    /* a cleanup registering another one while the pool is destroyed */
    kap_pool_cleanup_add(nested_pool, mark, (void *)&z);
}

static void
test_pool(void)
{
    static const char a = 'a', b = 'b', c = 'c', d = 'd';
    struct kap_pool *p = kap_pool_create();
    unsigned char *m;
    char *s;
    int i, zero = 1, aligned = 1;
    size_t k;

    ok(p != NULL, "pool created");
    for (i = 0; i < 2000; i++) {
        size_t n = (size_t)(i * 37 % 3000) + 1;
        m = kap_palloc(p, n);
        if (m == NULL) {
            zero = 0;
            break;
        }
        if ((uintptr_t)m % _Alignof(max_align_t))
            aligned = 0;
        for (k = 0; k < n; k++)
            if (m[k])
                zero = 0;
        memset(m, 0xa5, n);     /* dirty it: the next one must be zeroed */
    }
    ok(zero, "allocations (small and large) are zeroed");
    ok(aligned, "allocations are aligned for any type");
    m = kap_palloc(p, 0);
    ok(m != NULL, "zero-size allocation returns a pointer");

    s = kap_pstrdup(p, "hello");
    is_str(s, "hello", "pstrdup");
    s = kap_pstrndup(p, "hello world", 5);
    is_str(s, "hello", "pstrndup stops at n");
    ok(kap_pstrdup(p, NULL) == NULL, "pstrdup(NULL) is NULL");
    s = kap_psprintf(p, "%s:%d", "127.0.0.1", 3128);
    is_str(s, "127.0.0.1:3128", "psprintf");
    s = kap_psprintf(p, "%5000d", 7);
    ok(s && strlen(s) == 5000, "psprintf of a long string");

    norder = 0;
    ok(kap_pool_cleanup_add(p, mark, (void *)&a) == KAP_OK, "cleanup a");
    kap_pool_cleanup_add(p, mark, (void *)&b);
    kap_pool_cleanup_add(p, mark, (void *)&c);
    kap_pool_cleanup_add(p, mark, (void *)&d);
    kap_pool_cleanup_run(p, mark, (void *)&b);
    is_str(order, "b", "cleanup_run runs the matching cleanup now");
    kap_pool_cleanup_run(p, mark, (void *)&b);
    is_str(order, "b", "cleanup_run does not run it twice");
    kap_pool_cleanup_run(p, mark, (void *)&order);
    is_str(order, "b", "cleanup_run with no match does nothing");
    kap_pool_destroy(p);
    is_str(order, "bdca", "destroy runs the rest in reverse order");

    kap_pool_destroy(NULL);
    ok(1, "destroy(NULL) is harmless");

    norder = 0;
    nested_pool = kap_pool_create();
    kap_pool_cleanup_add(nested_pool, mark, (void *)&a);
    kap_pool_cleanup_add(nested_pool, add_during_destroy, NULL);
    kap_pool_destroy(nested_pool);
    is_str(order, "za", "a cleanup added during destroy runs too");
}

static void
test_buf(void)
{
    struct kap_buf b = { 0 };
    int i, good = 1;

    ok(kap_buf_append(&b, "abc", 3) == KAP_OK, "buf append");
    is_int(b.len, 3, "buf len");
    is_str(b.data, "abc", "buf NUL-terminated");
    ok(kap_buf_printf(&b, "-%d-%s", 42, "x") == KAP_OK, "buf printf");
    is_str(b.data, "abc-42-x", "buf printf appends");
    for (i = 0; i < 1000; i++)
        if (kap_buf_printf(&b, "%04d", i) != KAP_OK)
            good = 0;
    ok(good && b.len == 8 + 4000, "buf grows across many printfs");
    ok(memcmp(b.data + b.len - 4, "0999", 4) == 0 && b.data[b.len] == '\0',
       "buf content after growth");
    ok(kap_buf_append(&b, NULL, 0) == KAP_OK, "append of nothing");
    kap_buf_reset(&b);
    is_int(b.len, 0, "reset empties");
    ok(b.data && b.data[0] == '\0' && b.cap > 0, "reset keeps memory");
    kap_buf_append(&b, "\0x", 2);
    is_int(b.len, 2, "binary append");
    kap_buf_free(&b);
    ok(b.data == NULL && b.len == 0 && b.cap == 0, "free zeroes");
    ok(kap_buf_printf(&b, "%s", "") == KAP_OK && b.len == 0,
       "printf of empty string on an empty buffer");
    kap_buf_free(&b);
}

/* struct kap_buf as a queue: consume from the front, append at the back */
static void
test_buf_queue(void)
{
    struct kap_buf b = { 0 };
    size_t cap, room;
    int i, good = 1;

    ok(kap_buf_used(&b) == 0 && kap_buf_room(&b) == 0, "empty queue");
    kap_buf_append(&b, "hello world", 11);
    kap_buf_consume(&b, 6);
    is_int(kap_buf_used(&b), 5, "consume leaves the rest unread");
    ok(memcmp(b.data + b.off, "world", 5) == 0, "unread bytes at off");
    kap_buf_append(&b, "!", 1);
    ok(memcmp(b.data + b.off, "world!", 6) == 0 && b.data[b.len] == '\0',
       "append after consume");
    kap_buf_consume(&b, 6);
    ok(b.off == 0 && b.len == 0 && kap_buf_used(&b) == 0,
       "consuming everything rewinds");
    /* fill to the capacity, consume most, then reserve: compacts */
    cap = b.cap;
    room = kap_buf_room(&b);
    for (i = 0; (size_t)i < room; i++)
        kap_buf_append(&b, "x", 1);
    kap_buf_append(&b, "END", 0);
    kap_buf_consume(&b, room - 2);
    ok(kap_buf_reserve(&b, room - 4) == KAP_OK, "reserve after consume");
    ok(b.cap == cap && b.off == 0 && b.len == 2, "reserve compacted in place");
    ok(kap_buf_room(&b) >= room - 4, "room after compaction");
    memcpy(b.data + b.len, "abc", 3);
    kap_buf_added(&b, 3);
    ok(b.len == 5 && memcmp(b.data, "xxabc", 5) == 0 && b.data[5] == '\0',
       "added commits bytes written in place");
    kap_buf_added(&b, kap_buf_room(&b) + 1);
    is_int(b.len, 5, "added beyond the room is ignored");
    /* a long run of produce/consume with bytes always left unread never
       grows the buffer without bound: reserve compacts instead */
    for (i = 0; i < 10000; i++) {
        if (kap_buf_append(&b, "0123456789", 10) != KAP_OK)
            good = 0;
        kap_buf_consume(&b, 10);
    }
    ok(good && b.cap <= 4096 && kap_buf_used(&b) == 5 &&
       memcmp(b.data + b.off, "56789", 5) == 0,
       "a queue in steady state stays small and in order");
    kap_buf_reset(&b);
    ok(b.off == 0 && b.len == 0, "reset rewinds off");
    kap_buf_free(&b);
    ok(b.off == 0 && b.data == NULL, "free zeroes off");
}

static void
test_err(void)
{
    struct kap_err e;
    config_t cfg;
    config_setting_t *s;

    memset(&e, 0, sizeof(e));
    kap_err_set(&e, "first %d", 1);
    kap_err_set(&e, "second");
    is_str(e.msg, "first 1", "first error wins");
    ok(e.set && e.line == 0 && e.file[0] == '\0', "no position");
    kap_err_set(NULL, "ignored");
    ok(1, "err NULL ok");

    config_init(&cfg);
    ok(config_read_string(&cfg, "a = 1;\n\nb = {\n  c = \"x\";\n};\n")
       == CONFIG_TRUE, "config parsed");
    s = config_lookup(&cfg, "b.c");
    memset(&e, 0, sizeof(e));
    kap_err_at(&e, s, "bad %s", "c");
    is_str(e.msg, "bad c", "err_at message");
    is_int(e.line, 4, "err_at line");
    memset(&e, 0, sizeof(e));
    kap_err_at(&e, NULL, "no setting");
    ok(e.set && e.line == 0, "err_at with NULL setting");
    config_destroy(&cfg);
}

static void
test_log(void)
{
    char path[] = "/tmp/kapd-test-log-XXXXXX";
    char text[8192];
    struct kap_err e = { 0 };
    const char *dbg[] = { "dns", NULL };
    ssize_t n;
    int fd;

    is_int(kapd_log_level_parse("warn"), KAP_LOG_WARN, "level warn");
    is_int(kapd_log_level_parse("error"), KAP_LOG_ERR, "level error");
    is_int(kapd_log_level_parse("DEBUG"), KAP_LOG_DEBUG, "level DEBUG");
    is_int(kapd_log_level_parse("loud"), -1, "unknown level");
    is_str(kapd_log_level_name(KAP_LOG_CRIT), "crit", "level name");

    fd = mkstemp(path);
    ok(fd >= 0, "temp log file");
    close(fd);
    ok(kapd_log_open(path, &e) == KAP_OK, "log opened");
    kapd_log_set_level(KAP_LOG_WARN);
    KAP_LOG(KAP_LOG_ERR, "dns", 17, "bad %s", "thing\nforged [alert] line");
    KAP_LOG(KAP_LOG_INFO, "dns", 0, "filtered out");
    KAP_LOG(KAP_LOG_WARN, NULL, 0, "core says %d", 5);
    ok(!kap_log_debug_enabled("dns"), "debug off");
    kapd_log_set_debug(dbg);
    ok(kap_log_debug_enabled("dns") && !kap_log_debug_enabled("mcp"),
       "debug on for dns only");
    KAP_DEBUG("dns", 3, "dns detail");
    KAP_DEBUG("mcp", 3, "mcp detail");
    kapd_log_set_debug(NULL);
    ok(kapd_log_open(NULL, &e) == KAP_OK, "log back to stderr");
    ok(kapd_log_open("/nonexistent-dir/x.log", &e) == KAP_ERROR && e.set,
       "unopenable log is an error");

    fd = open(path, O_RDONLY);
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    unlink(path);
    text[n > 0 ? n : 0] = '\0';
    ok(strstr(text, "[error] ") && strstr(text, "#*17 dns: bad thing\\x0aforged")
       != NULL, "error line with conn id, module and escaped newline");
    ok(strstr(text, "filtered out") == NULL, "filtered level not written");
    ok(strstr(text, "[warn] ") && strstr(text, "# core says 5\n"),
       "core line without conn id");
    ok(strstr(text, "dns detail") && !strstr(text, "mcp detail"),
       "per-module debug");
    ok(text[4] == '/' && text[7] == '/' && text[10] == ' ' && text[13] == ':',
       "time stamp format");
    if (!ok(strchr(text, '\n') && strchr(text, '\n')[1] != '\0', "several lines"))
        diag("%s", text);
}

static void
test_failalloc(void)
{
#ifdef TORTURE
    struct kap_pool *p;
    struct kap_buf b = { 0 };

    setenv("KAPD_FAILALLOC", "2", 1);
    kapd_alloc_reset();
    p = kap_pool_create();                  /* 1 */
    ok(p != NULL, "failalloc: 1st allocation succeeds");
    ok(kap_palloc(p, 8) == NULL, "failalloc: 2nd allocation fails");
    ok(kap_palloc(p, 8) != NULL, "failalloc: 3rd succeeds");
    setenv("KAPD_FAILALLOC", "1", 1);
    kapd_alloc_reset();
    ok(kap_buf_append(&b, "x", 1) == KAP_ERROR && b.data == NULL,
       "failalloc: buffer growth fails cleanly");
    unsetenv("KAPD_FAILALLOC");
    kapd_alloc_reset();
    kap_pool_destroy(p);
#else
    ok(1, "# SKIP not a debug build");
#endif
}

int
main(void)
{
    test_pool();
    test_buf();
    test_buf_queue();
    test_err();
    test_log();
    test_failalloc();
    return done_testing();
}
