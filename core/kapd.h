/*
 * kapd.h -- core-internal declarations (kapd_ prefix, never exported).
 *
 * The boundary between the core's parts: generations (kapd_gen.c), the
 * reload cycle that builds and activates them (kapd_cycle.c),
 * module loading (kapd_module.c), chains (kapd_chain.c), listeners and
 * connections (kapd_listen.c, kapd_conn.c), logging (kapd_log.c) and the
 * built-in modules (kapd_builtin.c: network allowlist, audit_log sink).
 */
#ifndef KAPD_H
#define KAPD_H

#include "config.h"
#include <stddef.h>
#include <sys/types.h>
#include <kapd/kap_core.h>
#include "kapd_limits.h"

/* exit codes (kapd(8)) */
#define KAPD_EXIT_OK      0
#define KAPD_EXIT_CONFIG  1
#define KAPD_EXIT_NETWORK 2
#define KAPD_EXIT_MODULE  3
#define KAPD_EXIT_NOMEM   4
#define KAPD_EXIT_OTHER   5

#define KAPD_GEN_MAGIC 0x4b47454eU  /* "KGEN" */

/* A loaded module, shared by every generation that uses it. */
struct kapd_modref {
    const struct kap_module *mod;
    void                    *handle;    /* dlopen handle, NULL if built in */
    char                    *path;      /* heap; NULL if built in */
    int                      refs;      /* generations using it */
    int                      builtin;
    struct kapd_modref      *next;
};

/* A module as used by one generation. */
struct kapd_gen_module {
    struct kapd_modref      *ref;
    const struct kap_module *mod;
    void                    *conf;
    int                      inited;    /* init() succeeded */
    const char              *load_file; /* where kapd.load named it */
    int                      load_line;
};

/* One entry of a flattened chain. */
struct kapd_chain_entry {
    const struct kap_hook   *hook;
    struct kapd_gen_module  *gm;
};

struct kapd_chain {
    struct kapd_chain_entry *v;
    size_t                   n;
};

#define KAPD_NKINDS 32  /* bits of KAP_REQ_*: built in, then defined */
#define KAPD_KIND_NAME_MAX 32
/* a module descriptor is large enough to hold field f (kapd_module.c
   accepts sizes from the frozen 2.0 layout up) */
#define KAPD_MODULE_HAS(m, f) \
    ((m)->size >= offsetof(struct kap_module, f) + sizeof((m)->f))

/* A listener declared by a module's conf_parse (nothing bound yet). */
struct kapd_listen_decl {
    const char              *module;
    enum kap_listen_type     type;
    const char              *addr;      /* as configured */
    const char              *file;
    int                      line;
    struct kapd_listen_decl *next;
};

struct kapd_clients;
struct kapd_clients_rule;

/* The core's own settings (the `kapd` group). */
struct kapd_core_conf {
    const char  **load;          /* module names, NULL-terminated */
    const char  **load_files;    /* file:line of each load entry */
    int          *load_lines;
    const char  **module_path;   /* directories, NULL-terminated */
    const char  **policy_chain;  /* NULL: load order */
    const char  **audit_chain;   /* NULL: load order */
    int           policy_default;/* KAP_DENY (default) or KAP_ALLOW */
    int           policy_observe;/* kapd.policy.observe: denies become
                                    "observed" allows (kapd_chain.c) */
    const char   *error_log;     /* path, or NULL/"stderr" */
    int           log_level;
    const char  **debug;         /* module names with debug logging */
    const char   *pid_file;
    double        shutdown_grace;
    double        reload_check;  /* seconds between content checks; 0 off */
    const char   *user;          /* drop privileges to, or NULL */
    long long     unix_mode;
    struct kapd_clients      *clients;       /* kapd.clients, or NULL */
    struct kapd_clients_rule *client_rules;  /* kapd.listener_clients */
    size_t                    nclient_rules;
};

/* A configuration file read while building a generation. */
struct kapd_conf_file {
    const char            *path;
    unsigned char          digest[32];   /* SHA-256 of the content */
    struct kapd_conf_file *next;
};

struct kap_gen {
    uint32_t                 magic;
    uint64_t                 id;
    int                      refs;
    int                      current;
    int                      retired;
    struct kap_pool         *pool;
    const char              *conf_path;  /* main file */
    const char              *prefix;
    struct kapd_core_conf    core;
    struct kapd_gen_module  *mods;       /* load order; built-ins first */
    size_t                   nmods;
    struct kapd_chain        policy[KAPD_NKINDS];
    struct kapd_chain        audit[KAPD_NKINDS];
    struct kapd_listen_decl *decls;
    struct kap_listen      **listens;    /* after activation */
    size_t                   nlistens;
    struct kapd_conf_file   *files;
};

/* Process-wide state. */
struct kapd_state {
    struct ev_loop  *loop;
    struct kap_gen  *current;
    const char      *conf_path;
    const char      *global_path;   /* -g: merged under conf_path, or NULL */
    int              observe;       /* --observe: every generation observes */
    const char      *prefix;
    int              shutting_down;
    int              daemonize;
    uint64_t         next_gen_id;
    unsigned         reload_ok;
    unsigned         reload_failed;
};
extern struct kapd_state kapd;

