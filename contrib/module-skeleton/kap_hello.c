/*
 * kap_hello.c -- a minimal third-party kapd module, built out of tree.
 *
 * It answers three kinds of policy question:
 *   KAP_REQ_TEST   subjects that start with hello.deny_prefix ("evil" by
 *                  default) are denied (the test module asks these);
 *   KAP_REQ_ADDR   a resolved address listed in hello.deny_addresses is
 *                  never dialled, whatever name led to it;
 *   KAP_REQ_FIRST  a tunnel whose TLS server name (attribute "sni")
 *                  starts with hello.deny_prefix is refused.
 * Every other question gets "no opinion" (KAP_DECLINED), so the next hook
 * in kapd.policy.chain decides.  `network` answers address and
 * first-bytes questions itself, so hello must come before it in the
 * chain to be asked at all.  Configuration (optional):
 *
 *   kapd: { load = ["hello"]; policy: { chain = ["hello", "network"]; }; };
 *   hello: { deny_prefix = "evil"; deny_addresses = ["192.0.2.7"]; };
 *
 * Everything the module keeps is copied into the generation's pool, so
 * a reload builds a fresh conf and the old one dies with its generation.
 */
#include <string.h>

#include <kapd/kap_core.h>

struct hello_conf {
    const char  *deny_prefix;   /* generation pool; NULL until checked */
    const char **deny_addrs;    /* generation pool, NULL-terminated */
};

/* defaults are applied in conf_check, after parsing */
static void *
hello_conf_create(struct kap_gen *gen)
{
    return kap_palloc(kap_gen_pool(gen), sizeof(struct hello_conf));
}

/* group is our top-level `hello` group, or NULL when the file has none */
static int
hello_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *group,
                 struct kap_err *err)
{
    static const char *const keys[] = { "deny_prefix", "deny_addresses",
                                        NULL };
    struct hello_conf *hc = conf;
    const config_setting_t *list;
    int i, n;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, keys, err) != KAP_OK)
        return KAP_ERROR;
    if (kap_conf_get_str(group, "deny_prefix", kap_gen_pool(gen),
                         &hc->deny_prefix, err) == KAP_ERROR)
        return KAP_ERROR;
    list = config_setting_get_member(group, "deny_addresses");
    if (list == NULL)
        return KAP_OK;
    if (!config_setting_is_array(list) && !config_setting_is_list(list)) {
        kap_err_at(err, list, "hello.deny_addresses must be a list of "
                   "strings");
        return KAP_ERROR;
    }
    n = config_setting_length(list);
    hc->deny_addrs = kap_palloc(kap_gen_pool(gen),
                                ((size_t) n + 1) * sizeof(char *));
    if (hc->deny_addrs == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (i = 0; i < n; i++) {
        const char *a = config_setting_get_string_elem(list, i);
        if (a == NULL) {
            kap_err_at(err, list, "hello.deny_addresses must be a list of "
                       "strings");
            return KAP_ERROR;
        }
        if ((hc->deny_addrs[i] = kap_pstrdup(kap_gen_pool(gen), a)) == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

static int
hello_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct hello_conf *hc = conf;

    (void) gen;
    if (hc->deny_prefix == NULL)
        hc->deny_prefix = "evil";
    if (hc->deny_prefix[0] == '\0') {
        kap_err_set(err, "hello.deny_prefix must not be empty");
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* the policy hook: decide (KAP_OK + kap_req_decide) or decline */
static int
hello_policy(struct kap_req *r, void *conf)
{
    struct hello_conf *hc = conf;
    size_t i;

    switch (r->kind) {
    case KAP_REQ_ADDR:          /* subject: the address as text */
        for (i = 0; hc->deny_addrs != NULL && hc->deny_addrs[i]; i++)
            if (strcmp(r->subject, hc->deny_addrs[i]) == 0) {
                kap_req_decide(r, KAP_DENY, "hello", "the address is in "
                               "hello.deny_addresses");
                return KAP_OK;
            }
        return KAP_DECLINED;
    case KAP_REQ_FIRST:         /* attributes say what the bytes are */
        if (starts_with(kap_req_attr(r, "sni"), hc->deny_prefix)) {
            kap_req_decide(r, KAP_DENY, "hello", "the TLS server name "
                           "starts with hello.deny_prefix");
            return KAP_OK;
        }
        return KAP_DECLINED;
    default:
        if (starts_with(r->subject, hc->deny_prefix)) {
            kap_req_decide(r, KAP_DENY, "hello", "subject starts with the "
                           "hello.deny_prefix");
            return KAP_OK;
        }
        return KAP_DECLINED;
    }
}

static const struct kap_hook hello_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_TEST | KAP_REQ_ADDR | KAP_REQ_FIRST,
      hello_policy, NULL, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

/* the one exported symbol: kap_<name>_module */
const struct kap_module kap_hello_module = {
    KAP_MODULE_V1("hello"),
    .version = "1.0",
    .flags = KAP_MOD_POLICY,
    .conf_create = hello_conf_create,
    .conf_parse = hello_conf_parse,
    .conf_check = hello_conf_check,
    .hooks = hello_hooks,
};
