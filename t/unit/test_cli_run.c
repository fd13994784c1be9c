/*
 * test_cli_run.c -- the cli module's runner on a real libev loop with
 * real children (/bin/sh scripts and coreutils stand in for tools; the
 * runner itself never uses a shell): exit codes and deaths by signal as
 * 128+n, stdout and stderr kept apart and in arrival order, stdin fed,
 * exactly the environment and cwd given, SIGPIPE at its default even
 * though the parent ignores it, the output cap, the wall-time limit and
 * a cancel (client gone) killing the whole process group, backpressure,
 * and a binary that cannot be started.
 */
#define _GNU_SOURCE
#include "kap_cli_run.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

struct call {
    struct kap_buf         out, err, seq;   /* seq: "O:..|E:..|" pieces */
    struct kap_cli_result  res;
    int                    done;
    int                    pause_first;
    int                    paused;
    struct kap_cli_run    *run;
    ev_timer               resume;
};

static int
on_output(struct kap_cli_run *r, int stream, const char *p, size_t n,
          void *data)
{
    struct call *c = data;

    (void)r;
    kap_buf_append(stream == KAP_CLI_STDOUT ? &c->out : &c->err, p, n);
    kap_buf_append(&c->seq, stream == KAP_CLI_STDOUT ? "O:" : "E:", 2);
    kap_buf_append(&c->seq, p, n);
    if (c->pause_first && !c->paused) {
        c->paused = 1;
        ev_timer_start(kap_loop(), &c->resume);
        return KAP_AGAIN;
    }
    return KAP_OK;
}

static void
on_exit_cb(struct kap_cli_run *r, const struct kap_cli_result *res,
           void *data)
{
    struct call *c = data;

    (void)r;
    c->res = *res;
    c->done = 1;
    c->run = NULL;
    ev_break(kap_loop(), EVBREAK_ONE);
}

static void
resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct call *c = w->data;

    (void)loop;
    (void)revents;
    if (c->run != NULL)
        kap_cli_run_resume(c->run);
}

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

static const struct kap_cli_run_cbs cbs = { on_output, on_exit_cb, NULL };

static char *const env_plain[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", NULL };

/* Run one call to its end (or for at most `secs`). */
static int
run(struct call *c, const char *path, char *const *argv, char *const *envp,
    const char *cwd, const char *in, double wall, size_t cap, double secs)
{
    struct kap_cli_run_spec spec;
    struct kap_err          e = { 0 };
    ev_timer                guard;

    memset(&spec, 0, sizeof(spec));
    spec.path = path;
    spec.argv = argv;
    spec.envp = envp != NULL ? envp : env_plain;
    spec.cwd = cwd;
    spec.stdin_data = in;
    spec.stdin_len = in != NULL ? strlen(in) : 0;
    spec.wall_time = wall;
    spec.max_output = cap;
    ev_timer_init(&c->resume, resume_cb, 0.2, 0.);
    c->resume.data = c;
    c->run = kap_cli_run_start(&spec, &cbs, c, &e);
    if (c->run == NULL) {
        diag("start failed: %s", e.msg);
        return -1;
    }
    ev_timer_init(&guard, guard_cb, secs, 0.);
    ev_timer_start(kap_loop(), &guard);
    while (!c->done && ev_is_active(&guard))
        ev_run(kap_loop(), EVRUN_ONCE);
    ev_timer_stop(kap_loop(), &guard);
    ev_timer_stop(kap_loop(), &c->resume);
    return c->done ? 0 : -1;
}

static void
call_free(struct call *c)
{
    kap_buf_free(&c->out);
    kap_buf_free(&c->err);
    kap_buf_free(&c->seq);
}

static const char *
str(const struct kap_buf *b)
{
    return b->data != NULL ? b->data : "";
}

/* A process is gone when /proc has no entry for it or it is a zombie
 * (reparented to an init that has not reaped it yet). */
static int
gone(pid_t pid)
{
    char  path[64], buf[256], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* Turn the loop (so that ev_child reaps) until pid is gone or 5 s pass. */
static int
wait_gone(pid_t pid)
{
    ev_timer guard;

    ev_timer_init(&guard, guard_cb, 5.0, 0.);
    ev_timer_start(kap_loop(), &guard);
    while (!gone(pid) && ev_is_active(&guard)) {
        ev_timer poll;
        ev_timer_init(&poll, guard_cb, 0.02, 0.);
        ev_timer_start(kap_loop(), &poll);
        ev_run(kap_loop(), EVRUN_ONCE);
        ev_timer_stop(kap_loop(), &poll);
    }
    ev_timer_stop(kap_loop(), &guard);
    return gone(pid);
}

static void
test_exit_and_streams(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "sh", "-c",
        "printf out; printf err >&2; exit 3", NULL };

    ok(run(&c, "/bin/sh", argv, NULL, NULL, NULL, 5, 0, 10) == 0,
       "a call runs to its end");
    is_int(c.res.exit_code, 3, "the real exit code");
    is_int(c.res.ended, KAP_CLI_EXITED, "ended on its own");
    is_str(str(&c.out), "out", "stdout apart");
    is_str(str(&c.err), "err", "stderr apart");
    is_int(c.res.out_bytes, 3, "stdout bytes counted");
    is_int(c.res.err_bytes, 3, "stderr bytes counted");
    call_free(&c);
}

static void
test_interleaving(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "sh", "-c",
        "echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c; sleep 0.2; "
        "echo d >&2", NULL };

    ok(run(&c, "/bin/sh", argv, NULL, NULL, NULL, 5, 0, 10) == 0, "runs");
    is_str(str(&c.seq), "O:a\nE:b\nO:c\nE:d\n",
           "stdout and stderr in the order they came");
    is_int(c.res.exit_code, 0, "exit 0");
    call_free(&c);
}

