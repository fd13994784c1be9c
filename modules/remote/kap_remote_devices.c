/*
 * kap_remote_devices.c -- paired devices.
 *
 * One file per device, STATE_DIR/devices/ID (ID: 12 lowercase hex
 * digits), mode 0600 in a 0700 directory, lines of key=value:
 *
 *   id=3f9a0c1b2d4e
 *   name=Pixel 8
 *   token=sha256:<64 hex digits>
 *   paired=2026-12-07T08:00:00Z
 *
 * The token itself is never stored.  last_seen goes to ID.seen, a file
 * of its own, so that revoking (removing both files, `kap remote revoke`)
 * never races with kapd rewriting the device file.  Every authenticated
 * request reads the directory afresh: a revoked device is refused from
 * the next request on, without a reload.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "kap_remote.h"

#define KR_SEEN_EVERY 60     /* s between last_seen writes of a device */

static int
kr_dev_path(const struct kr_conf *cf, const char *id, const char *suffix,
            char *out, size_t size)
{
    int n = snprintf(out, size, "%s/devices%s%s%s", cf->state_dir,
                     id != NULL ? "/" : "", id != NULL ? id : "", suffix);

    return n > 0 && (size_t) n < size ? KAP_OK : KAP_ERROR;
}

static void
kr_rfc3339(char *out, size_t size)
{
    time_t t = (time_t) kap_now();
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
kr_hex(const unsigned char *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* base64url without padding (RFC 4648 §5) */
static void
kr_b64url(const unsigned char *p, size_t n, char *out)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;
    unsigned v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (unsigned) p[i] << 16 | (unsigned) p[i + 1] << 8 | p[i + 2];
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        out[o++] = a[v >> 6 & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        v = (unsigned) p[i] << 16;
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
    } else if (n - i == 2) {
        v = (unsigned) p[i] << 16 | (unsigned) p[i + 1] << 8;
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        out[o++] = a[v >> 6 & 63];
    }
    out[o] = '\0';
}

/* read a device file (small, regular, ours) into buf; KAP_OK or not */
static int
kr_dev_read(const char *path, char *buf, size_t size)
{
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return KAP_ERROR;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
        || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        close(fd);
        return KAP_ERROR;
    }
    n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return KAP_ERROR;
    buf[n] = '\0';
    return KAP_OK;
}

/* the value of "key=" on a line of buf, copied into out; KAP_OK or not */
static int
kr_dev_field(const char *buf, const char *key, char *out, size_t size)
{
    size_t kl = strlen(key), n;
    const char *p = buf, *e;

    while (*p != '\0') {
        e = strchr(p, '\n');
        if (e == NULL)
            e = p + strlen(p);
        if ((size_t) (e - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
            n = (size_t) (e - p) - kl - 1;
            if (n >= size)
                return KAP_ERROR;
            memcpy(out, p + kl + 1, n);
            out[n] = '\0';
            return KAP_OK;
        }
        p = *e == '\n' ? e + 1 : e;
    }
    return KAP_ERROR;
}

unsigned
kr_device_count(const struct kr_conf *cf)
{
    char path[4096];
    struct dirent *de;
    unsigned n = 0;
    DIR *d;

    if (kr_dev_path(cf, NULL, "", path, sizeof(path)) != KAP_OK
        || (d = opendir(path)) == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        if (kr_id_valid(de->d_name, strlen(de->d_name)))
            n++;
    closedir(d);
    return n;
}

int
kr_device_add(const struct kr_conf *cf, const char *name,
              struct kr_device *dev, char *token)
{
    unsigned char idb[KR_ID_LEN / 2], tokb[32], h[SHA256_DIGEST_LENGTH];
    char hash[2 * SHA256_DIGEST_LENGTH + 1], when[32], tmp[4096],
        path[4096];
    struct kap_buf b = { 0 };
    int fd, rc = KAP_ERROR;

    if (kr_device_count(cf) >= KR_MAX_DEVICES) {
        KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "pairing refused: %d devices are"
                " paired already (kap remote revoke ID)", KR_MAX_DEVICES);
        return KAP_ERROR;
    }
    if (RAND_bytes(idb, sizeof(idb)) != 1
        || RAND_bytes(tokb, sizeof(tokb)) != 1)
        return KAP_ERROR;
    kr_hex(idb, sizeof(idb), dev->id);
    snprintf(dev->name, sizeof(dev->name), "%s",
             name[0] != '\0' ? name : "device");
    kr_b64url(tokb, sizeof(tokb), token);
    OPENSSL_cleanse(tokb, sizeof(tokb));
    SHA256((const unsigned char *) token, KR_TOKEN_LEN, h);
    kr_hex(h, sizeof(h), hash);
    kr_rfc3339(when, sizeof(when));
    if (kr_dev_path(cf, dev->id, "", path, sizeof(path)) != KAP_OK
        || kr_dev_path(cf, dev->id, ".new", tmp, sizeof(tmp)) != KAP_OK
        || kap_buf_printf(&b, "id=%s\nname=%s\ntoken=sha256:%s\npaired=%s\n",
                          dev->id, dev->name, hash, when) != KAP_OK)
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "create %s: %s", tmp,
                strerror(errno));
        goto out;
    }
    if (write(fd, b.data, b.len) != (ssize_t) b.len || fsync(fd) != 0) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "write %s: %s", tmp,
                strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "rename %s: %s", tmp,
                strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = KAP_OK;
