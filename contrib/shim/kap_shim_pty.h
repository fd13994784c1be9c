/*
 * kap_shim_pty.h -- run the capsule's command in its own session, on a
 * private pseudo-terminal that kap-shim relays to the user's terminal.
 *
 * The command never holds a descriptor to the user's terminal and that
 * terminal is not its controlling terminal, so TIOCSTI, TIOCSPGRP and
 * other job-control ioctls cannot reach the user's shell (they act on the
 * private pty, or fail with EPERM).
 */
#ifndef KAP_SHIM_PTY_H
#define KAP_SHIM_PTY_H

struct kap_shim_pty_opts {
    /* which children the relay waits for:
     *   < 0  every child when the caller is pid 1 (of its pid namespace),
     *        else only the command (the default with opts == NULL)
     *   0    only the command
     *   1    every child (the caller is an init and must reap orphans);
     *        the result is still the command's status */
    int    reap_all;
    /* called in the child after setsid(), the controlling terminal and the
     * dup2()s (every signal at its default disposition, none blocked),
     * right before execvp(): the place for a nested user namespace,
     * seccomp, rlimits.  Return 0, or -1 after printing why (the child then exits
     * 125).  NULL: nothing. */
    int  (*child_setup)(void *arg);
    void  *child_arg;
    /* the command's environment; its PATH is the one argv[0] is looked up
     * in.  NULL: the caller's. */
    char **envp;
    /* a descriptor above 2 (a pipe's write end, non-blocking) that gets a
     * byte each time kap's job stops ('s', written once the command is
     * stopped and the user's terminal has its modes back) and continues
     * ('c'), for a pid 1 caller: its parent, the process the user's shell
     * waits for, stops only after the 's' (kap_shim_capsule.c).  0: none. */
    int    stop_fd;
};

/*
 * Run argv (argv[0] looked up in PATH) and return its exit status: 0-255,
 * 128+N when killed by signal N (like a shell), 126/127 when it cannot be
 * executed, 125 when the set-up failed.
 *
 * When any of fds 0, 1, 2 is a terminal: open a pty with the terminal's
 * modes and window size, put the user's terminal in raw mode when fd 0 is
 * a terminal (restored before returning, and while stopped), run the
 * command as a session leader with the pty as its controlling terminal on
 * exactly the fds that were terminals (pipes and files stay as they are),
 * relay bytes both ways, window-size changes and signals, and after the
 * command exits, copy the rest of its output.  Otherwise the command still
 * gets a new session (no controlling terminal) with the fds as they are.
 *
 * The caller's signal dispositions are changed while it runs and restored
 * before it returns.  The calling process stays in the caller's session
 * and process group (it receives the user's signals and forwards them:
 * SIGINT, SIGQUIT, SIGUSR1/2 to the command's foreground job, SIGTERM and
 * SIGHUP to its whole session; SIGTSTP stops the command and then the
 * caller's process group, SIGCONT restores raw mode and continues it),
 * and is made non-dumpable so that the command cannot open its
 * descriptors through /proc or ptrace it.  That holds only if the command
 * has no CAP_SYS_PTRACE in the caller's user namespace: give it a user
 * namespace below the caller's (child_setup, or argv = unshare --user
 * ...), never run the caller inside the command's.  Other processes that
 * hold the user's terminal (a capsule init, a bridge started with it on
 * fd 1/2) need the same.  Not thread-safe.
 *
 * A caller that is pid 1 of its pid namespace cannot stop: a child of it
 * (non-dumpable too, every signal but the stop signals and SIGCONT
 * ignored) stays in the caller's process group while the command runs,
 * stops and continues with the rest of the user's job, and the command
 * is stopped and continued with it (SIGTSTP to the caller alone does
 * nothing).  A caller whose parent-death signal is SIGKILL gets
 * SIGRTMIN+1 instead while the user's terminal is in raw mode: on its
 * parent's death the relay restores the terminal, kills the command and
 * returns (128+9 when the command was killed); the parent-death signal is
 * SIGKILL again when it returns.
 */
int kap_shim_pty_run(char *const argv[], const struct kap_shim_pty_opts *o);

/* every signal to its default disposition (but SIGKILL, SIGSTOP), none
 * blocked: what a command expects to start with */
void kap_shim_sig_reset(void);

#endif
