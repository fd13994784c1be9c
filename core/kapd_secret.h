/*
 * kapd_secret.h -- what the core's log writer needs from kapd_secret.c.
 *
 * kapd_secret_nlive counts the loaded secrets that kap_secret_redact()
 * replaces (those of KAP_SECRET_REDACT_MIN bytes or more).  The log writer
 * reads it before each line: while it is 0, a line costs no redaction.
 */
#ifndef KAPD_SECRET_H
#define KAPD_SECRET_H

#include <kapd/kap_secret.h>

extern unsigned kapd_secret_nlive;

#endif /* KAPD_SECRET_H */
