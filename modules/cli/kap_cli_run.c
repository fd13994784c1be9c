/*
 * kap_cli_run.c -- one tool call as a child process: posix_spawn into a
 * process group of its own, stdin fed, stdout/stderr read as they come,
 * wall-time and output limits, the group killed at the end, the leader
 * reaped by ev_child.  See kap_cli_run.h.
 */
#define _GNU_SOURCE
#include "kap_cli_run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#define KAP_CLI_READ 16384

struct kap_cli_run {
    struct kap_cli_run_cbs  cbs;
    void                   *data;
    pid_t                   pid;
    double                  started;
    double                  wall_time;
    size_t                  max_output;

    ev_child                child;
    ev_timer                timer;      /* wall time, then drain */
    ev_io                   in_w;       /* stdin (write side) */
    ev_io                   out_w[2];   /* stdout, stderr (read sides) */
    int                     out_open[2];
    int                     in_open;

    char                   *in_data;    /* owned: stdin not yet written */
    size_t                  in_len, in_off, in_cap;
    int                     in_eof;     /* close stdin once written */
    int                     in_wants_drain; /* stdin said KAP_AGAIN */

    struct kap_cli_result   res;
    int                     reaped;
    int                     paused;
    int                     cancelled;
    int                     killed;     /* group already sent SIGKILL */
};

static void kap_cli_run_finish(struct kap_cli_run *r);

static void
kap_cli_run_kill_group(struct kap_cli_run *r)
{
    /* While the leader is unreaped its pid names the group; after it,
     * the group lives on only while a member does (so the id cannot
     * have been reused by an unrelated group). */
    if (r->pid > 0)
        (void)kill(-r->pid, SIGKILL);
    r->killed = 1;
}

static void
kap_cli_run_close_in(struct kap_cli_run *r)
{
    if (!r->in_open)
        return;
    ev_io_stop(kap_loop(), &r->in_w);
    (void)close(r->in_w.fd);
    r->in_open = 0;
    free(r->in_data);
    r->in_data = NULL;
}

static void
kap_cli_run_close_out(struct kap_cli_run *r, int i)
{
    if (!r->out_open[i])
        return;
    ev_io_stop(kap_loop(), &r->out_w[i]);
    (void)close(r->out_w[i].fd);
    r->out_open[i] = 0;
}

static void
kap_cli_run_free(struct kap_cli_run *r)
{
    struct ev_loop *loop = kap_loop();

    kap_cli_run_close_in(r);
    kap_cli_run_close_out(r, 0);
    kap_cli_run_close_out(r, 1);
    ev_timer_stop(loop, &r->timer);
    ev_child_stop(loop, &r->child);
    free(r);
}

/* End the call: over a limit (the group dies), or the client left. */
static void
kap_cli_run_stop(struct kap_cli_run *r, int why)
{
    if (r->res.ended == KAP_CLI_EXITED)
        r->res.ended = why;
    kap_cli_run_kill_group(r);
    kap_cli_run_close_in(r);
}

static void
kap_cli_run_out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct kap_cli_run *r = w->data;
    int                 i = w == &r->out_w[0] ? 0 : 1;
    char                buf[KAP_CLI_READ];
    size_t              want = sizeof(buf), room;
    ssize_t             n;
    int                 rc;

    (void)loop;
    (void)revents;
    if (r->max_output > 0) {
        room = r->max_output - (r->res.out_bytes + r->res.err_bytes);
        /* One byte over the room tells "more than the limit" apart from
         * "exactly the limit". */
        if (room + 1 < want)
            want = room + 1;
    }
    n = read(w->fd, buf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        kap_cli_run_close_out(r, i);
        kap_cli_run_finish(r);
        return;
    }
    if (r->max_output > 0) {
        room = r->max_output - (r->res.out_bytes + r->res.err_bytes);
        if ((size_t)n > room) {
            n = (ssize_t)room;
            kap_cli_run_stop(r, KAP_CLI_OUTPUT_LIMIT);
            kap_cli_run_close_out(r, 0);
            kap_cli_run_close_out(r, 1);
        }
    }
    if (i == 0)
        r->res.out_bytes += (size_t)n;
    else
        r->res.err_bytes += (size_t)n;
    rc = KAP_OK;
    if (n > 0 && !r->cancelled && r->cbs.on_output != NULL)
        rc = r->cbs.on_output(r, i + 1, buf, (size_t)n, r->data);
    if (rc == KAP_AGAIN && !r->paused) {
        r->paused = 1;
        if (r->out_open[0])
            ev_io_stop(kap_loop(), &r->out_w[0]);
        if (r->out_open[1])
            ev_io_stop(kap_loop(), &r->out_w[1]);
    }
    kap_cli_run_finish(r);
}

/* A caller told to wait (KAP_AGAIN) may send more: the held stdin fell
   to half, or stdin is closed. */
