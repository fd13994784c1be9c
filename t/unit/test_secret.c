/*
 * test_secret.c -- credentials (core/kapd_secret.c, kap_secret.h): every
 * refusal of a secret file or its directory, with the fix in the message
 * and never the content; the secret injected into a header and an
 * environment entry, refused rather than truncated; its raw, base64 and
 * URL-encoded forms redacted (alone, inside HTTP Basic credentials, at
 * the end of a cut line); the memory locked and out of core dumps while
 * loaded; and an error-log line through kap_log_error() redacted.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kapd.h"
#include "kapd_secret.h"
#include "tap.h"
#include "tap_tmpdir.h"
#include "tap_secret.h"

/* ':' '/' '+' need percent-encoding; its base64 holds '+' and '/' */
#define SECRET "tok:en/Ab+C9~xyz\xfb\xff"
#define OTHER  "second-credential-0123"

static char dir[256];

static char *
at(const char *name)
{
    static char buf[8][PATH_MAX];
    static int  i;
    char       *p = buf[i++ % 8];

    snprintf(p, PATH_MAX, "%s/%s", dir, name);
    return p;
}

static void
put(const char *name, const char *text, size_t n, mode_t mode)
{
    int fd = open(at(name), O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd >= 0) {
        if (write(fd, text, n) != (ssize_t)n)
            diag("short write to %s", name);
        close(fd);
    }
    chmod(at(name), mode);
}

static void
b64(const unsigned char *s, size_t n, const char *alpha, int pad, char *out)
{
    size_t i, o = 0;
    unsigned v;

    for (i = 0; i < n; i += 3) {
        v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0)
            | (i + 2 < n ? s[i + 2] : 0);
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (i + 1 < n || pad)
            out[o++] = i + 1 < n ? alpha[v >> 6 & 63] : '=';
        if (i + 2 < n || pad)
            out[o++] = i + 2 < n ? alpha[v & 63] : '=';
    }
    out[o] = '\0';
}

static const char STD[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* a refusal: NULL, the message holds want, never the secret's text */
static void
refused(const char *path, const char *want, const char *name)
{
    tap_secret_refused(path, want, name, "tok:en");
}

static long
status_kb(const char *key)
{
    char  line[256];
    long  v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, strlen(key)) == 0)
            v = strtol(line + strlen(key), NULL, 10);
    fclose(f);
    return v;
}

/* whether mlock() shows in VmLck here (not under ASan, which makes it a
   no-op, nor beyond RLIMIT_MEMLOCK) */
static int
mlock_visible(void)
{
    long  before = status_kb("VmLck:"), after;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (m == MAP_FAILED)
        return 0;
    after = mlock(m, 4096) == 0 ? status_kb("VmLck:") : before;
    munmap(m, 4096);
    return before >= 0 && after > before;
}

/* mappings marked "dd" (MADV_DONTDUMP) in /proc/self/smaps, -1 if none */
static int
dontdump_count(void)
{
    char  line[512];
    int   n = 0;
    FILE *f = fopen("/proc/self/smaps", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " dd"))
            n++;
    fclose(f);
    return n;
}

