/*
 * kap_hello.c -- a minimal third-party kapd module, built out of tree.
 *
 * It answers one kind of policy question (KAP_REQ_TEST): subjects that
 * start with a configured prefix ("evil" by default) are denied; every
 * other question gets "no opinion" (KAP_DECLINED), so the next hook in
 * kapd.policy.chain decides.  Configuration (optional):
 *
 *   kapd: { load = ["hello"]; policy: { chain = ["hello", ...]; }; };
 *   hello: { deny_prefix = "evil"; };
 *
 * Everything the module keeps is copied into the generation's pool, so
 * a reload builds a fresh conf and the old one dies with its generation.
 */
#include <string.h>

#include <kapd/kap_core.h>

struct hello_conf {
    const char *deny_prefix;    /* generation pool; NULL until checked */
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
    static const char *const keys[] = { "deny_prefix", NULL };
    struct hello_conf *hc = conf;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, keys, err) != KAP_OK)
        return KAP_ERROR;
    if (kap_conf_get_str(group, "deny_prefix", kap_gen_pool(gen),
                         &hc->deny_prefix, err) == KAP_ERROR)
        return KAP_ERROR;
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

/* the policy hook: decide (KAP_OK + kap_req_decide) or decline */
static int
hello_policy(struct kap_req *r, void *conf)
{
    struct hello_conf *hc = conf;

    if (strncmp(r->subject, hc->deny_prefix, strlen(hc->deny_prefix)) == 0) {
        kap_req_decide(r, KAP_DENY, "hello", "subject starts with the "
                       "hello.deny_prefix");
        return KAP_OK;
    }
    return KAP_DECLINED;
}

static const struct kap_hook hello_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_TEST, hello_policy, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL }
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
