/*
 * kap_mcp_missing.c -- `kap-mcp missing KAP.CONF` (kap_mcp_cli.h): the
 * servers a kap.conf's mcp group names without a url that have no
 * registration in the auth directory, one a line, for `kap mcp list
 * KAP.CONF`: kapd would refuse that configuration until they are added.
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_module.h>

#include "kap_mcp_cli.h"

int
mcpc_missing(const char *dir, const char *conf)
{
    config_t c;
    config_setting_t *servers, *s;
    char inc[PATH_MAX], path[PATH_MAX], *slash;
    const char *name, *url;
    int i, n, rc = 0;

    config_init(&c);
    snprintf(inc, sizeof(inc), "%s", conf);
    slash = strrchr(inc, '/');
    if (slash != NULL) {
        *slash = '\0';
        config_set_include_dir(&c, inc);
    }
    if (config_read_file(&c, conf) != CONFIG_TRUE) {
        mcpc_warn("%s:%d: %s", config_error_file(&c) ? config_error_file(&c)
                  : conf, config_error_line(&c), config_error_text(&c));
        config_destroy(&c);
        return 1;
    }
    servers = config_lookup(&c, "mcp.servers");
    n = servers != NULL ? config_setting_length(servers) : 0;
    for (i = 0; i < n; i++) {
        s = config_setting_get_elem(servers, (unsigned int)i);
        if (config_setting_lookup_string(s, "name", &name) != CONFIG_TRUE)
            continue;
        if (config_setting_lookup_string(s, "url", &url) == CONFIG_TRUE)
            continue;           /* configured with its own URL */
        if ((size_t)snprintf(path, sizeof(path), "%s/%s.json", dir, name)
            >= sizeof(path))
            continue;
        if (access(path, F_OK) != 0 && errno == ENOENT) {
            char shown[80];
            mcpc_safe_line(name, 64, shown, sizeof(shown));
            mcpc_say("%s\t(in %s, not registered: kap mcp add %s URL)",
                     shown, conf, shown);
        }
    }
    config_destroy(&c);
    return rc;
}
