/*
 * kap_cli_run.h -- the cli module's runner: one tool call as a child
 * process outside the capsule.
 *
 * kap_cli_run_start() starts the binary with posix_spawn() (never a
 * shell) in a process group of its own, with exactly the argv, the
 * environment and the working directory it is given, every signal at its
 * default disposition and an empty signal mask (kapd ignores SIGPIPE; a
 * tool must not inherit that).  Its stdin is fed from the bytes given and
 * then closed, or with stdin_stream set, kept open and fed by
 * kap_cli_run_stdin() until kap_cli_run_stdin_eof() (at most
 * KAP_CLI_RUN_IN_HIGH bytes wait in kapd: over it the caller is told to
 * stop until on_stdin_drain); its stdout and stderr are read as they
 * come and handed to on_output in arrival order, each piece tagged with
 * its stream.
 *
 * Limits: after wall_time seconds, or once stdout and stderr together
 * passed max_output bytes (the bytes up to the limit are delivered, no
 * more), the whole process group is killed with SIGKILL.  The leader is
 * reaped by an ev_child watcher; when it has exited the group is killed
 * too (a tool's background children do not outlive its call), and the
 * pipes are read until EOF (at most KAP_CLI_RUN_DRAIN seconds more, for
 * a process that left the group).
 *
 * on_exit is called exactly once, after the leader was reaped and both
 * output pipes are closed, with the exit code as a shell reports it
 * (0..255, or 128+n for a death by signal n) and why the call ended;
 * the run is freed when on_exit returns.  kap_cli_run_cancel() (the
 * client went away) kills the group and drops the callbacks: the run
 * frees itself once the leader is reaped, and no callback comes.
 *
 * All functions: event loop thread only (the default libev loop, which
 * is the only one ev_child works on).
 */
#ifndef KAP_CLI_RUN_H
#define KAP_CLI_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include <kapd/kap_core.h>
#include <kapd/kap_module.h>

#define KAP_CLI_RUN_DRAIN 1.0    /* s of reading after the leader exited */
#define KAP_CLI_RUN_IN_HIGH (64 * 1024)  /* stdin bytes held for the child */

enum kap_cli_stream {
    KAP_CLI_STDOUT = 1,
    KAP_CLI_STDERR = 2
};

/* Why a call ended (struct kap_cli_result.ended). */
enum kap_cli_end {
    KAP_CLI_EXITED = 0,      /* the tool exited or died on its own */
    KAP_CLI_TIMEOUT,         /* wall_time passed: group killed */
    KAP_CLI_OUTPUT_LIMIT     /* max_output passed: group killed */
};

/* What the caller spawns.  Everything is borrowed for the duration of
 * kap_cli_run_start() only (the stdin bytes are copied). */
struct kap_cli_run_spec {
    const char   *path;        /* absolute path of the binary */
    char *const  *argv;        /* NULL-terminated; argv[0] is the name */
    char *const  *envp;        /* NULL-terminated: the child's whole env */
    const char   *cwd;         /* directory the child starts in */
    const void   *stdin_data;  /* fed to the child's stdin, then EOF */
    size_t        stdin_len;
    int           stdin_stream;/* 1: no EOF after stdin_data: more comes
                                  with kap_cli_run_stdin() */
    double        wall_time;   /* s; 0: no limit */
    size_t        max_output;  /* stdout + stderr bytes; 0: no limit */
};

struct kap_cli_result {
    int     exit_code;     /* 0..255, or 128 + signal number */
    int     signal;        /* the signal that ended the leader, or 0 */
    int     ended;         /* enum kap_cli_end */
    size_t  out_bytes;     /* stdout bytes delivered */
    size_t  err_bytes;     /* stderr bytes delivered */
    size_t  in_bytes;      /* stdin bytes the child took */
    double  duration;      /* s from spawn to the end */
};

struct kap_cli_run;

/*
 * Callbacks.  on_output gets borrowed bytes; it returns KAP_OK, or
 * KAP_AGAIN to stop reading both pipes until kap_cli_run_resume() (the
 * bytes given were taken either way).  on_exit: see above; r is freed
 * after it returns.  Neither may call kap_cli_run_cancel() on its run
 * from inside on_exit.
 */
struct kap_cli_run_cbs {
    int  (*on_output)(struct kap_cli_run *r, int stream, const char *p,
                      size_t n, void *data);
    void (*on_exit)(struct kap_cli_run *r, const struct kap_cli_result *res,
                    void *data);
    /* after kap_cli_run_stdin() returned KAP_AGAIN: the held stdin fell
       to half of KAP_CLI_RUN_IN_HIGH, or the child closed its stdin
       (what comes from now on is dropped): send more.  May be NULL. */
    void (*on_stdin_drain)(struct kap_cli_run *r, void *data);
};

/*
 * Start one call.  Returns the run (owned by itself: it ends with
 * on_exit or kap_cli_run_cancel()), or NULL with e set when nothing was
 * started (bad spec, no memory, fork/exec failure of posix_spawn).
 */
struct kap_cli_run *kap_cli_run_start(const struct kap_cli_run_spec *spec,
                                      const struct kap_cli_run_cbs *cbs,
                                      void *data, struct kap_err *e);

/*
 * Streamed stdin (spec->stdin_stream): n bytes for the child (copied).
 * KAP_OK; KAP_AGAIN when more than KAP_CLI_RUN_IN_HIGH bytes now wait
 * (taken all the same: stop sending until on_stdin_drain); KAP_ERROR
 * out of memory.  Once the child closed its stdin or exited, or after
 * the EOF, bytes are dropped (KAP_OK).
 */
int kap_cli_run_stdin(struct kap_cli_run *r, const char *p, size_t n);

/* Streamed stdin: close the child's stdin once what waits is written. */
void kap_cli_run_stdin_eof(struct kap_cli_run *r);

/* Read output again after on_output returned KAP_AGAIN. */
void kap_cli_run_resume(struct kap_cli_run *r);

/* Kill the group, drop the callbacks; r frees itself once reaped. */
void kap_cli_run_cancel(struct kap_cli_run *r);

/* The leader's pid (its process group id too). */
pid_t kap_cli_run_pid(const struct kap_cli_run *r);

#endif /* KAP_CLI_RUN_H */