static void
test_refusals(void)
{
    char big[KAP_SECRET_MAX + 2];
    char want[PATH_MAX + 64];

    ok(mkdir(at("d"), 0700) == 0, "secret directory");
    put("d/token", SECRET "\n", sizeof(SECRET), 0600);

    put("d/m644", SECRET, sizeof(SECRET) - 1, 0644);
    snprintf(want, sizeof(want), "is mode 0644: run chmod 600 %s",
             at("d/m644"));
    refused(at("d/m644"), want, "mode 0644");
    put("d/m640", SECRET, sizeof(SECRET) - 1, 0640);
    refused(at("d/m640"), "is mode 0640: run chmod 600", "mode 0640");
    put("d/m604", SECRET, sizeof(SECRET) - 1, 0604);
    refused(at("d/m604"), "is mode 0604", "mode 0604 (other read)");

    ok(mkdir(at("gw"), 0700) == 0 && chmod(at("gw"), 0770) == 0,
       "group-writable directory");
    put("gw/token", SECRET, sizeof(SECRET) - 1, 0600);
    snprintf(want, sizeof(want), "secret directory %s is mode 0770: run "
             "chmod 700 %s", at("gw"), at("gw"));
    refused(at("gw/token"), want, "group-writable directory");
    ok(mkdir(at("rx"), 0755) == 0 && chmod(at("rx"), 0755) == 0,
       "world-readable directory");
    put("rx/token", SECRET, sizeof(SECRET) - 1, 0600);
    refused(at("rx/token"), "is mode 0755: run chmod 700", "directory 0755");

    ok(symlink(at("d/token"), at("d/link")) == 0, "symlink to the secret");
    refused(at("d/link"), "is a symbolic link", "symlink file");
    ok(symlink(at("d"), at("dlink")) == 0, "symlink to the directory");
    snprintf(want, sizeof(want), "secret path %s is a symbolic link",
             at("dlink"));
    refused(at("dlink/token"), want, "symlink as the directory");
    ok(mkdir(at("d/sub"), 0700) == 0 && symlink(at("d"), at("d/sub/up")) == 0
       && mkdir(at("d/sub/up2"), 0700) == 0, "symlink in a middle component");
    refused(at("d/sub/up/sub/up2/x"), "is a symbolic link",
            "symlink earlier in the path");

    memset(big, 'a', sizeof(big));
    put("d/big", big, KAP_SECRET_MAX + 1, 0600);
    refused(at("d/big"), "bytes, over the limit", "too big");
    put("d/empty", "", 0, 0600);
    refused(at("d/empty"), "is empty: write the credential", "empty");
    put("d/nl", "\r\n\n", 3, 0600);
    refused(at("d/nl"), "only line ends", "only line ends");
    put("d/nul", "abc\0def", 7, 0600);
    refused(at("d/nul"), "holds a NUL byte", "a NUL byte");
    ok(mkfifo(at("d/fifo"), 0600) == 0, "FIFO");
    refused(at("d/fifo"), "not a regular file (a FIFO)", "a FIFO");
    ok(mkdir(at("d/adir"), 0700) == 0, "directory in the file's place");
    refused(at("d/adir"), "not a regular file (a directory)", "a directory");
    refused(at("d/none"), "No such file", "missing file");
    refused(at("nodir/token"), "install -d -m 700", "missing directory");
    refused(at("d/"), "names a directory", "path ending in /");
    refused(at("d/token/x"), "is not a directory", "file as a directory");

    if (geteuid() == 0) {
        put("d/theirs", SECRET, sizeof(SECRET) - 1, 0600);
        ok(chown(at("d/theirs"), 65534, 65534) == 0, "chown file to 65534");
        refused(at("d/theirs"), "is owned by uid 65534, not by kapd's uid 0 "
                "or root: run chown 0", "file of another uid");
        ok(mkdir(at("od"), 0700) == 0 && chown(at("od"), 65534, 65534) == 0,
           "directory of uid 65534");
        put("od/token", SECRET, sizeof(SECRET) - 1, 0600);
        refused(at("od/token"), "secret directory", "directory of another uid");
    } else {
        diag("not root: owner refusals not tested");
    }
}

