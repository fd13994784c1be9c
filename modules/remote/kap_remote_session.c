/*
 * kap_remote_session.c -- Claude Code session files (JSONL, one JSON
 * object a line, in ~/.claude/projects/DIR/UUID.jsonl of the app
 * container) into a timeline of user, assistant, tool and summary
 * events, for the phone's Agent view.
 *
 * The file is the agent's: every byte is untrusted.  Each line is parsed
 * strictly (kap_json) on its own; a line that is not a JSON object with
 * a string "type" is counted as malformed and skipped, a line over
 * KR_SESSION_LINE_MAX is counted and skipped unparsed.  Summaries are
 * short: the first line of a text, cut at a character boundary with an
 * ellipsis.  Pure: unit-tested (t/unit/test_session) and fuzzed
 * (fuzz/fuzz_session).
 */
#include <stdio.h>
#include <string.h>

#include "kap_remote_session.h"

#define KR_ELLIPSIS "\xe2\x80\xa6"

static int
kr_eq(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

static int
kr_prefix(const char *s, const char *pre)
{
    return s != NULL && strncmp(s, pre, strlen(pre)) == 0;
}

/*
 * The first line of s, at most max characters (UTF-8 code points; the
 * strict parser gave valid UTF-8), with an ellipsis when anything was
 * left out; leading blanks dropped.  out has room for max * 4 + 4.
 */
static void
kr_trunc(const char *s, size_t max, char *out, size_t size)
{
    size_t i = 0, chars = 0, o = 0;
    int cut = 0;

    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
        i++;
    for (; s[i] != '\0'; ) {
        size_t l = 1;
        unsigned char c = (unsigned char) s[i];

        if (s[i] == '\n' || s[i] == '\r') {
            /* more text after the first line: say so */
            size_t k = i;
            while (s[k] == '\n' || s[k] == '\r' || s[k] == ' ')
                k++;
            cut = s[k] != '\0';
            break;
        }
        if (chars == max) {
            cut = 1;
            break;
        }
        if (c >= 0xf0)
            l = 4;
        else if (c >= 0xe0)
            l = 3;
        else if (c >= 0xc0)
            l = 2;
        if (o + l + 4 > size)
            break;
        memcpy(out + o, s + i, l);
        o += l;
        i += l;
        chars++;
    }
    if (cut && o + 4 <= size) {
        memcpy(out + o, KR_ELLIPSIS, 3);
        o += 3;
    }
    out[o] = '\0';
}

static void
kr_copy(char *dst, size_t size, const char *s)
{
    if (s != NULL && dst[0] == '\0')
        snprintf(dst, size, "%s", s);
}

/* the first non-empty "text" block of a content array */
static const char *
kr_first_text(const struct kap_json *content)
{
    const struct kap_json *b;

    for (b = kap_json_child(content); b != NULL; b = kap_json_next(b)) {
        const char *t = kap_json_get_string(b, "text");
        if (kr_eq(kap_json_get_string(b, "type"), "text") && t != NULL
            && t[strspn(t, " \t\r\n")] != '\0')
            return t;
    }
    return NULL;
}

/* a tool_use block's input, compact: what a reader wants to see */
static const char *
kr_tool_input(const struct kap_json *blk)
{
    static const char *const other[] = {
        "command", "file_path", "path", "query", NULL
    };
    const char *name = kap_json_get_string(blk, "name");
    const struct kap_json *in = kap_json_get(blk, "input");
    const char *v = NULL;
    size_t i;

    if (kr_eq(name, "Bash"))
        v = kap_json_get_string(in, "command");
    else if (kr_eq(name, "Read") || kr_eq(name, "Write")
             || kr_eq(name, "Edit"))
        v = kap_json_get_string(in, "file_path");
    else if (kr_eq(name, "Grep") || kr_eq(name, "Glob"))
        v = kap_json_get_string(in, "pattern");
    else if (kr_eq(name, "Agent") || kr_eq(name, "Task")) {
        v = kap_json_get_string(in, "description");
        if (v == NULL)
            v = kap_json_get_string(in, "prompt");
    } else {
        for (i = 0; other[i] != NULL && v == NULL; i++)
            v = kap_json_get_string(in, other[i]);
    }
    return v;
}

/* a tool_result block's summary into out */
static void
kr_tool_result(const struct kap_json *blk, char *out, size_t size)
{
    const struct kap_json *c = kap_json_get(blk, "content");
    const char *s = kap_json_string(c);
    char tmp[KR_SUMMARY_MAX * 4 + 8];

    if (kap_json_bool(kap_json_get(blk, "is_error")) == 1) {
        if (s == NULL)
            s = kr_first_text(c);
        kr_trunc(s != NULL ? s : "", KR_TOOL_ERROR_MAX, tmp, sizeof(tmp));
        snprintf(out, size, "(error) %s", tmp);
    } else if (s != NULL) {
        if (s[strspn(s, " \t\r\n")] == '\0')
            snprintf(out, size, "(empty result)");
        else
            kr_trunc(s, KR_SUMMARY_MAX, out, size);
    } else if ((s = kr_first_text(c)) != NULL) {
        kr_trunc(s, KR_SUMMARY_MAX, out, size);
    } else {
        snprintf(out, size, "(tool result)");
    }
}

struct kr_event {
    const char *type, *role, *ts, *model, *tool, *uuid;
    char        summary[KR_SUMMARY_MAX * 4 + 32];
};

/* a user message: 0 when it is not shown (a local command's echo) */
static int
kr_user(const struct kap_json *content, struct kr_event *ev,
        struct kr_session_meta *meta)
{
    const struct kap_json *b;
    const char *s = kap_json_string(content), *t;

    if (s != NULL) {
        if (kr_prefix(s, "<local-command") || kr_prefix(s, "<command-"))
            return 0;
        kr_trunc(s, KR_SUMMARY_MAX, ev->summary, sizeof(ev->summary));
        if (meta->task[0] == '\0' && s[0] != '<')
            kr_trunc(s, KR_TASK_MAX, meta->task, sizeof(meta->task));
        return 1;
    }
    if ((t = kr_first_text(content)) != NULL) {
        kr_trunc(t, KR_SUMMARY_MAX, ev->summary, sizeof(ev->summary));
        if (meta->task[0] == '\0' && t[0] != '<')
            kr_trunc(t, KR_TASK_MAX, meta->task, sizeof(meta->task));
        return 1;
    }
    for (b = kap_json_child(content); b != NULL; b = kap_json_next(b))
        if (kr_eq(kap_json_get_string(b, "type"), "tool_result")) {
            ev->type = "tool_result";
            kr_tool_result(b, ev->summary, sizeof(ev->summary));
            return 1;
        }
    return 1;
}

static void
kr_assistant(const struct kap_json *content, struct kr_event *ev)
{
    const struct kap_json *b;
    const char *s = kap_json_string(content), *t;
    int thinking = 0;

    for (b = kap_json_child(content); b != NULL; b = kap_json_next(b))
        if (kr_eq(kap_json_get_string(b, "type"), "tool_use")
            && ev->tool == NULL)
            ev->tool = kap_json_get_string(b, "name");
    if (s != NULL) {
        kr_trunc(s, KR_SUMMARY_MAX, ev->summary, sizeof(ev->summary));
        return;
    }
    if ((t = kr_first_text(content)) != NULL) {
        kr_trunc(t, KR_SUMMARY_MAX, ev->summary, sizeof(ev->summary));
        return;
    }
    for (b = kap_json_child(content); b != NULL; b = kap_json_next(b)) {
        const char *bt = kap_json_get_string(b, "type");
        if (kr_eq(bt, "tool_use")) {
            const char *in = kr_tool_input(b);
            const char *name = kap_json_get_string(b, "name");
            if (in != NULL && in[strspn(in, " \t\r\n")] != '\0')
                kr_trunc(in, KR_TOOL_INPUT_MAX, ev->summary,
                         sizeof(ev->summary));
            else
                snprintf(ev->summary, sizeof(ev->summary), "tool_use: %.100s",
                         name != NULL ? name : "?");
            return;
        }
        if (kr_eq(bt, "thinking"))
            thinking = 1;
    }
    if (thinking)
        snprintf(ev->summary, sizeof(ev->summary), "thinking" KR_ELLIPSIS);
}

static void
kr_write_event(struct kap_json_writer *w, const struct kr_event *ev)
{
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "type");
    kap_json_w_str(w, ev->type);
#define KR_OPT(k, v)                                                       \
    do {                                                                   \
        if ((v) != NULL && (v)[0] != '\0') {                               \
            kap_json_w_key(w, k);                                          \
            kap_json_w_str(w, v);                                          \
        }                                                                  \
    } while (0)
    KR_OPT("role", ev->role);
    KR_OPT("timestamp", ev->ts);
    KR_OPT("summary", ev->summary);
    KR_OPT("model", ev->model);
    KR_OPT("tool_name", ev->tool);
    KR_OPT("uuid", ev->uuid);
#undef KR_OPT
    kap_json_w_obj_end(w);
}

