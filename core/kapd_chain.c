/*
 * kapd_chain.c -- the policy and audit chains.
 *
 * Chains are flattened per request kind when a generation is built: for
 * each kind bit, an array of the hooks that asked for that kind, in the
 * order of kapd.policy.chain / kapd.audit.chain (or load order).  The
 * policy chain runs until a hook decides: KAP_DECLINED goes on,
 * KAP_OK decides, KAP_AGAIN parks the request with its cursor on that
 * hook until kap_policy_resume() (which calls the same hook again, from
 * the loop), KAP_ERROR denies ("policy error", fail closed).  An exhausted
 * chain takes kapd.policy.default.  Every decision is sent to the audit
 * chain exactly once, by the core.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kapd.h"

/* a request as the core allocates it: the public part first */
struct kapd_req {
    struct kap_req     r;
    ev_timer           resume;  /* runs the chain again after a resume */
    size_t             cursor;  /* next hook of the chain */
    int                pending; /* a hook is waiting (KAP_AGAIN) */
    int                audited; /* the decision went to the audit chain */
    int                refused; /* KAP_REFUSE: observe does not lift it */
    kap_policy_done_fn done;
    void              *done_data;
};

#define KAPD_REQ(r) ((struct kapd_req *) (r))

/* follow-up checks of a request that was allowed: their allows are not
 * audited (the request's own decision was), their denies are */
#define KAPD_KINDS_FOLLOW_UP (KAP_REQ_ADDR | KAP_REQ_FIRST)

/* ---- building ------------------------------------------------------------ */

static int
has_hook(const struct kap_module *m, enum kap_hook_id id)
{
    const struct kap_hook *h;

    for (h = m->hooks; h != NULL && h->id != KAP_HOOK_NONE; h++)
        if (h->id == id)
            return 1;
    return 0;
}

#define CHAIN_MAX 64                    /* modules in one chain */

/* the setting of element i of chain (NULL when there is no chain) */
static const config_setting_t *
chain_elem(const config_setting_t *chain, size_t i)
{
    return chain != NULL ? config_setting_get_elem(chain, (unsigned) i)
                         : NULL;
}

