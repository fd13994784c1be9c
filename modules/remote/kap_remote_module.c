/*
 * kap_remote_module.c -- the module "remote": its config group, state
 * directory, listeners.  The routes are in kap_remote_routes.c.
 *
 *   remote: {
 *       listen = ["192.168.1.20:19420", "127.0.0.1:19420"];
 *                                  # default ["0.0.0.0:19420"]
 *       state_dir = "remote";      # pairing file, devices/ (0700)
 *       audit_logs = ["logs"];     # files or directories of *.jsonl
 *       pair_lifetime = "10m";     # a pairing secret's validity
 *       pair_limit = 5;            # pairing attempts per window, all
 *       auth_fail_limit = 10;      # failed auths per window, per address
 *       limit_window = "1m";
 *       cert = "tls/cert.pem"; key = "tls/key.pem";   # optional TLS
 *       max_connections = 64; max_per_client = 16;
 *       docker_socket = "/var/run/docker.sock";  # the Engine API
 *       docker_timeout = "10s";    # one route's engine calls, in all
 *       ask_timeout = "1m";        # a question waits this long for an
 *                                  # answer (phone, kap approve), then denied
 *       max_asks = 64;             # questions waiting at once
 *       follow = ["logs/audit.jsonl"];   # audit files/dirs streamed live
 *       ws_max_message = 65536;    # bytes of a client's WS message
 *       ws_queue_max = 1048576;    # bytes queued to one slow socket
 *       ws_ping_interval = "30s";
 *   };
 *
 * With "remote" in kapd.policy.chain (last) it holds the questions that
 * reach it from the channel, or that an ask rule left to a human
 * (KAP_REQ_F_ASK), until a human answers (kap_remote_asks.c); it
 * declines the others.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_conf.h>
#include <kapd/kap_gen.h>
#include <kapd/kap_module.h>
#include <kapd/kap_req.h>
#include <kapd/kap_tls.h>

#include "kap_remote.h"

static void *
kr_conf_create(struct kap_gen *gen)
{
    struct kr_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf == NULL)
        return NULL;
    memset(cf, 0, sizeof(*cf));
    cf->srv.module = KR_NAME;
    cf->srv.error_format = KAP_HTTP_ERR_JSON;
    cf->srv.max_body = 16 * 1024;
    cf->srv.max_connections = 64;
    cf->srv.max_per_client = 16;
    cf->pair_lifetime = KR_PAIR_LIFETIME;
    cf->pair_limit = KR_PAIR_LIMIT;
    cf->auth_fail_limit = KR_AUTH_FAIL_LIMIT;
    cf->limit_window = KR_LIMIT_WINDOW;
    cf->docker_socket = KR_DOCKER_SOCKET;
    cf->docker_timeout = KR_DOCKER_TIMEOUT;
    cf->ask_timeout = KR_ASK_TIMEOUT;
    cf->max_asks = KR_MAX_ASKS;
    cf->srv.upgrade = 1;
    cf->ws_max_message = KR_WS_MAX_MESSAGE;
    cf->ws_queue_max = KR_WS_QUEUE_MAX;
    cf->ws_ping = KR_WS_PING;
    return cf;
}

static int
kr_listen(struct kap_gen *gen, struct kr_conf *cf,
          const config_setting_t *group, struct kap_err *err)
{
    const char **listen = NULL;
    size_t i, nl = 0;
    int rc = group != NULL
             ? kap_conf_get_strlist(group, "listen", kap_gen_pool(gen),
                                    &listen, &nl, err)
             : KAP_DECLINED;

    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_DECLINED || nl == 0)
        return kap_listen_add(gen, KR_NAME, KAP_LISTEN_TCP, KR_DEFAULT_LISTEN,
                              NULL, err) == KAP_OK
               ? (cf->nlisten = 1, KAP_OK) : KAP_ERROR;
    for (i = 0; i < nl; i++)
        if (kap_listen_add(gen, KR_NAME, KAP_LISTEN_TCP, listen[i],
                           config_setting_get_member(group, "listen"), err)
            != KAP_OK)
            return KAP_ERROR;
    cf->nlisten = nl;
    return KAP_OK;
}

static int
kr_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *group,
              struct kap_err *err)
{
    static const char *const keys[] = {
        "listen", "state_dir", "audit_logs", "pair_lifetime", "pair_limit",
        "auth_fail_limit", "limit_window", "cert", "key", "max_connections",
        "max_per_client", "docker_socket", "docker_timeout", "ask_timeout",
        "max_asks", "follow", "ws_max_message", "ws_queue_max",
        "ws_ping_interval", NULL
    };
    struct kr_conf *cf = conf;
    struct kap_pool *pool = kap_gen_pool(gen);
    long long n;
    size_t i;

    if (group != NULL && kap_conf_check_keys(group, keys, err) != KAP_OK)
        return KAP_ERROR;
    if (kr_listen(gen, cf, group, err) != KAP_OK)
        return KAP_ERROR;
    cf->state_dir = "remote";
    if (group == NULL)
        return KAP_OK;
    if (kap_conf_get_str(group, "state_dir", pool, &cf->state_dir, err)
            == KAP_ERROR
        || kap_conf_get_strlist(group, "audit_logs", pool, &cf->audit_logs,
                                &cf->naudit, err) == KAP_ERROR
        || kap_conf_get_secs(group, "pair_lifetime", &cf->pair_lifetime, err)
            == KAP_ERROR
        || kap_conf_get_secs(group, "limit_window", &cf->limit_window, err)
            == KAP_ERROR
        || kap_conf_get_int(group, "pair_limit", 1, 1000, &cf->pair_limit,
                            err) == KAP_ERROR
        || kap_conf_get_int(group, "auth_fail_limit", 1, 100000,
                            &cf->auth_fail_limit, err) == KAP_ERROR
        || kap_conf_get_str(group, "cert", pool, &cf->cert, err) == KAP_ERROR
        || kap_conf_get_str(group, "key", pool, &cf->key, err) == KAP_ERROR
        || kap_conf_get_str(group, "docker_socket", pool, &cf->docker_socket,
                            err) == KAP_ERROR
        || kap_conf_get_secs(group, "docker_timeout", &cf->docker_timeout,
                             err) == KAP_ERROR
        || kap_conf_get_secs(group, "ask_timeout", &cf->ask_timeout, err)
            == KAP_ERROR
        || kap_conf_get_strlist(group, "follow", pool, &cf->follow,
                                &cf->nfollow, err) == KAP_ERROR
        || kap_conf_get_int(group, "ws_max_message", 125, 16 * 1024 * 1024,
                            &cf->ws_max_message, err) == KAP_ERROR
        || kap_conf_get_int(group, "ws_queue_max", 4096, 256 * 1024 * 1024,
                            &cf->ws_queue_max, err) == KAP_ERROR
        || kap_conf_get_secs(group, "ws_ping_interval", &cf->ws_ping, err)
            == KAP_ERROR)
        return KAP_ERROR;
    n = 0;
    if (kap_conf_get_int(group, "max_asks", 1, 10000, &n, err) == KAP_ERROR)
        return KAP_ERROR;
    if (n > 0)
        cf->max_asks = (unsigned) n;
    n = 0;
    if (kap_conf_get_int(group, "max_connections", 1, 100000, &n, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (n > 0)
        cf->srv.max_connections = (unsigned) n;
    n = 0;
    if (kap_conf_get_int(group, "max_per_client", 1, 100000, &n, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (n > 0)
        cf->srv.max_per_client = (unsigned) n;
    for (i = 0; i < cf->naudit; i++)
        if ((cf->audit_logs[i] = kap_conf_path(gen, cf->audit_logs[i]))
            == NULL)
            return KAP_ERROR;
    for (i = 0; i < cf->nfollow; i++)
        if ((cf->follow[i] = kap_conf_path(gen, cf->follow[i])) == NULL)
            return KAP_ERROR;
    return KAP_OK;
}

static int
kr_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct kr_conf *cf = conf;

    if ((cf->state_dir = kap_conf_path(gen, cf->state_dir)) == NULL
        || (cf->cert != NULL && (cf->cert = kap_conf_path(gen, cf->cert))
                                == NULL)
        || (cf->key != NULL && (cf->key = kap_conf_path(gen, cf->key))
                               == NULL))
        return KAP_ERROR;
    if ((cf->cert == NULL) != (cf->key == NULL)) {
        kap_err_set(err, "remote: cert and key go together");
        return KAP_ERROR;
    }
    if ((cf->docker_socket = kap_conf_path(gen, cf->docker_socket)) == NULL)
        return KAP_ERROR;
    if (cf->docker_timeout <= 0) {
        kap_err_set(err, "remote: docker_timeout must be positive");
        return KAP_ERROR;
    }
    if (cf->pair_lifetime <= 0 || cf->limit_window <= 0
        || cf->ask_timeout <= 0) {
        kap_err_set(err, "remote: pair_lifetime, limit_window and"
                    " ask_timeout must be positive");
        return KAP_ERROR;
    }
    if (cf->ws_ping <= 0) {
        kap_err_set(err, "remote: ws_ping_interval must be positive");
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* dir exists (made 0700 if not), is a directory of ours, closed to others */
static int
kr_private_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "mkdir %s: %s", dir,
                strerror(errno));
        return KAP_ERROR;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)
        || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "%s must be a directory owned by"
                " kapd's user with mode 0700 (chmod 700 %s)", dir, dir);
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
kr_init(struct kap_gen *gen, void *conf)
{
    struct kr_conf *cf = conf;
    struct kap_tls_opts o;
    struct kap_err err;
    char dev[4096];

    kr_remote_started();
    if ((size_t) snprintf(dev, sizeof(dev), "%s/devices", cf->state_dir)
            >= sizeof(dev)
        || kr_private_dir(cf->state_dir) != KAP_OK
        || kr_private_dir(dev) != KAP_OK
        || kr_live_start(cf) != KAP_OK)
        return KAP_ERROR;
    if (cf->cert == NULL)
        return KAP_OK;
    memset(&err, 0, sizeof(err));
    memset(&o, 0, sizeof(o));
    o.cert_file = cf->cert;
    o.key_file = cf->key;
    cf->tls = kap_tls_ctx_new(gen, &o, &err);
    if (cf->tls == NULL) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "%s", err.msg);
        return KAP_ERROR;
    }
    return KAP_OK;
}

