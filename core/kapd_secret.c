/*
 * kapd_secret.c -- credentials: load, inject, redact (kap_secret.h).
 *
 * Loading.  The path's directories are walked one component at a time
 * from "/" (or ".") with openat(O_PATH | O_NOFOLLOW), and each descriptor
 * is fstat()ed: a symbolic link anywhere in the path is refused, and what
 * is checked is what was opened, not a name that could be swapped later.
 * The last directory must be owned by the euid or root, mode 0700 or
 * stricter.  The file is opened relative to it with O_NOFOLLOW |
 * O_CLOEXEC | O_NONBLOCK (a FIFO cannot block the load) and fstat()ed:
 * a regular file owned by the euid or root, mode 0600 or stricter, at most
 * KAP_SECRET_MAX bytes.  The one exception, a file name that is a link
 * of the kubelet's Secret volume layout, is kapd_secret_kubelet.c's.
 *
 * Memory.  Each secret has an anonymous mapping of its own, sized from
 * the file's size before anything is read, so the bytes are never copied
 * through a buffer that is freed unwiped: it is mlock()ed (when
 * RLIMIT_MEMLOCK allows), MADV_DONTDUMP'd, and holds the bookkeeping, the
 * raw bytes and every encoded form redaction looks for.  A pool cleanup
 * unregisters it, wipes the whole mapping (explicit_bzero) and unmaps it.
 *
 * Redaction.  Live secrets form a process-wide list (kapd is one thread).
 * Each has up to SECRET_FORMS byte strings to replace: raw, percent-
 * encoded (upper and lower case hex), base64 standard padded and
 * unpadded, base64url unpadded, and the "cores" of the base64 encodings
 * of the secret shifted by 0, 1 and 2 bytes in both alphabets: the
 * characters that depend on the secret's bytes only, which appear
 * wherever the secret sits in a longer encoded text ("user:token" in
 * HTTP Basic credentials), alone and with the encoding's end (for a
 * secret that ends the encoded text).  kap_secret_redact() finds the next
 * match of each form with memmem() (each form caches its next match, so a
 * line is searched once per form), replaces the earliest (longest on a
 * tie), and at the end replaces a tail that is the start of a form, for
 * lines cut by a length limit inside a secret.
 */
#include "kapd.h"
#include "kapd_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SECRET_FORMS 24

struct secret_form {
    const char *p;
    size_t      n;
    size_t      next;                   /* redact scratch: next match */
};

struct kap_secret {
    struct kap_secret  *next, *prev;    /* live list */
    void               *map;            /* the mapping, this struct first */
    size_t              maplen;
    int                 locked;         /* mlock() succeeded */
    const char         *path;           /* as loaded, for messages */
    unsigned char      *raw;            /* NUL-terminated, no NUL inside */
    size_t              len;
    size_t              nforms;         /* 0 when len < REDACT_MIN */
    struct secret_form  forms[SECRET_FORMS];
};

unsigned kapd_secret_nlive;
static struct kap_secret *secret_live;

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
kap_secret_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        explicit_bzero(p, n);
}

/* ---- memory ------------------------------------------------------------ */

static void
secret_unmap(struct kap_secret *s)
{
    void  *map = s->map;
    size_t maplen = s->maplen;
    int    locked = s->locked;

    explicit_bzero(map, maplen);        /* s itself lives in map */
    if (locked)
        munlock(map, maplen);
    munmap(map, maplen);
}

static void
secret_release(void *data)
{
    struct kap_secret *s = data;

    if (s->prev)
        s->prev->next = s->next;
    else if (secret_live == s)
        secret_live = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->nforms > 0 && kapd_secret_nlive > 0)
        kapd_secret_nlive--;
    secret_unmap(s);
}

#define ROUND16(n) (((n) + 15) & ~(size_t)15)

/* A mapping for a secret of at most cap bytes read from path; NULL with
   errno on failure.  The layout is carved by secret_carve(). */
