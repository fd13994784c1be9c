/*
 * kap_cli_proxy.c -- one proxy-mode call (docs/cli-protocol.md): the
 * argv is canonicalised and decided with the tool's profile and rules,
 * asked on the core's policy chain as a "cli" question (so the core
 * makes and audits the decision), then the CANONICAL argv is run by the
 * runner in an isolated environment and a per-call home, and its stdout
 * and stderr go back as frames of a chunked response, ending with the
 * exit frame.  A denial is one stderr line and exit status 126.
 */
#include "config.h"

#include "kap_cli.h"
#include "kap_cli_cred.h"
#include "kap_cli_env.h"
#include "kap_cli_run.h"
#include "kap_cli_say.h"
#include "kap_cli_stdin.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kapd/kap_secret.h>

#define KAP_CLI_DENIED 126

struct kap_cli_ctx {
    struct kap_http_ex   *ex;
    struct kap_pool      *pool;        /* the exchange's */
    struct kap_cli_tool  *t;
    struct kap_cli_conf  *cf;
    struct kap_req       *req;
    struct kap_cli_run   *run;
    struct kap_cli_call   call;
    struct kap_cli_verdict v;
    const char           *cmd;         /* canonical command, redacted */
    const char           *stdin_data;  /* borrowed from ex */
    size_t                stdin_len;
    const char           *cwd_req;     /* the capsule's cwd, or NULL */
    char                 *home;        /* per-call home, or NULL */
    struct kap_cli_dummy *dummy;       /* credential proxy: live while
                                          the call runs */
    int                   counted;     /* holds one of t->running */
    int                   stream;      /* stdin streamed: answer 101 */
    struct kap_cli_stdin_dec dec;      /* the stdin frames (stream) */
};

/* ---- framing --------------------------------------------------------------- */

/* One frame: id byte, 4-byte big-endian length, the bytes. */
static int
kap_cli_frame(struct kap_http_ex *ex, int id, const void *p, size_t n)
{
    unsigned char h[5];
    int           rc, rc2;

    h[0] = (unsigned char)id;
    h[1] = (unsigned char)(n >> 24);
    h[2] = (unsigned char)(n >> 16);
    h[3] = (unsigned char)(n >> 8);
    h[4] = (unsigned char)n;
    rc = kap_http_stream_write(ex, h, sizeof(h));
    if (rc == KAP_ERROR || n == 0)
        return rc;
    rc2 = kap_http_stream_write(ex, p, n);
    return rc2 == KAP_ERROR ? KAP_ERROR : rc2 == KAP_AGAIN ? KAP_AGAIN : rc;
}

/* The exit frame: "CODE WHY" (ASCII). */
static void
kap_cli_exit_frame(struct kap_http_ex *ex, int code, const char *why)
{
    char   b[64];
    size_t n = 0;
    int    d = code < 0 ? 0 : code > 255 ? 255 : code;

    if (d >= 100)
        b[n++] = (char)('0' + d / 100);
    if (d >= 10)
        b[n++] = (char)('0' + d / 10 % 10);
    b[n++] = (char)('0' + d % 10);
    b[n++] = ' ';
    while (*why != '\0' && n < sizeof(b))
        b[n++] = *why++;
    kap_cli_frame(ex, 'x', b, n);
}

/* ---- the response: a chunked 200, or after a 101 raw frames --------------- */

static void kap_cli_on_data(struct kap_http_ex *ex, const char *p, size_t n,
                            void *data);

static int
kap_cli_begin(struct kap_cli_ctx *x)
{
    if (x->stream)
        return kap_http_upgrade(x->ex, "kap-cli", kap_cli_on_data, x);
    return kap_http_stream_start(x->ex, 200, "application/x-kap-cli");
}

/* Ends the exchange. */
static void
kap_cli_finish(struct kap_cli_ctx *x)
{
    if (x->stream)
        kap_http_raw_end(x->ex);
    else
        kap_http_stream_end(x->ex);
}

/* ---- helpers ------------------------------------------------------------- */

