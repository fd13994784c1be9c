/*
 * kap_remote_asks.c -- questions a human answers from the phone or the
 * terminal (`kap approve`).
 *
 * The module is a policy hook on the host kapd's chain: a question that
 * reaches it -- one the channel forwards from a capsule, or a local one
 * an ask rule left to a human (KAP_REQ_F_ASK) -- waits (KAP_AGAIN) as a
 * pending ask with a
 * random id and a deadline (remote.ask_timeout).  GET /api/asks lists
 * them; POST /api/asks/ID answers one (once, always, deny) and the core
 * resumes the waiting question at once.  No answer before the deadline
 * denies; a question whose asker goes away (the capsule gave up, the
 * channel closed) is withdrawn.  The pending list is process-wide (it
 * survives reloads); each ask lives in its question's pool.  The last
 * KR_ASKS_DONE ids answered, expired or withdrawn are remembered so that
 * a late answer gets 409 ("already answered") rather than 404.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include <kapd/kap_gen.h>
#include <kapd/kap_json.h>

#include "kap_remote.h"

#define KR_ASKS_DONE 64

struct kr_ask {
    struct kr_ask   *next, *prev;
    struct kap_req  *r;
    ev_timer         timer;
    char             id[KR_ASK_ID_LEN + 1];
    double           asked, deadline;
    int              linked;             /* in the pending list */
    int              answer;             /* KR_ANSWER_*, 0 while waiting */
    char             why[160];           /* reason of the decision */
};

struct kr_rule_out {
    char entry[1100];                   /* the allow list's new string */
    char where[4200];                   /* "path:line", or "" */
    char why[4400];                     /* why none was written */
};

static struct kr_ask *kr_asks;
static unsigned kr_nasks;

static struct {
    char id[KR_ASK_ID_LEN + 1];
    const char *state;
} kr_done[KR_ASKS_DONE];
static unsigned kr_done_next;

static void
kr_ask_unlink(struct kr_ask *a, const char *state)
{
    if (!a->linked)
        return;
    if (a->prev)
        a->prev->next = a->next;
    else
        kr_asks = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->linked = 0;
    kr_nasks--;
    ev_timer_stop(kap_loop(), &a->timer);
    memcpy(kr_done[kr_done_next].id, a->id, sizeof(a->id));
    kr_done[kr_done_next].state = state;
    kr_done_next = (kr_done_next + 1) % KR_ASKS_DONE;
}

static void
kr_ask_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kr_ask *a = w->data;

    (void) loop;
    (void) revents;
    snprintf(a->why, sizeof(a->why), "no answer on the host within %.0f s",
             a->deadline - a->asked);
    a->answer = KR_ANSWER_DENY;
    kr_ask_unlink(a, "expired");
    KAP_LOG(KAP_LOG_NOTICE, KR_NAME, 0, "ask %s (%s %s) expired: denied",
            a->id, kap_req_kind_name(a->r->kind), a->r->subject);
    kap_policy_resume(a->r);
}

/* the question died while waiting: its asker went away */
static void
kr_ask_cancel(struct kap_req *r)
{
    struct kr_ask *a = r->hook_data;

    if (a != NULL)
        kr_ask_unlink(a, "withdrawn");
}

/*
 * A question starts waiting: an "ask" audit event (in the host's audit
 * log, and live on WS /ws/logs, so an open page shows it at once).
 */
static void
kr_ask_audit(const struct kr_ask *a)
{
    const struct kap_req *r = a->r;
    const char *cap = kap_req_attr(r, "capsule"), *rule = kap_req_attr(r, "rule");
    struct kap_audit_field f[4];
    struct kap_audit_event ev;

    memset(&ev, 0, sizeof(ev));
    memset(f, 0, sizeof(f));
    f[0].name = "ask";
    f[0].str = a->id;
    f[1].name = "timeout";
    f[1].num = a->deadline - a->asked;     /* seconds, a number */
    f[2].name = "rule";
    f[2].str = rule != NULL ? rule : "no rule answers it";
    f[3].name = "capsule";
    f[3].str = cap;
    ev.kind = r->kind;
    ev.module = KR_NAME;
    ev.event = "ask";
    ev.subject = r->subject;
    ev.port = r->port;
    ev.action = "ask";
    ev.reason = "waits for an answer from a device or kap approve";
    ev.client = r->client;
    ev.fields = f;
    ev.nfields = cap != NULL ? 4 : 3;
    kap_audit_emit(kap_gen_current() ? kap_gen_current() : r->gen, &ev);
}

