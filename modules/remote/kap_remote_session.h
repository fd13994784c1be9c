/*
 * kap_remote_session.h -- the Claude Code session parser
 * (kap_remote_session.c): a session's JSONL file into a timeline.
 * Pure: no I/O, no globals (t/unit/test_session, fuzz/fuzz_session).
 */
#ifndef KAP_REMOTE_SESSION_H
#define KAP_REMOTE_SESSION_H

#include <stddef.h>

#include <kapd/kap_json.h>

#define KR_SESSION_LINE_MAX   (256 * 1024)  /* longer lines are skipped */
#define KR_SESSION_EVENTS_MAX 5000          /* newest kept */
#define KR_SUMMARY_MAX        200           /* characters of a summary */
#define KR_TOOL_INPUT_MAX     120
#define KR_TOOL_ERROR_MAX     150
#define KR_TASK_MAX           80

/* What the file says about itself, besides the events. */
struct kr_session_meta {
    char     cwd[1024];          /* first "cwd", "" when none */
    char     branch[256];        /* first "gitBranch", "" when none */
    char     task[KR_TASK_MAX * 4 + 8];  /* first user text not starting
                                    with '<', first line, cut */
    char     last_ts[64];        /* last "timestamp", "" when none */
    unsigned lines;              /* non-empty lines */
    unsigned events;             /* events in the timeline */
    unsigned skipped;            /* lines of types that are not events */
    unsigned malformed;          /* not JSON, not an object, no "type" */
    unsigned huge;               /* over KR_SESSION_LINE_MAX, skipped */
    unsigned dropped;            /* older events over the events limit */
};

/*
 * Parse the JSONL bytes p[0..n) (a whole file, or its tail: a first
 * line cut short is malformed like any other).  With w non-NULL, writes
 * a JSON array of events, oldest first, each an object with "type" and
 * where known "role", "timestamp", "summary", "model", "tool_name",
 * "uuid"; at most KR_SESSION_EVENTS_MAX, the newest.  meta (non-NULL) is
 * filled.  KAP_OK, or KAP_ERROR on out of memory.
 */
int kr_session_parse(const char *p, size_t n, struct kap_json_writer *w,
                     struct kr_session_meta *meta);

/*
 * The project a session belongs to, from its directory name under
 * .claude/projects ("-home-dev-src-app" -> "src-app" when it begins with
 * home-USER- or Users-USER-, else the name without its leading '-').
 * Writes at most size - 1 bytes and a NUL into out.
 */
void kr_session_project(const char *dir, size_t len, char *out,
                        size_t size);

#endif /* KAP_REMOTE_SESSION_H */