static void
kap_cli_run_in_drained(struct kap_cli_run *r)
{
    if (!r->in_wants_drain || r->cancelled
        || (r->in_open && r->in_len - r->in_off > KAP_CLI_RUN_IN_HIGH / 2))
        return;
    r->in_wants_drain = 0;
    if (r->cbs.on_stdin_drain != NULL)
        r->cbs.on_stdin_drain(r, r->data);
}

static void
kap_cli_run_in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct kap_cli_run *r = w->data;
    ssize_t             n;

    (void)loop;
    (void)revents;
    if (r->in_off < r->in_len) {
        n = write(w->fd, r->in_data + r->in_off, r->in_len - r->in_off);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) {             /* EPIPE: the tool closed its stdin */
            kap_cli_run_close_in(r);
            kap_cli_run_in_drained(r);
            return;
        }
        r->in_off += (size_t)n;
        r->res.in_bytes += (size_t)n;
    }
    if (r->in_off >= r->in_len) {
        r->in_off = r->in_len = 0;
        if (r->in_eof)
            kap_cli_run_close_in(r);
        else
            ev_io_stop(kap_loop(), &r->in_w);  /* until more comes */
    }
    kap_cli_run_in_drained(r);
}

int
kap_cli_run_stdin(struct kap_cli_run *r, const char *p, size_t n)
{
    size_t pending;

    if (!r->in_open || r->in_eof || n == 0)
        return KAP_OK;
    if (r->in_off > 0) {          /* what was written goes */
        memmove(r->in_data, r->in_data + r->in_off, r->in_len - r->in_off);
        r->in_len -= r->in_off;
        r->in_off = 0;
    }
    if (r->in_len + n > r->in_cap) {
        size_t cap = (r->in_len + n) * 2;
        char  *q = realloc(r->in_data, cap);

        if (q == NULL)
            return KAP_ERROR;
        r->in_data = q;
        r->in_cap = cap;
    }
    memcpy(r->in_data + r->in_len, p, n);
    r->in_len += n;
    ev_io_start(kap_loop(), &r->in_w);
    pending = r->in_len - r->in_off;
    if (pending > KAP_CLI_RUN_IN_HIGH) {
        r->in_wants_drain = 1;
        return KAP_AGAIN;
    }
    return KAP_OK;
}

void
kap_cli_run_stdin_eof(struct kap_cli_run *r)
{
    r->in_eof = 1;
    if (r->in_open && r->in_off >= r->in_len)
        kap_cli_run_close_in(r);
}

static void
kap_cli_run_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kap_cli_run *r = w->data;

    (void)revents;
    if (!r->reaped) {
        kap_cli_run_stop(r, KAP_CLI_TIMEOUT);
        return;
    }
    /* The drain time after the leader's exit is over: whatever still
     * holds a pipe open left the group; stop listening to it.  A reader
     * that holds the output back (paused) is waited for: the client's
     * write timeout or its leaving (kap_cli_run_cancel) ends that. */
    if (r->paused) {
        ev_timer_set(&r->timer, KAP_CLI_RUN_DRAIN, 0.);
        ev_timer_start(loop, &r->timer);
        return;
    }
    kap_cli_run_close_out(r, 0);
    kap_cli_run_close_out(r, 1);
    kap_cli_run_finish(r);
}

static void
kap_cli_run_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct kap_cli_run *r = w->data;
    int                 st = w->rstatus;

    (void)revents;
    ev_child_stop(loop, w);
    r->reaped = 1;
    if (WIFSIGNALED(st)) {
        r->res.signal = WTERMSIG(st);
        r->res.exit_code = 128 + r->res.signal;
    } else {
        r->res.exit_code = WEXITSTATUS(st);
    }
    r->res.duration = ev_now(loop) - r->started;
    /* Background children of the tool end with it. */
    kap_cli_run_kill_group(r);
    kap_cli_run_close_in(r);
    if (r->cancelled) {
        kap_cli_run_free(r);
        return;
    }
    ev_timer_stop(loop, &r->timer);
    ev_timer_set(&r->timer, KAP_CLI_RUN_DRAIN, 0.);
    ev_timer_start(loop, &r->timer);
    kap_cli_run_finish(r);
}

/* on_exit once the leader is reaped and both output pipes are closed. */
static void
kap_cli_run_finish(struct kap_cli_run *r)
{
    if (!r->reaped || r->out_open[0] || r->out_open[1] || r->cancelled)
        return;
    if (r->cbs.on_exit != NULL)
        r->cbs.on_exit(r, &r->res, r->data);
    kap_cli_run_free(r);
}

