/*
 * kap_shim_say.h -- kap-shim's one-line messages on standard error.
 */
#ifndef KAP_SHIM_SAY_H
#define KAP_SHIM_SAY_H

#include <stdarg.h>

/*
 * Writes "PREFIX: <formatted message>\n" to descriptor 2 in one write(2)
 * (lines from several processes do not interleave), truncated to 1 KiB.
 * prefix and fmt are borrowed; nothing is kept.  Safe after fork.
 */
void kap_shim_vsay(const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif /* KAP_SHIM_SAY_H */
