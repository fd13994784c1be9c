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
};

/*
 * Start a chain for ex (sets its on_abort; the deadline starts now).
 * NULL on out of memory.  The chain ends when the route answers: with
 * kr_dk_fail() or with its own kap_http_respond()/kap_http_error() on
 * d->ex (then d is gone).
 */
struct kr_dk *kr_dk_new(struct kap_http_ex *ex, const struct kr_conf *cf);

/* GET path (after the API version, e.g. "/containers/json"); done gets
   the strictly parsed 2xx body (owned by d->pool).  On any failure the
   client is answered (502/504/404) and done is never called. */
void kr_dk_get(struct kr_dk *d, const char *path, kr_dk_json_fn done);

/* Run cmd in container cid (validated hex); done when it has ended
   (d->out, d->err, d->exit_code), failures answered as for kr_dk_get. */
void kr_dk_exec(struct kr_dk *d, const char *cid, const struct kr_dk_cmd *cmd,
                kr_dk_exec_fn done);

/* Answer the client with a JSON error (once) and stop the chain. */
void kr_dk_fail(struct kr_dk *d, int status, const char *why);

#endif /* KAP_REMOTE_DOCKER_H */
