/*
 * kapd_conf_read.c -- reading the configuration files for a build: the
 * main file with its @include lines expanded (libconfig 1.5 has no
 * include hook: relative to the including file, glob patterns such as
 * conf.d/<glob>.conf), a map from every line of the joined text back to
 * its file and line, each file's SHA-256 for the content watch, and the
 * global configuration (-g) merged under the main one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kapd.h"
#include "kapd_conf_read.h"

/* ---- reading files: @include expansion, line map, digests ------------- */

static void
sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0xee, 32);
}

static int
attempt_add(struct kapd_conf_text *rd, const char *path,
            const unsigned char d[32], const char *ifile, int iline)
{
    struct kapd_build *b = rd->b;

    if (b->nfiles >= KAPD_MAX_CONF_FILES) {
        kap_err_set(rd->err, "too many configuration files (more than %d)",
                    KAPD_MAX_CONF_FILES);
        if (ifile != NULL)
            snprintf(rd->err->file, sizeof(rd->err->file), "%s", ifile),
            rd->err->line = iline;
        return KAP_ERROR;
    }
    b->files[b->nfiles].path = strdup(path);
    if (b->files[b->nfiles].path == NULL) {
        kap_err_set(rd->err, "out of memory");
        return KAP_ERROR;
    }
    memcpy(b->files[b->nfiles].digest, d, 32);
    b->nfiles++;
    return KAP_OK;
}

/* read a whole file (heap, NUL-terminated); NULL and errno on failure */
char *
kapd_conf_read_file(const char *path, size_t *len, size_t max)
{
    struct stat st;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        /* a FIFO or a device would block or never end */
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : ENOTSUP;
        return NULL;
    }
    for (;;) {
        ssize_t r;
        if (n + 4097 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 8192;
            if (cap > max + 4098)
                cap = max + 4098;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                close(fd);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t) r;
        if (n > max) {
            free(buf);
            close(fd);
            errno = EFBIG;
            return NULL;
        }
    }
    close(fd);
    if (buf == NULL && (buf = malloc(1)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* digest of a watched entry as it is now (all zero when unreadable) */
void
kapd_conf_digest(const char *path, unsigned char d[32])
{
    memset(d, 0, 32);
    if (strncmp(path, "glob:", 5) == 0) {
        glob_t g;
        struct kap_buf names = { 0 };
        size_t i;
        int rc = glob(path + 5, 0, NULL, &g);
        if (rc == 0) {
            for (i = 0; i < g.gl_pathc; i++) {
                kap_buf_append(&names, g.gl_pathv[i], strlen(g.gl_pathv[i]));
                kap_buf_append(&names, "\n", 1);
            }
            globfree(&g);
        }
        sha256(names.data ? names.data : "", names.len, d);
        kap_buf_free(&names);
    } else {
        size_t len;
        char *buf = kapd_conf_read_file(path, &len, KAPD_CONF_MAX_BYTES);
        if (buf != NULL) {
            sha256(buf, len, d);
            free(buf);
        }
    }
}

static int
map_add(struct kapd_conf_text *rd, const char *file, int line)
{
    if (rd->nmap == rd->capmap) {
        size_t cap = rd->capmap ? rd->capmap * 2 : 256;
        struct kapd_src_line *nm = realloc(rd->map, cap * sizeof(*nm));
        if (nm == NULL)
            return KAP_ERROR;
        rd->map = nm;
        rd->capmap = cap;
    }
    rd->map[rd->nmap].file = file;
    rd->map[rd->nmap].line = line;
    rd->nmap++;
    return KAP_OK;
}

void
kapd_conf_err_pos(struct kap_err *err, const char *file, int line)
{
    if (err != NULL && file != NULL) {
        snprintf(err->file, sizeof(err->file), "%s", file);
        err->line = line;
    }
}

static int read_conf(struct kapd_conf_text *rd, const char *path, int depth,
                     const char *ifile, int iline);

/*
 * Whether a block comment is open at the end of the line p..end, given
 * whether one was open at its start (strings and # // comments skipped),
 * so that an @include inside a block comment stays a comment.
 */
static int
in_block_comment(const char *p, const char *end, int in)
{
    while (p < end) {
        if (in) {
            if (end - p >= 2 && p[0] == '*' && p[1] == '/') {
                in = 0;
                p += 2;
            } else {
                p++;
            }
        } else if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && p + 1 < end)
                    p++;
            p++;
        } else if (*p == '#' || (end - p >= 2 && p[0] == '/' && p[1] == '/')) {
            return 0;
        } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
            in = 1;
            p += 2;
        } else {
            p++;
        }
    }
    return in;
}