int
kr_policy(struct kap_req *r, void *conf)
{
    const struct kr_conf *cf = conf;
    struct kr_ask *a = r->hook_data;
    unsigned char rnd[KR_ASK_ID_LEN / 2];
    size_t i;

    if (a != NULL) {                    /* called again after resume */
        if (a->answer == 0)
            return KAP_AGAIN;
        r->hook_cancel = NULL;
        kap_req_decide(r, a->answer == KR_ANSWER_DENY ? KAP_DENY : KAP_ALLOW,
                       KR_NAME, a->why);
        if (a->answer == KR_ANSWER_ALWAYS)
            r->flags |= KAP_REQ_F_ALWAYS;
        return KAP_OK;
    }
    /* a human decides what a capsule forwards (the channel asks only
       what no rule answered there) and what a local rule marked ask */
    if (!(r->flags & KAP_REQ_F_ASK) && strcmp(r->asked_by, "channel") != 0)
        return KAP_DECLINED;
    if (kr_nasks >= cf->max_asks) {
        kap_req_decide(r, KAP_DENY, KR_NAME, "too many questions waiting on"
                       " the host (remote.max_asks)");
        return KAP_OK;
    }
    if ((a = kap_palloc(r->pool, sizeof(*a))) == NULL
        || RAND_bytes(rnd, sizeof(rnd)) != 1)
        return KAP_ERROR;
    memset(a, 0, sizeof(*a));
    for (i = 0; i < sizeof(rnd); i++) {
        a->id[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
        a->id[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
    }
    a->r = r;
    a->asked = kap_now();
    a->deadline = a->asked + cf->ask_timeout;
    ev_timer_init(&a->timer, kr_ask_timeout, cf->ask_timeout, 0.);
    a->timer.data = a;
    ev_timer_start(kap_loop(), &a->timer);
    a->next = kr_asks;
    if (kr_asks)
        kr_asks->prev = a;
    kr_asks = a;
    a->linked = 1;
    kr_nasks++;
    r->hook_data = a;
    r->hook_cancel = kr_ask_cancel;
    KAP_LOG(KAP_LOG_NOTICE, KR_NAME, 0, "ask %s: %s %s%s%s waits for an"
            " answer (%.0f s)", a->id, kap_req_kind_name(r->kind),
            r->subject, kap_req_attr(r, "capsule") ? " from capsule " : "",
            kap_req_attr(r, "capsule") ? kap_req_attr(r, "capsule") : "",
            cf->ask_timeout);
    kr_ask_audit(a);
    return KAP_AGAIN;
}

static void
kr_ask_write(struct kap_json_writer *w, const struct kr_ask *a, double now)
{
    const struct kap_req *r = a->r;
    const char *cap = kap_req_attr(r, "capsule"), *rule = kap_req_attr(r, "rule");
    double left = a->deadline - now;

    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "id");
    kap_json_w_str(w, a->id);
    kap_json_w_key(w, "kind");
    kap_json_w_str(w, kap_req_kind_name(r->kind));
    kap_json_w_key(w, "subject");
    kap_json_w_str(w, r->subject);
    kap_json_w_key(w, "port");
    kap_json_w_uint(w, r->port);
    kap_json_w_key(w, "detail");
    if (r->detail != NULL)
        kap_json_w_str(w, r->detail);
    else
        kap_json_w_null(w);
    kap_json_w_key(w, "project");
    if (cap != NULL)
        kap_json_w_str(w, cap);
    else
        kap_json_w_null(w);
    kap_json_w_key(w, "rule");
    kap_json_w_str(w, rule != NULL ? rule : "no rule answers it");
    kap_json_w_key(w, "asked_by");
    kap_json_w_str(w, r->asked_by);
    kap_json_w_key(w, "client");
    if (r->client != NULL)
        kap_json_w_str(w, r->client);
    else
        kap_json_w_null(w);
    kap_json_w_key(w, "asked");
    kap_json_w_double(w, a->asked);
    kap_json_w_key(w, "remaining");
    kap_json_w_double(w, left > 0 ? left : 0);
    kap_json_w_obj_end(w);
}

void
kr_asks_write(struct kap_json_writer *w)
{
    const struct kr_ask *a;
    double now = kap_now();

    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "asks");
    kap_json_w_arr_begin(w);
    for (a = kr_asks; a != NULL; a = a->next)
        kr_ask_write(w, a, now);
    kap_json_w_arr_end(w);
    kap_json_w_obj_end(w);
}

/*
 * "Allow always": the rule for exactly this request, added to the policy
 * file that governs the asker (the channel's policy_file attribute: the
 * file the capsule's kapd runs): a host to network.allow, an mcp tool to
 * its server's allow in mcp.servers, a cli call's canonical rule to its
 * tool's allow in cli.tools.  The capsule keeps the answer for its own
 * run (KAP_REQ_F_ALWAYS); the file makes it last.
 */