/* The canonical command for the denial line, the log and the audit:
   argv as kap_cli_say_argv() writes it, then redacted. */
static const char *
kap_cli_cmd_text(struct kap_pool *pool, const char *const *argv)
{
    const char *txt = kap_cli_say_argv(pool, argv);
    char       *red, one[1];
    size_t      need;

    if (txt == NULL)
        return "?";
    need = kap_secret_redact(txt, one, sizeof(one)) + 1;
    red = kap_palloc(pool, need);
    if (red == NULL)
        return "?";
    kap_secret_redact(txt, red, need);
    return red;
}

/*
 * The directory the child starts in: the per-call home, or with
 * cwd = "workspace" the capsule's cwd mapped to the workspace outside
 * (its real path must stay inside the workspace's).  NULL with *why.
 */
static const char *
kap_cli_cwd(struct kap_cli_ctx *x, const char **why)
{
    const char *cw = x->cf->capsule_workspace, *rest;
    size_t      cl = strlen(cw);
    char        real[PATH_MAX], base[PATH_MAX];
    const char *mapped;

    if (!x->t->cwd_workspace)
        return x->home;
    if (x->cf->workspace == NULL) {
        *why = "cwd: the cli group has no workspace";
        return NULL;
    }
    while (cl > 1 && cw[cl - 1] == '/')
        cl--;
    rest = "";
    if (x->cwd_req != NULL) {
        if (strncmp(x->cwd_req, cw, cl) != 0
            || (x->cwd_req[cl] != '\0' && x->cwd_req[cl] != '/'
                && cl > 1)) {
            *why = "cwd: outside the capsule's workspace";
            return NULL;
        }
        rest = x->cwd_req + cl;
    }
    mapped = kap_psprintf(x->pool, "%s/%s", x->cf->workspace, rest);
    if (mapped == NULL || realpath(mapped, real) == NULL
        || realpath(x->cf->workspace, base) == NULL) {
        *why = "cwd: no such directory in the workspace";
        return NULL;
    }
    cl = strlen(base);
    if (strncmp(real, base, cl) != 0 || (real[cl] != '\0' && real[cl] != '/'
                                         && cl > 1)) {
        *why = "cwd: leaves the workspace";
        return NULL;
    }
    return kap_pstrdup(x->pool, real);
}

static void
kap_cli_release(struct kap_cli_ctx *x)
{
    if (x->counted) {
        x->t->running--;
        x->counted = 0;
    }
    kap_cli_cred_forget(x->dummy);
    x->dummy = NULL;
    if (x->home != NULL) {
        if (kap_cli_home_remove(x->home) != KAP_OK)
            KAP_LOG(KAP_LOG_WARN, KAP_CLI_NAME, 0, "cannot remove the "
                    "per-call home %s", x->home);
        x->home = NULL;
    }
}

/* The call's end for the audit chain: exit status, duration, bytes. */
static void
kap_cli_audit_end(struct kap_cli_ctx *x, const struct kap_cli_result *res,
                  const char *ended)
{
    struct kap_conn        *c = kap_http_ex_conn(x->ex);
    struct kap_audit_event  ev;
    struct kap_audit_field  f[7];

    memset(&ev, 0, sizeof(ev));
    memset(f, 0, sizeof(f));
    f[0].name = "exit";     f[0].num = res->exit_code;
    f[1].name = "signal";   f[1].num = res->signal;
    f[2].name = "duration"; f[2].num = res->duration;
    f[3].name = "bytes_in"; f[3].num = (double)res->in_bytes;
    f[4].name = "bytes_out"; f[4].num = (double)res->out_bytes;
    f[5].name = "bytes_err"; f[5].num = (double)res->err_bytes;
    f[6].name = "argv";     f[6].str = x->cmd;
    ev.kind = KAP_REQ_CLI;
    ev.module = KAP_CLI_NAME;
    ev.event = "cli_exit";
    ev.subject = x->t->name;
    ev.action = ended;
    ev.detail = x->cmd;
    ev.client = c->peer_text;
    ev.conn_id = c->id;
    ev.gen_id = kap_gen_id(c->gen);
    ev.fields = f;
    ev.nfields = sizeof(f) / sizeof(f[0]);
    kap_audit_emit(c->gen, &ev);
}

