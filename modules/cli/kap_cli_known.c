/*
 * kap_cli_known.c -- the one table of the credential variables known
 * tools read, used in direct mode when a tool has no env list: each name
 * that is set in kapd's environment is handed to the shim.
 */
#include "kap_cli.h"

#include <string.h>

static const char *const kap_cli_gh[] = { "GH_TOKEN", "GITHUB_TOKEN",
    "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", NULL };
static const char *const kap_cli_glab[] = { "GITLAB_TOKEN", "GLAB_TOKEN",
    "GITLAB_ACCESS_TOKEN", NULL };
static const char *const kap_cli_aws[] = { "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", NULL };
static const char *const kap_cli_kubectl[] = { "KUBECONFIG", NULL };
static const char *const kap_cli_gcloud[] = {
    "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CORE_PROJECT", NULL };
static const char *const kap_cli_az[] = { "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID",
    NULL };
static const char *const kap_cli_doctl[] = { "DIGITALOCEAN_ACCESS_TOKEN",
    NULL };
static const char *const kap_cli_fly[] = { "FLY_API_TOKEN",
    "FLY_ACCESS_TOKEN", NULL };

static const struct {
    const char        *tool;
    const char *const *env;
} kap_cli_known[] = {
    { "gh", kap_cli_gh },           { "glab", kap_cli_glab },
    { "aws", kap_cli_aws },         { "kubectl", kap_cli_kubectl },
    { "gcloud", kap_cli_gcloud },   { "az", kap_cli_az },
    { "doctl", kap_cli_doctl },     { "fly", kap_cli_fly },
    { "flyctl", kap_cli_fly },
};

const char *const *
kap_cli_known_env(const char *tool)
{
    size_t i;

    for (i = 0; i < sizeof(kap_cli_known) / sizeof(kap_cli_known[0]); i++)
        if (strcmp(kap_cli_known[i].tool, tool) == 0)
            return kap_cli_known[i].env;
    return NULL;
}