static struct kap_secret *
secret_map(size_t cap, const char *path)
{
    size_t b64 = 4 * ((cap + 2 + 2) / 3) + 1;   /* shift 2, NUL */
    size_t need, page = (size_t)sysconf(_SC_PAGESIZE);
    struct kap_secret *s;
    void *map;

    need = ROUND16(sizeof(*s)) + ROUND16(strlen(path) + 1)
           + ROUND16(cap + 2)                   /* raw, +1 to see growth */
           + 2 * ROUND16(3 * cap + 1)           /* percent-encoded */
           + 6 * ROUND16(b64);                  /* base64, 2 alphabets x 3 */
    if (page == 0 || page > SIZE_MAX / 2)
        page = 4096;
    need = (need + page - 1) / page * page;
    map = mmap(NULL, need, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
#ifdef MADV_DONTDUMP
    (void)madvise(map, need, MADV_DONTDUMP);
#endif
    s = map;
    s->map = map;
    s->maplen = need;
    s->locked = mlock(map, need) == 0;
    s->path = (char *)map + ROUND16(sizeof(*s));
    memcpy((char *)s->path, path, strlen(path) + 1);
    s->raw = (unsigned char *)s->path + ROUND16(strlen(path) + 1);
    return s;
}

/* ---- encoded forms ---------------------------------------------------- */

/* base64 of (shift zero bytes, then src[0..n)) into out; its length */
static size_t
b64_encode(const unsigned char *src, size_t n, size_t shift,
           const char *alpha, int pad, char *out)
{
    size_t total = n + shift, i, o = 0;
    uint32_t v;

#define B64_BYTE(j) ((j) < shift ? 0u : (uint32_t)src[(j) - shift])
    for (i = 0; i < total; i += 3) {
        v = B64_BYTE(i) << 16;
        if (i + 1 < total)
            v |= B64_BYTE(i + 1) << 8;
        if (i + 2 < total)
            v |= B64_BYTE(i + 2);
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        if (i + 1 < total)
            out[o++] = alpha[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (i + 2 < total)
            out[o++] = alpha[v & 63];
        else if (pad)
            out[o++] = '=';
    }
#undef B64_BYTE
    out[o] = '\0';
    return o;
}

/* RFC 3986 percent-encoding of every byte but the unreserved ones */
static size_t
pct_encode(const unsigned char *src, size_t n, const char *hex,
           char *out)
{
    size_t i, o = 0;
    unsigned char c;

    for (i = 0; i < n; i++) {
        c = src[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

static void
form_add(struct kap_secret *s, const char *p, size_t n)
{
    size_t i;

    if (n < KAP_SECRET_REDACT_MIN || s->nforms >= SECRET_FORMS)
        return;
    for (i = 0; i < s->nforms; i++)
        if (s->forms[i].n == n && memcmp(s->forms[i].p, p, n) == 0)
            return;
    s->forms[s->nforms].p = p;
    s->forms[s->nforms].n = n;
    s->nforms++;
}

/* Fill the forms of s (raw read, len set); cap sized the mapping. */
static void
secret_forms(struct kap_secret *s, size_t cap)
{
    size_t b64 = ROUND16(4 * ((cap + 2 + 2) / 3) + 1), n, k, first, last;
    char  *at = (char *)s->raw + ROUND16(cap + 2);
    const char *alpha[2] = { b64_std, b64_url };
    int    a;

    s->nforms = 0;
    if (s->len < KAP_SECRET_REDACT_MIN)
        return;
    form_add(s, (const char *)s->raw, s->len);
    n = pct_encode(s->raw, s->len, "0123456789ABCDEF", at);
    form_add(s, at, n);
    at += ROUND16(3 * cap + 1);
    n = pct_encode(s->raw, s->len, "0123456789abcdef", at);
    form_add(s, at, n);
    at += ROUND16(3 * cap + 1);
    /* base64 in both alphabets of the secret after k = 0, 1, 2 bytes */
    for (a = 0; a < 2; a++) {
        for (k = 0; k < 3; k++) {
            n = b64_encode(s->raw, s->len, k, alpha[a], a == 0, at);
            /* characters made of the secret's bits only: bits [6i, 6i+6)
               lie in bytes k .. k+len-1 */
            first = (8 * k + 5) / 6;
            last = (8 * (k + s->len) - 6) / 6;
            /* to the end (the secret ends the encoded text), padded as
               encoded and unpadded; for k = 0 the whole encoding */
            if (n > first)
                form_add(s, at + first, n - first);
            while (n > 0 && at[n - 1] == '=')
                n--;
            if (n > first)
                form_add(s, at + first, n - first);
            /* the core: the secret inside a longer encoded text */
            if (last >= first)
                form_add(s, at + first, last - first + 1);
            at += b64;
        }
    }
}

/* ---- loading ------------------------------------------------------------ */

/*
 * Open the directory dir (len bytes of path) component by component, no
 * symbolic link followed; the descriptor (O_PATH) or -1 with err set.
 */
static int
secret_dir_open(const char *what, const char *path, size_t dlen,
                struct kap_err *err)
{
    char        comp[NAME_MAX + 1];
    size_t      i = 0, j;
    struct stat st;
    int         fd, nfd;

    fd = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        kap_err_set(err, "%s file %s: cannot open \"%s\": %s", what, path,
                    path[0] == '/' ? "/" : ".", strerror(errno));
        return -1;
    }
    while (i < dlen) {
        while (i < dlen && path[i] == '/')
            i++;
        for (j = i; j < dlen && path[j] != '/'; j++)
            ;
        if (j == i)
            break;
        if (j - i > NAME_MAX) {
            kap_err_set(err, "%s file %s: a path component is longer "
                        "than %d bytes", what, path, NAME_MAX);
            goto fail;
        }
        memcpy(comp, path + i, j - i);
        comp[j - i] = '\0';
        i = j;
        if (strcmp(comp, ".") == 0)
            continue;
        nfd = openat(fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            kap_err_set(err, "%s directory %.*s: %s%s", what, (int)j, path,
                        strerror(errno), errno == ENOENT
                        ? ": create it with install -d -m 700" : "");
            goto fail;
        }
        close(fd);
        fd = nfd;
        if (fstat(fd, &st) != 0) {
            kap_err_set(err, "%s directory %.*s: %s", what, (int)j, path,
                        strerror(errno));
            goto fail;
        }
        if (S_ISLNK(st.st_mode)) {
            kap_err_set(err, "%s path %.*s is a symbolic link (refused): "
                        "name the real directory in the path instead",
                        what, (int)j, path);
            goto fail;
        }
        if (!S_ISDIR(st.st_mode)) {
            kap_err_set(err, "%s path %.*s is not a directory", what,
                        (int)j, path);
            goto fail;
        }
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* the directory checks; dir is its name for messages */
static int
secret_dir_check(const char *what, int dfd, const char *dir,
                 struct kap_err *err)
{
    struct stat st;
    uid_t       euid = geteuid();

    if (fstat(dfd, &st) != 0) {
        kap_err_set(err, "%s directory %s: %s", what, dir,
                    strerror(errno));
        return KAP_ERROR;
    }
    if (st.st_uid != euid && st.st_uid != 0) {
        kap_err_set(err, "%s directory %s is owned by uid %lu, not by "
                    "kapd's uid %lu or root: run chown %lu %s", what, dir,
                    (unsigned long)st.st_uid, (unsigned long)euid,
                    (unsigned long)euid, dir);
        return KAP_ERROR;
    }
    if ((st.st_mode & 077) != 0) {
        kap_err_set(err, "%s directory %s is mode %04o: run chmod 700 "
                    "%s", what, dir, (unsigned)(st.st_mode & 07777), dir);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* gid is kapd's effective group or one of its supplementary groups */
static int
gid_ours(gid_t gid)
{
    gid_t g[NGROUPS_MAX];
    int   i, n;

    if (gid == getegid())
        return 1;
    n = getgroups(NGROUPS_MAX, g);
    for (i = 0; i < n; i++)
        if (g[i] == gid)
            return 1;
    return 0;
}

int
kapd_secret_file_check(const char *what, const struct stat *st,
                       const char *path, int group_read,
                       struct kap_err *err)
{
    uid_t  euid = geteuid();
    mode_t bad = group_read && gid_ours(st->st_gid) ? 037 : 077;

    if (!S_ISREG(st->st_mode)) {
        kap_err_set(err, "%s file %s is not a regular file (%s): put "
                    "it in a plain file", what, path,
                    S_ISDIR(st->st_mode) ? "a directory"
                    : S_ISFIFO(st->st_mode) ? "a FIFO"
                    : S_ISSOCK(st->st_mode) ? "a socket" : "a device");
        return KAP_ERROR;
    }
    if (st->st_uid != euid && st->st_uid != 0) {
        kap_err_set(err, "%s file %s is owned by uid %lu, not by kapd's "
                    "uid %lu or root: run chown %lu %s", what, path,
                    (unsigned long)st->st_uid, (unsigned long)euid,
                    (unsigned long)euid, path);
        return KAP_ERROR;
    }
    if ((st->st_mode & bad) != 0 && group_read) {
        kap_err_set(err, "%s file %s is mode %04o (group %lu): set the "
                    "Secret volume's defaultMode to 0440 and the pod's "
                    "fsGroup to one of kapd's groups", what, path,
                    (unsigned)(st->st_mode & 07777),
                    (unsigned long)st->st_gid);
        return KAP_ERROR;
    }
    if ((st->st_mode & bad) != 0) {
        kap_err_set(err, "%s file %s is mode %04o: run chmod 600 %s",
                    what, path, (unsigned)(st->st_mode & 07777), path);
        return KAP_ERROR;
    }
    if (st->st_size > KAP_SECRET_MAX) {
        kap_err_set(err, "%s file %s is %lld bytes, over the limit of "
                    "%d: a secret file holds one credential", what, path,
                    (long long)st->st_size, KAP_SECRET_MAX);
        return KAP_ERROR;
    }
    if (st->st_size == 0) {
        kap_err_set(err, "%s file %s is empty: write the credential "
                    "into it", what, path);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* Read up to size + 1 bytes of fd into p (room for that many): one more
   than fstat said means the file grew.  The count, or -1 with errno. */
static ssize_t
secret_read_upto(int fd, void *p, size_t size)
{
    size_t got = 0;
    ssize_t n;

    while (got <= size) {
        n = read(fd, (char *)p + got, size + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Read fd (size bytes by its stat) into a new mapping; NULL with err. */
static struct kap_secret *
secret_read(int fd, size_t size, const char *path,
            struct kap_err *err)
{
    struct kap_secret *s;
    size_t got;
    ssize_t n;

    s = secret_map(size, path);
    if (s == NULL) {
        kap_err_set(err, "secret file %s: cannot map memory: %s", path,
                    strerror(errno));
        return NULL;
    }
    if ((n = secret_read_upto(fd, s->raw, size)) < 0) {
        kap_err_set(err, "secret file %s: cannot read: %s", path,
                    strerror(errno));
        goto fail;
    }
    got = (size_t)n;
    if (got > size) {
        kap_err_set(err, "secret file %s grew while it was read: load it "
                    "again once it is written", path);
        goto fail;
    }
    while (got > 0 && (s->raw[got - 1] == '\n' || s->raw[got - 1] == '\r'))
        got--;
    s->raw[got] = '\0';
    s->len = got;
    if (got == 0) {
        kap_err_set(err, "secret file %s is empty (or only line ends): "
                    "write the credential into it", path);
        goto fail;
    }
    if (memchr(s->raw, '\0', got) != NULL) {
        kap_err_set(err, "secret file %s holds a NUL byte: store a binary "
                    "credential encoded (base64, hex)", path);
        goto fail;
    }
    secret_forms(s, size);
    return s;
fail:
    secret_unmap(s);
    return NULL;
}

int
kapd_secret_open(const char *what, const char *path, struct stat *st,
                 struct kap_err *err)
{
    const char  *slash, *name;
    char         dir[PATH_MAX];
    struct stat  lst;
    size_t       dlen;
    int          dfd, fd = -1;

    if (path == NULL || path[0] == '\0') {
        kap_err_set(err, "%s file: no path given", what);
        return -1;
    }
    slash = strrchr(path, '/');
    name = slash ? slash + 1 : path;
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        kap_err_set(err, "%s path %s names a directory: name the file "
                    "that holds it", what, path);
        return -1;
    }
    dlen = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (dlen >= sizeof(dir)) {
        kap_err_set(err, "%s file %s: path too long", what, path);
        return -1;
    }
    memcpy(dir, slash ? path : ".", slash ? dlen : 1);
    dir[slash ? dlen : 1] = '\0';

    dfd = secret_dir_open(what, path, dlen, err);
    if (dfd < 0)
        return -1;
    /* a link: the kubelet's Secret volume layout or a refusal */
    if (fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0
        && S_ISLNK(lst.st_mode)) {
        fd = kapd_secret_kubelet_open(what, path, dfd, dir, name, &lst, st,
                                      err);
        goto out;
    }
    if (secret_dir_check(what, dfd, dir, err) != KAP_OK)
        goto out;
    /* a clear refusal before opening anything that is not a plain file */
    if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0
        && kapd_secret_file_check(what, st, path, 0, err) != KAP_OK)
        goto out;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
                           | O_NOCTTY);
    if (fd < 0) {
        if (errno == ELOOP)
            kap_err_set(err, "%s file %s is a symbolic link (refused): "
                        "name the file itself", what, path);
        else
            kap_err_set(err, "%s file %s: %s", what, path, strerror(errno));
        goto out;
    }
    /* what decides: the opened file, not the name */
    if (fstat(fd, st) != 0) {
        kap_err_set(err, "%s file %s: %s", what, path, strerror(errno));
        close(fd);
        fd = -1;
    } else if (kapd_secret_file_check(what, st, path, 0, err) != KAP_OK) {
        close(fd);
        fd = -1;
    }
out:
    close(dfd);
    return fd;
}

/* s goes live: owned by pool, registered for redaction */
static struct kap_secret *
secret_live_add(struct kap_pool *pool, struct kap_secret *s,
                struct kap_err *err)
{
    if (kap_pool_cleanup_add(pool, secret_release, s) != KAP_OK) {
        kap_err_set(err, "secret %s: out of memory", s->path);
        secret_unmap(s);
        return NULL;
    }
    s->next = secret_live;
    s->prev = NULL;
    if (secret_live)
        secret_live->prev = s;
    secret_live = s;
    if (s->nforms > 0)
        kapd_secret_nlive++;
    return s;
}

struct kap_secret *
kap_secret_load(struct kap_pool *pool, const char *path,
                struct kap_err *err)
{
    struct kap_secret *s;
    struct stat  st;
    int          fd;

    if (pool == NULL) {
        kap_err_set(err, "secret file: no pool");
        return NULL;
    }
    fd = kapd_secret_open("secret", path, &st, err);
    if (fd < 0)
        return NULL;
    s = secret_read(fd, (size_t)st.st_size, path, err);
    close(fd);
    if (s == NULL)
        return NULL;
    return secret_live_add(pool, s, err);
}

struct kap_secret *
kap_secret_new(struct kap_pool *pool, const char *label, const void *p,
               size_t n, struct kap_err *err)
{
    struct kap_secret *s;

    if (pool == NULL || label == NULL || (p == NULL && n > 0)) {
        kap_err_set(err, "secret: no pool, label or value");
        return NULL;
    }
    if (n == 0) {
        kap_err_set(err, "secret %s is empty", label);
        return NULL;
    }
    if (n > KAP_SECRET_MAX) {
        kap_err_set(err, "secret %s is longer than %d bytes", label,
                    KAP_SECRET_MAX);
        return NULL;
    }
    if (memchr(p, '\0', n) != NULL) {
        kap_err_set(err, "secret %s holds a NUL byte", label);
        return NULL;
    }
    s = secret_map(n, label);
    if (s == NULL) {
        kap_err_set(err, "secret %s: cannot map memory: %s", label,
                    strerror(errno));
        return NULL;
    }
    memcpy(s->raw, p, n);
    s->raw[n] = '\0';
    s->len = n;
    secret_forms(s, n);
    return secret_live_add(pool, s, err);
}

int
kap_secret_file_read(const char *path, struct kap_buf *out,
                     struct kap_err *err)
{
    struct stat st;
    size_t size;
    ssize_t n;
    int fd;

    if (out == NULL || out->len != 0) {
        kap_err_set(err, "credential file %s: the buffer is not empty",
                    path ? path : "-");
        return KAP_ERROR;
    }
    fd = kapd_secret_open("credential", path, &st, err);
    if (fd < 0)
        return KAP_ERROR;
    size = (size_t)st.st_size;
    /* one allocation, before any byte is read: no copy of the content
       is left in memory a realloc freed */
    if (kap_buf_reserve(out, size + 1) != KAP_OK) {
        kap_err_set(err, "credential file %s: out of memory", path);
        close(fd);
        return KAP_ERROR;
    }
    n = secret_read_upto(fd, out->data, size);
    close(fd);
    if (n < 0 || (size_t)n > size) {
        kap_secret_wipe(out->data, size + 1);
        kap_err_set(err, n < 0 ? "credential file %s: cannot read"
                               : "credential file %s grew while it was "
                                 "read: read it again once it is written",
                    path);
        return KAP_ERROR;
    }
    out->len = (size_t)n;
    out->data[n] = '\0';
    return KAP_OK;
}

/* ---- injection ---------------------------------------------------------- */

/* a byte allowed in an HTTP field value (RFC 9110: VCHAR, SP, HTAB,
   obs-text) */
static int
field_ok(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Check tmpl and s for a header; the lengths before and after "{}". */
static int
header_plan(const struct kap_secret *s, const char *tmpl,
            size_t *pre, size_t *post, struct kap_err *err)
{
    const char *hole;
    size_t i, n;

    if (s == NULL || tmpl == NULL) {
        kap_err_set(err, "secret header: no secret or template");
        return KAP_ERROR;
    }
    hole = strstr(tmpl, "{}");
    if (hole == NULL || strstr(hole + 2, "{}") != NULL) {
        kap_err_set(err, "secret header template \"%s\" must hold \"{}\" "
                    "exactly once (where the secret goes)", tmpl);
        return KAP_ERROR;
    }
    n = strlen(tmpl);
    for (i = 0; i < n; i++) {
        if (!field_ok((unsigned char)tmpl[i])) {
            kap_err_set(err, "secret header template holds a control byte "
                        "(0x%02x): a header value is one line",
                        (unsigned char)tmpl[i]);
            return KAP_ERROR;
        }
    }
    for (i = 0; i < s->len; i++) {
        if (!field_ok(s->raw[i])) {
            kap_err_set(err, "secret from %s holds a line end or control "
                        "byte, which an HTTP header cannot carry: store it "
                        "on one line", s->path);
            return KAP_ERROR;
        }
    }
    *pre = (size_t)(hole - tmpl);
    *post = n - *pre - 2;
    return KAP_OK;
}

static void
header_write(const struct kap_secret *s, const char *tmpl,
             size_t pre, size_t post, char *out)
{
    memcpy(out, tmpl, pre);
    memcpy(out + pre, s->raw, s->len);
    memcpy(out + pre + s->len, tmpl + pre + 2, post);
}

int
kap_secret_header(const struct kap_secret *s, const char *tmpl,
                  char *out, size_t outlen, struct kap_err *err)
{
    size_t pre, post;

    if (out != NULL && outlen > 0)
        out[0] = '\0';
    if (header_plan(s, tmpl, &pre, &post, err) != KAP_OK)
        return KAP_ERROR;
    if (out == NULL || outlen <= pre + s->len + post) {
        kap_err_set(err, "secret header from %s does not fit in %zu bytes",
                    s->path, outlen);
        return KAP_ERROR;
    }
    header_write(s, tmpl, pre, post, out);
    out[pre + s->len + post] = '\0';
    return KAP_OK;
}

int
kap_secret_header_buf(const struct kap_secret *s, const char *tmpl,
                      struct kap_buf *b, struct kap_err *err)
{
    size_t pre, post, need, old;

    if (header_plan(s, tmpl, &pre, &post, err) != KAP_OK)
        return KAP_ERROR;
    need = pre + s->len + post;
    if (b == NULL || need > INT_MAX) {
        kap_err_set(err, "secret header from %s: no buffer", s->path);
        return KAP_ERROR;
    }
    old = b->len;
    /* grow first (spaces), so no realloc ever copies secret bytes */
    if (kap_buf_printf(b, "%*s", (int)need, "") != KAP_OK) {
        kap_err_set(err, "secret header from %s: out of memory", s->path);
        return KAP_ERROR;
    }
    header_write(s, tmpl, pre, post, b->data + old);
    return KAP_OK;
}

int
kap_secret_env(const struct kap_secret *s, const char *name,
               char *out, size_t outlen, struct kap_err *err)
{
    size_t i, n;

    if (out != NULL && outlen > 0)
        out[0] = '\0';
    if (s == NULL || name == NULL) {
        kap_err_set(err, "secret environment entry: no secret or name");
        return KAP_ERROR;
    }
    n = strlen(name);
    for (i = 0; i < n; i++) {
        char c = name[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (i > 0 && c >= '0' && c <= '9')))
            break;
    }
    if (n == 0 || i < n) {
        kap_err_set(err, "secret environment name \"%s\" is not a variable "
                    "name: use letters, digits and _, not starting with a "
                    "digit", name);
        return KAP_ERROR;
    }
    if (out == NULL || outlen <= n + 1 + s->len) {
        kap_err_set(err, "environment entry %s for secret from %s does not "
                    "fit in %zu bytes", name, s->path, outlen);
        return KAP_ERROR;
    }
    memcpy(out, name, n);
    out[n] = '=';
    memcpy(out + n + 1, s->raw, s->len);
    out[n + 1 + s->len] = '\0';
    return KAP_OK;
}

/* ---- redaction ---------------------------------------------------------- */

/* append src[0..n) to out, counting all of it in *o */
static void
emit(char *out, size_t outlen, size_t *o, const char *src,
     size_t n)
{
    size_t room;

    if (*o + 1 < outlen) {
        room = outlen - 1 - *o;
        memcpy(out + *o, src, n < room ? n : room);
    }
    *o += n;
}

size_t
kap_secret_redact(const char *in, char *out, size_t outlen)
{
    static const char red[] = KAP_SECRET_REDACTED;
    struct kap_secret *s;
    struct secret_form *f, *best;
    size_t n, p = 0, o = 0, q, bestq, i, maxn;
    const char *hit;

    if (in == NULL)
        in = "";
    n = strlen(in);
    if (kapd_secret_nlive == 0) {
        emit(out, outlen, &o, in, n);
        goto done;
    }
    for (s = secret_live; s; s = s->next)
        for (i = 0; i < s->nforms; i++) {
            f = &s->forms[i];
            hit = memmem(in, n, f->p, f->n);
            f->next = hit ? (size_t)(hit - in) : SIZE_MAX;
        }
    for (;;) {
        best = NULL;
        bestq = n;
        for (s = secret_live; s; s = s->next) {
            for (i = 0; i < s->nforms; i++) {
                f = &s->forms[i];
                if (f->next != SIZE_MAX && f->next < p) {
                    /* overlapped by the last replacement: search on */
                    hit = memmem(in + p, n - p, f->p, f->n);
                    f->next = hit ? (size_t)(hit - in) : SIZE_MAX;
                }
                if (f->next == SIZE_MAX || f->next > bestq)
                    continue;
                if (best == NULL || f->next < bestq || f->n > best->n) {
                    best = f;
                    bestq = f->next;
                }
            }
        }
        if (best == NULL)
            break;
        emit(out, outlen, &o, in + p, bestq - p);
        emit(out, outlen, &o, red, sizeof(red) - 1);
        p = bestq + best->n;
    }
    /* a tail that starts a form: a line cut inside a secret */
    maxn = 0;
    for (s = secret_live; s; s = s->next)
        for (i = 0; i < s->nforms; i++)
            if (s->forms[i].n > maxn)
                maxn = s->forms[i].n;
    bestq = n;
    q = n - p >= maxn ? n - maxn + 1 : p;
    for (; q + KAP_SECRET_REDACT_MIN <= n && bestq == n; q++)
        for (s = secret_live; s && bestq == n; s = s->next)
            for (i = 0; i < s->nforms; i++)
                if (s->forms[i].n > n - q
                    && memcmp(in + q, s->forms[i].p, n - q) == 0) {
                    bestq = q;
                    break;
                }
    emit(out, outlen, &o, in + p, bestq - p);
    if (bestq < n)
        emit(out, outlen, &o, red, sizeof(red) - 1);
done:
    if (outlen > 0)
        out[o < outlen ? o : outlen - 1] = '\0';
    return o;
}

int
kap_secret_hmac(const struct kap_secret *s, const void *msg, size_t len,
                unsigned char out[KAP_SECRET_HMAC_LEN])
{
    unsigned int n = 0;

    if (s == NULL || s->raw == NULL || (msg == NULL && len > 0))
        return KAP_ERROR;
    if (HMAC(EVP_sha256(), s->raw, (int) s->len,
             (const unsigned char *) msg, len, out, &n) == NULL
        || n != KAP_SECRET_HMAC_LEN)
        return KAP_ERROR;
    return KAP_OK;
}
