/*
 * kap_shim_capsule.h -- the `kap-shim capsule` role: build a kap run
 * capsule (namespaces, a private root, limits, seccomp), start the private
 * kapd and the bridge, run the command.  kap(1) is the front-end that finds
 * the policy and writes kapd's configuration; everything between that and
 * the command's exec is here, in C.
 */
#ifndef KAP_SHIM_CAPSULE_H
#define KAP_SHIM_CAPSULE_H

#include <sys/types.h>

#define CAP_MAX_LIST 64

struct capsule {
    const char *rt;             /* kap's runtime directory (kapd's sockets) */
    const char *rt_base;        /* the directory holding rt */
    const char *project;        /* writable project directory, or NULL */
    const char *cwd;            /* physical working directory */
    const char *home;           /* $HOME: where the capsule home is mounted */
    const char *real_home;      /* the user's real home (home_ro sources) */
    const char *chome;          /* the capsule home on the host */
    const char *homes;          /* or: the directory of capsule homes, */
    const char *home_key;       /* and the project path naming one */
    const char *user;           /* USER/LOGNAME inside */
    const char *shell;          /* SHELL inside */
    const char *home_ro[CAP_MAX_LIST];   /* relative to real_home */
    size_t      nhome_ro;
    const char *env[CAP_MAX_LIST];       /* names passed through */
    size_t      nenv;
    const char *gitdirs[CAP_MAX_LIST];   /* absolute git dirs to pin */
    size_t      ngitdirs;
    const char *ro[CAP_MAX_LIST];        /* paths made read-only inside */
    size_t      nro;
    const char *hide[CAP_MAX_LIST];      /* directories shown empty */
    size_t      nhide;
    const char *cli_tools[CAP_MAX_LIST]; /* a shim each in CAP_CLI_DIR */
    size_t      ncli;
    const char *kapd;                    /* kapd binary */
    const char *kapd_args[CAP_MAX_LIST]; /* its arguments */
    size_t      nkapd_args;
    const char *kapd_log;
    int         keep;           /* keep rt on exit */
    int         mcp;            /* kapd's mcp module at :3129 (mcp.sock) */
    char      **argv;           /* the command */

    /* computed */
    uid_t       uid;            /* the caller */
    gid_t       gid;
    int         root;           /* caller is root: the command is mapped */
    uid_t       out_uid;        /* the command's uid outside (root: not 0) */
    gid_t       out_gid;
    int         userns_fd;      /* root: the command's user namespace */
    int         kapd_ready_fd;  /* read end of kapd's --ready-fd pipe */
    int         stop_r, stop_w; /* the relay tells of job stops (pty.h) */
    char      **envp;           /* the command's environment */
};

/* where the cli tools' shims are inside (first on PATH), and the
 * read-only kap-shim they link to */
#define CAP_CLI_DIR   "/run/kap/bin"
#define CAP_CLI_SHIM  "/run/kap/kap-shim"

/* kap_shim_mounts.c: in a new mount namespace, build the capsule's root
 * and pivot into it.  Returns 0, or -1 after printing why. */
int capsule_mount_root(const struct capsule *c);

/* kap_shim_limits.c */
int capsule_rlimits(void);                  /* processes, memory, file size */
int capsule_build_env(struct capsule *c);   /* c->envp: the allow-list */
void capsule_close_fds(int from);

/* kap_shim_seccomp.c: no_new_privs and the filter; 0 or -1 */
int capsule_seccomp(void);

/* kap_shim_limits.c: bring up lo (ioctl, no ip(8)) */
int capsule_loopback_up(void);

/* messages: "kap run: capsule: ..." on stderr */
void capsule_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* kap-shim.c */
int kap_shim_bridge(int argc, char **argv);
int kap_shim_capsule(int argc, char **argv);

#endif