/* kapd_gen.c ------------------------------------------------------------- */
#define KAPD_MAX_MODULES      64

/*
 * A new generation with the core's defaults (id kapd.next_gen_id + 1,
 * one reference: the caller's, an empty module table), in a pool of its
 * own; NULL when out of memory.  Release it with kap_gen_unref().
 */
struct kap_gen *kapd_gen_new(void);
struct kapd_gen_module *kapd_gen_find_module(struct kap_gen *gen,
                                             const char *name);
/*
 * gen (activated: listeners bound, init() done) becomes kapd.current and
 * takes over the caller's reference; the previous current generation
 * loses the process's reference and retires when its last user lets go.
 */
void kapd_gen_make_current(struct kap_gen *gen);
/* Call startup() of modules of gen not started yet (in load order). */
int  kapd_gen_startup(struct kap_gen *gen, struct kap_err *err);
/*
 * Process exit: retire the current generation (module fini in reverse
 * load order), then call every started module's shutdown() in reverse
 * order, then release the modules.  Connections must be closed first.
 */
void kapd_gen_exit(void);
/* Dump effective config and chains (kapd -T) to stdout (kapd_gen_dump.c). */
void kapd_gen_dump(struct kap_gen *gen);

/* kapd_cycle.c ----------------------------------------------------------- */
#define KAPD_BUILD_ERRORS_MAX 16

/* A configuration file read by a build, for the content watch. */
struct kapd_watch_file {
    char          *path;            /* heap; "glob:<pattern>" for a glob */
    unsigned char  digest[32];      /* SHA-256 of its content */
};

/*
 * What one build (and activation) reports besides its generation: every
 * error (the first is also the build's err), the exit code class of a
 * failure, and the files a failed build read (a reload remembers them so
 * the same content is not tried again).  The caller owns it: zero it
 * before the first build, kapd_build_free() it after a failed one.
 */
struct kapd_build {
    struct kap_err          errors[KAPD_BUILD_ERRORS_MAX];
    size_t                  nerrors;
    int                     exit_code;   /* KAPD_EXIT_CONFIG, _MODULE, ... */
    struct kapd_watch_file  files[KAPD_MAX_CONF_FILES];
    size_t                  nfiles;
};
/* Free the file names b holds (b stays usable). */
void kapd_build_free(struct kapd_build *b);
/*
 * Build a complete generation from conf_path; NULL and err on failure,
 * with every error and the exit code class in b (reset first).
 */
struct kap_gen *kapd_gen_build(const char *conf_path, const char *prefix,
                               struct kapd_build *b, struct kap_err *err);
/*
 * Make gen current (binds listeners, init()); KAP_ERROR leaves the old one
 * and sets b->exit_code (b may be NULL).
 */
int  kapd_gen_activate(struct kap_gen *gen, struct kapd_build *b,
                       struct kap_err *err);
/* Reload from kapd.conf_path; logs the outcome; old gen kept on error. */
int  kapd_reload(const char *why);

/* kapd_module.c ---------------------------------------------------------- */
/*
 * Find or load module `name` (built-in registry first, then the module
 * path as kap_<name>.so), checking the ABI.  Returns a referenced modref
 * or NULL with err set; release with kapd_module_unref().
 */
struct kapd_modref *kapd_module_get(const char *name, const char **path,
                                    struct kap_err *err);
/* Check an ABI descriptor found under config name `name`. */
int  kapd_module_check_abi(const struct kap_module *m, const char *name,
                           struct kap_err *err);
void kapd_module_unref(struct kapd_modref *ref);

/* kapd_builtin.c --------------------------------------------------------- */
/* Built-in modules (always loaded, before kapd.load's): NULL-terminated. */
extern const struct kap_module *const kapd_builtin_modules[];
extern const struct kap_module kapd_network_module;     /* kapd_network.c */
extern const struct kap_module kapd_audit_log_module;   /* kapd_audit_log.c */

/* kapd_addr.c: the dotted quad of the 4 bytes at a, NUL-terminated,
 * without printf (one per tunnel and per DNS answer).  Its length, or -1
 * (buf untouched) when size cannot hold it. */
int  kapd_ipv4_text(const unsigned char *a, char *buf, size_t size);

/* kapd_chain.c ----------------------------------------------------------- */
/* Flatten policy and audit chains of gen per request kind. */
int  kapd_chain_build(struct kap_gen *gen, struct kap_err *err);
/*
 * The one check of an explicit chain, kapd.<what>.chain = order (NULL-
 * terminated): every name a loaded module with a hook of type id, none
 * twice, at most 64, and every loaded module with such a hook listed.
 * where: the chain's setting, for file:line in err (may be NULL).
 */
int  kapd_chain_check(struct kap_gen *gen, const char *const *order,
                      enum kap_hook_id id, const char *what,
                      const config_setting_t *where, struct kap_err *err);
