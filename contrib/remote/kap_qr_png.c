/*
 * kap_qr_png.c -- a QR symbol as a PNG (RFC 2083) without zlib: one
 * IDAT of stored deflate blocks (RFC 1951 §3.2.4) in a zlib wrapper
 * (RFC 1950) with its Adler-32, every chunk with its CRC-32.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_qr.h"

#define QUIET 4

static uint32_t
crc32_update(uint32_t c, const unsigned char *p, size_t n)
{
    size_t i;
    int k;

    c = ~c;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void
be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}

static int
chunk(FILE *f, const char *type, const unsigned char *data, size_t n)
{
    unsigned char hdr[8], crc[4];
    uint32_t c;

    be32(hdr, (uint32_t) n);
    memcpy(hdr + 4, type, 4);
    c = crc32_update(0, hdr + 4, 4);
    if (n > 0)
        c = crc32_update(c, data, n);
    be32(crc, c);
    return fwrite(hdr, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n)
           && fwrite(crc, 1, 4, f) == 4 ? 0 : -1;
}

int
kap_qr_png(FILE *f, const unsigned char *data, int width, int scale)
{
    static const unsigned char sig[8] = { 137, 'P', 'N', 'G', 13, 10, 26, 10 };
    size_t side = (size_t) (width + 2 * QUIET) * (size_t) scale;
    size_t row = side + 1, raw_len = row * side, nblk, z_len, i, o, n;
    unsigned char ihdr[13], *raw, *z;
    uint32_t a = 1, b = 0;
    size_t x, y;
    int rc = -1, mx, my;

    raw = malloc(raw_len);
    nblk = raw_len / 65535 + 1;
    z = malloc(2 + raw_len + 5 * nblk + 4);
    if (raw == NULL || z == NULL)
        goto out;
    for (y = 0; y < side; y++) {
        raw[y * row] = 0;                           /* filter: none */
        for (x = 0; x < side; x++) {
            mx = (int) (x / (size_t) scale) - QUIET;
            my = (int) (y / (size_t) scale) - QUIET;
            raw[y * row + 1 + x] =
                mx >= 0 && my >= 0 && mx < width && my < width
                && (data[my * width + mx] & 1) ? 0 : 255;
        }
    }
    o = 0;
    z[o++] = 0x78;                                  /* zlib: deflate, 32K */
    z[o++] = 0x01;
    for (i = 0; i < raw_len || i == 0; i += n) {
        n = raw_len - i > 65535 ? 65535 : raw_len - i;
        z[o++] = i + n == raw_len ? 1 : 0;          /* BFINAL, stored */
        z[o++] = (unsigned char) n;
        z[o++] = (unsigned char) (n >> 8);
        z[o++] = (unsigned char) ~n;
        z[o++] = (unsigned char) (~n >> 8);
        memcpy(z + o, raw + i, n);
        o += n;
        if (n == 0)
            break;
    }
    for (i = 0; i < raw_len; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    be32(z + o, b << 16 | a);
    z_len = o + 4;
    be32(ihdr, (uint32_t) side);
    be32(ihdr + 4, (uint32_t) side);
    ihdr[8] = 8;                                    /* bit depth */
    ihdr[9] = 0;                                    /* grayscale */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    if (fwrite(sig, 1, 8, f) == 8 && chunk(f, "IHDR", ihdr, 13) == 0
        && chunk(f, "IDAT", z, z_len) == 0 && chunk(f, "IEND", NULL, 0) == 0)
        rc = 0;
out:
    free(raw);
    free(z);
    return rc;
}