static void
test_signal(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "sh", "-c", "kill -TERM $$", NULL };

    ok(run(&c, "/bin/sh", argv, NULL, NULL, NULL, 5, 0, 10) == 0, "runs");
    is_int(c.res.signal, SIGTERM, "death by SIGTERM seen");
    is_int(c.res.exit_code, 128 + SIGTERM, "reported as 128+15");
    call_free(&c);
}

static void
test_stdin(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "cat", NULL };
    char *const  argv2[] = { "sh", "-c", "head -c 2; exit 0", NULL };

    ok(run(&c, "/bin/cat", argv, NULL, NULL, "line one\nline two\n", 5, 0,
           10) == 0, "cat runs");
    is_str(str(&c.out), "line one\nline two\n", "stdin reached the tool");
    is_int(c.res.in_bytes, 18, "stdin bytes counted");
    is_int(c.res.exit_code, 0, "stdin ended with EOF (cat exited 0)");
    call_free(&c);

    memset(&c, 0, sizeof(c));
    ok(run(&c, "/bin/sh", argv2, NULL, NULL, "abcdef", 5, 0, 10) == 0,
       "a tool that reads only part of stdin");
    is_str(str(&c.out), "ab", "it got what it read");
    is_int(c.res.exit_code, 0, "and exits normally");
    call_free(&c);

    memset(&c, 0, sizeof(c));
    ok(run(&c, "/bin/cat", argv, NULL, NULL, NULL, 5, 0, 10) == 0,
       "no stdin: the tool sees EOF at once");
    is_str(str(&c.out), "", "nothing read");
    call_free(&c);
}

static void
test_env_cwd(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "env", NULL };
    char *const  envp[] = { "ONLY=this", NULL };
    char *const  argv2[] = { "pwd", NULL };
    char         dir[] = "/tmp/kap-cli-run-XXXXXX";

    setenv("KAP_TEST_LEAK", "parent-secret", 1);
    ok(run(&c, "/usr/bin/env", argv, envp, NULL, NULL, 5, 0, 10) == 0,
       "env runs");
    is_str(str(&c.out), "ONLY=this\n",
           "the child's environment is exactly the one given");
    call_free(&c);

    ok(mkdtemp(dir) != NULL, "a directory");
    memset(&c, 0, sizeof(c));
    ok(run(&c, "/bin/pwd", argv2, NULL, dir, NULL, 5, 0, 10) == 0,
       "pwd runs");
    ok(strncmp(str(&c.out), dir, strlen(dir)) == 0,
       "the child starts in the cwd given (%s)", dir);
    call_free(&c);
    rmdir(dir);
}

