/*
 * kap_remote_pair.c -- the pairing secret.
 *
 * kap(1) makes the secret (`kap remote start`, `kap remote qr`): 16
 * random bytes as 32 hex digits, shown once in the QR code's URL
 * fragment, and written to STATE_DIR/pairing as "sha256:HEX\n" (the
 * hash only), mode 0600.  Writing a new one replaces the old: at most
 * one secret is ever valid.  kapd never makes or shows one.
 *
 * A secret is valid while the file is younger than pair_lifetime
 * (its mtime), and only for POST /api/pair; the first exchange removes
 * the file, so it works once.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "kap_remote.h"

#define KR_PAIR_FILE "pairing"

static int
kr_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "sha256:" + 64 lowercase hex digits (+ optional LF) -> 32 bytes */
static int
kr_pair_file_hash(const char *buf, size_t n, unsigned char *out)
{
    size_t i;
    int hi, lo;

    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n != 7 + 2 * SHA256_DIGEST_LENGTH || memcmp(buf, "sha256:", 7) != 0)
        return KAP_ERROR;
    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        hi = kr_hexval((unsigned char) buf[7 + 2 * i]);
        lo = kr_hexval((unsigned char) buf[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return KAP_ERROR;
        out[i] = (unsigned char) (hi << 4 | lo);
    }
    return KAP_OK;
}

int
kr_pair_consume(const struct kr_conf *cf, const char *secret, size_t len,
                const char **why)
{
    char path[4096], buf[128];
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
    struct stat st;
    ssize_t n;
    int fd, match;

    if ((size_t) snprintf(path, sizeof(path), "%s/" KR_PAIR_FILE,
                          cf->state_dir) >= sizeof(path))
        return KAP_ERROR;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            *why = "no pairing secret is waiting (run kap remote qr)";
            return KAP_DECLINED;
        }
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "open %s: %s", path, strerror(errno));
        return KAP_ERROR;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
        || (st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
        close(fd);
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0,
                "%s: not a regular file of mode 0600 owned by kapd's user;"
                " ignored", path);
        *why = "the pairing file is not kapd's own 0600 file";
        return KAP_DECLINED;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0 || kr_pair_file_hash(buf, (size_t) n, want) != KAP_OK) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "%s: not \"sha256:HEX\"", path);
        *why = "the pairing file is malformed";
        return KAP_DECLINED;
    }
    if ((double) st.st_mtime + cf->pair_lifetime < kap_now()) {
        *why = "the pairing secret has expired (run kap remote qr)";
        return KAP_DECLINED;
    }
    SHA256((const unsigned char *) secret, len, got);
    match = CRYPTO_memcmp(want, got, sizeof(want)) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    if (!match) {
        *why = "wrong pairing secret";
        return KAP_DECLINED;
    }
    if (unlink(path) != 0) {
        /* a secret that cannot be spent must not be usable twice */
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "unlink %s: %s", path,
                strerror(errno));
        return KAP_ERROR;
    }
    return KAP_OK;
}
