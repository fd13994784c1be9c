/*
 * kap_channel_module.c -- the module "channel": configuration, hooks and
 * descriptor.  The sidecar <-> host channel lets a kapd in a capsule or
 * sidecar forward a question no rule answers to a kapd on the host, where
 * a human (later: the phone) answers it, and stream its audit events
 * there.  Protocol: docs/channel-protocol.md.
 *
 * Capsule side (a kapd the agent's traffic goes through):
 *
 *   kapd: { load = ["http_connect", "channel"];
 *           policy: { chain = ["network", "channel"]; }; };
 *   channel: {
 *       connect = "unix:/run/kap/host.sock";   # or "127.0.0.1:PORT"
 *       name = "myproject";                   # this capsule, to the host
 *       secret_file = "/run/kap/secrets/channel";  # shared with the host
 *       timeout = 60;          # a question waits this long, then denied
 *       kinds = ["connect", "http"];          # what is asked of the host
 *       always_file = "approved.txt";         # "allow always" answers
 *       policy_file = "/home/u/p/.devcontainer/kap.conf";  # the policy
 *                              # this capsule runs, by its host path: the
 *                              # host adds "allow always" rules to it
 *       audit = true;                         # stream audit events
 *   };
 *
 * Host side:
 *
 *   channel: {
 *       listen = ["unix:/run/kap/host.sock"];
 *       capsules = ( { name = "myproject";
 *                      secret_file = "/run/kap/secrets/channel"; } );
 *       max_pending = 64;      # questions waiting per capsule
 *       secrets_dir = "/run/kap/secrets";  # or beside capsules: a capsule
 *                              # named NAME not listed there proves the
 *                              # secret in secrets_dir/NAME (read when it
 *                              # connects: kap remote start, kap run --ask)
 *   };
 *
 * `network` declines a name no rule mentions, so with channel after it
 * in the chain only those reach the host; what the host allows once is
 * allowed for that request, what it allows always is kept (always_file)
 * and answered locally from then on; no answer in time, or no channel,
 * is a deny (fail closed).
 */
#include "config.h"

#include <string.h>

#include "kap_channel.h"
#include "kap_channel_wire.h"

static void *
ch_conf_create(struct kap_gen *gen)
{
    struct ch_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf == NULL)
        return NULL;
    cf->timeout = -1;
    cf->audit = -1;
    return cf;
}

static int
parse_capsules(struct kap_gen *gen, struct ch_conf *cf,
               const config_setting_t *list, struct kap_err *err)
{
    static const char *const keys[] = { "name", "secret_file", NULL };
    struct kap_pool *pool = kap_gen_pool(gen);
    int i, n;

    if (!config_setting_is_list(list)) {
        kap_err_at(err, list, "channel.capsules must be a list of groups: "
                   "( { name = \"...\"; secret_file = \"...\"; } )");
        return KAP_ERROR;
    }
    n = config_setting_length(list);
    cf->caps = kap_palloc(pool, ((size_t) n + 1) * sizeof(*cf->caps));
    if (cf->caps == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list,
                                                            (unsigned) i);
        struct ch_capsule *cp = &cf->caps[cf->ncaps];
        size_t j;
        if (!config_setting_is_group(g)) {
            kap_err_at(err, g, "channel.capsules: every entry is a group");
            return KAP_ERROR;
        }
        if (kap_conf_check_keys(g, keys, err) != KAP_OK
            || kap_conf_get_str(g, "name", pool, &cp->name, err) == KAP_ERROR
            || kap_conf_get_str(g, "secret_file", pool, &cp->secret_file,
                                err) == KAP_ERROR)
            return KAP_ERROR;
        if (cp->name == NULL || cp->secret_file == NULL || !cp->name[0]
            || strlen(cp->name) > CH_NAME_MAX) {
            kap_err_at(err, g, "channel.capsules: each needs a name (1 to "
                       "%d bytes) and a secret_file", CH_NAME_MAX);
            return KAP_ERROR;
        }
        for (j = 0; j < cf->ncaps; j++)
            if (strcmp(cf->caps[j].name, cp->name) == 0) {
                kap_err_at(err, g, "channel.capsules: \"%s\" twice",
                           cp->name);
                return KAP_ERROR;
            }
        if ((cp->secret_file = kap_conf_path(gen, cp->secret_file)) == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
        cf->ncaps++;
    }
    return KAP_OK;
}