/* an @include line: pattern resolved against the including file's dir */
static int
do_include(struct kapd_conf_text *rd, const char *file, int line,
           const char *pat, int depth)
{
    char full[PATH_MAX];
    const char *slash;
    int n;

    if (pat[0] == '\0') {
        kap_err_set(rd->err, "empty @include");
        kapd_conf_err_pos(rd->err, file, line);
        return KAP_ERROR;
    }
    if (pat[0] == '/') {
        n = snprintf(full, sizeof(full), "%s", pat);
    } else if ((slash = strrchr(file, '/')) != NULL) {
        n = snprintf(full, sizeof(full), "%.*s/%s", (int) (slash - file),
                     file, pat);
    } else {
        n = snprintf(full, sizeof(full), "%s", pat);
    }
    if (n < 0 || (size_t) n >= sizeof(full)) {
        kap_err_set(rd->err, "@include path too long");
        kapd_conf_err_pos(rd->err, file, line);
        return KAP_ERROR;
    }
    if (strpbrk(pat, "*?[") != NULL) {
        glob_t g;
        unsigned char d[32];
        struct kap_buf names = { 0 };
        char key[PATH_MAX + 8];
        size_t i;
        int rc = glob(full, 0, NULL, &g);

        if (rc != 0 && rc != GLOB_NOMATCH) {
            kap_err_set(rd->err, "@include \"%s\": glob failed", pat);
            kapd_conf_err_pos(rd->err, file, line);
            return KAP_ERROR;
        }
        if (rc == 0) {
            for (i = 0; i < g.gl_pathc; i++) {
                kap_buf_append(&names, g.gl_pathv[i], strlen(g.gl_pathv[i]));
                kap_buf_append(&names, "\n", 1);
            }
        }
        sha256(names.data ? names.data : "", names.len, d);
        kap_buf_free(&names);
        snprintf(key, sizeof(key), "glob:%s", full);
        if (attempt_add(rd, key, d, file, line) != KAP_OK) {
            if (rc == 0)
                globfree(&g);
            return KAP_ERROR;
        }
        if (rc == 0) {
            for (i = 0; i < g.gl_pathc; i++) {
                if (read_conf(rd, g.gl_pathv[i], depth + 1, file, line)
                    != KAP_OK) {
                    globfree(&g);
                    return KAP_ERROR;
                }
            }
            globfree(&g);
        }
        return KAP_OK;
    }
    return read_conf(rd, full, depth + 1, file, line);
}

