/*
 * test_chain.c -- policy and audit chains, and generations, driven with
 * fake modules defined here (installed as the built-in list with
 * kapd_builtin_override): chain order, DECLINED fall-through, AGAIN and
 * resume at the same hook, ERROR fails closed, the default verdict, one
 * audit event per decision, kinds a hook did not ask for, explicit chain
 * errors, @include with globs and true file:line, reload keeping the old
 * generation on a broken file, retirement when the last reference goes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kapd.h"
#include "kapd_cycle.h"
#include "tap.h"

/* ---- fake modules --------------------------------------------------------- */

enum { A_DECLINE = 0, A_ALLOW, A_DENY, A_ERROR, A_AGAIN, A_AGAIN_SELF,
       A_OK_NOVERDICT, A_RESUME_DECLINE };

static int answer_ta, answer_tb;     /* what each hook answers */
static char calls[256];              /* "tb,ta," call log */
static int tb_calls;
static int cancels;
static int inits, finis;

static int audits;                   /* audit events seen by sink1 */
static char audit_order[64];
static char last_action[32], last_by[32], last_reason[64], last_event[32];
static uint64_t last_gen;

static void
logcall(const char *who)
{
    size_t n = strlen(calls);
    snprintf(calls + n, sizeof(calls) - n, "%s,", who);
}

static void
cancel_cb(struct kap_req *r)
{
    (void) r;
    cancels++;
}

static int
answer(struct kap_req *r, int a, const char *who)
{
    switch (a) {
    case A_ALLOW:
        kap_req_decide(r, KAP_ALLOW, who, "rule allows");
        return KAP_OK;
    case A_DENY:
        kap_req_decide(r, KAP_DENY, who, "rule denies");
        return KAP_OK;
    case A_ERROR:
        return KAP_ERROR;
    case A_OK_NOVERDICT:
        return KAP_OK;
    case A_RESUME_DECLINE:              /* a stray resume, then no opinion */
        kap_policy_resume(r);
        return KAP_DECLINED;
    case A_AGAIN:
    case A_AGAIN_SELF:
        if (r->hook_data != NULL) {         /* second call: answer now */
            kap_req_decide(r, KAP_ALLOW, who, "after waiting");
            return KAP_OK;
        }
        r->hook_data = (void *) 1;
        r->hook_cancel = cancel_cb;
        if (a == A_AGAIN_SELF)
            kap_policy_resume(r);           /* resumes inside its own call */
        return KAP_AGAIN;
    default:
        return KAP_DECLINED;
    }
}

static int
ta_policy(struct kap_req *r, void *conf)
{
    (void) conf;
    logcall("ta");
    return answer(r, answer_ta, "ta");
}

static int
tb_policy(struct kap_req *r, void *conf)
{
    (void) conf;
    logcall("tb");
    tb_calls++;
    return answer(r, answer_tb, "tb");
}

static int
tc_policy(struct kap_req *r, void *conf)
{
    (void) r;
    (void) conf;
    logcall("tc");
    return KAP_DECLINED;
}

static void
sink1(const struct kap_audit_event *ev, void *conf)
{
    size_t n = strlen(audit_order);
    (void) conf;
    audits++;
    snprintf(audit_order + n, sizeof(audit_order) - n, "s1,");
    snprintf(last_action, sizeof(last_action), "%s", ev->action);
    snprintf(last_by, sizeof(last_by), "%s",
             ev->decided_by ? ev->decided_by : "");
    snprintf(last_reason, sizeof(last_reason), "%s",
             ev->reason ? ev->reason : "");
    snprintf(last_event, sizeof(last_event), "%s", ev->event);
    last_gen = ev->gen_id;
}

static void
sink2(const struct kap_audit_event *ev, void *conf)
{
    size_t n = strlen(audit_order);
    (void) ev;
    (void) conf;
    snprintf(audit_order + n, sizeof(audit_order) - n, "s2,");
}