static int
ch_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *g,
              struct kap_err *err)
{
    static const char *const keys[] = {
        "connect", "name", "secret_file", "timeout", "always_file", "audit",
        "kinds", "listen", "capsules", "max_pending", "secrets_dir",
        "policy_file", NULL
    };
    struct ch_conf *cf = conf;
    struct kap_pool *pool = kap_gen_pool(gen);
    const char **kinds = NULL, **listen = NULL;
    const config_setting_t *caps;
    long long mp;
    size_t i, n;
    int rc;

    if (g == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(g, keys, err) != KAP_OK
        || kap_conf_get_str(g, "connect", pool, &cf->connect, err)
           == KAP_ERROR
        || kap_conf_get_str(g, "name", pool, &cf->name, err) == KAP_ERROR
        || kap_conf_get_str(g, "secret_file", pool, &cf->secret_file, err)
           == KAP_ERROR
        || kap_conf_get_secs(g, "timeout", &cf->timeout, err) == KAP_ERROR
        || kap_conf_get_str(g, "always_file", pool, &cf->always_file, err)
           == KAP_ERROR
        || kap_conf_get_bool(g, "audit", &cf->audit, err) == KAP_ERROR
        || kap_conf_get_str(g, "secrets_dir", pool, &cf->secrets_dir, err)
           == KAP_ERROR
        || kap_conf_get_str(g, "policy_file", pool, &cf->policy_file, err)
           == KAP_ERROR)
        return KAP_ERROR;
    rc = kap_conf_get_strlist(g, "kinds", pool, &kinds, &n, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    for (i = 0; rc == KAP_OK && i < n; i++) {
        uint32_t b = kap_channel_kind_bit(kinds[i]);
        if (b == 0 || (b & (KAP_REQ_ADDR | KAP_REQ_FIRST))) {
            kap_err_at(err, config_setting_get_member(g, "kinds"),
                       "channel.kinds: \"%s\" cannot be asked of the host "
                       "(connect, http, dns, mcp_list, mcp_call, cli, test)",
                       kinds[i]);
            return KAP_ERROR;
        }
        cf->kinds |= b;
    }
    rc = kap_conf_get_strlist(g, "listen", pool, &listen, &n, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    for (i = 0; rc == KAP_OK && i < n; i++)
        if (kap_listen_add(gen, CH_NAME, KAP_LISTEN_TCP, listen[i],
                           config_setting_get_member(g, "listen"), err)
            != KAP_OK)
            return KAP_ERROR;
    if ((caps = config_setting_get_member(g, "capsules")) != NULL
        && parse_capsules(gen, cf, caps, err) != KAP_OK)
        return KAP_ERROR;
    rc = kap_conf_get_int(g, "max_pending", 1, 100000, &mp, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_OK)
        cf->max_pending = (unsigned) mp;
    if (cf->connect != NULL && listen != NULL) {
        kap_err_at(err, g, "channel: connect (capsule side) and listen (host "
                   "side) are two kapds; set one of them");
        return KAP_ERROR;
    }
    cf->role = cf->connect != NULL ? CH_ROLE_CAPSULE
             : listen != NULL ? CH_ROLE_HOST : CH_ROLE_NONE;
    return KAP_OK;
}

static int
ch_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct ch_conf *cf = conf;

    if (cf->timeout < 0)
        cf->timeout = 60;
    if (cf->audit < 0)
        cf->audit = 1;
    if (cf->kinds == 0)
        cf->kinds = KAP_REQ_CONNECT | KAP_REQ_HTTP;
    if (cf->max_pending == 0)
        cf->max_pending = 64;
    if (cf->role == CH_ROLE_CAPSULE) {
        if (cf->name == NULL || !cf->name[0] || strlen(cf->name) > CH_NAME_MAX
            || cf->secret_file == NULL) {
            kap_err_set(err, "channel: the capsule side needs name (1 to %d "
                        "bytes) and secret_file beside connect", CH_NAME_MAX);
            return KAP_ERROR;
        }
        if (cf->policy_file != NULL && cf->policy_file[0] != '/') {
            kap_err_set(err, "channel.policy_file: an absolute path (the"
                        " host's name of the file), not \"%s\"",
                        cf->policy_file);
            return KAP_ERROR;
        }
        if ((cf->secret_file = kap_conf_path(gen, cf->secret_file)) == NULL
            || (cf->always_file != NULL
                && (cf->always_file = kap_conf_path(gen, cf->always_file))
                   == NULL)) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
    }
    if (cf->role == CH_ROLE_HOST && cf->ncaps == 0
        && cf->secrets_dir == NULL) {
        kap_err_set(err, "channel: the host side (listen) needs capsules = "
                    "( { name = \"...\"; secret_file = \"...\"; } ) or "
                    "secrets_dir");
        return KAP_ERROR;
    }
    if (cf->secrets_dir != NULL
        && (cf->secrets_dir = kap_conf_path(gen, cf->secrets_dir)) == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* secrets are files: read when the generation goes live, not in parse */
static int
ch_init(struct kap_gen *gen, void *conf)
{
    struct ch_conf *cf = conf;
    struct kap_err err;
    size_t i;

    memset(&err, 0, sizeof(err));
    if (cf->role == CH_ROLE_HOST) {
        for (i = 0; i < cf->ncaps; i++) {
            cf->caps[i].secret = kap_secret_load(kap_gen_pool(gen),
                                                 cf->caps[i].secret_file,
                                                 &err);
            if (cf->caps[i].secret == NULL) {
                KAP_LOG(KAP_LOG_ERR, CH_NAME, 0, "capsule \"%s\": %s",
                        cf->caps[i].name, err.msg);
                return KAP_ERROR;
            }
        }
        return KAP_OK;
    }
    if (cf->role != CH_ROLE_CAPSULE)
        return KAP_OK;
    cf->secret = kap_secret_load(kap_gen_pool(gen), cf->secret_file, &err);
    if (cf->secret == NULL) {
        KAP_LOG(KAP_LOG_ERR, CH_NAME, 0, "%s", err.msg);
        return KAP_ERROR;
    }
    return kap_channel_client_init(gen, cf);
}

static void
ch_fini(struct kap_gen *gen, void *conf)
{
    struct ch_conf *cf = conf;

    (void) gen;
    if (cf->role == CH_ROLE_CAPSULE)
        kap_channel_client_fini(cf);
}

static int
ch_policy(struct kap_req *r, void *conf)
{
    struct ch_conf *cf = conf;

    if (cf->role != CH_ROLE_CAPSULE || !(cf->kinds & r->kind))
        return KAP_DECLINED;
    return kap_channel_client_policy(r, cf);
}

static void
ch_audit(const struct kap_audit_event *ev, void *conf)
{
    struct ch_conf *cf = conf;

    if (cf->role == CH_ROLE_CAPSULE && cf->audit)
        kap_channel_client_audit(ev, cf);
}

static void
ch_status(struct kap_gen *gen, void *conf, struct kap_buf *out)
{
    struct ch_conf *cf = conf;

    (void) gen;
    if (cf->role == CH_ROLE_CAPSULE)
        kap_channel_client_status(out);
    else if (cf->role == CH_ROLE_HOST)
        kap_buf_printf(out, "channel: host side, %zu capsule(s)%s%s",
                       cf->ncaps, cf->secrets_dir ? ", secrets in " : "",
                       cf->secrets_dir ? cf->secrets_dir : "");
    else
        kap_buf_printf(out, "channel: not configured");
}

int
kap_channel_proof(const struct kap_secret *k, const char *who, const char *n1,
         const char *n2, char *out)
{
    unsigned char mac[KAP_SECRET_HMAC_LEN];
    char msg[32 + 2 * CH_HEX_LEN];
    int n = snprintf(msg, sizeof(msg), "kap-channel %s\n%s\n%s", who, n1, n2);

    if (n < 0 || (size_t) n >= sizeof(msg)
        || kap_secret_hmac(k, msg, (size_t) n, mac) != KAP_OK)
        return KAP_ERROR;
    kap_channel_hex(mac, sizeof(mac), out);
    return KAP_OK;
}

static const struct kap_hook ch_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_CONNECT | KAP_REQ_HTTP | KAP_REQ_DNS
                       | KAP_REQ_MCP_LIST | KAP_REQ_MCP_CALL | KAP_REQ_CLI
                       | KAP_REQ_TEST, ch_policy, NULL, NULL },
    { KAP_HOOK_AUDIT, KAP_REQ_ALL, NULL, ch_audit, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

static const struct kap_listener_ops ch_listener = {
    kap_channel_server_accept, NULL, NULL
};

const struct kap_module kap_channel_module = {
    KAP_MODULE_V1(CH_NAME),
    .version     = PACKAGE_VERSION,
    .flags       = KAP_MOD_LISTENER | KAP_MOD_POLICY | KAP_MOD_AUDIT,
    .conf_create = ch_conf_create,
    .conf_parse  = ch_conf_parse,
    .conf_check  = ch_conf_check,
    .init        = ch_init,
    .fini        = ch_fini,
    .listener    = &ch_listener,
    .hooks       = ch_hooks,
    .status      = ch_status,
};
