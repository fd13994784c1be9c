/*
 * kap_remote_capsules.c -- the `kap run` capsules connected to this host
 * kapd over the channel, for GET /api/containers (and so the page's
 * project picker).
 *
 * The channel module emits a host audit event when an authenticated
 * capsule comes (capsule_connected: its name, the policy file its hello
 * named, the connection id) and when it goes (capsule_closed; a
 * capsule's own events of these names are not passed on).  The audit
 * hook (kr_live_audit) hands every event here; the list is keyed by the
 * connection id, process-wide (it survives reloads), and bounded.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <kapd/kap_json.h>

#include "kap_remote.h"

#define KR_MAX_CAPSULES 64

static struct kr_capsule {
    uint64_t conn;               /* 0: a free slot */
    char     name[129];
    char     policy[4001];
    double   since;
} kr_caps[KR_MAX_CAPSULES];

static const char *
kr_field(const struct kap_audit_event *ev, const char *name)
{
    size_t i;

    for (i = 0; i < ev->nfields; i++)
        if (ev->fields[i].name != NULL && strcmp(ev->fields[i].name, name) == 0)
            return ev->fields[i].str;
    return NULL;
}

void
kr_caps_audit(const struct kap_audit_event *ev)
{
    const char *name, *policy;
    int up;
    size_t i, free_slot = KR_MAX_CAPSULES;

    if (ev->module == NULL || ev->event == NULL
        || strcmp(ev->module, "channel") != 0 || ev->conn_id == 0)
        return;
    if (strcmp(ev->event, "capsule_connected") == 0)
        up = 1;
    else if (strcmp(ev->event, "capsule_closed") == 0)
        up = 0;
    else
        return;
    for (i = 0; i < KR_MAX_CAPSULES; i++) {
        if (kr_caps[i].conn == ev->conn_id) {
            kr_caps[i].conn = 0;        /* gone, or replaced below */
            free_slot = i;
        } else if (kr_caps[i].conn == 0 && free_slot == KR_MAX_CAPSULES) {
            free_slot = i;
        }
    }
    name = kr_field(ev, "capsule");
    if (!up || name == NULL || free_slot == KR_MAX_CAPSULES)
        return;
    policy = kr_field(ev, "policy_file");
    kr_caps[free_slot].conn = ev->conn_id;
    snprintf(kr_caps[free_slot].name, sizeof(kr_caps[free_slot].name), "%s",
             name);
    snprintf(kr_caps[free_slot].policy, sizeof(kr_caps[free_slot].policy),
             "%s", policy != NULL ? policy : "");
    kr_caps[free_slot].since = ev->ts > 0 ? ev->ts : kap_now();
}

unsigned
kr_caps_count(void)
{
    unsigned n = 0;
    size_t i;

    for (i = 0; i < KR_MAX_CAPSULES; i++)
        n += kr_caps[i].conn != 0;
    return n;
}

void
kr_caps_write(struct kap_json_writer *w)
{
    size_t i;

    for (i = 0; i < KR_MAX_CAPSULES; i++) {
        const struct kr_capsule *c = &kr_caps[i];

        if (c->conn == 0)
            continue;
        kap_json_w_obj_begin(w);
        kap_json_w_key(w, "project");
        kap_json_w_str(w, c->name);
        kap_json_w_key(w, "dir");
        kap_json_w_null(w);
        kap_json_w_key(w, "capsule");
        kap_json_w_bool(w, 1);
        kap_json_w_key(w, "policy_file");
        kap_json_w_str(w, c->policy[0] != '\0' ? c->policy : NULL);
        kap_json_w_key(w, "connected");
        kap_json_w_double(w, (double) (long long) c->since);
        kap_json_w_key(w, "app");
        kap_json_w_null(w);
        kap_json_w_key(w, "sidecar");
        kap_json_w_null(w);
        kap_json_w_obj_end(w);
    }
}