/* ---- the run ------------------------------------------------------------- */

static void
kap_cli_on_drain(struct kap_http_ex *ex, void *data)
{
    struct kap_cli_ctx *x = data;

    (void)ex;
    if (x->run != NULL)
        kap_cli_run_resume(x->run);
}

static void
kap_cli_on_abort(struct kap_http_ex *ex, void *data)
{
    struct kap_cli_ctx   *x = data;
    struct kap_cli_result res;

    (void)ex;
    if (x->run == NULL)
        return;                  /* a policy check pending: freed with ex */
    memset(&res, 0, sizeof(res));
    res.exit_code = -1;
    KAP_LOG(KAP_LOG_INFO, KAP_CLI_NAME, 0, "%s: client went away: process "
            "group %ld killed", x->t->name, (long)kap_cli_run_pid(x->run));
    kap_cli_run_cancel(x->run);
    x->run = NULL;
    kap_cli_audit_end(x, &res, "disconnected");
    kap_cli_release(x);
}

static int
kap_cli_on_output(struct kap_cli_run *r, int stream, const char *p, size_t n,
                  void *data)
{
    struct kap_cli_ctx *x = data;

    (void)r;
    return kap_cli_frame(x->ex, stream == KAP_CLI_STDOUT ? 1 : 2, p, n)
           == KAP_AGAIN ? KAP_AGAIN : KAP_OK;
}

static void
kap_cli_on_exit(struct kap_cli_run *r, const struct kap_cli_result *res,
                void *data)
{
    struct kap_cli_ctx *x = data;
    const char         *why = res->ended == KAP_CLI_TIMEOUT ? "timeout"
                            : res->ended == KAP_CLI_OUTPUT_LIMIT
                              ? "output-limit"
                            : res->signal != 0 ? "signal" : "exited";

    (void)r;
    x->run = NULL;
    kap_cli_audit_end(x, res, why);
    kap_cli_release(x);
    kap_http_ex_on_abort(x->ex, NULL, NULL);
    kap_http_ex_on_drain(x->ex, NULL, NULL);
    kap_cli_exit_frame(x->ex, res->exit_code, why);
    kap_cli_finish(x);
}

/* ---- streamed stdin -------------------------------------------------------- */

static void
kap_cli_on_stdin_drain(struct kap_cli_run *r, void *data)
{
    struct kap_cli_ctx *x = data;

    (void)r;
    kap_http_raw_hold(x->ex, 0);
}

static int
kap_cli_stdin_piece(const char *p, size_t n, void *data)
{
    struct kap_cli_ctx *x = data;
    int                 rc;

    if (x->run == NULL)
        return 0;                /* the call is over: dropped */
    if (p == NULL) {
        kap_cli_run_stdin_eof(x->run);
        return 0;
    }
    rc = kap_cli_run_stdin(x->run, p, n);
    if (rc == KAP_AGAIN)
        kap_http_raw_hold(x->ex, 1);
    return rc == KAP_ERROR ? -1 : 0;
}

/* The client's bytes after the 101: stdin frames. */
static void
kap_cli_on_data(struct kap_http_ex *ex, const char *p, size_t n, void *data)
{
    struct kap_cli_ctx   *x = data;
    struct kap_cli_result res;

    if (kap_cli_stdin_feed(&x->dec, p, n, kap_cli_stdin_piece, x) == 0)
        return;
    KAP_LOG(KAP_LOG_INFO, KAP_CLI_NAME, 0, "%s: %s: the call is ended",
            x->t->name, x->dec.error);
    kap_http_ex_on_abort(ex, NULL, NULL);
    kap_http_ex_on_drain(ex, NULL, NULL);
    if (x->run != NULL) {
        memset(&res, 0, sizeof(res));
        res.exit_code = -1;
        kap_cli_run_cancel(x->run);
        x->run = NULL;
        kap_cli_audit_end(x, &res, "bad-stdin");
        kap_cli_release(x);
    }
    kap_http_ex_close(ex);
}

