/*
 * test_audit_log.c -- the built-in JSONL audit sink (core/kapd_audit_log.c):
 * every line is valid JSON whatever bytes the event holds, the fields and
 * their compatibility duplicates, bounded line length, size rotation,
 * reopen per generation, config errors.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kapd.h"
#include "tap.h"

static char dir[PATH_MAX];

struct tgen {
    struct kap_gen         gen;
    struct kapd_gen_module gm;
    void                  *conf;
    config_t               cfg;
};

static const struct kap_module *mod = &kapd_audit_log_module;

static void tgen_free(struct tgen *t);

/* A generation holding only audit_log, configured by text; NULL + err. */
static struct tgen *
tgen_new(const char *text, struct kap_err *err)
{
    struct tgen            *t = calloc(1, sizeof(*t));
    const config_setting_t *group = NULL;

    t->gen.magic = KAPD_GEN_MAGIC;
    t->gen.id = 7;
    t->gen.refs = 1;
    t->gen.pool = kap_pool_create();
    t->gen.prefix = dir;
    t->gen.conf_path = "kap.conf";
    t->gm.mod = mod;
    t->gen.mods = &t->gm;
    t->gen.nmods = 1;
    memset(err, 0, sizeof(*err));
    config_init(&t->cfg);
    if (config_read_string(&t->cfg, text) != CONFIG_TRUE) {
        kap_err_set(err, "libconfig: %s", config_error_text(&t->cfg));
        tgen_free(t);
        return NULL;
    }
    group = config_lookup(&t->cfg, "audit_log");
    t->conf = mod->conf_create(&t->gen);
    t->gm.conf = t->conf;
    if (mod->conf_parse(&t->gen, t->conf, group, err) != KAP_OK
        || mod->conf_check(&t->gen, t->conf, err) != KAP_OK) {
        tgen_free(t);
        return NULL;
    }
    return t;
}

static void
tgen_free(struct tgen *t)
{
    if (t == NULL)
        return;
    if (t->gm.inited)
        mod->fini(&t->gen, t->conf);
    config_destroy(&t->cfg);
    kap_pool_destroy(t->gen.pool);
    free(t);
}

static int
tgen_init(struct tgen *t)
{
    int rc = mod->init(&t->gen, t->conf);
    t->gm.inited = rc == KAP_OK;
    return rc;
}

static void
emit(struct tgen *t, const struct kap_audit_event *ev)
{
    if (t == NULL) {
        printf("Bail out! no generation\n");
        exit(1);
    }
    mod->hooks[0].audit(ev, t->conf);
}

/* Count lines of path; -1 if one is not a JSON object or has raw
 * control bytes, or the file does not end in a newline. */
static int
check_lines(const char *path, cJSON **last)
{
    size_t len, i, start = 0;
    char  *buf = tap_slurp(path, &len);
    int    n = 0;

    if (last)
        *last = NULL;
    if (buf == NULL)
        return -1;
    if (len > 0 && buf[len - 1] != '\n') {
        free(buf);
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (buf[i] != '\n') {
            if ((unsigned char)buf[i] < 0x20) {
                free(buf);
                return -1;
            }
            continue;
        }
        buf[i] = '\0';
        {
            cJSON *j = cJSON_ParseWithOpts(buf + start, NULL, 1);
            if (j == NULL || !cJSON_IsObject(j)) {
                diag("bad line: %.200s", buf + start);
                cJSON_Delete(j);
                free(buf);
                return -1;
            }
            if (last) {
                cJSON_Delete(*last);
                *last = j;
            } else {
                cJSON_Delete(j);
            }
        }
        n++;
        start = i + 1;
    }
    free(buf);
    return n;
}

