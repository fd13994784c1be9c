/*
 * kap_qr.h -- kap-qr's image writers.
 */
#ifndef KAP_QR_H
#define KAP_QR_H

#include <stdio.h>

/*
 * Write a QR symbol of width x width modules (data[y * width + x] & 1
 * is dark) as a grayscale PNG to f, scale pixels per module and a quiet
 * zone of 4 modules.  The image is stored uncompressed (deflate's
 * "stored" blocks): a QR code is small, and kap-qr needs no zlib.
 * Returns 0, or -1 (out of memory or a write error).
 */
int kap_qr_png(FILE *f, const unsigned char *data, int width, int scale);

#endif /* KAP_QR_H */