/* Denied: the one stderr line, exit status 126. */
static void
kap_cli_deny(struct kap_cli_ctx *x, const char *reason)
{
    const char *line = kap_cli_say_denied(x->pool, x->cmd, reason,
                                          x->v.suggest);

    kap_http_ex_on_abort(x->ex, NULL, NULL);
    if (kap_cli_begin(x) == KAP_ERROR) {
        if (!x->stream)
            kap_http_stream_end(x->ex);
        return;                  /* (a failed upgrade closed ex) */
    }
    if (line != NULL)
        kap_cli_frame(x->ex, 2, line, strlen(line));
    kap_cli_exit_frame(x->ex, KAP_CLI_DENIED, "denied");
    kap_cli_finish(x);
}

static void
kap_cli_start(struct kap_cli_ctx *x)
{
    struct kap_cli_run_spec spec;
    struct kap_cli_tool    *t = x->t;
    struct kap_err          e;
    const char             *parent, *cwd, *why = NULL;
    const char            **tenv;
    char                  **envp, *ent, dummy[KAP_CLI_DUMMY_LEN + 1];
    size_t                  i, n, entlen = KAP_SECRET_MAX + 128;
    static const struct kap_cli_run_cbs cbs = {
        kap_cli_on_output, kap_cli_on_exit, kap_cli_on_stdin_drain
    };

    memset(&e, 0, sizeof(e));
    if (t->running >= t->concurrency) {
        kap_cli_deny(x, "concurrency limit reached");
        return;
    }
    parent = kap_cli_home_parent(x->cf, &e);
    x->home = parent != NULL ? kap_cli_home_make(x->pool, parent, &e) : NULL;
    if (x->home == NULL) {
        KAP_LOG(KAP_LOG_ERR, KAP_CLI_NAME, 0, "%s: %s", t->name, e.msg);
        kap_cli_deny(x, "cannot make the per-call home");
        return;
    }
    cwd = kap_cli_cwd(x, &why);
    if (cwd == NULL) {
        kap_cli_release(x);
        kap_cli_deny(x, why);
        return;
    }
    if (t->cred) {
        x->dummy = kap_cli_cred_begin(x->pool, t, x->home, dummy, &e);
        if (x->dummy == NULL) {
            KAP_LOG(KAP_LOG_ERR, KAP_CLI_NAME, 0, "%s: %s", t->name, e.msg);
            kap_cli_release(x);
            kap_cli_deny(x, "cannot set up the credential proxy");
            return;
        }
    }
    tenv = kap_palloc(x->pool, (t->nenv + 1) * sizeof(*tenv));
    ent = malloc(entlen);
    envp = NULL;
    for (i = 0; tenv != NULL && ent != NULL && i < t->nenv; i++) {
        /* with the credential proxy a token variable holds the call's
           dummy: the real token stays in kapd */
        if (t->cred && kap_cli_cred_token_var(t->env[i].name)) {
            tenv[i] = kap_psprintf(x->pool, "%s=%s", t->env[i].name, dummy);
            if (tenv[i] == NULL)
                break;
            continue;
        }
        if (kap_secret_env(t->env[i].value, t->env[i].name, ent, entlen, &e)
            != KAP_OK)
            break;
        tenv[i] = kap_pstrdup(x->pool, ent);
        kap_secret_wipe(ent, strlen(ent));
        if (tenv[i] == NULL)
            break;
    }
    if (tenv != NULL && ent != NULL && i == t->nenv)
        envp = kap_cli_env_build(x->pool, x->home, x->cf->egress_proxy,
                                 tenv, t->nenv, &e);
    for (i = 0; tenv != NULL && i < t->nenv && tenv[i] != NULL; i++)
        kap_secret_wipe((char *)tenv[i], strlen(tenv[i]));
    free(ent);
    if (envp == NULL) {
        KAP_LOG(KAP_LOG_ERR, KAP_CLI_NAME, 0, "%s: environment: %s", t->name,
                e.msg[0] != '\0' ? e.msg : "out of memory");
        kap_cli_release(x);
        kap_cli_deny(x, "cannot build the environment");
        return;
    }
    memset(&spec, 0, sizeof(spec));
    spec.path = t->path;
    spec.argv = (char *const *)x->call.argv;
    spec.envp = envp;
    spec.cwd = cwd;
    spec.stdin_data = x->stdin_data;
    spec.stdin_len = x->stdin_len;
    spec.stdin_stream = x->stream;
    spec.wall_time = t->wall_time;
    spec.max_output = (size_t)t->max_output;
    if (kap_cli_begin(x) == KAP_ERROR) {
        kap_cli_release(x);
        if (!x->stream)
            kap_http_stream_end(x->ex);
        return;
    }
    x->run = kap_cli_run_start(&spec, &cbs, x, &e);
    /* the tool's variables (its credentials) are the last nenv entries,
       copied into the pool: wipe them (the others may be static) */
    for (i = 0; envp[i] != NULL; i++)
        ;
    for (n = 0; n < t->nenv && i > 0; n++, i--)
        kap_secret_wipe(envp[i - 1], strlen(envp[i - 1]));
    if (x->run == NULL) {
        const char *line = kap_psprintf(x->pool, "kap: %s: cannot run: %s\n",
                                        x->cmd, e.msg);
        KAP_LOG(KAP_LOG_ERR, KAP_CLI_NAME, 0, "%s: cannot run %s: %s",
                t->name, t->path, e.msg);
        kap_cli_release(x);
        if (line != NULL)
            kap_cli_frame(x->ex, 2, line, strlen(line));
        kap_cli_exit_frame(x->ex, KAP_CLI_DENIED, "not-run");
        kap_cli_finish(x);
        return;
    }
    t->running++;
    x->counted = 1;
    kap_http_ex_on_abort(x->ex, kap_cli_on_abort, x);
    kap_http_ex_on_drain(x->ex, kap_cli_on_drain, x);
}