static const char *
jstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double
jnum(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static int
count_key(const char *line, const char *key)
{
    char        pat[64];
    int         n = 0;
    const char *p = line;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    while ((p = strstr(p, pat)) != NULL) {
        n++;
        p++;
    }
    return n;
}

int
main(void)
{
    struct kap_err         err;
    struct tgen           *t, *t2;
    char                   path[PATH_MAX + 32], p1[PATH_MAX + 40];
    cJSON                 *j = NULL;
    struct kap_audit_event ev;
    struct stat            st;
    int                    i;

    snprintf(dir, sizeof(dir), "/tmp/kap-test-audit-%ld", (long)getpid());
    if (mkdir(dir, 0700) != 0) {
        printf("Bail out! mkdir %s\n", dir);
        return 1;
    }

    /* defaults: prefix/audit.jsonl */
    t = tgen_new("", &err);
    ok(t != NULL, "no audit_log group: defaults (%s)", err.msg);
    ok(t && tgen_init(t) == KAP_OK, "init opens the default file");
    snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
    ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "default path created");
    is_int(st.st_mode & 0777, 0640, "mode 0640");
    memset(&ev, 0, sizeof(ev));
    ev.ts = 1795860000.123456;          /* 2026-11-28T... */
    ev.kind = KAP_REQ_CONNECT;
    ev.module = "http_connect";
    ev.event = "decision";
    ev.subject = "github.com";
    ev.port = 443;
    ev.action = "allowed";
    ev.reason = "allow \"github.com\" (kap.conf:3)";
    ev.decided_by = "network";
    ev.detail = "CONNECT";
    ev.client = "172.28.0.2:41234";
    ev.conn_id = 17;
    ev.gen_id = 7;
    emit(t, &ev);
    is_int(check_lines(path, &j), 1, "one valid line");
    is_str(jstr(j, "ts"), "2026-11-28T10:00:00.123456Z", "ts RFC 3339 us");
    is_int((long long)jnum(j, "gen"), 7, "gen");
    is_int((long long)jnum(j, "conn"), 17, "conn");
    is_str(jstr(j, "module"), "http_connect", "module");
    is_str(jstr(j, "kind"), "connect", "kind");
    is_str(jstr(j, "event"), "decision", "event");
    is_str(jstr(j, "subject"), "github.com", "subject");
    is_str(jstr(j, "domain"), "github.com", "domain = subject (old format)");
    is_int((long long)jnum(j, "port"), 443, "port");
    is_str(jstr(j, "action"), "allowed", "action");
    is_str(jstr(j, "reason"), "allow \"github.com\" (kap.conf:3)", "reason");
    is_str(jstr(j, "decided_by"), "network", "decided_by");
    is_str(jstr(j, "detail"), "CONNECT", "detail");
    is_str(jstr(j, "method"), "CONNECT", "method = detail (old format)");
    is_str(jstr(j, "client"), "172.28.0.2:41234", "client");
    cJSON_Delete(j);

    /* no conn, no port: fields left out */
    ev.conn_id = 0;
    ev.port = 0;
    ev.kind = KAP_REQ_DNS;
    ev.detail = NULL;
    emit(t, &ev);
    is_int(check_lines(path, &j), 2, "two lines");
    ok(cJSON_GetObjectItemCaseSensitive(j, "conn") == NULL, "no conn when 0");
    ok(cJSON_GetObjectItemCaseSensitive(j, "port") == NULL, "no port when 0");
    ok(cJSON_GetObjectItemCaseSensitive(j, "method") == NULL,
       "no method without detail");
    is_str(jstr(j, "kind"), "dns", "kind dns");
    cJSON_Delete(j);

    /* escaping: every byte */
    {
        char all[256];
        for (i = 1; i < 256; i++)
            all[i - 1] = (char)i;
        all[255] = '\0';
        ev.subject = all;
        ev.reason = "q\"b\\s\n\r\t\x01\x1f\x7f end";
        ev.detail = "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80 bad:\xc3\x28"
                    "\xed\xa0\x80\xf8\x80\xc0\xaf\xe0\x80\xaf";
        emit(t, &ev);
        is_int(check_lines(path, &j), 3, "line with every byte is valid JSON");
        is_str(jstr(j, "reason"), "q\"b\\s\n\r\t\x01\x1f\x7f end",
               "escapes round-trip");
        ok(jstr(j, "detail") && strncmp(jstr(j, "detail"),
           "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80 bad:", 16) == 0,
           "valid UTF-8 kept");
        {
            const char *s = jstr(j, "subject");
            ok(s && strlen(s) > 255, "invalid bytes escaped, not dropped");
            /* 0xff came out as U+00FF */
            ok(s && strstr(s, "\xc3\xbf") != NULL, "0xff as \\u00ff");
        }
        cJSON_Delete(j);
        {
            char *raw = tap_slurp(path, NULL);
            ok(raw && strstr(raw, "\\u2028") != NULL, "U+2028 escaped");
            ok(raw && strstr(raw, "\\u0001") != NULL, "control as \\u0001");
            ok(raw && strstr(raw, "\\u007f") != NULL, "DEL as \\u007f");
            ok(raw && strstr(raw, "\\u00ed\\u00a0\\u0080") != NULL,
               "UTF-8 surrogate bytes escaped");
            ok(raw && strstr(raw, "\\u00c0\\u00af") != NULL,
               "overlong bytes escaped");
            free(raw);
        }
    }

    /* extra fields */
    {
        struct kap_audit_field f[] = {
            { "bytes_up", NULL, 12345 },
            { "duration", NULL, 1.5 },
            { "qtype", "AAAA", 0 },
            { "ts", "spoof", 0 },          /* reserved: skipped */
            { "qtype", "dup", 0 },         /* duplicate: skipped */
            { "nan", NULL, NAN },
            { "we\"ird\x01", "v", 0 },
        };
        ev.subject = "example.com";
        ev.reason = "r";
        ev.detail = NULL;
        ev.fields = f;
        ev.nfields = sizeof(f) / sizeof(f[0]);
        emit(t, &ev);
        is_int(check_lines(path, &j), 4, "extra fields line valid");
        is_int((long long)jnum(j, "bytes_up"), 12345, "numeric field");
        ok(jnum(j, "duration") == 1.5, "float field");
        is_str(jstr(j, "qtype"), "AAAA", "string field, first wins");
        ok(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "nan")),
           "NaN as null");
        ok(jstr(j, "we\"ird\x01") != NULL, "odd field name escaped");
        is_str(jstr(j, "ts") && strcmp(jstr(j, "ts"), "spoof") ? "ok" : "no",
               "ok", "reserved name not overwritten");
        cJSON_Delete(j);
        ev.fields = NULL;
        ev.nfields = 0;
    }

    /* huge values: bounded line, marked truncated, still valid */
    {
        size_t big = 200000;
        char  *s = malloc(big + 1);
        char  *raw;
        size_t len;
        memset(s, '\x01', big);          /* worst case: 6 bytes each */
        s[big] = '\0';
        ev.subject = s;
        ev.reason = s;
        ev.detail = s;
        ev.client = s;
        emit(t, &ev);
        is_int(check_lines(path, &j), 5, "huge event still one valid line");
        ok(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")),
           "truncated:true");
        cJSON_Delete(j);
        raw = tap_slurp(path, &len);
        {
            char *nl = raw + len - 1, *start = nl;
            while (start > raw && start[-1] != '\n')
                start--;
            ok((size_t)(nl - start + 1) <= KAPD_AUDIT_LINE_MAX,
               "line within KAPD_AUDIT_LINE_MAX (%zu)",
               (size_t)(nl - start + 1));
            *nl = '\0';
            is_int(count_key(start, "subject"), 1, "no duplicate keys");
        }
        free(raw);
        free(s);
        ev.subject = "example.com";
        ev.reason = "r";
        ev.detail = "GET";
        ev.client = "c";
    }
    tgen_free(t);

    /* rotation */
    t = tgen_new("audit_log = { path = \"sub/dir/a.jsonl\"; max_size = \"2k\";"
                 " keep = 2; };", &err);
    ok(t != NULL, "rotation config (%s)", err.msg);
    ok(t && tgen_init(t) == KAP_OK, "init creates parent directories");
    snprintf(path, sizeof(path), "%s/sub/dir/a.jsonl", dir);
    ok(stat(path, &st) == 0, "file created in new directories");
    snprintf(p1, sizeof(p1), "%s/sub/dir", dir);
    ok(stat(p1, &st) == 0 && (st.st_mode & 0777) == 0750, "directory 0750");
    for (i = 0; i < 100; i++)
        emit(t, &ev);
    {
        int n0 = check_lines(path, NULL), n1, n2, n3;
        snprintf(p1, sizeof(p1), "%s.1", path);
        n1 = check_lines(p1, NULL);
        snprintf(p1, sizeof(p1), "%s.2", path);
        n2 = check_lines(p1, NULL);
        snprintf(p1, sizeof(p1), "%s.3", path);
        n3 = stat(p1, &st) == 0 ? 1 : 0;
        ok(n0 > 0 && n1 > 0 && n2 > 0, "path, path.1, path.2 valid (%d %d %d)",
           n0, n1, n2);
        is_int(n3, 0, "no path.3 with keep = 2");
        ok(stat(path, &st) == 0 && st.st_size <= 2048, "current <= max_size");
        snprintf(p1, sizeof(p1), "%s.1", path);
        ok(stat(p1, &st) == 0 && st.st_size <= 2048 && st.st_size > 1500,
           "rotated file near max_size (%lld)", (long long)st.st_size);
    }

    /* reopen per generation: after an external move, the new generation
     * creates a new file and the old generation writes there too */
    snprintf(p1, sizeof(p1), "%s.moved", path);
    ok(rename(path, p1) == 0, "external rotation");
    t2 = tgen_new("audit_log = { path = \"sub/dir/a.jsonl\"; max_size = \"2k\";"
                  " keep = 2; };", &err);
    ok(t2 && tgen_init(t2) == KAP_OK, "second generation init");
    emit(t, &ev);
    emit(t2, &ev);
    is_int(check_lines(path, NULL), 2, "both generations write the new file");
    tgen_free(t);
    emit(t2, &ev);
    is_int(check_lines(path, NULL), 3, "new generation survives old fini");
    tgen_free(t2);

    /* off */
    t = tgen_new("audit_log = { path = \"off\"; };", &err);
    ok(t && tgen_init(t) == KAP_OK, "path = off");
    if (t)
        emit(t, &ev);
    tgen_free(t);

    /* config errors */
    t = tgen_new("audit_log = { keep = -1; };", &err);
    ok(t == NULL && err.set, "keep = -1 refused: %s", err.msg);
    tgen_free(t);
    t = tgen_new("audit_log = { max_size = 10; };", &err);
    ok(t == NULL && err.set, "max_size = 10 refused: %s", err.msg);
    tgen_free(t);
    t = tgen_new("audit_log = { pth = \"x\"; };", &err);
    ok(t == NULL && err.set && strstr(err.msg, "pth"),
       "unknown key refused: %s", err.msg);
    tgen_free(t);
    t = tgen_new("audit_log = { path = \"/proc/nonexistent/x/a.jsonl\"; };",
                 &err);
    ok(t && tgen_init(t) == KAP_ERROR, "unopenable path fails init");
    tgen_free(t);

    {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "%s", dir);
        /* clean up the directory tree we made */
        snprintf(path, sizeof(path), "%s/sub/dir", dir);
        snprintf(p1, sizeof(p1), "%s/sub/dir/a.jsonl", dir);
        unlink(p1);
        snprintf(p1, sizeof(p1), "%s/sub/dir/a.jsonl.1", dir);
        unlink(p1);
        snprintf(p1, sizeof(p1), "%s/sub/dir/a.jsonl.2", dir);
        unlink(p1);
        snprintf(p1, sizeof(p1), "%s/sub/dir/a.jsonl.moved", dir);
        unlink(p1);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/sub", dir);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
        unlink(path);
        ok(rmdir(cmd) == 0, "test directory cleaned up");
    }
    return done_testing();
}