/*
 * The deny-set check behind `network`'s answer to KAP_REQ_ADDR
 * (kapd_network.c): KAP_OK (may dial) or KAP_DECLINED (must not), *why a
 * static string.  For unit tests; modules ask a KAP_REQ_ADDR question.
 */
int kapd_network_addr_check(struct kap_gen *gen, const struct sockaddr *sa,
                            const char **why);

/* kapd_kinds.c: index of a kind bit (0..KAPD_NKINDS-1), or -1 for a
 * bit no kind has */
int  kapd_kind_index(uint32_t kind);
/* register a kind a module defines; KAP_OK or KAP_ERROR with err set */
int  kapd_kind_register(const char *name, const char *module,
                        struct kap_err *err);
/* every kind the modules of gen define */
int  kapd_kind_register_modules(struct kap_gen *gen, struct kap_err *err);
/* the kind bits a hook is for: its mask and its kind_names */
uint32_t kapd_hook_kinds(const struct kap_hook *h);

/* kapd_listen.c / kapd_conn.c ------------------------------------------- */
/*
 * Bind the listeners declared in next, reusing prev's sockets (prev may
 * be NULL) where type and address match; on failure nothing of prev is
 * touched and everything newly bound is closed.  On success the reused
 * and new listeners dispatch to next; prev's listeners not in next stop
 * accepting (their connections continue).
 */
int  kapd_listen_activate(struct kap_gen *next, struct kap_gen *prev,
                          struct kap_err *err);
/* kapd -T: every listener gen declares and the clients it accepts
   (kapd.listener_clients, kapd.clients or anyone), on stdout. */
void kapd_listen_dump(struct kap_gen *gen);
/* Stop accepting everywhere (graceful shutdown). */
void kapd_listen_stop_all(void);
/* Close every listener socket and unlink unix sockets (exit). */
void kapd_listen_close_all(void);
/* Close every open connection (listener close callback first). */
void kapd_conn_close_all(void);
/* Number of open stream connections. */
unsigned kapd_conn_total(void);

/*
 * As kap_addr_is_denied, and *plen gets the prefix length of the denied
 * range sa is in, counted in sa's own family (for an IPv6 address denied
 * for the IPv4 address it embeds: the embedding prefix's bits plus the
 * IPv4 range's), so that a caller can tell a rule inside the range from a
 * wider one that merely covers it.  *plen is 0 when not denied.
 */
int  kapd_addr_denied_range(const struct sockaddr *sa, unsigned *plen,
                            const char **why);

/* Parse a listen address for -t checks; KAP_OK or KAP_ERROR with err. */
int  kapd_listen_parse(const char *addr, enum kap_listen_type type,
                       struct sockaddr_storage *ss, socklen_t *sslen,
                       struct kap_err *err);

/* kapd_http_response.c --------------------------------------------------- */
/* The Content-Type of error pages in format (enum kap_http_error_format). */
const char *kapd_http_error_type(int format);
/* Append an error page's body (no head) to body.  KAP_OK or KAP_ERROR. */
int kapd_http_error_body(struct kap_buf *body, int status, const char *why,
                         int format);

/* kapd_mem.c ------------------------------------------------------------- */
/* A burst of allocations ended or may end soon (accepts, closes): arms a
   short timer that returns free heap pages to the kernel when many. */
void kapd_mem_activity(void);
/* Stop that timer (exit). */
void kapd_mem_stop(void);

/* kapd_file.c ------------------------------------------------------------ */
struct stat;
/*
 * Open the directory above path's last component (O_PATH, kept by the
 * caller for every later open, rename and unlink of the file) and return
 * it, with *name (heap) set to the last component; create != 0 makes the
 * missing directories (0750).  -1 and errno on failure.
 */
int  kapd_dir_open(const char *path, char **name, int create);
/*
 * Open name relative to dirfd with O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
 * O_NONBLOCK added; only a regular file with one link is kept (else -1
 * with errno ELOOP, EISDIR, EINVAL or EMLINK); O_TRUNC applies only after
 * that check.  *st (may be NULL) gets its fstat.
 */
int  kapd_file_openat(int dirfd, const char *name, int flags, mode_t mode,
                      struct stat *st);
/* kapd_dir_open (no directory created) + kapd_file_openat, for a file
   opened once. */
int  kapd_file_open(const char *path, int flags, mode_t mode,
                    struct stat *st);
/* A message for an errno of the two above ("a symbolic link (refused)"). */
const char *kapd_file_strerror(int e);

/* kapd_log.c ------------------------------------------------------------- */
/* Open (or reopen, for SIGUSR1) the error log; NULL = stderr. */
int  kapd_log_open(const char *path, struct kap_err *err);
void kapd_log_set_level(int level);
void kapd_log_set_debug(const char *const *modules);
int  kapd_log_level_parse(const char *s);   /* -1 when unknown */
const char *kapd_log_level_name(int level);

#endif /* KAPD_H */