out:
    kap_buf_free(&b);
    return rc;
}

/* write ID.seen unless it was written within KR_SEEN_EVERY seconds */
static void
kr_dev_seen(const struct kr_conf *cf, const char *id)
{
    char path[4096], when[32];
    struct stat st;
    size_t n;
    int fd;

    if (kr_dev_path(cf, id, ".seen", path, sizeof(path)) != KAP_OK)
        return;
    if (stat(path, &st) == 0 && (double) st.st_mtime + KR_SEEN_EVERY
                                    > kap_now())
        return;
    kr_rfc3339(when, sizeof(when));
    n = strlen(when);
    when[n++] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0)
        return;
    if (write(fd, when, n) != (ssize_t) n)
        KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "write %s: %s", path,
                strerror(errno));
    close(fd);
}

int
kr_device_auth(const struct kr_conf *cf, const char *tok, size_t len,
               struct kr_device *dev)
{
    unsigned char got[SHA256_DIGEST_LENGTH];
    char dir[4096], path[4096], buf[1024], want[8 + 2 * SHA256_DIGEST_LENGTH],
        hex[2 * SHA256_DIGEST_LENGTH + 1];
    struct dirent *de;
    size_t idn;
    int found = 0;
    DIR *d;

    if (len != KR_TOKEN_LEN
        || kr_dev_path(cf, NULL, "", dir, sizeof(dir)) != KAP_OK
        || (d = opendir(dir)) == NULL)
        return KAP_DECLINED;
    SHA256((const unsigned char *) tok, len, got);
    kr_hex(got, sizeof(got), hex);
    while (!found && (de = readdir(d)) != NULL) {
        if (!kr_id_valid(de->d_name, strlen(de->d_name))
            || kr_dev_path(cf, de->d_name, "", path, sizeof(path)) != KAP_OK
            || kr_dev_read(path, buf, sizeof(buf)) != KAP_OK
            || kr_dev_field(buf, "token", want, sizeof(want)) != KAP_OK
            || strlen(want) != 7 + 2 * SHA256_DIGEST_LENGTH
            || memcmp(want, "sha256:", 7) != 0)
            continue;
        if (CRYPTO_memcmp(want + 7, hex, 2 * SHA256_DIGEST_LENGTH) != 0)
            continue;
        idn = strlen(de->d_name);       /* bounded by kr_id_valid */
        if (idn >= sizeof(dev->id))
            continue;
        memcpy(dev->id, de->d_name, idn + 1);
        if (kr_dev_field(buf, "name", dev->name, sizeof(dev->name))
            != KAP_OK)
            snprintf(dev->name, sizeof(dev->name), "device");
        found = 1;
    }
    closedir(d);
    if (!found)
        return KAP_DECLINED;
    kr_dev_seen(cf, dev->id);
    return KAP_OK;
}
