/*
 * test_remote_parse.c -- the remote module's parsers of untrusted bytes
 * (modules/remote/kap_remote_parse.c): the /api/logs query string, the
 * /api/pair body, the Bearer header, device ids.
 */
#include <string.h>

#include "tap.h"
#include "kap_remote.h"

static int
q_ok(const char *s, long limit, int denied)
{
    struct kr_query q;
    const char *why = NULL;

    return kr_query_parse(s, strlen(s), &q, &why) == KAP_OK
           && q.limit == limit && q.denied == denied;
}

static int
q_bad(const char *s)
{
    struct kr_query q;
    const char *why = NULL;

    return kr_query_parse(s, strlen(s), &q, &why) == KAP_ERROR
           && why != NULL && why[0] != '\0';
}

static int
name_is(const char *body, const char *want)
{
    char name[KR_NAME_MAX + 1];
    const char *why = NULL;

    return kr_pair_body_parse(body, strlen(body), name, &why) == KAP_OK
           && strcmp(name, want) == 0;
}

static int
body_bad(const char *body, size_t len)
{
    char name[KR_NAME_MAX + 1];
    const char *why = NULL;

    return kr_pair_body_parse(body, len, name, &why) == KAP_ERROR
           && why != NULL;
}

static int
bearer_is(const char *v, const char *want)
{
    size_t n = 0;
    const char *t = kr_bearer(v, &n);

    if (want == NULL)
        return t == NULL;
    return t != NULL && n == strlen(want) && memcmp(t, want, n) == 0;
}

/* the answer body parses to want (0: refused, with a reason) */
static int
answer_is(const char *body, int want)
{
    const char *why = NULL;
    int a = -1, rc = kr_answer_body_parse(body, strlen(body), &a, &why);

    if (want == 0)
        return rc == KAP_ERROR && a == 0 && why != NULL && why[0] != '\0';
    return rc == KAP_OK && a == want;
}

int
main(void)
{
    char big[400];

    plan(47);
    /* query strings */
    ok(q_ok("", 100, 0), "empty query: defaults");
    ok(q_ok("limit=5", 5, 0), "limit=5");
    ok(q_ok("limit=1000&denied=1", 1000, 1), "limit=1000 and denied=1");
    ok(q_ok("denied=true&limit=7", 7, 1), "either order; denied=true");
    ok(q_ok("denied=false", 100, 0), "denied=false");
    ok(q_bad("limit=0"), "limit=0 refused");
    ok(q_bad("limit=1001"), "limit over 1000 refused");
    ok(q_bad("limit=05"), "leading zero refused");
    ok(q_bad("limit=-1"), "sign refused");
    ok(q_bad("limit=+1"), "plus refused");
    ok(q_bad("limit=1e2"), "exponent refused");
    ok(q_bad("limit=99999999999999999999"), "huge refused");
    ok(q_bad("limit=5&limit=6"), "repeated key refused");
    ok(q_bad("denied=1&denied=0"), "repeated denied refused");
    ok(q_bad("denied=yes"), "denied=yes refused");
    ok(q_bad("token=abc"), "token in the query refused");
    ok(q_bad("limit"), "key without value refused");
    ok(q_bad("=5"), "value without key refused");
    ok(q_bad("limit=5&"), "trailing & refused");
    ok(q_bad("&limit=5"), "leading & refused");
    ok(q_bad("lim%69t=5"), "percent-escaped key refused");
    ok(q_bad("limit=5%00"), "percent-escaped NUL refused");
    /* pair bodies */
    ok(name_is("", ""), "empty body: no name");
    ok(name_is("{}", ""), "{}: no name");
    ok(name_is("{\"name\":\"Pixel 8\"}", "Pixel 8"), "a name");
    ok(name_is("{\"name\":\"J\\u00f6rg's phone\"}", "J\xc3\xb6rg's phone"),
       "a UTF-8 name");
    ok(body_bad("{\"name\":\"a\\nb\"}", 15), "a newline in the name refused");
    ok(body_bad("{\"name\":\"\\u001b[31m\"}", 20), "ESC refused");
    ok(body_bad("{\"name\":\"\\u0085x\"}", 18), "a C1 control refused");
    ok(body_bad("{\"name\":\"a\\u202eb\"}", 19), "a bidi override refused");
    ok(body_bad("{\"name\":\"\"}", 11), "an empty name refused");
    ok(body_bad("{\"name\":\" x\"}", 13), "a leading space refused");
    memset(big, 'a', sizeof(big));
    memcpy(big, "{\"name\":\"", 9);
    memcpy(big + 9 + 65, "\"}", 2);
    ok(body_bad(big, 9 + 65 + 2), "a 65-byte name refused");
    ok(body_bad("{\"name\":1}", 10), "a number refused");
    ok(body_bad("{\"name\":\"a\",\"name\":\"b\"}", 23), "duplicate keys refused");
    ok(body_bad("{\"admin\":true}", 14), "unknown members refused");
    ok(body_bad("[]", 2), "an array refused");
    ok(body_bad("{\"name\":\"a\"} x", 14), "trailing bytes refused");
    /* Bearer */
    ok(bearer_is("Bearer abc_-DEF", "abc_-DEF"), "Bearer token");
    ok(bearer_is("bearer abc", "abc"), "scheme is case-insensitive");
    ok(bearer_is("Bearer abc def", NULL) && bearer_is("Bearer ", NULL)
       && bearer_is("Basic abc", NULL) && bearer_is("Bearer  abc", NULL)
       && bearer_is(NULL, NULL) && bearer_is("Bearer a\"b", NULL),
       "malformed Authorization values refused");
    /* ids */
    ok(kr_id_valid("0123456789ab", 12), "a device id");
    ok(!kr_id_valid("0123456789AB", 12) && !kr_id_valid("../../etc/x", 11)
       && !kr_id_valid("0123456789abc", 13) && !kr_id_valid("012345678 ab", 12),
       "bad device ids refused");
    ok(bearer_is("Bearer abc==", "abc=="), "b64token padding");
    /* a pending question: its id, the answer's body */
    ok(kr_ask_id_valid("0123456789abcdef", 16)
       && !kr_ask_id_valid("0123456789ABCDEF", 16)
       && !kr_ask_id_valid("0123456789abcde", 15)
       && !kr_ask_id_valid("0123456789abcdef0", 17), "question ids");
    ok(answer_is("{\"answer\":\"once\"}", KR_ANSWER_ONCE)
       && answer_is("{\"answer\":\"always\"}", KR_ANSWER_ALWAYS)
       && answer_is(" { \"answer\" : \"deny\" } ", KR_ANSWER_DENY),
       "answers: once, always, deny");
    ok(answer_is("", 0) && answer_is("{}", 0)
       && answer_is("{\"answer\":\"yes\"}", 0)
       && answer_is("{\"answer\":\"Once\"}", 0)
       && answer_is("{\"answer\":1}", 0)
       && answer_is("{\"answer\":\"once\",\"x\":1}", 0)
       && answer_is("{\"answer\":\"once\",\"answer\":\"deny\"}", 0)
       && answer_is("[\"once\"]", 0), "bad answers refused");
    return done_testing();
}