static void
kr_ask_rule(const struct kap_req *r, struct kr_rule_out *o)
{
    const char *pf = kap_req_attr(r, "policy_file"), *why = NULL;
    struct kr_rule_at at;
    int rc;

    memset(o, 0, sizeof(*o));
    if (kr_rule_target(r->kind, r->subject, r->port, kap_req_attr(r, "server"),
                       kap_req_attr(r, "suggest"), &at, o->entry,
                       sizeof(o->entry), &why) != KAP_OK) {
        o->entry[0] = '\0';
        snprintf(o->why, sizeof(o->why), "no rule written: %s", why);
    } else if (pf == NULL) {
        snprintf(o->why, sizeof(o->why), "no rule written: the asker named"
                 " no policy file");
    } else if ((rc = kr_rule_write(pf, at.list != NULL ? &at : NULL,
                                   o->entry, o->where, sizeof(o->where),
                                   o->why, sizeof(o->why))) == KAP_ERROR) {
        KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "allow always %s: no rule written:"
                " %s", o->entry, o->why);
        return;
    } else {
        KAP_LOG(KAP_LOG_NOTICE, KR_NAME, 0, "allow always: \"%s\" %s %s",
                o->entry, rc == KAP_OK ? "added at" : "already at", o->where);
        return;
    }
    KAP_LOG(KAP_LOG_NOTICE, KR_NAME, 0, "allow always %s %s: %s",
            kap_req_kind_name(r->kind), r->subject, o->why);
}

static const char *const kr_answer_names[] = { "", "once", "always", "deny" };

int
kr_ask_answer(const char *id, int answer, const struct kr_device *dev,
              struct kap_json_writer *w, const char **state)
{
    struct kr_ask *a;
    struct kap_audit_field f[6];
    struct kap_audit_event ev;
    const char *cap;
    struct kr_rule_out rule;
    unsigned i;

    for (a = kr_asks; a != NULL; a = a->next)
        if (strcmp(a->id, id) == 0)
            break;
    if (a == NULL) {
        *state = NULL;
        for (i = 0; i < KR_ASKS_DONE; i++)
            if (kr_done[i].state != NULL && strcmp(kr_done[i].id, id) == 0)
                *state = kr_done[i].state;
        return KAP_DECLINED;
    }
    a->answer = answer;
    snprintf(a->why, sizeof(a->why), "%s by device %s (%s)",
             answer == KR_ANSWER_DENY ? "denied"
             : answer == KR_ANSWER_ALWAYS ? "allowed always" : "allowed once",
             dev->id, dev->name);
    kr_ask_unlink(a, "answered");
    cap = kap_req_attr(a->r, "capsule");
    rule.entry[0] = rule.where[0] = rule.why[0] = '\0';
    if (answer == KR_ANSWER_ALWAYS)
        kr_ask_rule(a->r, &rule);
    KAP_LOG(KAP_LOG_NOTICE, KR_NAME, 0, "ask %s (%s %s): %s", a->id,
            kap_req_kind_name(a->r->kind), a->r->subject, a->why);
    /* who answered what, beside the decision the core audits */
    memset(&ev, 0, sizeof(ev));
    memset(f, 0, sizeof(f));
    f[0].name = "ask";
    f[0].str = a->id;
    f[1].name = "device";
    f[1].str = dev->id;
    ev.kind = a->r->kind;
    ev.module = KR_NAME;
    ev.event = "ask_answered";
    ev.subject = a->r->subject;
    ev.port = a->r->port;
    ev.action = kr_answer_names[answer];
    ev.reason = a->why;
    ev.decided_by = KR_NAME;
    ev.client = dev->name;
    ev.nfields = 2;
    if (cap != NULL) {
        f[ev.nfields].name = "capsule";
        f[ev.nfields++].str = cap;
    }
    if (answer == KR_ANSWER_ALWAYS) {
        if (rule.entry[0]) {
            f[ev.nfields].name = "rule";
            f[ev.nfields++].str = rule.entry;
        }
        f[ev.nfields].name = rule.where[0] ? "rule_file" : "rule_error";
        f[ev.nfields++].str = rule.where[0] ? rule.where : rule.why;
    }
    ev.fields = f;
    kap_audit_emit(kap_gen_current() ? kap_gen_current() : a->r->gen, &ev);
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "id");
    kap_json_w_str(w, a->id);
    kap_json_w_key(w, "answer");
    kap_json_w_str(w, kr_answer_names[answer]);
    kap_json_w_key(w, "kind");
    kap_json_w_str(w, kap_req_kind_name(a->r->kind));
    kap_json_w_key(w, "subject");
    kap_json_w_str(w, a->r->subject);
    if (answer == KR_ANSWER_ALWAYS) {
        kap_json_w_key(w, rule.where[0] ? "rule_file" : "rule_error");
        kap_json_w_str(w, rule.where[0] ? rule.where : rule.why);
    }
    kap_json_w_obj_end(w);
    kap_policy_resume(a->r);            /* on the next loop turn */
    return KAP_OK;
}
