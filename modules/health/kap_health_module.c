/*
 * kap_health_module.c -- the module "health": liveness and readiness for
 * an orchestrator (a Kubernetes probe, a load balancer), plain HTTP on a
 * listener of its own.
 *
 *   kapd: { load = ["health", ...]; };
 *   health: { listen = ["0.0.0.0:8081"]; };
 *
 * Routes (GET or HEAD; anything else 404/405):
 *   /healthz   200 "ok\n" while the event loop runs (live)
 *   /readyz    200 "ready\n" when the configuration is loaded and every
 *              module has started -- the listener accepts only after the
 *              generation is current, so an answer means both -- and 503
 *              "kap: draining" once SIGTERM began the drain
 *
 * Its listeners keep accepting during the drain (KAP_MOD_DRAIN_LISTEN):
 * /readyz must say "not ready" then, not stop answering.  The kapd.clients
 * allowlist applies to them like to any listener (allow the kubelet's
 * node addresses when one is set).
 */
#include <string.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>

#define HEALTH_NAME "health"

struct health_conf {
    struct kap_http_server_conf srv;
    size_t                      nlisten;
};

static void *
health_conf_create(struct kap_gen *gen)
{
    struct health_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf == NULL)
        return NULL;
    memset(cf, 0, sizeof(*cf));
    cf->srv.module = HEALTH_NAME;
    cf->srv.header_timeout = 5;
    cf->srv.idle_timeout = 5;
    cf->srv.max_body = 1024;
    cf->srv.max_connections = 64;
    return cf;
}

static int
health_conf_parse(struct kap_gen *gen, void *conf,
                  const config_setting_t *group, struct kap_err *err)
{
    static const char *const keys[] = { "listen", NULL };
    struct health_conf *cf = conf;
    const char **listen;
    size_t i;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, keys, err) != KAP_OK
        || kap_conf_get_strlist(group, "listen", kap_gen_pool(gen), &listen,
                                &cf->nlisten, err) == KAP_ERROR)
        return KAP_ERROR;
    for (i = 0; i < cf->nlisten; i++)
        if (kap_listen_add(gen, HEALTH_NAME, KAP_LISTEN_TCP, listen[i],
                           config_setting_get_member(group, "listen"), err)
            != KAP_OK)
            return KAP_ERROR;
    return KAP_OK;
}

static int
health_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct health_conf *cf = conf;

    (void)gen;
    if (cf->nlisten == 0) {
        kap_err_set(err, "health: listen is required (e.g. health: { listen"
                    " = [\"0.0.0.0:8081\"]; })");
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
health_is(const struct kap_str *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->data, lit, s->len) == 0;
}

static void
health_handle(struct kap_http_ex *ex, void *data)
{
    const struct kap_http_req *q = kap_http_ex_req(ex);

    (void)data;
    if (!health_is(&q->target, "/healthz")
        && !health_is(&q->target, "/readyz")) {
        kap_http_error(ex, 404, "no such route (/healthz, /readyz)");
        return;
    }
    if (!health_is(&q->method, "GET") && !health_is(&q->method, "HEAD")) {
        kap_http_error(ex, 405, "GET only");
        return;
    }
    kap_http_header_add(ex, "Cache-Control", "no-store");
    if (health_is(&q->target, "/healthz"))
        kap_http_respond(ex, 200, "text/plain", "ok\n", 3);
    else if (kap_shutting_down())
        kap_http_error(ex, 503, "draining");
    else
        kap_http_respond(ex, 200, "text/plain", "ready\n", 6);
}

static void
health_accept(struct kap_conn *c)
{
    struct health_conf *cf = c->conf;

    kap_http_server_start(c, &cf->srv, health_handle, NULL);
}

static const struct kap_listener_ops health_listener = {
    .accept = health_accept,
};

const struct kap_module kap_health_module = {
    KAP_MODULE_V1(HEALTH_NAME),
    .version     = KAP_VERSION,
    .flags       = KAP_MOD_LISTENER | KAP_MOD_DRAIN_LISTEN,
    .conf_create = health_conf_create,
    .conf_parse  = health_conf_parse,
    .conf_check  = health_conf_check,
    .listener    = &health_listener,
};
