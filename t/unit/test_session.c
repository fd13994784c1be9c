/*
 * test_session.c -- the Claude Code session parser
 * (modules/remote/kap_remote_session.c) on recorded sample files in
 * t/data/claude/, and the Docker routes' pure parsers
 * (modules/remote/kap_remote_dkparse.c): ids, the agent query, the
 * engine's multiplexed exec stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_json.h>

#include "tap.h"
#include "kap_remote.h"
#include "kap_remote_session.h"

#define SID "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"

static char *
slurp(const char *name, size_t *len)
{
    char path[4096];
    FILE *f;
    char *p;
    long n;

    snprintf(path, sizeof(path), "%s/%s", KR_TEST_DATA, name);
    if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0
        || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0
        || (p = malloc((size_t) n + 1)) == NULL
        || fread(p, 1, (size_t) n, f) != (size_t) n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    p[n] = '\0';
    *len = (size_t) n;
    return p;
}

/* parse data into a timeline and read the result back */
static struct kap_json *
timeline(const char *p, size_t n, struct kr_session_meta *m)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    struct kap_json *j;

    kap_json_w_init(&w, &b);
    if (kr_session_parse(p, n, &w, m) != KAP_OK
        || kap_json_w_finish(&w) != KAP_OK) {
        kap_buf_free(&b);
        return NULL;
    }
    j = kap_json_parse(b.data, b.len, NULL, NULL);
    kap_buf_free(&b);
    return j;
}

static const struct kap_json *
nth(const struct kap_json *a, size_t i)
{
    const struct kap_json *e = kap_json_child(a);

    while (e != NULL && i-- > 0)
        e = kap_json_next(e);
    return e;
}

static const char *
f(const struct kap_json *a, size_t i, const char *key)
{
    const char *s = kap_json_get_string(nth(a, i), key);

    return s != NULL ? s : "(none)";
}

static void
test_sample(void)
{
    struct kr_session_meta m;
    size_t n;
    char *p = slurp(SID ".jsonl", &n);
    struct kap_json *j = timeline(p, n, &m);

    ok(j != NULL, "the sample session parses into valid JSON");
    is_int(kap_json_size(j), 9, "9 events");
    is_int(m.lines, 15, "15 lines");
    is_int(m.malformed, 3, "3 malformed lines skipped and counted");
    is_int(m.skipped, 3, "progress, snapshot and a /clear echo skipped");
    is_str(m.cwd, "/workspace/app", "cwd from the first line with one");
    is_str(m.branch, "feature/login", "branch");
    is_str(m.task, "Fix the login form: the email check\xe2\x80\xa6",
           "task: the first user text, first line, with an ellipsis");
    is_str(m.last_ts, "2026-12-07T09:00:08.000Z", "the last timestamp");

    is_str(f(j, 0, "type"), "summary", "a summary line");
    is_str(f(j, 0, "summary"), "Fix the login form validation",
           "with its text");
    is_str(f(j, 1, "type"), "user", "the prompt");
    is_str(f(j, 1, "role"), "user", "role user");
    is_str(f(j, 1, "summary"), "Fix the login form: the email check\xe2\x80\xa6",
           "a multi-line prompt: first line and an ellipsis");
    is_str(f(j, 1, "timestamp"), "2026-12-07T09:00:01.000Z", "timestamp");
    is_str(f(j, 1, "uuid"), "aaaaaaaa-0000-4000-8000-000000000002", "uuid");
    is_str(f(j, 2, "summary"), "thinking\xe2\x80\xa6", "thinking");
    is_str(f(j, 2, "model"), "claude-sonnet-4-5", "the model");
    is_str(f(j, 3, "summary"), "I'll look at the form first.",
           "assistant text before its tool use");
    is_str(f(j, 3, "tool_name"), "Read", "the tool's name");
    is_str(f(j, 4, "type"), "tool_result", "a tool result");
    is_str(f(j, 4, "summary"), "export function check(email) {\xe2\x80\xa6",
           "its first line");
    is_str(f(j, 5, "summary"), "npm test -- --grep login",
           "Bash: the command");
    is_str(f(j, 5, "tool_name"), "Bash", "tool_name Bash");
    is_str(f(j, 6, "summary"), "(error) 1 failing\xe2\x80\xa6",
           "an error result");
    is_str(f(j, 7, "type"), "system", "a system line");
    is_str(f(j, 7, "summary"), "system event", "a fixed text");
    is_str(f(j, 8, "summary"),
           "Fixed: empty emails are now rejected. \xc3\xa9t\xc3\xa9 \xe2\x9c\x93",
           "UTF-8 kept");
    kap_json_free(j);
    free(p);
}