static int
read_conf(struct kapd_conf_text *rd, const char *path, int depth,
          const char *ifile, int iline)
{
    unsigned char d[32];
    const char *file, *p, *end;
    size_t len;
    char *buf;
    int line = 0, comment = 0;

    if (depth > KAPD_INCLUDE_DEPTH) {
        kap_err_set(rd->err, "@include nested deeper than %d (a loop?)",
                    KAPD_INCLUDE_DEPTH);
        kapd_conf_err_pos(rd->err, ifile, iline);
        return KAP_ERROR;
    }
    buf = kapd_conf_read_file(path, &len, KAPD_CONF_MAX_BYTES - rd->total);
    if (buf == NULL) {
        int e = errno;
        memset(d, 0, sizeof(d));
        attempt_add(rd, path, d, ifile, iline);
        if (e == EFBIG)
            kap_err_set(rd->err, "configuration too large (more than %u "
                        "bytes) reading \"%s\"", KAPD_CONF_MAX_BYTES, path);
        else
            kap_err_set(rd->err, "cannot read configuration file \"%s\": %s",
                        path, strerror(e));
        kapd_conf_err_pos(rd->err, ifile, iline);
        return KAP_ERROR;
    }
    rd->total += len;
    sha256(buf, len, d);
    if (attempt_add(rd, path, d, ifile, iline) != KAP_OK) {
        free(buf);
        return KAP_ERROR;
    }
    if (memchr(buf, '\0', len) != NULL) {
        kap_err_set(rd->err, "configuration file \"%s\" contains a NUL byte",
                    path);
        kapd_conf_err_pos(rd->err, ifile, iline);
        free(buf);
        return KAP_ERROR;
    }
    file = kap_pstrdup(rd->pool, path);
    if (file == NULL) {
        kap_err_set(rd->err, "out of memory");
        free(buf);
        return KAP_ERROR;
    }

    for (p = buf; p < buf + len; p = end + 1) {
        const char *q, *nl = memchr(p, '\n', (size_t) (buf + len - p));
        end = nl ? nl : buf + len;
        line++;

        q = p;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (!comment && (size_t) (end - q) > 8
            && memcmp(q, "@include", 8) == 0
            && (q[8] == ' ' || q[8] == '\t')) {
            const char *s, *e;
            char pat[PATH_MAX];
            q += 8;
            while (q < end && (*q == ' ' || *q == '\t'))
                q++;
            if (q >= end || *q != '"'
                || (e = memchr(q + 1, '"', (size_t) (end - q - 1))) == NULL) {
                kap_err_set(rd->err, "@include needs a quoted file name");
                kapd_conf_err_pos(rd->err, file, line);
                free(buf);
                return KAP_ERROR;
            }
            s = q + 1;
            if ((size_t) (e - s) >= sizeof(pat)) {
                kap_err_set(rd->err, "@include path too long");
                kapd_conf_err_pos(rd->err, file, line);
                free(buf);
                return KAP_ERROR;
            }
            memcpy(pat, s, (size_t) (e - s));
            pat[e - s] = '\0';
            for (q = e + 1; q < end && (*q == ' ' || *q == '\t'
                                        || *q == '\r' || *q == ';'); q++)
                ;
            if (q < end && *q != '#' && !(end - q >= 2 && q[0] == '/'
                                          && q[1] == '/')) {
                kap_err_set(rd->err, "unexpected text after @include");
                kapd_conf_err_pos(rd->err, file, line);
                free(buf);
                return KAP_ERROR;
            }
            if (do_include(rd, file, line, pat, depth) != KAP_OK) {
                free(buf);
                return KAP_ERROR;
            }
            continue;
        }
        comment = in_block_comment(p, end, comment);
        if (kap_buf_append(&rd->text, p, (size_t) (end - p)) != KAP_OK
            || kap_buf_append(&rd->text, "\n", 1) != KAP_OK
            || map_add(rd, file, line) != KAP_OK) {
            kap_err_set(rd->err, "out of memory");
            free(buf);
            return KAP_ERROR;
        }
        if (nl == NULL)
            break;
    }
    free(buf);
    return KAP_OK;
}

/* give every setting its true file:line back */
void
kapd_conf_fix_positions(config_setting_t *s, const struct kapd_conf_text *rd)
{
    int i, n;

    if (s->line > 0 && s->line <= rd->nmap) {
        const struct kapd_src_line *m = &rd->map[s->line - 1];
        s->file = m->file;
        s->line = (unsigned) m->line;
    }
    if (config_setting_is_aggregate(s)) {
        n = config_setting_length(s);
        for (i = 0; i < n; i++)
            kapd_conf_fix_positions(config_setting_get_elem(s, (unsigned) i),
                                    rd);
    }
}

/* ---- the global configuration (-g), merged under the main one ----------- */

static int merge_group(config_setting_t *dst, const config_setting_t *src);

/* deep copy of src as a new member/element of parent (name NULL in lists) */
static config_setting_t *
copy_setting(config_setting_t *parent, const char *name,
             const config_setting_t *src)
{
    config_setting_t *d;
    int i, n, t = config_setting_type(src);

    d = config_setting_add(parent, name, t);
    if (d == NULL)
        return NULL;
    switch (t) {
    case CONFIG_TYPE_INT:
        config_setting_set_int(d, config_setting_get_int(src));
        break;
    case CONFIG_TYPE_INT64:
        config_setting_set_int64(d, config_setting_get_int64(src));
        break;
    case CONFIG_TYPE_FLOAT:
        config_setting_set_float(d, config_setting_get_float(src));
        break;
    case CONFIG_TYPE_BOOL:
        config_setting_set_bool(d, config_setting_get_bool(src));
        break;
    case CONFIG_TYPE_STRING:
        config_setting_set_string(d, config_setting_get_string(src));
        break;
    default:                            /* group, list, array */
        n = config_setting_length(src);
        for (i = 0; i < n; i++) {
            const config_setting_t *e =
                config_setting_get_elem(src, (unsigned) i);
            if (copy_setting(d, t == CONFIG_TYPE_GROUP ? config_setting_name(e)
                                                       : NULL, e) == NULL)
                return NULL;
        }
        break;
    }
    d->file = src->file;                /* strings in the generation pool */
    d->line = src->line;
    return d;
}