/* one line: 1 when it is an event (ev filled), 0 when not, -1 malformed */
static int
kr_line(const struct kap_json *j, struct kr_event *ev,
        struct kr_session_meta *meta)
{
    const struct kap_json *msg = kap_json_get(j, "message");
    const struct kap_json *content = kap_json_get(msg, "content");
    const char *type = kap_json_get_string(j, "type");
    const char *ts = kap_json_get_string(j, "timestamp");

    if (kap_json_type(j) != KAP_JSON_OBJECT || type == NULL)
        return -1;
    kr_copy(meta->cwd, sizeof(meta->cwd), kap_json_get_string(j, "cwd"));
    kr_copy(meta->branch, sizeof(meta->branch),
            kap_json_get_string(j, "gitBranch"));
    if (ts != NULL)
        snprintf(meta->last_ts, sizeof(meta->last_ts), "%s", ts);
    if (kr_eq(type, "progress") || kr_eq(type, "file-history-snapshot")
        || kr_eq(type, "last-prompt") || kr_eq(type, "queue-operation"))
        return 0;
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->ts = ts;
    ev->uuid = kap_json_get_string(j, "uuid");
    ev->role = kap_json_get_string(msg, "role");
    ev->model = kap_json_get_string(msg, "model");
    if (kr_eq(type, "system")) {
        snprintf(ev->summary, sizeof(ev->summary), "system event");
    } else if (kr_eq(type, "summary")) {
        const char *s = kap_json_get_string(j, "summary");
        if (s != NULL)
            kr_trunc(s, KR_SUMMARY_MAX, ev->summary, sizeof(ev->summary));
    } else if (kr_eq(type, "user")) {
        if (!kr_user(content, ev, meta))
            return 0;
    } else if (kr_eq(type, "assistant")) {
        kr_assistant(content, ev);
    }
    return 1;
}