static void
test_inject(struct kap_secret *s)
{
    struct kap_err e = { 0 };
    struct kap_buf b = { 0 };
    char out[64], small[sizeof("Bearer " SECRET)];
    struct kap_pool *p = kap_pool_create();
    struct kap_secret *ml;

    ok(kap_secret_header(s, "Bearer {}", out, sizeof(out), &e) == KAP_OK
       && strcmp(out, "Bearer " SECRET) == 0,
       "header: Bearer {} (trailing newline stripped)");
    ok(kap_secret_header(s, "{}", out, sizeof(out), &e) == KAP_OK
       && strcmp(out, SECRET) == 0, "header: {} alone");
    ok(kap_secret_header(s, "Bearer {}", small, sizeof(small), &e) == KAP_OK,
       "header: exactly fits");
    kap_secret_wipe(small, sizeof(small));
    e.set = 0;
    ok(kap_secret_header(s, "Bearer {}", small, sizeof(small) - 1, &e)
       == KAP_ERROR && small[0] == '\0' && e.set
       && strstr(e.msg, "does not fit") && !strstr(e.msg, "tok:en"),
       "header: one byte short is an error, nothing written");
    e.set = 0;
    ok(kap_secret_header(s, "Bearer", out, sizeof(out), &e) == KAP_ERROR
       && strstr(e.msg, "exactly once"), "header: template without {}");
    e.set = 0;
    ok(kap_secret_header(s, "{} {}", out, sizeof(out), &e) == KAP_ERROR,
       "header: template with two {}");
    e.set = 0;
    ok(kap_secret_header(s, "x\r\nEvil: {}", out, sizeof(out), &e)
       == KAP_ERROR && strstr(e.msg, "control byte"),
       "header: template with CR LF");

    ok(kap_buf_append(&b, "Authorization: ", 15) == KAP_OK, "buf prefix");
    ok(kap_secret_header_buf(s, "Bearer {}", &b, &e) == KAP_OK
       && strcmp(b.data, "Authorization: Bearer " SECRET) == 0
       && b.len == strlen(b.data), "header into a kap_buf");
    e.set = 0;
    ok(kap_secret_header_buf(s, "nohole", &b, &e) == KAP_ERROR
       && strcmp(b.data, "Authorization: Bearer " SECRET) == 0,
       "kap_buf left as it was on error");
    kap_secret_wipe(b.data, b.cap);
    kap_buf_free(&b);

    ok(kap_secret_env(s, "API_TOKEN", out, sizeof(out), &e) == KAP_OK
       && strcmp(out, "API_TOKEN=" SECRET) == 0, "env entry");
    e.set = 0;
    ok(kap_secret_env(s, "1X", out, sizeof(out), &e) == KAP_ERROR
       && out[0] == '\0' && strstr(e.msg, "not a variable name"),
       "env: name starting with a digit");
    e.set = 0;
    ok(kap_secret_env(s, "A=B", out, sizeof(out), &e) == KAP_ERROR,
       "env: name with =");
    e.set = 0;
    ok(kap_secret_env(s, "", out, sizeof(out), &e) == KAP_ERROR,
       "env: empty name");
    e.set = 0;
    ok(kap_secret_env(s, "API_TOKEN", out, strlen("API_TOKEN=" SECRET), &e)
       == KAP_ERROR && out[0] == '\0' && strstr(e.msg, "does not fit"),
       "env: too small is an error, not a cut");
    kap_secret_wipe(out, sizeof(out));

    put("d/multi", "line1\nline2\n", 12, 0600);
    ml = kap_secret_load(p, at("d/multi"), &e);
    e.set = 0;
    ok(ml != NULL && kap_secret_header(ml, "{}", out, sizeof(out), &e)
       == KAP_ERROR && strstr(e.msg, "line end") && !strstr(e.msg, "line1"),
       "header: a multi-line secret is refused (no header injection)");
    ok(ml != NULL && kap_secret_env(ml, "K", out, sizeof(out), &e) == KAP_OK
       && strcmp(out, "K=line1\nline2") == 0, "env: multi-line is fine");
    kap_pool_destroy(p);
}

/* redact in, expect want */
static void
red_is(const char *in, const char *want, const char *name)
{
    char out[1024];
    size_t n = kap_secret_redact(in, out, sizeof(out));

    is_str(out, want, name);
    if (n != strlen(out))
        diag("returned %zu for %zu bytes", n, strlen(out));
}