/* the "name" member of a group, or NULL */
static const char *
entry_name(const config_setting_t *g)
{
    const char *v = NULL;

    if (config_setting_type(g) == CONFIG_TYPE_GROUP)
        config_setting_lookup_string(g, "name", &v);
    return v;
}

/* whether list/array dst already holds an element equal to e (strings, or
 * groups with the same "name") */
static int
list_has(const config_setting_t *dst, const config_setting_t *e)
{
    int i, n = config_setting_length(dst);
    const char *en = config_setting_type(e) == CONFIG_TYPE_STRING
                     ? config_setting_get_string(e) : entry_name(e);

    if (en == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        const config_setting_t *d = config_setting_get_elem(dst, (unsigned) i);
        const char *dn = config_setting_type(d) == CONFIG_TYPE_STRING
                         ? config_setting_get_string(d) : entry_name(d);
        if (dn != NULL && strcmp(dn, en) == 0)
            return 1;
    }
    return 0;
}

/*
 * Merge src (global) into dst (project): missing settings are copied;
 * groups merge recursively; lists and arrays concatenate (a string or a
 * named group already present is not repeated: the project wins on a
 * tool or server of the same name); every other value stays the
 * project's.
 */
static int
merge_group(config_setting_t *dst, const config_setting_t *src)
{
    int i, j, n = config_setting_length(src);

    for (i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(src, (unsigned) i);
        const char *name = config_setting_name(s);
        config_setting_t *d = config_setting_get_member(dst, name);
        int st = config_setting_type(s);

        if (d == NULL) {
            if (copy_setting(dst, name, s) == NULL)
                return KAP_ERROR;
            continue;
        }
        if (st == CONFIG_TYPE_GROUP && config_setting_is_group(d)) {
            if (merge_group(d, s) != KAP_OK)
                return KAP_ERROR;
        } else if ((st == CONFIG_TYPE_LIST || st == CONFIG_TYPE_ARRAY)
                   && config_setting_is_aggregate(d)
                   && !config_setting_is_group(d)) {
            int m = config_setting_length(s);
            for (j = 0; j < m; j++) {
                const config_setting_t *e =
                    config_setting_get_elem(s, (unsigned) j);
                if (list_has(d, e))
                    continue;
                if (config_setting_is_array(d) && config_setting_length(d) > 0
                    && config_setting_type(e)
                       != config_setting_type(config_setting_get_elem(d, 0)))
                    return KAP_ERROR;       /* arrays hold one type */
                if (copy_setting(d, NULL, e) == NULL)
                    return KAP_ERROR;
            }
        }
        /* scalars and type mismatches: the project's value stays */
    }
    return KAP_OK;
}

/* read the global file (if it exists) and merge it under root */
int
kapd_conf_merge_global(config_setting_t *root, const char *path,
                       struct kap_pool *pool, struct kapd_build *b,
                       struct kap_err *err)
{
    struct kapd_conf_text rd2;
    config_t g;
    int rc = KAP_OK;

    if (access(path, F_OK) != 0)
        return KAP_OK;                  /* no global file: nothing to merge */
    memset(&rd2, 0, sizeof(rd2));
    rd2.b = b;
    rd2.pool = pool;
    rd2.err = err;
    if (read_conf(&rd2, path, 0, NULL, 0) != KAP_OK) {
        kap_buf_free(&rd2.text);
        free(rd2.map);
        return KAP_ERROR;
    }
    config_init(&g);
    if (config_read_string(&g, rd2.text.data ? rd2.text.data : "")
        != CONFIG_TRUE) {
        int l = config_error_line(&g);
        kap_err_set(err, "%s", config_error_text(&g) ? config_error_text(&g)
                                                     : "syntax error");
        if (l > 0 && (size_t) l <= rd2.nmap)
            kapd_conf_err_pos(err, rd2.map[l - 1].file, rd2.map[l - 1].line);
        else
            kapd_conf_err_pos(err, path, l);
        rc = KAP_ERROR;
    } else {
        kapd_conf_fix_positions(config_root_setting(&g), &rd2);
        if (merge_group(root, config_root_setting(&g)) != KAP_OK) {
            kap_err_set(err, "cannot merge the global configuration \"%s\" "
                        "(an array mixes types?)", path);
            kapd_conf_err_pos(err, path, 0);
            rc = KAP_ERROR;
        }
    }
    config_destroy(&g);
    kap_buf_free(&rd2.text);
    free(rd2.map);
    return rc;
}

int
kapd_conf_read(struct kapd_conf_text *rd, const char *path)
{
    return read_conf(rd, path, 0, NULL, 0);
}