static void
test_limits(void)
{
    struct kr_session_meta m;
    size_t n, i, big = KR_SESSION_LINE_MAX + 100;
    char *p = slurp("limits.jsonl", &n), *q;
    struct kap_json *j = timeline(p, n, &m);
    const char *s;
    size_t chars = 0;

    ok(j != NULL, "the limits sample parses");
    is_int(kap_json_size(j), 4, "4 events (a local command echo skipped)");
    s = f(j, 0, "summary");
    for (i = 0; s[i] != '\0'; i++)
        chars += ((unsigned char) s[i] & 0xc0) != 0x80;
    is_int(chars, KR_SUMMARY_MAX + 1, "a long text: 200 characters and"
           " the ellipsis");
    ok(strcmp(s + strlen(s) - 3, "\xe2\x80\xa6") == 0,
       "cut at a character boundary, with an ellipsis");
    is_str(f(j, 1, "summary"), "(empty result)", "an empty tool result");
    is_str(f(j, 2, "summary"), "TODO", "Grep: the pattern");
    is_str(f(j, 2, "tool_name"), "Grep", "the first tool's name");
    is_str(f(j, 3, "summary"), "tool_use: WebFetch",
           "a tool without a known input: its name");
    kap_json_free(j);
    free(p);

    /* a line over the limit is skipped unparsed, the next one is read */
    q = malloc(big + 200);
    memset(q, 'x', big);
    memcpy(q, "{\"type\":\"user\",\"message\":{\"content\":\"", 37);
    memcpy(q + big - 3, "\"}}", 3);
    n = big;
    n += (size_t) snprintf(q + big, 200, "\n{\"type\":\"user\",\"message\":"
                           "{\"content\":\"after\"}}");
    j = timeline(q, n, &m);
    is_int(m.huge, 1, "a huge line is counted");
    is_int(kap_json_size(j), 1, "and skipped");
    is_str(f(j, 0, "summary"), "after", "the next line is read");
    kap_json_free(j);

    /* invalid UTF-8, NUL, a duplicate key, a cut first line: malformed */
    {
        static const char bad[] = "\"x\"}\n{\"type\":\"a\",\"type\":\"b\"}\n"
                                  "{\"type\":\"\xff\"}\n[1]\n{\"type\":1}\n";
        j = timeline(bad, sizeof(bad) - 1, &m);
    }
    is_int(kap_json_size(j), 0, "no events from bad lines");
    is_int(m.malformed, 5, "each counted as malformed");
    kap_json_free(j);
    free(q);
    j = timeline("", 0, &m);
    is_int(kap_json_size(j), 0, "an empty file: no events");
    kap_json_free(j);
}

static void
test_many(void)
{
    struct kr_session_meta m;
    struct kap_buf b = { 0 };
    struct kap_json *j;
    unsigned i;

    for (i = 0; i < KR_SESSION_EVENTS_MAX + 10; i++)
        kap_buf_printf(&b, "{\"type\":\"user\",\"message\":{\"content\":"
                       "\"m%u\"}}\n", i);
    j = timeline(b.data, b.len, &m);
    is_int(kap_json_size(j), KR_SESSION_EVENTS_MAX, "events are capped");
    is_str(f(j, 0, "summary"), "m10", "the newest are kept");
    is_int(m.dropped, 10, "the dropped ones are counted");
    kap_json_free(j);
    kap_buf_free(&b);
}

static void
test_project(void)
{
    char out[64];

    kr_session_project("-home-dev-src-app", 17, out, sizeof(out));
    is_str(out, "src-app", "home-USER- dropped");
    kr_session_project("-Users-ann-work", 15, out, sizeof(out));
    is_str(out, "work", "Users-USER- dropped");
    kr_session_project("-workspace", 10, out, sizeof(out));
    is_str(out, "workspace", "a leading dash dropped");
    kr_session_project("-home-dev", 9, out, sizeof(out));
    is_str(out, "", "only a user: nothing");
}