static void
kr_fini(struct kap_gen *gen, void *conf)
{
    (void) gen;
    kr_live_stop(conf);
}

static void
kr_shutdown(void)
{
    kr_ws_exit();
    kr_live_exit();
}

static void
kr_accept(struct kap_conn *c)
{
    struct kr_conf *cf = c->conf;

    if (cf->tls != NULL)
        kap_http_server_start_tls(c, cf->tls, &cf->srv, kr_handle, cf);
    else
        kap_http_server_start(c, &cf->srv, kr_handle, cf);
}

static const struct kap_listener_ops kr_listener = {
    .accept = kr_accept,
};

static const struct kap_hook kr_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_CONNECT | KAP_REQ_HTTP | KAP_REQ_DNS
                       | KAP_REQ_MCP_LIST | KAP_REQ_MCP_CALL | KAP_REQ_CLI
                       | KAP_REQ_TEST, kr_policy, NULL, NULL },
    { KAP_HOOK_AUDIT, KAP_REQ_ALL, NULL, kr_live_audit, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

const struct kap_module kap_remote_module = {
    KAP_MODULE_V1(KR_NAME),
    .version = "1.0",
    .flags = KAP_MOD_LISTENER | KAP_MOD_POLICY | KAP_MOD_AUDIT,
    .conf_create = kr_conf_create,
    .conf_parse = kr_conf_parse,
    .conf_check = kr_conf_check,
    .init = kr_init,
    .fini = kr_fini,
    .shutdown = kr_shutdown,
    .listener = &kr_listener,
    .hooks = kr_hooks,
};