/* only spaces and tabs, or nothing */
static int
kr_blank(const char *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t')
            return 0;
    return 1;
}

static int
kr_pass(const char *p, size_t n, struct kap_json_writer *w,
        struct kr_session_meta *meta, unsigned skip)
{
    struct kap_json_limits lim = { KR_SESSION_LINE_MAX, 64, 10000, 0 };
    const char *end = p + n, *nl;
    struct kr_event ev;
    unsigned seen = 0;

    memset(meta, 0, sizeof(*meta));
    if (w != NULL)
        kap_json_w_arr_begin(w);
    while (p < end) {
        struct kap_json *j;
        size_t len;
        int rc;

        nl = memchr(p, '\n', (size_t) (end - p));
        len = (size_t) ((nl != NULL ? nl : end) - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (!kr_blank(p, len)) {
            meta->lines++;
            if (len > KR_SESSION_LINE_MAX) {
                meta->huge++;
            } else if ((j = kap_json_parse(p, len, &lim, NULL)) == NULL) {
                meta->malformed++;
            } else {
                rc = kr_line(j, &ev, meta);
                if (rc < 0)
                    meta->malformed++;
                else if (rc == 0)
                    meta->skipped++;
                else if (seen++ >= skip && w != NULL) {
                    kr_write_event(w, &ev);
                    meta->events++;
                }
                kap_json_free(j);
            }
        }
        p = nl != NULL ? nl + 1 : end;
    }
    if (w == NULL)
        meta->events = seen;
    else
        kap_json_w_arr_end(w);
    return w != NULL && w->failed ? KAP_ERROR : KAP_OK;
}

int
kr_session_parse(const char *p, size_t n, struct kap_json_writer *w,
                 struct kr_session_meta *meta)
{
    unsigned skip = 0;

    if (kr_pass(p, n, NULL, meta, 0) != KAP_OK)
        return KAP_ERROR;
    if (w == NULL)
        return KAP_OK;
    if (meta->events > KR_SESSION_EVENTS_MAX)
        skip = meta->events - KR_SESSION_EVENTS_MAX;
    if (kr_pass(p, n, w, meta, skip) != KAP_OK)
        return KAP_ERROR;
    meta->dropped = skip;
    return KAP_OK;
}

void
kr_session_project(const char *dir, size_t len, char *out, size_t size)
{
    const char *p = dir, *end = dir + len, *dash;

    if (p < end && *p == '-')
        p++;
    if ((size_t) (end - p) > 5
        && (memcmp(p, "home-", 5) == 0
            || ((size_t) (end - p) > 6 && memcmp(p, "Users-", 6) == 0))) {
        p += p[0] == 'h' ? 5 : 6;
        dash = memchr(p, '-', (size_t) (end - p));
        p = dash != NULL ? dash + 1 : end;
    }
    if (size == 0)
        return;
    len = (size_t) (end - p);
    if (len >= size)
        len = size - 1;
    memcpy(out, p, len);
    out[len] = '\0';
}
