/*
 * kap_secret.h -- credentials: loaded from a protected file, injected into
 * an upstream HTTP header or a child's environment, and redacted from
 * everything kapd writes.
 *
 * This is the one place where kapd handles credentials.  The agent must
 * never see a secret: not in a response, an error, or a log line.  So:
 *   - a secret is read only from a regular file owned by kapd's effective
 *     uid (or root), mode 0600 or stricter, in a directory owned by the
 *     euid (or root) of mode 0700 or stricter, with no symbolic link in
 *     the path (every refusal says what is wrong and how to fix it);
 *   - its bytes live in memory of their own, mlock()ed where the limit
 *     allows, left out of core dumps, and wiped when the pool that loaded
 *     it is destroyed; there is no function that returns them;
 *   - while it is loaded, every error-log line passes through
 *     kap_secret_redact(), which replaces the secret, its base64 and its
 *     URL-encoded forms with "[REDACTED]".  Modules call it too for any
 *     text that may carry upstream data (an error body, a header echo)
 *     before it goes to the agent or to the audit chain.
 * Text a caller receives from kap_secret_header*() and kap_secret_env()
 * contains the secret: the caller wipes it with kap_secret_wipe() as soon
 * as it was sent or exec'd, and never logs it.
 */
#ifndef KAP_SECRET_H
#define KAP_SECRET_H

#include <stddef.h>
#include <kapd/kap_core.h>

/* Largest secret file kap_secret_load() accepts, in bytes. */
#define KAP_SECRET_MAX (64 * 1024)
/* Secrets shorter than this are loaded but not redacted (too common). */
#define KAP_SECRET_REDACT_MIN 4
/* What kap_secret_redact() writes in place of a secret. */
#define KAP_SECRET_REDACTED "[REDACTED]"

struct kap_secret;                      /* opaque */

/*
 * Read the secret in the file at path (NUL-terminated, borrowed).  Trailing
 * CR/LF bytes are stripped; a file that is then empty, or holds a NUL
 * byte, is refused.  The secret is owned by pool: it stays registered for
 * redaction until pool is destroyed, when its memory is wiped and freed.
 * Returns NULL with err set (never to the secret's content) when the file
 * or its directory is refused or cannot be read, or memory runs out.
 * Call while configuring (it does blocking file I/O).
 */
struct kap_secret *kap_secret_load(struct kap_pool *pool, const char *path,
                                   struct kap_err *err);

/*
 * A secret from bytes already in memory: a value taken from a credential
 * file that holds several (kap_secret_file_read()), or from kapd's
 * environment.  The n bytes at p are copied into the secret's own memory
 * (as for kap_secret_load(): mlock()ed where allowed, out of core dumps,
 * registered for redaction, wiped when pool is destroyed); p is the
 * caller's to wipe.  label names it in messages ("mcp server github
 * header Authorization"), never the value.  Refused: n == 0, n >
 * KAP_SECRET_MAX, a NUL byte.  NULL with err set on refusal or out of
 * memory.
 */
struct kap_secret *kap_secret_new(struct kap_pool *pool, const char *label,
                                  const void *p, size_t n,
                                  struct kap_err *err);

/*
 * Read the whole file at path, under kap_secret_load()'s rule (no
 * symbolic link on the path; the directory the euid's or root's, mode
 * 0700 or stricter; the file regular, likewise owned, mode 0600 or
 * stricter, non-empty, at most KAP_SECRET_MAX bytes), into out, which
 * must be empty (len 0); its content is NUL-terminated, read in one
 * allocation.  For a file holding structured credentials (an MCP
 * server's registration, JSON): the caller parses it, makes each value a
 * kap_secret_new(), and wipes out->data (kap_secret_wipe, out->cap)
 * before kap_buf_free().  KAP_OK, or KAP_ERROR with err set (nothing
 * read is left in out then).  Blocking file I/O: call while configuring.
 */
int kap_secret_file_read(const char *path, struct kap_buf *out,
                         struct kap_err *err);

/*
 * Write tmpl with its single "{}" replaced by the secret, NUL-terminated,
 * into out[0..outlen) (caller-owned; the caller wipes it after use).
 * KAP_OK, or KAP_ERROR with err set and out[0] = '\0' (when outlen > 0)
 * when the result and its NUL do not fit (nothing is truncated), tmpl does
 * not hold exactly one "{}", or tmpl or the secret holds a byte not
 * allowed in an HTTP field value (CR, LF, NUL, other controls but TAB).
 */
int kap_secret_header(const struct kap_secret *s, const char *tmpl,
                      char *out, size_t outlen, struct kap_err *err);
/*
 * The same, appended to b.  On KAP_ERROR b is left as it was.  The buffer
 * is grown before any secret byte is written, so no copy of the secret is
 * left in memory a realloc freed; the caller wipes b (kap_secret_wipe on
 * b->data, b->cap) before kap_buf_free() or reuse.
 */
int kap_secret_header_buf(const struct kap_secret *s, const char *tmpl,
                          struct kap_buf *b, struct kap_err *err);

/*
 * Write the environment entry "name=secret", NUL-terminated, into
 * out[0..outlen) (caller-owned, for an execve envp; the caller wipes it
 * after the exec).  name must match [A-Za-z_][A-Za-z0-9_]*.  KAP_OK, or
 * KAP_ERROR with err set and out[0] = '\0' (when outlen > 0) when name is
 * invalid or the entry and its NUL do not fit (nothing is truncated).
 */
int kap_secret_env(const struct kap_secret *s, const char *name,
                   char *out, size_t outlen, struct kap_err *err);

/*
 * Copy the NUL-terminated text in to out[0..outlen) (caller-owned, never
 * the same memory as in) with every occurrence of every loaded secret of
 * at least KAP_SECRET_REDACT_MIN bytes replaced by KAP_SECRET_REDACTED:
 * the raw bytes, base64 (standard and URL-safe alphabets, padded or not,
 * and the part of the secret's encoding that is the same wherever it sits
 * in a longer encoded text, as in HTTP Basic credentials) and the
 * percent-encoded form (upper or lower case hex).  A text ending in the
 * first KAP_SECRET_REDACT_MIN or more bytes of one of these forms (a line
 * cut by a length limit) has that tail replaced too.  out is always
 * NUL-terminated when outlen > 0; the result is cut to fit, and the cut
 * can only fall in text already redacted.  Returns the length of the whole
 * redacted text (as snprintf does: >= outlen means it was cut).  With no
 * secret loaded it is a plain copy.
 */
size_t kap_secret_redact(const char *in, char *out, size_t outlen);

/* Overwrite p[0..n) with zeros in a way the compiler keeps.  p may be NULL
   when n is 0. */
void kap_secret_wipe(void *p, size_t n);

/* Length of a kap_secret_hmac() result. */
#define KAP_SECRET_HMAC_LEN 32

/*
 * HMAC-SHA256 of msg[0..len) keyed with the secret, into out (caller's
 * KAP_SECRET_HMAC_LEN bytes): proves knowledge of a shared secret (a
 * challenge-response) without the secret leaving this file.  KAP_OK, or
 * KAP_ERROR when s is NULL or libcrypto fails.
 */
int kap_secret_hmac(const struct kap_secret *s, const void *msg, size_t len,
                    unsigned char out[KAP_SECRET_HMAC_LEN]);

#endif /* KAP_SECRET_H */