static int
kap_cli_run_pipe(int fds[2], int parent_end)
{
    int fl;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    fl = fcntl(fds[parent_end], F_GETFL);
    if (fl < 0 || fcntl(fds[parent_end], F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    return 0;
}

static int
kap_cli_run_spawn(struct kap_cli_run *r, const struct kap_cli_run_spec *spec,
                  int in[2], int out[2], int err[2], struct kap_err *e)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t          at;
    sigset_t                   none, all;
    int                        rc;

    if (posix_spawn_file_actions_init(&fa) != 0) {
        kap_err_set(e, "cli: out of memory");
        return -1;
    }
    if (posix_spawnattr_init(&at) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        kap_err_set(e, "cli: out of memory");
        return -1;
    }
    sigemptyset(&none);
    sigfillset(&all);
    rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (rc == 0 && spec->cwd != NULL)
        rc = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP
                                      | POSIX_SPAWN_SETSIGMASK
                                      | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&at, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&at, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&at, &all);
    if (rc == 0)
        rc = posix_spawn(&r->pid, spec->path, &fa, &at, spec->argv,
                         spec->envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        kap_err_set(e, "cli: cannot run %s: %s", spec->path, strerror(rc));
        return -1;
    }
    return 0;
}

static void
kap_cli_run_close_fds(int *fds, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (fds[i] >= 0)
            (void)close(fds[i]);
}

struct kap_cli_run *
kap_cli_run_start(const struct kap_cli_run_spec *spec,
                  const struct kap_cli_run_cbs *cbs, void *data,
                  struct kap_err *e)
{
    struct ev_loop     *loop = kap_loop();
    struct kap_cli_run *r;
    int                 fds[6] = { -1, -1, -1, -1, -1, -1 };
    int                 i;

    if (spec->path == NULL || spec->path[0] != '/' || spec->argv == NULL
        || spec->argv[0] == NULL || spec->envp == NULL) {
        kap_err_set(e, "cli: a run needs an absolute path, argv and env");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        kap_err_set(e, "cli: out of memory");
        return NULL;
    }
    if (spec->stdin_len > 0) {
        r->in_data = malloc(spec->stdin_len);
        if (r->in_data == NULL) {
            free(r);
            kap_err_set(e, "cli: out of memory");
            return NULL;
        }
        memcpy(r->in_data, spec->stdin_data, spec->stdin_len);
        r->in_len = r->in_cap = spec->stdin_len;
    }
    r->in_eof = !spec->stdin_stream;
    if (kap_cli_run_pipe(&fds[0], 1) != 0 || kap_cli_run_pipe(&fds[2], 0) != 0
        || kap_cli_run_pipe(&fds[4], 0) != 0) {
        kap_err_set(e, "cli: pipe: %s", strerror(errno));
        goto fail;
    }
    if (kap_cli_run_spawn(r, spec, &fds[0], &fds[2], &fds[4], e) != 0)
        goto fail;
    /* The child's ends belong to the child now. */
    (void)close(fds[0]);
    (void)close(fds[3]);
    (void)close(fds[5]);

    if (cbs != NULL)
        r->cbs = *cbs;
    r->data = data;
    r->started = ev_now(loop);
    r->wall_time = spec->wall_time;
    r->max_output = spec->max_output;

    ev_child_init(&r->child, kap_cli_run_child_cb, r->pid, 0);
    r->child.data = r;
    ev_child_start(loop, &r->child);

    ev_io_init(&r->in_w, kap_cli_run_in_cb, fds[1], EV_WRITE);
    r->in_w.data = r;
    r->in_open = 1;
    if (r->in_len > 0)
        ev_io_start(loop, &r->in_w);
    else if (r->in_eof)
        kap_cli_run_close_in(r);

    for (i = 0; i < 2; i++) {
        ev_io_init(&r->out_w[i], kap_cli_run_out_cb, fds[2 + 2 * i], EV_READ);
        r->out_w[i].data = r;
        r->out_open[i] = 1;
        ev_io_start(loop, &r->out_w[i]);
    }
    ev_init(&r->timer, kap_cli_run_timer_cb);
    r->timer.data = r;
    if (r->wall_time > 0) {
        ev_timer_set(&r->timer, r->wall_time, 0.);
        ev_timer_start(loop, &r->timer);
    }
    return r;

fail:
    kap_cli_run_close_fds(fds, 6);
    free(r->in_data);
    free(r);
    return NULL;
}

void
kap_cli_run_resume(struct kap_cli_run *r)
{
    int i;

    if (!r->paused)
        return;
    r->paused = 0;
    for (i = 0; i < 2; i++)
        if (r->out_open[i])
            ev_io_start(kap_loop(), &r->out_w[i]);
}

void
kap_cli_run_cancel(struct kap_cli_run *r)
{
    r->cancelled = 1;
    kap_cli_run_kill_group(r);
    kap_cli_run_close_in(r);
    kap_cli_run_close_out(r, 0);
    kap_cli_run_close_out(r, 1);
    ev_timer_stop(kap_loop(), &r->timer);
    if (r->reaped)
        kap_cli_run_free(r);
}

pid_t
kap_cli_run_pid(const struct kap_cli_run *r)
{
    return r->pid;
}
