/*
 * test_mcp_refresh.c -- kapd's side of token refresh
 * (modules/mcp/kap_mcp_refresh.c) on a real libev loop: a stand-in
 * helper (a /bin/sh script) records its arguments and environment and
 * takes a while; the loop keeps running meanwhile (a timer ticks), done
 * comes once with the helper's verdict, the stale token is passed as its
 * SHA-256 and never itself, KAP_AUTH_DIR is the directory given (an
 * inherited one replaced), a cancelled refresh never calls done, and a
 * helper that cannot be started is an error.
 */
#include "config.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kapd/kap_core.h>

#include "kap_mcp_refresh.h"
#include "kap_mcp_token.h"
#include "tap.h"
#include "tap_tmpdir.h"

static char dir[64], helper[128], log_path[128];
static int ticks, done_calls, done_ok;

static void
on_done(int ok, void *data)
{
    ev_break((struct ev_loop *)data, EVBREAK_ALL);
    done_calls++;
    done_ok = ok;
}

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    ticks++;
}

static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* run the loop until done or 10 s */
static void
run(struct ev_loop *loop, double max)
{
    ev_timer tick, deadline;

    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_init(&deadline, on_deadline, max, 0.);
    ev_timer_start(loop, &tick);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &tick);
    ev_timer_stop(loop, &deadline);
}

static void
write_helper(void)
{
    FILE *f;

    snprintf(helper, sizeof(helper), "%s/kap-mcp", dir);
    snprintf(log_path, sizeof(log_path), "%s/args", dir);
    f = fopen(helper, "w");
    fprintf(f, "#!/bin/sh\n"
            "printf '%%s\\n' \"$@\" \"dir=$KAP_AUTH_DIR\" > %s\n"
            "sleep 0.3\n"
            "[ \"$2\" = good ]\n", log_path);
    fclose(f);
    chmod(helper, 0755);
}

int
main(void)
{
    struct ev_loop *loop = ev_default_loop(0);
    struct kap_err err = { 0 };
    struct kap_mcp_refresh *r;
    char hex[KAP_MCP_TOKEN_HEX + 1], want[512], *got;
    pid_t pid;

    plan(13);
    snprintf(dir, sizeof(dir), "/tmp/kap-mcp-refresh.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    write_helper();
    setenv("KAP_AUTH_DIR", "/elsewhere", 1);

    r = kap_mcp_refresh_start(loop, helper, "/auth/dir", "good",
                              "at-SECRET-1", on_done, loop, &err);
    ok(r != NULL && kap_mcp_refresh_pid(r) > 0, "the helper started");
    run(loop, 10.);
    is_int(done_calls, 1, "done called once");
    is_int(done_ok, 1, "with the helper's success");
    ok(ticks >= 5, "the loop ran while the helper worked (%d ticks)", ticks);
    got = tap_slurp(log_path, NULL);
    kap_mcp_token_digest("at-SECRET-1", hex);
    snprintf(want, sizeof(want), "refresh\ngood\n--stale\n%s\ndir=/auth/dir\n",
             hex);
    is_str(got, want, "refresh NAME --stale SHA256, KAP_AUTH_DIR replaced");
    ok(got != NULL && strstr(got, "SECRET") == NULL, "the token itself is not passed");
    free(got);

    done_calls = 0;
    r = kap_mcp_refresh_start(loop, helper, "/auth/dir", "bad", NULL,
                              on_done, loop, &err);
    ok(r != NULL, "a second refresh started");
    run(loop, 10.);
    ok(done_calls == 1 && done_ok == 0, "a failing helper: done(0)");
    got = tap_slurp(log_path, NULL);
    is_str(got, "refresh\nbad\ndir=/auth/dir\n", "no --stale without a token");
    free(got);

    done_calls = 0;
    r = kap_mcp_refresh_start(loop, helper, "/auth/dir", "good", NULL,
                              on_done, loop, &err);
    pid = kap_mcp_refresh_pid(r);
    kap_mcp_refresh_cancel(r);
    run(loop, 1.);
    is_int(done_calls, 0, "a cancelled refresh never calls done");
    ok(waitpid(pid, NULL, WNOHANG) == -1, "the cancelled child was reaped");

    r = kap_mcp_refresh_start(loop, "/nonexistent/kap-mcp", "/auth/dir",
                              "good", NULL, on_done, loop, &err);
    ok(r == NULL, "a helper that cannot start: NULL");
    ok(err.set && strstr(err.msg, "/nonexistent/kap-mcp") != NULL,
       "with a message naming it");
    tap_rmtree(dir);
    return done_testing();
}
