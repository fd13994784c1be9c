/*
 * kapd_clients.c -- the client allowlist of IP listeners.
 *
 *   kapd: {
 *     clients = [ "10.244.0.0/16", "fd00:10:244::/56" ];  # every IP listener
 *     listener_clients = (
 *       { listen = "0.0.0.0:8080"; clients = [ "10.0.0.5" ]; }
 *     );
 *   }
 *
 * A listener named in listener_clients uses its own list, every other TCP
 * or UDP listener kapd.clients; without either, anyone who reaches the
 * port may use it (the pre-gateway behaviour).  Unix listeners are
 * guarded by their file mode, not by this.  A TCP peer outside the list
 * is accepted and reset at once; a UDP datagram from one is dropped
 * unanswered.  Either way no module sees it, and the refusal is audited
 * (rate-limited per listener, so a flood cannot fill the log).
 */
#include "kapd_clients.h"
#include "kapd_listen_int.h"
#include "kapd_match.h"

#include <kapd/kap_addr.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static int
acl_parse(struct kap_gen *gen, const config_setting_t *list,
          struct kapd_clients *acl, struct kap_err *err)
{
    const char *file = config_setting_source_file(list);
    int line = (int)config_setting_source_line(list);
    int i, n;

    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        kap_err_at(err, list, "\"clients\" must be a list of addresses or "
                   "CIDRs, e.g. [ \"10.0.0.0/8\", \"fd00::/8\" ]");
        return KAP_ERROR;
    }
    n = config_setting_length(list);
    if (n == 0) {
        kap_err_at(err, list, "\"clients\" is empty: it would refuse every "
                   "client (leave it out to accept anyone)");
        return KAP_ERROR;
    }
    acl->nets = kap_palloc(gen->pool, (size_t)n * sizeof(*acl->nets));
    if (acl->nets == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    acl->n = (size_t)n;
    acl->file = file;
    acl->line = line;
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        const char *text = config_setting_get_string(e);
        struct sockaddr_storage ss;
        struct kapd_client_net *net = &acl->nets[i];

        if (text == NULL) {
            kap_err_at(err, e, "\"clients\" entries must be strings");
            return KAP_ERROR;
        }
        /* deny=1 semantics: /0 is allowed here ("anyone", explicitly) */
        if (kapd_match_parse_cidr(text, &ss, &net->plen, file,
                                  (int)config_setting_source_line(e), err)
            != KAP_OK)
            return KAP_ERROR;
        memset(net->a, 0, sizeof(net->a));
        net->family = kap_addr_raw((struct sockaddr *)&ss, net->a, NULL);
        if (net->family == 0) {
            kap_err_at(err, e, "\"%s\" is not an IP address or CIDR", text);
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

int
kapd_clients_parse(struct kap_gen *gen, const config_setting_t *g,
                   struct kap_err *err)
{
    static const char *const rule_keys[] = { "listen", "clients", NULL };
    struct kapd_core_conf *cc = &gen->core;
    config_setting_t *s;
    int i, n;

    if ((s = config_setting_get_member(g, "clients")) != NULL) {
        cc->clients = kap_palloc(gen->pool, sizeof(*cc->clients));
        if (cc->clients == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
        if (acl_parse(gen, s, cc->clients, err) != KAP_OK)
            return KAP_ERROR;
    }
    if ((s = config_setting_get_member(g, "listener_clients")) == NULL)
        return KAP_OK;
    if (!config_setting_is_list(s)) {
        kap_err_at(err, s, "\"listener_clients\" must be a list of groups "
                   "( { listen = \"...\"; clients = [ ... ]; } )");
        return KAP_ERROR;
    }
    n = config_setting_length(s);
    cc->client_rules = kap_palloc(gen->pool, (size_t)(n > 0 ? n : 1)
                                             * sizeof(*cc->client_rules));
    if (cc->client_rules == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct kapd_clients_rule *r = &cc->client_rules[i];
        config_setting_t *c;

        memset(r, 0, sizeof(*r));
        if (!config_setting_is_group(e)) {
            kap_err_at(err, e, "\"listener_clients\" entries must be groups "
                       "{ listen = \"...\"; clients = [ ... ]; }");
            return KAP_ERROR;
        }
        if (kap_conf_check_keys(e, rule_keys, err) != KAP_OK)
            return KAP_ERROR;
        if (kap_conf_get_str(e, "listen", gen->pool, &r->listen, err)
            != KAP_OK) {
            if (err->msg[0] == '\0')
                kap_err_at(err, e, "\"listener_clients\" entry without "
                           "\"listen\"");
            return KAP_ERROR;
        }
        if ((c = config_setting_get_member(e, "clients")) == NULL) {
            kap_err_at(err, e, "\"listener_clients\" entry for \"%s\" "
                       "without \"clients\"", r->listen);
            return KAP_ERROR;
        }
        if (acl_parse(gen, c, &r->acl, err) != KAP_OK)
            return KAP_ERROR;
    }
    cc->nclient_rules = (size_t)n;
    return KAP_OK;
}

int
kapd_clients_ok(const struct kapd_clients *c, const struct sockaddr *sa)
{
    unsigned char a[16];
    int family;
    size_t i;

    if (c == NULL)
        return 1;
    family = kap_addr_raw(sa, a, NULL);
    if (family == 0)
        return 0;
    for (i = 0; i < c->n; i++)
        if (c->nets[i].family == family
            && kap_addr_prefix_eq(a, c->nets[i].a, c->nets[i].plen))
            return 1;
    return 0;
}

void
kapd_clients_refused(struct kap_listen *ls, const struct sockaddr *sa,
                     socklen_t len)
{
    struct kap_audit_event ev;
    struct kap_audit_field f[2];
    char text[64], reason[300];
    double now = kap_now();
    size_t nf = 0;

    ls->refused++;
    if (now - ls->refused_window >= KAPD_CLIENTS_AUDIT_WINDOW) {
        ls->refused_window = now;
        ls->refused_audited = 0;
    }
    if (ls->refused_audited >= KAPD_CLIENTS_AUDIT_MAX || ls->gen == NULL) {
        ls->refused_quiet++;
        return;
    }
    ls->refused_audited++;
    kapd_sockaddr_text(sa, len, text, sizeof(text));
    snprintf(reason, sizeof(reason), "client not in the allowlist of "
             "listener %s (%s)", ls->addr,
             ls->type == KAP_LISTEN_UDP ? "udp" : "tcp");
    f[nf].name = "listen";
    f[nf].str = ls->addr;
    f[nf++].num = 0;
    if (ls->refused_quiet > 0) {
        f[nf].name = "suppressed";
        f[nf].str = NULL;
        f[nf++].num = (double)ls->refused_quiet;
        ls->refused_quiet = 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.module = ls->module;
    ev.event = "client_refused";
    ev.subject = ls->addr;
    ev.port = (uint16_t)ls->port;
    ev.action = "denied";
    ev.reason = reason;
    ev.decided_by = "kapd";
    ev.detail = ls->type == KAP_LISTEN_UDP ? "udp" : "tcp";
    ev.client = text;
    ev.gen_id = ls->gen->id;
    ev.fields = f;
    ev.nfields = nf;
    kap_audit_emit(ls->gen, &ev);
}

void
kapd_clients_print(const struct kapd_clients *c)
{
    char a[INET6_ADDRSTRLEN];
    size_t i;

    if (c == NULL) {
        printf(" anyone");
        return;
    }
    for (i = 0; i < c->n; i++) {
        if (inet_ntop(c->nets[i].family, c->nets[i].a, a, sizeof(a)) == NULL)
            snprintf(a, sizeof(a), "?");
        printf(" %s/%u", a, c->nets[i].plen);
    }
    if (c->n == 0)
        printf(" nobody");
    if (c->file != NULL)
        printf(" (%s:%d)", c->file, c->line);
}
