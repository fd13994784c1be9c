/*
 * fuzz_mcp.h -- the tool policy the mcp fuzz targets decide with
 * (header only): built once per process from NULL-terminated lists.
 */
#ifndef FUZZ_MCP_H
#define FUZZ_MCP_H

#include <stdlib.h>
#include <string.h>

#include "kap_mcp.h"

/* A policy that lives as long as the process; aborts if a pattern fails. */
static inline struct kap_mcp_tools *
fuzz_mcp_policy(const char *const *allow, const char *const *deny)
{
    struct kap_pool *pool = kap_pool_create();
    struct kap_mcp_tools *t = pool ? kap_mcp_tools_create(pool) : NULL;
    struct kap_err err;

    memset(&err, 0, sizeof(err));
    if (t == NULL)
        abort();
    for (; allow && *allow; allow++)
        if (kap_mcp_tools_add(t, 0, *allow, NULL, 0, &err) != KAP_OK)
            abort();
    for (; deny && *deny; deny++)
        if (kap_mcp_tools_add(t, 1, *deny, NULL, 0, &err) != KAP_OK)
            abort();
    return t;
}

#endif /* FUZZ_MCP_H */