static void
test_sigpipe_default(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "sh", "-c",
        "yes | head -c 1 >/dev/null; echo done", NULL };

    /* kapd ignores SIGPIPE; so does this test now. */
    signal(SIGPIPE, SIG_IGN);
    ok(run(&c, "/bin/sh", argv, NULL, NULL, NULL, 5, 0, 10) == 0, "runs");
    is_str(str(&c.err), "",
           "yes died of SIGPIPE silently (not ignored: no EPIPE error)");
    is_str(str(&c.out), "done\n", "the pipeline ended");
    call_free(&c);
}

static void
test_output_cap(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "yes", NULL };
    char *const  argv2[] = { "sh", "-c", "printf 12345", NULL };

    ok(run(&c, "/usr/bin/yes", argv, NULL, NULL, NULL, 10, 1000, 15) == 0,
       "an endless writer ends");
    is_int(c.res.ended, KAP_CLI_OUTPUT_LIMIT, "because of the output cap");
    is_int(c.out.len, 1000, "exactly the cap was delivered");
    is_int(c.res.out_bytes, 1000, "and counted");
    is_int(c.res.exit_code, 128 + SIGKILL, "the tool was killed");
    call_free(&c);

    memset(&c, 0, sizeof(c));
    ok(run(&c, "/bin/sh", argv2, NULL, NULL, NULL, 10, 5, 15) == 0,
       "output exactly at the cap");
    is_int(c.res.ended, KAP_CLI_EXITED, "is not over it");
    is_int(c.res.exit_code, 0, "exit 0");
    call_free(&c);
}

static pid_t
first_pid(const struct call *c)
{
    return (pid_t)strtol(str(&c->out), NULL, 10);
}

static void
test_timeout_group(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "sh", "-c",
        "sleep 100 & echo $!; sleep 100", NULL };
    pid_t        bg;

    ok(run(&c, "/bin/sh", argv, NULL, NULL, NULL, 0.5, 0, 15) == 0,
       "a hanging tool ends");
    is_int(c.res.ended, KAP_CLI_TIMEOUT, "because of the wall time");
    is_int(c.res.exit_code, 128 + SIGKILL, "killed: 137");
    ok(c.res.duration >= 0.4 && c.res.duration < 5,
       "after about the wall time (%.2f s)", c.res.duration);
    bg = first_pid(&c);
    ok(bg > 1, "its background child's pid (%ld)", (long)bg);
    ok(bg > 1 && wait_gone(bg), "the background child was killed too");
    call_free(&c);
}

static void
test_cancel(void)
{
    struct call              c = { 0 };
    char *const              argv[] = { "sh", "-c",
        "sleep 100 & echo $!; sleep 100", NULL };
    struct kap_cli_run_spec  spec;
    struct kap_err           e = { 0 };
    ev_timer                 guard;
    pid_t                    leader, bg;

    memset(&spec, 0, sizeof(spec));
    spec.path = "/bin/sh";
    spec.argv = argv;
    spec.envp = env_plain;
    c.run = kap_cli_run_start(&spec, &cbs, &c, &e);
    ok(c.run != NULL, "started");
    if (c.run == NULL)
        return;
    leader = kap_cli_run_pid(c.run);
    ev_timer_init(&guard, guard_cb, 5.0, 0.);
    ev_timer_start(kap_loop(), &guard);
    while (strchr(str(&c.out), '\n') == NULL && ev_is_active(&guard))
        ev_run(kap_loop(), EVRUN_ONCE);
    ev_timer_stop(kap_loop(), &guard);
    bg = first_pid(&c);
    ok(bg > 1, "the tool is running (background child %ld)", (long)bg);
    kap_cli_run_cancel(c.run);
    ok(wait_gone(leader), "cancel killed the tool and it was reaped");
    ok(bg > 1 && wait_gone(bg), "and its background child");
    ok(!c.done, "no callback after cancel");
    call_free(&c);
}

static void
test_backpressure(void)
{
    struct call  c = { 0 };
    char *const  argv[] = { "sh", "-c",
        "echo first; sleep 0.05; echo second; echo third >&2", NULL };

    c.pause_first = 1;
    ok(run(&c, "/bin/sh", argv, NULL, NULL, NULL, 5, 0, 10) == 0,
       "a paused reader is resumed");
    ok(c.paused, "on_output's KAP_AGAIN paused reading");
    is_str(str(&c.out), "first\nsecond\n", "nothing lost on stdout");
    is_str(str(&c.err), "third\n", "nor on stderr");
    call_free(&c);
}