static void
test_redact(void)
{
    const unsigned char raw[] = SECRET;
    unsigned char pre[64];
    char enc[256], in[512], want[512], out[512];
    size_t k, n;
    const char *pfx[] = { "", "u", "us", "usr", "user:", NULL };

    red_is("key " SECRET " end", "key [REDACTED] end", "raw");
    red_is(SECRET SECRET "-" SECRET, "[REDACTED][REDACTED]-[REDACTED]",
           "every occurrence");
    red_is("a " OTHER " b " SECRET, "a [REDACTED] b [REDACTED]",
           "two secrets");
    b64(raw, sizeof(raw) - 1, STD, 1, enc);
    ok(strchr(enc, '+') || strchr(enc, '/'), "the test's base64 has + or /");
    snprintf(in, sizeof(in), "b64=%s;", enc);
    red_is(in, "b64=[REDACTED];", "base64, padded");
    b64(raw, sizeof(raw) - 1, STD, 0, enc);
    snprintf(in, sizeof(in), "b64=%s;", enc);
    red_is(in, "b64=[REDACTED];", "base64, unpadded");
    b64(raw, sizeof(raw) - 1, URL, 0, enc);
    snprintf(in, sizeof(in), "b64url=%s&", enc);
    red_is(in, "b64url=[REDACTED]&", "base64url");
    red_is("q=tok%3Aen%2FAb%2BC9~xyz%FB%FF&r=1", "q=[REDACTED]&r=1",
           "percent-encoded");
    red_is("q=tok%3aen%2fAb%2bC9~xyz%fb%ff", "q=[REDACTED]",
           "percent-encoded, lower case");

    /* HTTP Basic: base64("user:" + secret), every alignment */
    for (k = 0; pfx[k]; k++) {
        n = strlen(pfx[k]);
        memcpy(pre, pfx[k], n);
        memcpy(pre + n, raw, sizeof(raw) - 1);
        b64(pre, n + sizeof(raw) - 1, STD, 1, enc);
        snprintf(in, sizeof(in), "Authorization: Basic %s", enc);
        kap_secret_redact(in, out, sizeof(out));
        /* left: the characters holding bits of the prefix */
        snprintf(want, sizeof(want), "Authorization: Basic %.*s[REDACTED]",
                 (int)((8 * n + 5) / 6), enc);
        is_str(out, want, pfx[k][0] ? "base64 of prefix + secret"
                                    : "base64 of the secret alone");
        /* the same inside a longer encoded text */
        memcpy(pre + n + sizeof(raw) - 1, "!more", 5);
        b64(pre, n + sizeof(raw) - 1 + 5, STD, 1, enc);
        kap_secret_redact(enc, out, sizeof(out));
        ok(strstr(out, "[REDACTED]") != NULL
           && strlen(out) <= (8 * n + 5) / 6 + 10 + 1 + 8,
           "base64 of \"%s\" + secret + \"!more\": %s", pfx[k], out);
    }

    snprintf(in, sizeof(in), "cut here: %.6s", SECRET);
    red_is(in, "cut here: [REDACTED]", "a line ending in a secret's start");
    red_is("tok: not it", "tok: not it", "3 bytes of a secret stay");
    red_is("nothing here", "nothing here", "no secret, copied");

    /* a short buffer: cut, NUL-terminated, length of the whole */
    snprintf(in, sizeof(in), "ab %s cd", SECRET);
    n = kap_secret_redact(in, out, 8);
    ok(n == strlen("ab [REDACTED] cd") && strcmp(out, "ab [RED") == 0,
       "cut to fit, whole length returned (%zu, \"%s\")", n, out);
    n = kap_secret_redact(in, NULL, 0);
    ok(n == strlen("ab [REDACTED] cd"), "outlen 0 only measures");
}

