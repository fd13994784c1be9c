/*
 * kap_mcp_route.c -- which MCP server a request-target names (kap_mcp.h):
 * "/NAME" or "/NAME/anything" in origin-form, under an optional path
 * prefix.  A query string is refused outright: JSON-RPC goes in the body,
 * where it is checked, never in the URL where a server might read it.
 */
#include "config.h"

#include <string.h>

#include "kap_mcp.h"

static int
alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9');
}

/* the rule `kap mcp add` registers names under
 * (docs/design/mcp-registrations.md): [A-Za-z0-9][A-Za-z0-9_-]{0,63} */
int
kap_mcp_name_ok(const char *name, size_t n)
{
    size_t i;

    if (n == 0 || n > KAP_MCP_NAME_MAX || !alnum((unsigned char) name[0]))
        return 0;
    for (i = 1; i < n; i++)
        if (!alnum((unsigned char) name[i]) && name[i] != '_' && name[i] != '-')
            return 0;
    return 1;
}

int
kap_mcp_route(const char *target, const char *prefix, char *name, size_t n,
              const char **why)
{
    const char *p = target, *e;
    size_t pl = prefix ? strlen(prefix) : 0;

    if (n > 0)
        name[0] = '\0';
    *why = NULL;
    if (target == NULL || target[0] != '/') {
        *why = "the request-target must be a path (/NAME)";
        return KAP_ERROR;
    }
    if (strpbrk(target, "?#") != NULL) {
        *why = "a query string is refused: JSON-RPC goes in the body";
        return KAP_ERROR;
    }
    while (pl > 0 && prefix[pl - 1] == '/')
        pl--;
    if (pl > 0) {
        if (strncmp(p, prefix, pl) != 0 || p[pl] != '/') {
            *why = "the path is not under the MCP prefix";
            return KAP_ERROR;
        }
        p += pl;
    }
    p++;
    e = strchr(p, '/');
    if (e == NULL)
        e = p + strlen(p);
    if (!kap_mcp_name_ok(p, (size_t) (e - p))) {
        *why = "no MCP server name in the path (/NAME: a letter or digit, "
               "then letters, digits, '_', '-')";
        return KAP_ERROR;
    }
    if ((size_t) (e - p) >= n) {
        *why = "the server name is too long";
        return KAP_ERROR;
    }
    memcpy(name, p, (size_t) (e - p));
    name[e - p] = '\0';
    return KAP_OK;
}