static int
count_init(struct kap_gen *gen, void *conf)
{
    (void) gen;
    (void) conf;
    inits++;
    return KAP_OK;
}

static void
count_fini(struct kap_gen *gen, void *conf)
{
    (void) gen;
    (void) conf;
    finis++;
}

static const struct kap_hook ta_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_TEST | KAP_REQ_CONNECT, ta_policy, NULL, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};
static const struct kap_hook tb_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_TEST, tb_policy, NULL, NULL },
    { KAP_HOOK_AUDIT, KAP_REQ_ALL, NULL, sink1, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};
static const struct kap_hook tc_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_DNS, tc_policy, NULL, NULL },
    { KAP_HOOK_AUDIT, KAP_REQ_ALL, NULL, sink2, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

static const struct kap_module mod_ta = {
    KAP_MODULE_V1("ta"), .version = "1", .hooks = ta_hooks,
    .init = count_init, .fini = count_fini,
};
static const struct kap_module mod_tb = {
    KAP_MODULE_V1("tb"), .version = "1", .hooks = tb_hooks,
};
static const struct kap_module mod_tc = {
    KAP_MODULE_V1("tc"), .version = "1", .hooks = tc_hooks,
};
static const struct kap_module *const test_builtins[] = {
    &mod_ta, &mod_tb, &mod_tc, NULL
};

/* ---- helpers ---------------------------------------------------------------- */

static char dir[256];

static const char *
write_conf(const char *name, const char *text)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* what the last build() reported besides its error */
static struct kapd_build last_build;

static struct kap_gen *
build(const char *text, struct kap_err *err)
{
    const char *p = write_conf("kapd.conf", text);
    memset(err, 0, sizeof(*err));
    return kapd_gen_build(p, dir, &last_build, err);
}

static int done_calls;
static struct kap_req *done_req;

static void
done_cb(struct kap_req *r, void *data)
{
    done_calls++;
    done_req = r;
    *(int *) data = 1;
}

static void
reset(void)
{
    calls[0] = '\0';
    audit_order[0] = '\0';
    audits = 0;
    tb_calls = 0;
    cancels = 0;
    done_calls = 0;
    done_req = NULL;
    last_action[0] = last_by[0] = last_reason[0] = '\0';
}

/* run the loop until *flag or about 2 s */
static void
spin(int *flag)
{
    int i;

    for (i = 0; i < 200 && !*flag; i++)
        ev_run(kap_loop(), EVRUN_ONCE | EVRUN_NOWAIT), usleep(10000);
}

static const char base_conf[] =
    "kapd: {\n"
    "    load = [];\n"
    "    module_path = [\"/nonexistent\"];\n"
    "    policy: { chain = [\"tb\", \"ta\", \"tc\"]; };\n"
    "    audit: { chain = [\"tb\", \"tc\"]; };\n"
    "};\n";

int
main(void)
{
    struct kap_err err;
    struct kap_gen *gen, *gen2;
    struct kap_pool *pool;
    struct kap_req *r;
    int flag, rc;

    snprintf(dir, sizeof(dir), "/tmp/kapd-test-chain-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    /* modules load from this empty directory, never from the compiled-in
     * module directory: what is installed must not change the results */
    setenv("KAPD_MODULE_PATH", dir, 1);
    kapd_builtin_override = test_builtins;

    gen = build(base_conf, &err);
    if (!ok(gen != NULL, "generation builds"))
        diag("%s at %s:%d", err.msg,
                                                  err.file, err.line);
    if (gen == NULL)
        return done_testing();
    is_int(kapd_gen_activate(gen, NULL, &err), KAP_OK, "generation activates");
    is_int(inits, 1, "init ran once");
    ok(kap_gen_current() == gen && kap_gen_is_current(gen), "it is current");
    is_int(kap_gen_id(gen), 1, "first generation has id 1");

    /* the flattened chains */
    is_int(gen->policy[kapd_kind_index(KAP_REQ_TEST)].n, 2,
           "test chain: tb and ta (tc asked only for dns)");
    is_int(gen->policy[kapd_kind_index(KAP_REQ_CONNECT)].n, 1,
           "connect chain: ta only");
    is_int(gen->policy[kapd_kind_index(KAP_REQ_CLI)].n, 0, "cli chain: empty");

    /* 1: all decline -> default deny */
    reset();
    answer_ta = answer_tb = A_DECLINE;
    pool = kap_pool_create();
    r = kap_req_new(kap_gen_current(), pool, KAP_REQ_TEST, "unit", "a.test");
    ok(r != NULL, "kap_req_new");
    rc = kap_policy_check(r, done_cb, &flag);
    is_int(rc, KAP_OK, "decline, decline: decided synchronously");
    is_str(calls, "tb,ta,", "hooks called in chain order; tc not for test");
    is_int(r->verdict, KAP_DENY, "exhausted chain: deny");
    is_str(r->decided_by, "default", "decided_by default");
    is_str(r->reason, "no rule allows it", "default reason");
    is_int(audits, 1, "one audit event");
    is_str(last_action, "denied", "audit action denied");
    is_str(last_event, "decision", "audit event decision");
    is_str(audit_order, "s1,s2,", "audit chain order tb, tc");
    is_int((int) last_gen, 1, "audit carries the generation id");
    is_int(done_calls, 0, "sync result never calls done");
    kap_pool_destroy(pool);

    /* 2: the first deciding hook wins */
    reset();
    answer_tb = A_ALLOW;
    answer_ta = A_DENY;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "b.test");
    kap_policy_check(r, done_cb, &flag);
    is_str(calls, "tb,", "tb decides, ta not asked");
    is_int(r->verdict, KAP_ALLOW, "allowed");
    is_str(r->decided_by, "tb", "decided_by tb");
    is_str(last_action, "allowed", "audit action allowed");
    is_str(last_reason, "rule allows", "audit reason");
    is_int(audits, 1, "exactly one audit event");
    kap_pool_destroy(pool);

    /* 3: decline falls through to the next */
    reset();
    answer_tb = A_DECLINE;
    answer_ta = A_ALLOW;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "c.test");
    kap_policy_check(r, done_cb, &flag);
    is_str(calls, "tb,ta,", "decline falls through");
    is_str(r->decided_by, "ta", "ta decides");
    kap_pool_destroy(pool);

    /* 4: ERROR fails closed */
    reset();
    answer_tb = A_ERROR;
    answer_ta = A_ALLOW;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "d.test");
    rc = kap_policy_check(r, done_cb, &flag);
    is_int(rc, KAP_OK, "error: decided");
    is_str(calls, "tb,", "error stops the chain");
    is_int(r->verdict, KAP_DENY, "error: denied");
    is_str(r->reason, "policy error", "reason policy error");
    is_int(audits, 1, "error: one audit event");
    kap_pool_destroy(pool);

    /* 5: OK without a verdict fails closed too */
    reset();
    answer_tb = A_OK_NOVERDICT;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "e.test");
    kap_policy_check(r, done_cb, &flag);
    is_int(r->verdict, KAP_DENY, "OK without verdict: denied");
    is_str(r->reason, "policy error", "OK without verdict: policy error");
    kap_pool_destroy(pool);

    /* 6: AGAIN, then resume at the same hook */
    reset();
    answer_tb = A_AGAIN;
    answer_ta = A_DENY;
    flag = 0;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "f.test");
    rc = kap_policy_check(r, done_cb, &flag);
    is_int(rc, KAP_AGAIN, "AGAIN returned to the caller");
    is_int(audits, 0, "no audit while waiting");
    kap_policy_resume(r);
    is_int(done_calls, 0, "resume does not call done synchronously");
    spin(&flag);
    is_int(done_calls, 1, "done called once from the loop");
    ok(done_req == r, "done gets the request");
    is_int(tb_calls, 2, "the same hook is called again");
    is_str(calls, "tb,tb,", "ta not called: tb decided after resume");
    is_int(r->verdict, KAP_ALLOW, "verdict after resume");
    is_str(r->decided_by, "tb", "decided by the resumed hook");
    is_int(audits, 1, "one audit event after resume");
    spin(&flag);
    is_int(done_calls, 1, "done not called twice");
    kap_pool_destroy(pool);
    is_int(cancels, 0, "no cancel after the answer");

    /* 7: a hook resuming inside its own call: done still from the loop */
    reset();
    answer_tb = A_AGAIN_SELF;
    flag = 0;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "g.test");
    rc = kap_policy_check(r, done_cb, &flag);
    is_int(rc, KAP_AGAIN, "self-resume: AGAIN");
    is_int(done_calls, 0, "self-resume: done not called before return");
    spin(&flag);
    is_int(done_calls, 1, "self-resume: done once from the loop");
    is_int(audits, 1, "self-resume: one audit event");
    kap_pool_destroy(pool);

    /* 7b: a stray resume from a hook that then declined re-calls nothing */
    reset();
    answer_tb = A_RESUME_DECLINE;
    answer_ta = A_AGAIN;
    flag = 0;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "g2.test");
    rc = kap_policy_check(r, done_cb, &flag);
    is_int(rc, KAP_AGAIN, "stray resume: ta waits");
    {
        int i;
        for (i = 0; i < 5; i++)
            ev_run(kap_loop(), EVRUN_ONCE | EVRUN_NOWAIT), usleep(2000);
    }
    is_str(calls, "tb,ta,", "the stray resume did not re-call ta");
    kap_policy_resume(r);
    spin(&flag);
    is_str(calls, "tb,ta,ta,", "ta re-called after its own resume");
    is_int(done_calls, 1, "and done once");
    kap_pool_destroy(pool);
    answer_ta = A_DENY;

    /* 8: request freed while waiting: cancelled, no done, no audit */
    reset();
    answer_tb = A_AGAIN;
    flag = 0;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "h.test");
    rc = kap_policy_check(r, done_cb, &flag);
    is_int(rc, KAP_AGAIN, "waiting");
    kap_policy_resume(r);
    kap_pool_destroy(pool);
    is_int(cancels, 1, "hook_cancel called when the request dies");
    spin(&flag);
    is_int(done_calls, 0, "no done after the request died");
    is_int(audits, 0, "no audit for an undecided request");

    /* 9: kinds a hook did not ask for */
    reset();
    answer_ta = A_DECLINE;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_DNS, "unit", "i.test");
    kap_policy_check(r, done_cb, &flag);
    is_str(calls, "tc,", "dns: only tc");
    kap_pool_destroy(pool);
    reset();
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_MCP_CALL, "unit", "tool");
    kap_policy_check(r, done_cb, &flag);
    is_str(calls, "", "mcp_call: no hook");
    is_str(r->decided_by, "default", "mcp_call: default");
    kap_pool_destroy(pool);
    reset();
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, 0x3, "unit", "two-kinds");
    kap_policy_check(r, done_cb, &flag);
    is_int(r->verdict, KAP_DENY, "invalid kind: denied");
    is_str(r->reason, "policy error", "invalid kind: policy error");
    kap_pool_destroy(pool);
    is_str(kap_req_kind_name(KAP_REQ_CONNECT), "connect", "kind name");
    is_str(kap_req_kind_name(KAP_REQ_MCP_LIST), "mcp_list", "kind name 2");

    /* 10: a new generation; the old one lives while a request holds it */
    reset();
    answer_tb = A_DECLINE;
    answer_ta = A_DECLINE;
    pool = kap_pool_create();
    r = kap_req_new(gen, pool, KAP_REQ_TEST, "unit", "old-gen");
    gen2 = build(
        "kapd: {\n"
        "    load = [];\n"
        "    policy: { chain = [\"ta\", \"tb\", \"tc\"]; default = \"allow\"; };\n"
        "    audit: { chain = [\"tc\", \"tb\"]; };\n"
        "};\n", &err);
    if (!ok(gen2 != NULL, "second generation builds"))
        diag("%s", err.msg);
    is_int(kapd_gen_activate(gen2, NULL, &err), KAP_OK, "and activates");
    is_int(kap_gen_id(gen2), 2, "id 2");
    ok(!kap_gen_is_current(gen), "old one is not current");
    is_int(finis, 0, "old generation not finalised while referenced");
    kap_policy_check(r, done_cb, &flag);
    is_str(calls, "tb,ta,", "old request uses the old chain");
    is_int(r->verdict, KAP_DENY, "and the old default");
    is_int((int) last_gen, 1, "audited under generation 1");
    kap_pool_destroy(pool);
    is_int(finis, 1, "last reference gone: old generation finalised");
    reset();
    pool = kap_pool_create();
    r = kap_req_new(kap_gen_current(), pool, KAP_REQ_TEST, "unit", "new");
    kap_policy_check(r, done_cb, &flag);
    is_str(calls, "ta,tb,", "new chain order");
    is_int(r->verdict, KAP_ALLOW, "policy.default = allow");
    is_str(r->decided_by, "default", "decided by default");
    is_str(audit_order, "s2,s1,", "new audit order");
    kap_pool_destroy(pool);

    /* 11: chain errors */
    gen = build("kapd: { load = []; policy: { chain = [\"ta\", \"tb\"]; }; };\n",
                &err);
    ok(gen == NULL, "a policy module left out of the chain is an error");
    if (!ok(strstr(err.msg, "\"tc\"") && strstr(err.msg, "kapd.policy.chain"),
       "names the module and the chain"))
        diag("%s", err.msg);
    is_int(err.line, 1, "with its line");
    gen = build("kapd: {\n load = [];\n"
                " policy: { chain = [\"ta\", \"tb\", \"tc\", \"nosuch\"]; };\n"
                "};\n", &err);
    ok(gen == NULL, "a chain naming a module not loaded is an error");
    if (!ok(strstr(err.msg, "nosuch") != NULL, "names it"))
        diag("%s", err.msg);
    is_int(err.line, 3, "on its line");
    gen = build("kapd: { load = []; };\nnetwrk: { a = 1; };\n", &err);
    ok(gen == NULL, "unknown group");
    is_str(err.msg, "unknown group \"netwrk\"", "unknown group message");
    is_int(err.line, 2, "unknown group line");
    gen = build("kapd: { load = []; };\ndns: { a = 1; };\n", &err);
    if (!ok(gen == NULL && strstr(err.msg, "not loaded (kapd.load)") != NULL,
       "group of a known module not loaded"))
        diag("%s", err.msg);
    gen = build("kapd: { load = []; colour = 1; };\n", &err);
    if (!ok(gen == NULL && strstr(err.msg, "colour") != NULL,
       "unknown key in kapd"))
        diag("%s", err.msg);
    gen = build("kapd: { load = [\"ta\"]; };\n", &err);
    if (!ok(gen == NULL && strstr(err.msg, "twice") != NULL,
       "a built-in in kapd.load: loaded twice"))
        diag("%s", err.msg);
    gen = build("kapd: { load = [\"nosuch\"]; module_path = \"/nonexistent\"; };\n",
                &err);
    if (!ok(gen == NULL && strstr(err.msg, "not found") != NULL,
       "explicit module not found is an error"))
        diag("%s", err.msg);
    is_int(last_build.exit_code, KAPD_EXIT_MODULE, "module exit code");
    gen = build("ta: { x = 1; };\n", &err);
    if (!ok(gen == NULL && strstr(err.msg, "takes no configuration") != NULL,
       "group for a module without conf_parse"))
        diag("%s", err.msg);
    gen = build("kapd: { load = [ };\n", &err);
    ok(gen == NULL, "syntax error");
    is_int(err.line, 1, "syntax error line");

    /* 12: @include with a glob, file:line of the included file */
    {
        char d2[512];
        snprintf(d2, sizeof(d2), "%s/conf.d", dir);
        mkdir(d2, 0755);
    }
    write_conf("conf.d/a.conf", "# a\n");
    write_conf("conf.d/b.conf", "\n\nnetwrk: { };\n");
    gen = build("kapd: {\n load = [];\n};\n@include \"conf.d/*.conf\"\n", &err);
    ok(gen == NULL, "error in a globbed include");
    if (!ok(strstr(err.file, "conf.d/b.conf") != NULL, "names the included file"))
        diag("%s", err.file);
    is_int(err.line, 3, "and its line");
    write_conf("conf.d/b.conf", "\n");
    gen = build("kapd: {\n load = [];\n};\n@include \"conf.d/*.conf\"\n"
                "bad = 1;\n", &err);
    ok(gen == NULL, "error after an include");
    is_int(err.line, 5, "line numbers continue in the including file");
    gen = build("kapd: {\n load = [];\n"
                " policy: { chain = [\"tb\", \"ta\", \"tc\"]; };\n"
                " audit: { chain = [\"tb\", \"tc\"]; };\n"
                "};\n@include \"conf.d/*.conf\"\n", &err);
    if (!ok(gen != NULL, "good config with a glob include"))
        diag("%s", err.msg);
    if (gen != NULL) {
        struct kapd_conf_file *f;
        int nfiles = 0, nglob = 0;
        for (f = gen->files; f; f = f->next)
            strncmp(f->path, "glob:", 5) == 0 ? nglob++ : nfiles++;
        is_int(nfiles, 3, "three files recorded for the watch");
        is_int(nglob, 1, "and one glob pattern");
        kap_gen_unref(gen);
    }
    gen = build("kapd: {\n load = [];\n"
                " policy: { chain = [\"tb\", \"ta\", \"tc\"]; };\n"
                " audit: { chain = [\"tb\", \"tc\"]; };\n"
                " error_log = \"/*.log\"; # /* not a comment start\n"
                "};\n/* commented out:\n@include \"nosuch.conf\"\n*/\n", &err);
    if (!ok(gen != NULL, "@include inside a block comment stays a comment"))
        diag("%s at %s:%d", err.msg, err.file, err.line);
    if (gen != NULL)
        kap_gen_unref(gen);
    write_conf("inc_loop.conf", "@include \"inc_loop.conf\"\n");
    gen = build("@include \"inc_loop.conf\"\n", &err);
    if (!ok(gen == NULL && strstr(err.msg, "deeper") != NULL, "include loop"))
        diag("%s", err.msg);

    /* 13: reload: a broken file keeps the current generation */
    kapd.conf_path = write_conf("kapd.conf", "kapd: { load = [] \n");
    kapd.prefix = dir;
    gen = kap_gen_current();
    is_int(kapd_reload("test"), KAP_ERROR, "reload of a broken file fails");
    ok(kap_gen_current() == gen, "the current generation stays");
    is_int(kapd.reload_failed, 1, "failed reload counted");
    write_conf("kapd.conf", base_conf);
    is_int(kapd_reload("test"), KAP_OK, "reload of a good file");
    ok(kap_gen_current() != gen, "a new generation is current");
    is_int(kap_gen_id(kap_gen_current()), 3, "generation 3");

    kapd_cycle_exit();
    is_int(finis, 3, "exit finalises the current generation");
    {
        static const char *const files[] = {
            "kapd.conf", "inc_loop.conf", "conf.d/a.conf", "conf.d/b.conf",
            "conf.d", NULL
        };
        char p[600];
        size_t i;
        for (i = 0; files[i]; i++) {
            snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
            if (unlink(p) < 0)
                rmdir(p);
        }
        rmdir(dir);
    }
    return done_testing();
}