static void
test_log(void)
{
    char path[] = "/tmp/kapd-test-secret-log-XXXXXX";
    char text[16384], fill[KAPD_LOG_LINE_MAX], enc[128];
    struct kap_err e = { 0 };
    ssize_t n;
    int fd;

    fd = mkstemp(path);
    ok(fd >= 0, "temp log file");
    close(fd);
    ok(kapd_log_open(path, &e) == KAP_OK, "log opened");
    kapd_log_set_level(KAP_LOG_INFO);
    b64((const unsigned char *)SECRET, sizeof(SECRET) - 1, STD, 1, enc);
    KAP_LOG(KAP_LOG_ERR, "mcp", 7, "upstream 401 for token %s (%s)",
            SECRET, enc);
    /* a message cut by the log's line limit 6 bytes into the secret */
    memset(fill, 'x', sizeof(fill));
    fill[KAPD_LOG_LINE_MAX - 1 - 6] = '\0';
    KAP_LOG(KAP_LOG_WARN, NULL, 0, "%s%s", fill, SECRET);
    ok(kapd_log_open(NULL, &e) == KAP_OK, "log back to stderr");

    fd = open(path, O_RDONLY);
    n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    if (fd >= 0)
        close(fd);
    unlink(path);
    text[n > 0 ? n : 0] = '\0';
    ok(strstr(text, "mcp: upstream 401 for token [REDACTED] ([REDACTED])\n")
       != NULL, "a log line is redacted (raw and base64)");
    ok(strstr(text, "tok:en") == NULL && strstr(text, "tok\\x3aen") == NULL
       && strstr(text, enc) == NULL, "no form of the secret in the log");
    ok(strstr(text, "xxx\n") != NULL && strstr(text, "tok:") == NULL,
       "a line cut inside the secret shows none of it");
    if (strstr(text, "tok:") != NULL)
        diag("log: %s", text);
}

/* kap_secret_file_read() and kap_secret_new(): a file of several
   credentials read under the rule, each value made a secret of its own */
static void
test_file_values(void)
{
    static const char json[] = "{\"A\": \"first-value-1234\", "
                               "\"B\": \"second-value-5678\"}\n";
    struct kap_pool *p = kap_pool_create();
    struct kap_buf b = { 0 };
    struct kap_err e = { 0 };
    struct kap_secret *a, *bb;
    unsigned live0 = kapd_secret_nlive;
    char out[256];

    put("d/reg.json", json, sizeof(json) - 1, 0600);
    ok(kap_secret_file_read(at("d/reg.json"), &b, &e) == KAP_OK
       && b.len == sizeof(json) - 1 && memcmp(b.data, json, b.len) == 0
       && b.data[b.len] == '\0', "file_read: the whole file, NUL-terminated");
    is_int(kapd_secret_nlive, live0, "file_read registers nothing");
    kap_secret_wipe(b.data, b.cap);
    ok(b.data[0] == '\0' && b.data[b.len - 1] == '\0', "and the caller wipes it");
    kap_buf_free(&b);

    chmod(at("d/reg.json"), 0644);
    e.set = 0;
    ok(kap_secret_file_read(at("d/reg.json"), &b, &e) == KAP_ERROR
       && strstr(e.msg, "credential file") && strstr(e.msg, "chmod 600")
       && b.len == 0, "file_read: a 0644 file refused, with the fix");
    diag("%s", e.msg);
    chmod(at("d/reg.json"), 0600);
    ok(kap_secret_file_read(at("d/link"), &b, &e) == KAP_ERROR,
       "file_read: a symbolic link refused");
    kap_buf_append(&b, "x", 1);
    ok(kap_secret_file_read(at("d/reg.json"), &b, &e) == KAP_ERROR,
       "file_read: a buffer that is not empty refused");
    kap_buf_free(&b);

    a = kap_secret_new(p, "server x header A", "first-value-1234", 16, &e);
    bb = kap_secret_new(p, "server x header B", "second-value-5678", 17, &e);
    ok(a != NULL && bb != NULL && kapd_secret_nlive == live0 + 2,
       "new: two values, each registered");
    kap_secret_redact("A=first-value-1234 B=c2Vjb25kLXZhbHVlLTU2Nzg=", out,
                      sizeof(out));
    is_str(out, "A=[REDACTED] B=[REDACTED]",
           "new: each value is redacted, raw and base64");
    ok(a != NULL && kap_secret_header(a, "X-Key: {}", out, sizeof(out), &e)
                    == KAP_OK && strcmp(out, "X-Key: first-value-1234") == 0,
       "new: injected into a header");
    kap_secret_wipe(out, sizeof(out));
    e.set = 0;
    ok(kap_secret_new(p, "empty one", "", 0, &e) == NULL && e.set
       && strstr(e.msg, "empty one is empty"), "new: empty refused");
    e.set = 0;
    ok(kap_secret_new(p, "nul one", "ab\0cd", 5, &e) == NULL
       && strstr(e.msg, "NUL"), "new: a NUL byte refused");
    kap_pool_destroy(p);
    is_int(kapd_secret_nlive, live0, "new: its pool destroyed, unregistered");
}

