/*
 * fuzz_remote.c -- libFuzzer target for the remote module's parsers of
 * untrusted bytes (modules/remote/kap_remote_parse.c).  The first byte
 * picks the parser: the /api/logs query string, the /api/pair body, an
 * Authorization value, a device id, the answer to a pending question
 * (POST /api/asks/ID body), a question id; a first byte of 0x80 or more:
 * the rest is a policy file that "allow always" adds a rule to
 * (modules/remote/kap_remote_rule.c).
 *
 * Besides memory errors it aborts when a refusal has no message, an
 * accepted query holds a limit out of range, an accepted name holds a
 * control byte or is too long, or a Bearer token is empty or runs past
 * the value.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the text with an entry added (network.allow, or the allow of the mcp
   server "a"): refused with a reason, or holding it */
static void
fuzz_rule(const char *s, size_t len, int nested)
{
    struct kr_rule_at at = { "mcp", "servers", "a" };
    struct kap_buf b = { 0 };
    const char *why = NULL;
    unsigned line = 0;
    int rc;

    rc = kr_rule_insert_at(s, len, nested ? &at : NULL, "fuzz.example:443",
                           &b, &line, &why);
    if ((rc == KAP_ERROR && (why == NULL || why[0] == '\0'))
        || (rc == KAP_OK && (line == 0 || b.len <= len
                             || memmem(b.data, b.len, "\"fuzz.example:443\"",
                                       18) == NULL)))
        abort();
    kap_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[KR_NAME_MAX + 1], *s;
    const char *why = NULL, *t;
    struct kr_query q;
    size_t n, i;
    int answer;

    if (size < 1 || size > 8192)
        return 0;
    s = malloc(size);
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] >= 0x80) {              /* a policy file: allow always */
        fuzz_rule(s, size - 1, data[0] & 1);
        free(s);
        return 0;
    }
    switch (data[0] % 6) {
    case 0:
        if (kr_query_parse(s, size - 1, &q, &why) == KAP_OK) {
            if (q.limit < 1 || q.limit > KR_LOG_LIMIT_MAX
                || (q.denied != 0 && q.denied != 1))
                abort();
        } else if (why == NULL || why[0] == '\0') {
            abort();
        }
        break;
    case 1:
        if (kr_pair_body_parse(s, size - 1, name, &why) == KAP_OK) {
            n = strlen(name);
            if (n > KR_NAME_MAX)
                abort();
            for (i = 0; i < n; i++)
                if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
                    abort();
        } else if (why == NULL) {
            abort();
        }
        break;
    case 2:
        t = kr_bearer(s, &n);
        if (t != NULL && (n == 0 || n > KR_BEARER_MAX || t < s
                          || t + n > s + strlen(s)))
            abort();
        break;
    case 3:
        (void) kr_id_valid(s, strlen(s));
        break;
    case 4:
        if (kr_answer_body_parse(s, size - 1, &answer, &why) == KAP_OK) {
            if (answer < KR_ANSWER_ONCE || answer > KR_ANSWER_DENY)
                abort();
        } else if (why == NULL || answer != 0) {
            abort();
        }
        break;
    default:
        if (kr_ask_id_valid(s, strlen(s)) && strlen(s) != KR_ASK_ID_LEN)
            abort();
        break;
    }
    free(s);
    return 0;
}