static void
kap_cli_decided(struct kap_req *r, void *data)
{
    struct kap_cli_ctx *x = data;

    if (r->verdict == KAP_ALLOW)
        kap_cli_start(x);
    else
        kap_cli_deny(x, r->reason);
}

/* ---- entry --------------------------------------------------------------- */

void
kap_cli_proxy(struct kap_http_ex *ex, struct kap_cli_tool *t,
              const struct kap_cli_req *req, const char *stdin_data,
              size_t stdin_len, int stream)
{
    struct kap_conn    *c = kap_http_ex_conn(ex);
    struct kap_pool    *pool = kap_http_ex_pool(ex);
    struct kap_cli_ctx *x = kap_palloc(pool, sizeof(*x));
    struct kap_cli_arg *args = kap_palloc(pool, (req->nargs + 1)
                                                * sizeof(*args));
    struct kap_attr    *at = kap_palloc(pool, 4 * sizeof(*at));
    const char         *why = NULL, **raw;
    size_t              i;
    int                 ok;

    if (x == NULL || args == NULL || at == NULL) {
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    memset(x, 0, sizeof(*x));
    x->ex = ex;
    x->pool = pool;
    x->t = t;
    x->cf = c->conf;
    x->stdin_data = stdin_data;
    x->stdin_len = stdin_len;
    x->stream = stream;
    kap_cli_stdin_init(&x->dec);
    x->cwd_req = req->cwd;
    for (i = 0; i < req->nargs; i++) {
        args[i].data = req->args[i];
        args[i].len = strlen(req->args[i]);
    }
    ok = kap_cli_canon(pool, t->profile, args, req->nargs, &x->call, &why)
         == 0;
    if (ok) {
        kap_cli_decide_ask(pool, t->profile, &x->call,
                           (struct kap_cli_rule *const *)t->deny, t->ndeny,
                           (struct kap_cli_rule *const *)t->ask, t->nask,
                           (struct kap_cli_rule *const *)t->allow, t->nallow,
                           &x->v);
        x->cmd = kap_cli_cmd_text(pool, x->call.argv);
    } else {
        /* what was sent, for the line and the audit */
        raw = kap_palloc(pool, (req->nargs + 2) * sizeof(*raw));
        if (raw != NULL) {
            raw[0] = t->name;
            memcpy(raw + 1, req->args, (req->nargs + 1) * sizeof(*raw));
        }
        x->cmd = raw != NULL ? kap_cli_cmd_text(pool, raw) : NULL;
    }
    x->req = kap_req_new(c->gen, pool, KAP_REQ_CLI, KAP_CLI_NAME, t->name);
    if (x->req == NULL || x->cmd == NULL) {
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    x->req->conn = c;
    x->req->client = c->peer_text;
    x->req->detail = x->cmd;
    x->req->flags |= KAP_REQ_F_FILTER;
    at[0].name = "cli_verdict";
    at[0].value = !ok ? "deny" : x->v.allow ? "allow"
                : x->v.ask ? "ask" : "deny";
    at[1].name = "cli_reason";
    at[1].value = ok ? x->v.reason : why;
    at[2].name = "rule";
    at[2].value = ok && x->v.rule != NULL ? x->v.rule->text : "";
    at[3].name = "suggest";
    /* an asked call: the rule "allow always" would add */
    at[3].value = ok && x->v.suggest != NULL ? x->v.suggest
                : ok && x->v.ask ? kap_cli_suggest(pool, &x->call) : "";
    x->req->attrs = at;
    x->req->nattrs = 4;
    if (ok && t->running >= t->concurrency) {
        ok = 0;
        why = "concurrency limit reached";
    }
    if (!ok) {
        kap_req_refuse(x->req, why);
        kap_cli_deny(x, x->req->reason);
        return;
    }
    kap_http_ex_on_abort(ex, kap_cli_on_abort, x);
    if (kap_policy_check(x->req, kap_cli_decided, x) == KAP_OK)
        kap_cli_decided(x->req, x);
}

/* ---- the policy hook ------------------------------------------------------ */

int
kap_cli_policy(struct kap_req *r, void *conf)
{
    const char *v = kap_req_attr(r, "cli_verdict");
    const char *why = kap_req_attr(r, "cli_reason");
    const char *rule = kap_req_attr(r, "rule");

    (void)conf;
    if (r->asked_by == NULL || strcmp(r->asked_by, KAP_CLI_NAME) != 0
        || v == NULL)
        return KAP_DECLINED;
    if (strcmp(v, "ask") == 0) {
        r->flags |= KAP_REQ_F_ASK;      /* a later hook asks a human; */
        return KAP_DECLINED;            /* nobody after: denied */
    }
    if (strcmp(v, "allow") == 0) {
        kap_req_decide(r, KAP_ALLOW, KAP_CLI_NAME,
                       rule != NULL && rule[0] != '\0' ? rule : "allow");
    } else {
        kap_req_decide(r, KAP_DENY, KAP_CLI_NAME,
                       why != NULL ? why : "denied");
    }
    return KAP_OK;
}

/* ---- per-call homes ------------------------------------------------------- */

static char kap_cli_tmp_home[64];

const char *
kap_cli_home_parent(const struct kap_cli_conf *cf, struct kap_err *err)
{
    if (cf->home_dir != NULL)
        return cf->home_dir;
    if (kap_cli_tmp_home[0] == '\0') {
        const char *tmp = "/tmp/kapd-cli.XXXXXX";
        memcpy(kap_cli_tmp_home, tmp, strlen(tmp) + 1);
        if (mkdtemp(kap_cli_tmp_home) == NULL) {
            kap_cli_tmp_home[0] = '\0';
            kap_err_set(err, "cannot make a private directory in /tmp");
            return NULL;
        }
    }
    return kap_cli_tmp_home;
}

void
kap_cli_home_parent_remove(void)
{
    if (kap_cli_tmp_home[0] != '\0') {
        (void)rmdir(kap_cli_tmp_home);
        kap_cli_tmp_home[0] = '\0';
    }
}
