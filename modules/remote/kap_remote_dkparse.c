/*
 * kap_remote_dkparse.c -- pure parsers for the Docker routes of the
 * remote module: container, session and project ids from the URL, the
 * agent routes' query string, and the engine's multiplexed exec stream.
 * No I/O, no globals: unit-tested in t/unit/test_remote_parse and
 * fuzzed by fuzz/fuzz_remote.
 *
 * Every id is checked here before any engine call: what reaches the
 * engine is an argv element or a URL path segment of hex digits.
 */
#include <string.h>

#include "kap_remote.h"

static int
kr_lhex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int
kr_container_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len < 12 || len > 64)
        return 0;
    for (i = 0; i < len; i++)
        if (!kr_lhex(s[i]))
            return 0;
    return 1;
}

int
kr_session_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len != KR_UUID_LEN)
        return 0;
    for (i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!kr_lhex(s[i])) {
            return 0;
        }
    }
    return 1;
}

int
kr_project_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > KR_PROJECT_MAX || s[0] == '-' || s[0] == '_')
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
              || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static int
kr_is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

int
kr_agent_query_parse(const char *q, size_t len, char *project, int *patch,
                     const char **why)
{
    const char *p = q, *end = q + len, *amp, *eq, *v;
    int seen_p = 0, seen_f = 0;
    size_t n;

    project[0] = '\0';
    *patch = 0;
    while (p < end) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL)
            amp = end;
        eq = memchr(p, '=', (size_t) (amp - p));
        if (eq == NULL || eq == p) {
            *why = "query: expected name=value pairs";
            return KAP_ERROR;
        }
        v = eq + 1;
        n = (size_t) (amp - v);
        if (kr_is(p, (size_t) (eq - p), "project")) {
            if (seen_p++ || !kr_project_valid(v, n)) {
                *why = "query: project must be one compose project name"
                       " ([a-z0-9_-], at most 64)";
                return KAP_ERROR;
            }
            memcpy(project, v, n);
            project[n] = '\0';
        } else if (kr_is(p, (size_t) (eq - p), "format")) {
            if (seen_f++ || !(kr_is(v, n, "stat") || kr_is(v, n, "patch"))) {
                *why = "query: format must be stat or patch, once";
                return KAP_ERROR;
            }
            *patch = kr_is(v, n, "patch");
        } else {
            *why = "query: only project and format are known";
            return KAP_ERROR;
        }
        p = amp < end ? amp + 1 : end;
        if (amp < end && p == end) {
            *why = "query: expected name=value pairs";
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

/* append up to the room left under max; *cut when something was left */
static int
kr_keep(struct kap_buf *b, const char *p, size_t n, size_t max, int *cut)
{
    size_t room = b->len < max ? max - b->len : 0;

    if (n > room) {
        *cut = 1;
        n = room;
    }
    return n > 0 ? kap_buf_append(b, p, n) : KAP_OK;
}

int
kr_demux(const char *p, size_t n, int partial, struct kap_buf *out,
         size_t max_out, struct kap_buf *err, size_t max_err, int *cut,
         const char **why)
{
    const unsigned char *u;
    size_t off = 0, flen, take;

    *cut = 0;
    while (off < n) {
        if (n - off < 8) {
            if (partial) {
                *cut = 1;
                return KAP_OK;
            }
            *why = "exec stream: a frame head cut short";
            return KAP_ERROR;
        }
        u = (const unsigned char *) p + off;
        if (u[0] > 2 || u[1] != 0 || u[2] != 0 || u[3] != 0) {
            *why = "exec stream: not a multiplexed stream frame";
            return KAP_ERROR;
        }
        flen = ((size_t) u[4] << 24) | ((size_t) u[5] << 16)
               | ((size_t) u[6] << 8) | (size_t) u[7];
        off += 8;
        take = flen;
        if (take > n - off) {
            if (!partial) {
                *why = "exec stream: a frame cut short";
                return KAP_ERROR;
            }
            take = n - off;
            *cut = 1;
        }
        if (u[0] != 2
            ? kr_keep(out, p + off, take, max_out, cut) != KAP_OK
            : kr_keep(err, p + off, take, max_err, cut) != KAP_OK) {
            *why = "out of memory";
            return KAP_ERROR;
        }
        off += take;
    }
    return KAP_OK;
}