static void
test_bad_start(void)
{
    struct call              c = { 0 };
    char *const              argv[] = { "nope", NULL };
    struct kap_cli_run_spec  spec;
    struct kap_err           e = { 0 };

    memset(&spec, 0, sizeof(spec));
    spec.path = "/nonexistent/kap-no-such-tool";
    spec.argv = argv;
    spec.envp = env_plain;
    ok(kap_cli_run_start(&spec, &cbs, &c, &e) == NULL,
       "a missing binary is not started");
    ok(strstr(e.msg, "kap-no-such-tool") != NULL, "the error names it: %s",
       e.msg);

    memset(&e, 0, sizeof(e));
    spec.path = "relative/tool";
    ok(kap_cli_run_start(&spec, &cbs, &c, &e) == NULL,
       "a relative path is refused");
}

/* Streamed stdin: fed piece by piece with backpressure, then EOF. */
struct feed {
    struct call c;
    int         held, agains, drains;
};

static void
on_stdin_drain_cb(struct kap_cli_run *r, void *data)
{
    struct feed *f = data;

    (void)r;
    f->held = 0;
    f->drains++;
}

static const struct kap_cli_run_cbs feed_cbs = {
    on_output, on_exit_cb, on_stdin_drain_cb
};

static int
feed_run(struct feed *f, char *const *argv, size_t total)
{
    struct kap_cli_run_spec spec;
    struct kap_err          e = { 0 };
    ev_timer                guard;
    char                    piece[16384];
    size_t                  fed = 0;

    memset(piece, 'q', sizeof(piece));
    memset(&spec, 0, sizeof(spec));
    spec.path = argv[0];
    spec.argv = argv;
    spec.envp = env_plain;
    spec.stdin_stream = 1;
    spec.wall_time = 20;
    f->c.run = kap_cli_run_start(&spec, &feed_cbs, f, &e);
    if (f->c.run == NULL)
        return -1;
    ev_timer_init(&guard, guard_cb, 20.0, 0.);
    ev_timer_start(kap_loop(), &guard);
    while (!f->c.done && ev_is_active(&guard)) {
        if (fed < total && !f->held) {
            size_t n = total - fed < sizeof(piece) ? total - fed
                                                   : sizeof(piece);
            int    rc = kap_cli_run_stdin(f->c.run, piece, n);

            fed += n;
            if (rc == KAP_AGAIN) {
                f->held = 1;
                f->agains++;
            }
            if (fed == total)
                kap_cli_run_stdin_eof(f->c.run);
            continue;
        }
        ev_run(kap_loop(), EVRUN_ONCE);
    }
    ev_timer_stop(kap_loop(), &guard);
    return f->c.done ? 0 : -1;
}

static void
test_stdin_stream(void)
{
    struct feed  f;
    char *const  cat[] = { "/bin/cat", NULL };
    char *const  noread[] = { "/bin/sh", "-c", "sleep 0.3; exit 4", NULL };
    size_t       total = 4 * 1024 * 1024;
    void       (*old)(int) = signal(SIGPIPE, SIG_IGN);   /* as kapd */

    memset(&f, 0, sizeof(f));
    ok(feed_run(&f, cat, total) == 0, "streamed stdin: cat runs to its end");
    is_int(f.c.res.exit_code, 0, "cat exit 0 after the EOF");
    ok(f.c.res.out_bytes == total && f.c.res.in_bytes == total,
       "4 MiB in, 4 MiB out");
    ok(f.agains > 0 && f.drains == f.agains,
       "the caller was held back and let go again (%d times)", f.agains);
    call_free(&f.c);

    memset(&f, 0, sizeof(f));
    ok(feed_run(&f, noread, total) == 0,
       "a child that never reads stdin still ends");
    is_int(f.c.res.exit_code, 4, "with its exit code");
    ok(f.agains >= 1 && f.c.res.in_bytes < total,
       "the caller was held back (%zu bytes taken)", f.c.res.in_bytes);
    call_free(&f.c);
    signal(SIGPIPE, old);
}

int
main(void)
{
    test_exit_and_streams();
    test_interleaving();
    test_signal();
    test_stdin();
    test_stdin_stream();
    test_env_cwd();
    test_sigpipe_default();
    test_output_cap();
    test_timeout_group();
    test_cancel();
    test_backpressure();
    test_bad_start();
    return done_testing();
}
