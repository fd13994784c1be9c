/*
 * kap_remote_docker.h -- the remote module's Docker Engine API client
 * (kap_remote_docker.c), used by the agent routes (kap_remote_agent.c).
 */
#ifndef KAP_REMOTE_DOCKER_H
#define KAP_REMOTE_DOCKER_H

#include <ev.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>
#include <kapd/kap_json.h>

struct kr_conf;
struct kr_dk;

typedef void (*kr_dk_json_fn)(struct kr_dk *d, const struct kap_json *j);
typedef void (*kr_dk_exec_fn)(struct kr_dk *d);
typedef void (*kr_dk_fail_fn)(struct kr_dk *d, int status, const char *why);

/* One command to run in a container: an argv, never a shell line. */
struct kr_dk_cmd {
    const char *const *argv;      /* NULL-ended, argv[0] the program */
    const char *const *env;       /* "NAME=value", NULL-ended, or NULL */
    const char        *user;      /* "name" or "uid", or NULL: the image's */
    const char        *workdir;   /* absolute, or NULL */
    size_t             max_out;   /* stdout bytes kept; 0: KR_EXEC_MAX_OUT */
    int                detach;    /* start and do not wait or read */
};

/*
 * A chain of engine calls for one exchange; allocated in the exchange's
 * pool and gone with it.  The route keeps its own state in route.
 */
struct kr_dk {
    struct kap_http_ex   *ex;         /* NULL once answered or aborted */
    struct kap_pool      *pool;       /* the exchange's */
    const struct kr_conf *cf;
    ev_timer              tm;         /* the chain's deadline */
    struct kap_curl      *cu;         /* the call in flight */
    kr_dk_json_fn         json_done;
    kr_dk_exec_fn         exec_done;
    /* the last exec: its output, cut at max_out (cut set), and exit code
       (-1: unknown: detached, or cut while running) */
    const char           *eid;
    int                   detach, stopped, cut;
    long                  start_status;
    size_t                max_out;
    struct kap_buf        raw, out, err;
    long long             exit_code;
    void                 *route;      /* the route's state */
    kr_dk_fail_fn         fail;       /* a chain without an exchange to
                                         answer: told of a failure */
    void                 *data;       /* for fail's owner */
};

/*
 * Start a chain for ex (sets its on_abort; the deadline starts now).
 * NULL on out of memory.  The chain ends when the route answers: with
 * kr_dk_fail() or with its own kap_http_respond()/kap_http_error() on
 * d->ex (then d is gone).
 */
struct kr_dk *kr_dk_new(struct kap_http_ex *ex, const struct kr_conf *cf);

/*
 * A chain that answers no HTTP exchange (a WebSocket's follower): it
 * lives in pool (the caller's, destroyed by the caller once the chain
 * ended, which stops it at any point), its engine calls are made for
 * ex's connection, which must outlive the chain or be cut off first by
 * setting d->ex to NULL; a failure calls fail(d, status, why) instead
 * of answering (d->ex is NULL by then).  NULL on out of memory.
 */
struct kr_dk *kr_dk_new_pool(struct kap_pool *pool, struct kap_http_ex *ex,
                             const struct kr_conf *cf, kr_dk_fail_fn fail,
                             void *data);

/* GET path (after the API version, e.g. "/containers/json"); done gets
   the strictly parsed 2xx body (owned by d->pool).  On any failure the
   client is answered (502/504/404) and done is never called. */
void kr_dk_get(struct kr_dk *d, const char *path, kr_dk_json_fn done);

/* Run cmd in container cid (validated hex); done when it has ended
   (d->out, d->err, d->exit_code), failures answered as for kr_dk_get. */
void kr_dk_exec(struct kr_dk *d, const char *cid, const struct kr_dk_cmd *cmd,
                kr_dk_exec_fn done);

/* What kr_agent_follow() read: d->out holds the session file's bytes
   from offset from on; size and mtime are the file's when it was found. */
struct kr_follow_res {
    long long from, size;
    double    mtime;
};
typedef void (*kr_follow_fn)(struct kr_dk *d, const struct kr_follow_res *r,
                             void *data);

/*
 * kap_remote_agent.c: find session sid (a valid UUID) in project's app
 * container ("" when one project runs) as GET /api/agent/session/ID
 * does, and read its bytes from offset from on (-1, or past the file's
 * end: its last 4 MiB) into d->out; then done(d, what, data), the chain
 * over (d->ex NULL).  A failure goes to d's fail callback.
 */
void kr_agent_follow(struct kr_dk *d, const char *project, const char *sid,
                     long long from, kr_follow_fn done, void *data);

/* Answer the client with a JSON error (once) and stop the chain. */
void kr_dk_fail(struct kr_dk *d, int status, const char *why);

#endif /* KAP_REMOTE_DOCKER_H */