static void
test_ids(void)
{
    char proj[KR_PROJECT_MAX + 1];
    const char *why;
    int patch;

    ok(kr_session_id_valid(SID, 36), "a UUID is a session id");
    ok(!kr_session_id_valid("5F0C1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B", 36),
       "upper case is not");
    ok(!kr_session_id_valid("../../../../etc/passwd-xxxxxxxxxxxxxx", 36),
       "a path is not");
    ok(!kr_session_id_valid("5f0c1a2b;3c4d-4e5f-8a9b-0c1d2e3f4a5b", 36),
       "a ; is not");
    ok(!kr_session_id_valid(SID "0", 37), "a longer one is not");
    ok(kr_container_id_valid("0123456789ab", 12), "a short container id");
    ok(!kr_container_id_valid("0123456789a", 11), "too short");
    ok(!kr_container_id_valid("0123456789aG", 12), "not hex");
    ok(kr_project_valid("my-app_1", 8), "a compose project name");
    ok(!kr_project_valid("-x", 2) && !kr_project_valid("A", 1)
       && !kr_project_valid("a b", 3) && !kr_project_valid("", 0),
       "others are not");
    ok(kr_agent_query_parse("project=my-app&format=patch", 27, proj, &patch,
                            &why) == KAP_OK
       && strcmp(proj, "my-app") == 0 && patch == 1, "project and format");
    ok(kr_agent_query_parse("", 0, proj, &patch, &why) == KAP_OK
       && proj[0] == '\0' && patch == 0, "an empty query");
    ok(kr_agent_query_parse("project=a&project=b", 19, proj, &patch, &why)
       == KAP_ERROR, "project twice");
    ok(kr_agent_query_parse("project=a%2e", 12, proj, &patch, &why)
       == KAP_ERROR, "a percent-escape");
    ok(kr_agent_query_parse("x=1", 3, proj, &patch, &why) == KAP_ERROR,
       "an unknown key");
    ok(kr_agent_query_parse("project=a&", 10, proj, &patch, &why)
       == KAP_ERROR, "a trailing &");
}

static void
test_demux(void)
{
    struct kap_buf out = { 0 }, err = { 0 };
    const char *why = NULL;
    int cut = 0;
    static const char s[] = "\1\0\0\0\0\0\0\3abc\2\0\0\0\0\0\0\2er"
                            "\1\0\0\0\0\0\0\2de";

    ok(kr_demux(s, sizeof(s) - 1, 0, &out, 100, &err, 100, &cut, &why)
       == KAP_OK, "a multiplexed stream");
    ok(out.len == 5 && memcmp(out.data, "abcde", 5) == 0, "stdout joined");
    ok(err.len == 2 && memcmp(err.data, "er", 2) == 0, "stderr apart");
    ok(!cut, "nothing cut");
    kap_buf_reset(&out);
    kap_buf_reset(&err);
    ok(kr_demux(s, sizeof(s) - 1, 0, &out, 4, &err, 1, &cut, &why) == KAP_OK
       && out.len == 4 && err.len == 1 && cut, "limits cut and say so");
    kap_buf_reset(&out);
    ok(kr_demux(s, 13, 0, &out, 100, &err, 100, &cut, &why) == KAP_ERROR
       && why != NULL, "a frame cut short is refused");
    kap_buf_reset(&out);
    ok(kr_demux(s, 13, 1, &out, 100, &err, 100, &cut, &why) == KAP_OK && cut,
       "unless the reader stopped it");
    ok(kr_demux("\3\0\0\0\0\0\0\0", 8, 0, &out, 100, &err, 100, &cut, &why)
       == KAP_ERROR, "an unknown stream");
    ok(kr_demux("HTTP/1.1", 8, 0, &out, 100, &err, 100, &cut, &why)
       == KAP_ERROR, "raw bytes (a Tty exec) are refused");
    kap_buf_free(&out);
    kap_buf_free(&err);
}

int
main(void)
{
    test_sample();
    test_limits();
    test_many();
    test_project();
    test_ids();
    test_demux();
    return done_testing();
}