int
kapd_chain_check(struct kap_gen *gen, const char *const *order,
                 enum kap_hook_id id, const char *what,
                 const config_setting_t *where, struct kap_err *err)
{
    static const char *const none[] = { NULL };
    size_t i, j, m;
    int    listed;

    if (order == NULL)                  /* chain = [] */
        order = none;
    for (i = 0; order[i] != NULL; i++) {
        struct kapd_gen_module *gm = kapd_gen_find_module(gen, order[i]);

        if (gm == NULL) {
            kap_err_at(err, chain_elem(where, i), "kapd.%s.chain names "
                       "module \"%s\", which is not loaded", what, order[i]);
            return KAP_ERROR;
        }
        if (!has_hook(gm->mod, id)) {
            kap_err_at(err, chain_elem(where, i), "kapd.%s.chain names "
                       "module \"%s\", which has no %s hook", what,
                       order[i], what);
            return KAP_ERROR;
        }
        for (j = 0; j < i; j++)
            if (strcmp(order[j], order[i]) == 0) {
                kap_err_at(err, chain_elem(where, i), "kapd.%s.chain names "
                           "module \"%s\" twice", what, order[i]);
                return KAP_ERROR;
            }
        if (i == CHAIN_MAX) {
            kap_err_at(err, where, "kapd.%s.chain is too long (%d modules "
                       "at most)", what, CHAIN_MAX);
            return KAP_ERROR;
        }
    }
    for (m = 0; m < gen->nmods; m++) {
        if (!has_hook(gen->mods[m].mod, id))
            continue;
        for (listed = 0, j = 0; order[j] != NULL && !listed; j++)
            listed = strcmp(order[j], gen->mods[m].mod->name) == 0;
        if (!listed) {
            kap_err_at(err, where, "module \"%s\" has a %s hook but is not "
                       "in kapd.%s.chain", gen->mods[m].mod->name, what,
                       what);
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

static int
build_one(struct kap_gen *gen, enum kap_hook_id id, const char **order,
          struct kapd_chain *chains, const char *what, struct kap_err *err)
{
    struct kapd_gen_module *seq[CHAIN_MAX];
    size_t nseq = 0, i, k;

    if (order != NULL) {
        if (kapd_chain_check(gen, order, id, what, NULL, err) != KAP_OK)
            return KAP_ERROR;
        for (i = 0; order[i]; i++)
            seq[nseq++] = kapd_gen_find_module(gen, order[i]);
    } else {
        for (i = 0; i < gen->nmods && nseq < CHAIN_MAX; i++)
            seq[nseq++] = &gen->mods[i];
    }

    for (k = 0; k < KAPD_NKINDS; k++) {
        uint32_t bit = 1u << k;
        size_t n = 0, pass;

        for (pass = 0; pass < 2; pass++) {
            for (i = 0; i < nseq; i++) {
                const struct kap_hook *h;
                for (h = seq[i]->mod->hooks; h && h->id != KAP_HOOK_NONE;
                     h++) {
                    if (h->id != id || !(kapd_hook_kinds(h) & bit))
                        continue;
                    if ((id == KAP_HOOK_POLICY && h->policy == NULL)
                        || (id == KAP_HOOK_AUDIT && h->audit == NULL)) {
                        kap_err_set(err, "module \"%s\" has a %s hook "
                                    "without a function",
                                    seq[i]->mod->name, what);
                        return KAP_ERROR;
                    }
                    if (pass == 1) {
                        chains[k].v[n].hook = h;
                        chains[k].v[n].gm = seq[i];
                    }
                    n++;
                }
            }
            if (pass == 0) {
                chains[k].n = n;
                chains[k].v = NULL;
                if (n == 0)
                    break;
                chains[k].v = kap_palloc(gen->pool, n * sizeof(*chains[k].v));
                if (chains[k].v == NULL) {
                    kap_err_set(err, "out of memory");
                    return KAP_ERROR;
                }
                n = 0;
            }
        }
    }
    return KAP_OK;
}

int
kapd_chain_build(struct kap_gen *gen, struct kap_err *err)
{
    /* (the kinds modules define were registered after loading them,
       kapd_cycle.c; again here for builds that skip that step) */
    if (kapd_kind_register_modules(gen, err) != KAP_OK)
        return KAP_ERROR;
    if (build_one(gen, KAP_HOOK_POLICY, gen->core.policy_chain, gen->policy,
                  "policy", err) != KAP_OK)
        return KAP_ERROR;
    return build_one(gen, KAP_HOOK_AUDIT, gen->core.audit_chain, gen->audit,
                     "audit", err);
}

/* ---- requests ------------------------------------------------------------ */

static void
req_cleanup(void *data)
{
    struct kapd_req *q = data;
    struct kap_req *r = &q->r;

    if (ev_is_active(&q->resume))
        ev_timer_stop(kap_loop(), &q->resume);
    if (q->pending && r->hook_cancel != NULL)
        r->hook_cancel(r);
    q->pending = 0;
    r->hook_cancel = NULL;
    r->hook_data = NULL;
    r->magic = 0;
    kap_gen_unref(r->gen);
    r->gen = NULL;
}

struct kap_req *
kap_req_new(struct kap_gen *gen, struct kap_pool *pool, uint32_t kind,
            const char *asked_by, const char *subject)
{
    struct kapd_req *q;
    struct kap_req *r;

    if (gen == NULL || pool == NULL)
        return NULL;
    q = kap_palloc(pool, sizeof(*q));
    if (q == NULL)
        return NULL;
    r = &q->r;
    r->subject = kap_pstrdup(pool, subject ? subject : "");
    if (r->subject == NULL)
        return NULL;
    r->magic = KAP_REQ_MAGIC;
    r->kind = kind;
    r->gen = gen;
    r->pool = pool;
    r->asked_by = asked_by;
    ev_init(&q->resume, NULL);
    kap_gen_ref(gen);
    if (kap_pool_cleanup_add(pool, req_cleanup, q) != KAP_OK) {
        kap_gen_unref(gen);
        r->magic = 0;
        return NULL;
    }
    return r;
}

void
kap_req_decide(struct kap_req *r, int verdict, const char *decided_by,
               const char *reason)
{
    if (r == NULL || r->magic != KAP_REQ_MAGIC)
        return;
    KAPD_REQ(r)->refused = verdict == KAP_REFUSE;
    r->verdict = verdict == KAP_ALLOW ? KAP_ALLOW
               : verdict == KAP_DENY || verdict == KAP_REFUSE ? KAP_DENY
               : KAP_VERDICT_NONE;
    r->decided_by = decided_by ? kap_pstrdup(r->pool, decided_by) : NULL;
    r->reason = reason ? kap_pstrdup(r->pool, reason) : NULL;
}

const char *
kap_req_attr(const struct kap_req *r, const char *name)
{
    size_t i;

    if (r == NULL || name == NULL)
        return NULL;
    for (i = 0; i < r->nattrs; i++)
        if (r->attrs[i].name != NULL && strcmp(r->attrs[i].name, name) == 0)
            return r->attrs[i].value;
    return NULL;
}

/* observe mode: a deny becomes an allow that says what it would have
 * been, unless it is a refusal or the asker keeps filtering */
static void
observe(struct kap_req *r)
{
    const char *why = r->reason ? r->reason : "denied";
    char *reason;

    /* the address deny set protects the sidecar, the host and the
       metadata service, not a domain list: never lifted */
    if (!r->gen->core.policy_observe || r->verdict != KAP_DENY
        || KAPD_REQ(r)->refused || r->kind == KAP_REQ_ADDR)
        return;
    if (r->flags & KAP_REQ_F_FILTER) {
        reason = kap_psprintf(r->pool, "observe mode: %s stays filtered: %s",
                              kap_req_kind_name(r->kind), why);
        if (reason != NULL)
            r->reason = reason;
        return;
    }
    reason = kap_psprintf(r->pool, "observe: would deny: %s", why);
    if (reason == NULL)
        return;         /* fail closed: stays denied */
    r->reason = reason;
    r->verdict = KAP_ALLOW;
    r->observed = 1;
}

static void
finish(struct kap_req *r)
{
    struct kapd_req *q = KAPD_REQ(r);
    struct kap_audit_event ev;
    struct kap_audit_field f[8];
    size_t i, nf = 0;

    if (q->audited)
        return;
    q->audited = 1;
    observe(r);
    if ((r->kind & KAPD_KINDS_FOLLOW_UP) && r->verdict == KAP_ALLOW
        && !r->observed)
        return;
    for (i = 0; i < r->nattrs && nf < sizeof(f) / sizeof(f[0]); i++) {
        if (r->attrs[i].name == NULL || r->attrs[i].value == NULL)
            continue;
        f[nf].name = r->attrs[i].name;
        f[nf].str = r->attrs[i].value;
        f[nf].num = 0;
        nf++;
    }
    memset(&ev, 0, sizeof(ev));
    ev.ts = kap_now();
    ev.kind = r->kind;
    ev.module = r->asked_by;
    ev.event = "decision";
    ev.subject = r->subject;
    ev.port = r->port;
    ev.action = r->verdict == KAP_ALLOW ? (r->observed ? "observed"
                                                       : "allowed")
                                        : "denied";
    ev.reason = r->reason;
    ev.decided_by = r->decided_by;
    ev.detail = r->detail;
    ev.client = r->client;
    ev.conn_id = r->conn ? r->conn->id : 0;
    ev.gen_id = r->gen ? r->gen->id : 0;
    ev.fields = nf ? f : NULL;
    ev.nfields = nf;
    kap_audit_emit(r->gen, &ev);
}

void
kap_req_refuse(struct kap_req *r, const char *reason)
{
    struct kapd_req *q = KAPD_REQ(r);

    if (r == NULL || r->magic != KAP_REQ_MAGIC || q->pending || q->audited)
        return;
    kap_req_decide(r, KAP_REFUSE, r->asked_by, reason);
    r->observed = 0;
    if (r->decided_by == NULL)
        r->decided_by = "core";
    finish(r);
}

static void
deny_error(struct kap_req *r, const char *module, const char *why)
{
    KAP_LOG(KAP_LOG_ERR, module, r->conn ? r->conn->id : 0,
            "policy %s for %s \"%s\": %s, denied", module ? "hook" : "check",
            kap_req_kind_name(r->kind), r->subject, why);
    r->verdict = KAP_DENY;
    r->observed = 0;
    KAPD_REQ(r)->refused = 1;       /* an error is never "observed" */
    r->decided_by = module ? module : "core";
    r->reason = "policy error";
}

/* run the chain from the cursor: KAP_OK decided (audited), or KAP_AGAIN */
static int
run_chain(struct kap_req *r)
{
    struct kapd_req *q = KAPD_REQ(r);
    struct kap_gen *gen = r->gen;
    const struct kapd_chain *c;
    int ki = kapd_kind_index(r->kind);

    if (ki < 0) {
        deny_error(r, NULL, "invalid request kind");
        finish(r);
        return KAP_OK;
    }
    c = &gen->policy[ki];
    while (q->cursor < c->n) {
        const struct kapd_chain_entry *e = &c->v[q->cursor];
        const char *name = e->gm->mod->name;
        int rc = e->hook->policy(r, e->gm->conf);

        if (rc == KAP_AGAIN)
            return KAP_AGAIN;
        /* a resume this hook asked for before answering is void now */
        if (ev_is_active(&q->resume))
            ev_timer_stop(kap_loop(), &q->resume);
        r->hook_data = NULL;
        r->hook_cancel = NULL;
        if (rc == KAP_DECLINED) {
            r->verdict = KAP_VERDICT_NONE;
            r->observed = 0;
            KAPD_REQ(r)->refused = 0;
            q->cursor++;
            continue;
        }
        if (rc == KAP_OK && (r->verdict == KAP_ALLOW
                             || r->verdict == KAP_DENY)) {
            if (r->decided_by == NULL)
                r->decided_by = name;
            if (r->verdict == KAP_DENY)
                r->observed = 0;
            finish(r);
            return KAP_OK;
        }
        deny_error(r, name, rc == KAP_OK ? "returned OK without a verdict"
                                         : "hook failed");
        finish(r);
        return KAP_OK;
    }
    r->verdict = gen->core.policy_default == KAP_ALLOW
                 && !(r->flags & KAP_REQ_F_ASK) ? KAP_ALLOW : KAP_DENY;
    r->observed = 0;
    r->decided_by = "default";
    r->reason = r->verdict == KAP_ALLOW ? "default allow"
                : (r->flags & KAP_REQ_F_ASK)
                  ? "a human must decide and nobody was asked (no policy "
                    "hook after the one that asks answered: kap run --ask "
                    "asks the host)"
                  : "no rule allows it";
    finish(r);
    return KAP_OK;
}

int
kap_policy_check(struct kap_req *r, kap_policy_done_fn done, void *data)
{
    struct kapd_req *q = KAPD_REQ(r);

    if (r == NULL || r->magic != KAP_REQ_MAGIC) {
        KAP_LOG(KAP_LOG_ALERT, NULL, 0, "kap_policy_check: invalid request");
        return KAP_OK;  /* nothing to decide on; r->verdict stays unset */
    }
    if (q->pending) {
        KAP_LOG(KAP_LOG_ALERT, r->asked_by, r->conn ? r->conn->id : 0,
                "kap_policy_check while a check of the same request is "
                "pending");
        return KAP_AGAIN;
    }
    q->done = done;
    q->done_data = data;
    q->cursor = 0;
    q->refused = 0;
    r->verdict = KAP_VERDICT_NONE;
    r->observed = 0;
    r->decided_by = NULL;
    r->reason = NULL;
    q->audited = 0;
    r->hook_data = NULL;
    r->hook_cancel = NULL;
    if (run_chain(r) == KAP_AGAIN) {
        if (done == NULL) {
            /* the asker cannot wait: cancel the hook, fail closed */
            if (ev_is_active(&q->resume))
                ev_timer_stop(kap_loop(), &q->resume);
            if (r->hook_cancel != NULL)
                r->hook_cancel(r);
            r->hook_cancel = NULL;
            r->hook_data = NULL;
            deny_error(r, NULL, "policy answer needed at once");
            r->reason = "a policy hook wanted to wait; this question "
                        "needs an answer at once";
            finish(r);
            return KAP_OK;
        }
        q->pending = 1;
        return KAP_AGAIN;
    }
    return KAP_OK;
}

static void
resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kapd_req *q = (struct kapd_req *) ((char *) w
                                              - offsetof(struct kapd_req,
                                                         resume));
    struct kap_req *r = &q->r;

    (void) loop;
    (void) revents;
    if (!q->pending)
        return;
    if (run_chain(r) == KAP_AGAIN)
        return;
    q->pending = 0;
    if (q->done != NULL)
        q->done(r, q->done_data);   /* may free r */
}

void
kap_policy_resume(struct kap_req *r)
{
    struct kapd_req *q = KAPD_REQ(r);

    if (r == NULL || r->magic != KAP_REQ_MAGIC)
        return;
    if (ev_is_active(&q->resume))
        return;
    /* also when not yet pending: a hook may resume inside its own call,
       before it returns KAP_AGAIN; the timer runs after that */
    ev_timer_init(&q->resume, resume_cb, 0., 0.);
    ev_timer_start(kap_loop(), &q->resume);
}

/* ---- audit --------------------------------------------------------------- */

void
kap_audit_emit(struct kap_gen *gen, const struct kap_audit_event *ev)
{
    static int depth;
    struct kap_audit_event e;
    int ki;
    size_t i;

    if (gen == NULL || ev == NULL || depth > 2)
        return;
    e = *ev;
    if (e.ts == 0)
        e.ts = kap_now();
    if (e.gen_id == 0)
        e.gen_id = gen->id;
    depth++;
    ki = kapd_kind_index(e.kind);
    if (ki >= 0) {
        const struct kapd_chain *c = &gen->audit[ki];
        for (i = 0; i < c->n; i++)
            c->v[i].hook->audit(&e, c->v[i].gm->conf);
    } else {
        /* no single kind: every audit hook, once, in chain order */
        const struct kap_hook *seen[64];
        size_t nseen = 0, j;
        int k;
        for (k = 0; k < KAPD_NKINDS; k++) {
            const struct kapd_chain *c = &gen->audit[k];
            for (i = 0; i < c->n; i++) {
                int dup = 0;
                for (j = 0; j < nseen; j++)
                    if (seen[j] == c->v[i].hook)
                        dup = 1;
                if (dup || nseen == 64)
                    continue;
                seen[nseen++] = c->v[i].hook;
                c->v[i].hook->audit(&e, c->v[i].gm->conf);
            }
        }
    }
    depth--;
}
