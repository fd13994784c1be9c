/*
 * kap-qr -- print TEXT as a QR code, for `kap remote start|qr`.
 *
 *   kap-qr TEXT              Unicode half blocks on stdout (two rows of
 *                            modules per line, a quiet zone of 2)
 *   kap-qr --png FILE TEXT   a PNG (FILE "-" is stdout)
 *   kap-qr --svg FILE TEXT   an SVG
 *
 * Error correction M; the symbol's version is the smallest that holds
 * TEXT.  Exit 0, 1 on an error (said on stderr), 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <qrencode.h>

#include "kap_qr.h"

#define TERM_QUIET 2

static int
dark(const QRcode *q, int x, int y)
{
    return x >= 0 && y >= 0 && x < q->width && y < q->width
           && (q->data[y * q->width + x] & 1);
}

/* light modules print as the terminal's "dark" glyph: a phone camera
   reads a light-on-dark code, and every terminal theme shows it */
static void
term(const QRcode *q)
{
    static const char *const glyph[4] = {
        "\xe2\x96\x88",          /* both light: full block */
        "\xe2\x96\x84",          /* top dark: lower half */
        "\xe2\x96\x80",          /* bottom dark: upper half */
        " "                      /* both dark */
    };
    int x, y, lo = -TERM_QUIET, hi = q->width + TERM_QUIET;

    for (y = lo; y < hi; y += 2) {
        for (x = lo; x < hi; x++)
            fputs(glyph[dark(q, x, y) | dark(q, x, y + 1) << 1], stdout);
        fputc('\n', stdout);
    }
}

static int
svg(FILE *f, const QRcode *q)
{
    int x, y, side = q->width + 8;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\""
            " width=\"%d\" height=\"%d\" shape-rendering=\"crispEdges\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n<path d=\"",
            side, side, side * 8, side * 8, side, side);
    for (y = 0; y < q->width; y++)
        for (x = 0; x < q->width; x++)
            if (dark(q, x, y))
                fprintf(f, "M%d %dh1v1h-1z", x + 4, y + 4);
    fprintf(f, "\" fill=\"#000\"/>\n</svg>\n");
    return ferror(f) ? -1 : 0;
}

int
main(int argc, char **argv)
{
    const char *fmt = NULL, *file = NULL, *text;
    QRcode *q;
    FILE *f;
    int rc;

    if (argc == 4 && (strcmp(argv[1], "--png") == 0
                      || strcmp(argv[1], "--svg") == 0)) {
        fmt = argv[1] + 2;
        file = argv[2];
        text = argv[3];
    } else if (argc == 2 && argv[1][0] != '-') {
        text = argv[1];
    } else {
        fputs("usage: kap-qr [--png FILE | --svg FILE] TEXT\n", stderr);
        return 2;
    }
    q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (q == NULL) {
        fprintf(stderr, "kap-qr: cannot encode: %s\n", strerror(errno));
        return 1;
    }
    if (fmt == NULL) {
        term(q);
        QRcode_free(q);
        return 0;
    }
    f = strcmp(file, "-") == 0 ? stdout : fopen(file, "wb");
    if (f == NULL) {
        fprintf(stderr, "kap-qr: %s: %s\n", file, strerror(errno));
        QRcode_free(q);
        return 1;
    }
    rc = strcmp(fmt, "png") == 0 ? kap_qr_png(f, q->data, q->width, 8)
                                 : svg(f, q);
    if (f != stdout ? fclose(f) != 0 : fflush(f) != 0)
        rc = -1;
    QRcode_free(q);
    if (rc != 0) {
        fprintf(stderr, "kap-qr: cannot write %s\n", file);
        return 1;
    }
    return 0;
}