int
main(void)
{
    char tmpl[] = "/tmp/kapd-test-secret-XXXXXX";
    struct kap_pool *p, *p2;
    struct kap_secret *s, *s2, *shortsec;
    struct kap_err e = { 0 };
    long lck0, lck1;
    int dd0, dd1, rc;
    char out[128];

    if (mkdtemp(tmpl) == NULL) {
        printf("1..0 # SKIP mkdtemp: %s\n", strerror(errno));
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s", tmpl);
    test_refusals();

    is_int(kapd_secret_nlive, 0, "no secret live after the refusals");
    lck0 = status_kb("VmLck:");
    dd0 = dontdump_count();
    p = kap_pool_create();
    s = kap_secret_load(p, at("d/token"), &e);
    if (!ok(s != NULL, "a 0600 file in a 0700 directory loads"))
        diag("%s", e.msg);
    is_int(kapd_secret_nlive, 1, "registered for redaction");
    lck1 = status_kb("VmLck:");
    dd1 = dontdump_count();
    if (mlock_visible())
        ok(lck1 > lck0, "its memory is locked (VmLck %ld -> %ld kB)",
           lck0, lck1);
    else
        diag("mlock() does not show in VmLck here: not tested");
    ok(dd0 < 0 || dd1 > dd0, "its memory is out of core dumps "
       "(dd mappings %d -> %d)", dd0, dd1);

    p2 = kap_pool_create();
    put("d/other", OTHER "\r\n", sizeof(OTHER) + 1, 0400);
    s2 = kap_secret_load(p2, at("d/other"), &e);
    ok(s2 != NULL, "a second secret (mode 0400, CRLF) loads");
    put("d/short", "abc\n", 4, 0600);
    shortsec = kap_secret_load(p2, at("d/short"), &e);
    ok(shortsec != NULL && kapd_secret_nlive == 2,
       "a 3-byte secret loads but is not redacted");
    put("d/max", "", 0, 0600);
    {
        static char max[KAP_SECRET_MAX];
        memset(max, 'm', sizeof(max));
        put("d/max", max, sizeof(max), 0600);
    }
    ok(kap_secret_load(p2, at("d/max"), &e) != NULL,
       "a secret of KAP_SECRET_MAX bytes loads");

    test_file_values();
    if (s != NULL) {
        test_inject(s);
        test_redact();
        test_log();
    }

    kap_pool_destroy(p2);
    is_int(kapd_secret_nlive, 1, "pool destroyed: its secrets unregistered");
    red_is("a " OTHER " b " SECRET, "a " OTHER " b [REDACTED]",
           "only live secrets are redacted");
    kap_pool_destroy(p);
    is_int(kapd_secret_nlive, 0, "none live");
    ok(status_kb("VmLck:") <= lck0 || lck0 < 0, "unlocked (VmLck %ld kB)",
       status_kb("VmLck:"));
    ok(dontdump_count() <= dd0 || dd0 < 0, "unmapped");
    kap_secret_redact("plain " SECRET, out, sizeof(out));
    is_str(out, "plain " SECRET, "with none live, redact copies");

    rc = done_testing();
    tap_rmtree(dir);
    return rc;
}
