/*
 * kap_mcp_envfile.c -- the project's env file for ${VAR} in the mcp
 * servers' headers (kap_mcp_envfile.h).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <kapd/kap_secret.h>

#include "kap_mcp_envfile.h"
#include "kap_mcp_reg.h"

/* One line, NUL-terminated in place: 1 a variable (recorded), 0 nothing,
 * -1 not a line of an env file. */
static int
envf_line(struct kap_mcp_envfile *ef, char *l)
{
    char *eq, *v;
    size_t vn;

    while (*l == ' ' || *l == '\t')
        l++;
    if (*l == '\0' || *l == '#')
        return 0;
    if (strncmp(l, "export ", 7) == 0)
        l += 7;
    if ((eq = strchr(l, '=')) == NULL
        || !kap_mcp_reg_var_ok(l, (size_t)(eq - l)))
        return -1;
    *eq = '\0';
    v = eq + 1;
    vn = strlen(v);
    if (vn > 0 && v[vn - 1] == '\r')
        v[--vn] = '\0';
    if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) {
        v[vn - 1] = '\0';
        v++;
    }
    if (ef->n == KAP_MCP_ENVFILE_MAX)
        return -1;
    ef->name[ef->n] = l;
    ef->value[ef->n] = v;
    ef->n++;
    return 1;
}

int
kap_mcp_envfile_read(struct kap_mcp_envfile *ef, const char *path,
                     struct kap_err *err)
{
    struct stat st;
    char *p, *nl;
    unsigned line = 0;

    ef->n = 0;
    if (lstat(path, &st) < 0 && errno == ENOENT)
        return KAP_OK;
    if (kap_secret_file_read(path, &ef->buf, err) != KAP_OK)
        return KAP_ERROR;
    for (p = ef->buf.data; p != NULL && *p != '\0'; p = nl) {
        line++;
        nl = strchr(p, '\n');
        if (nl != NULL)
            *nl++ = '\0';
        else
            nl = p + strlen(p);
        if (envf_line(ef, p) < 0) {
            kap_err_set(err, "env file %s, line %u: not NAME=VALUE (or "
                        "more than %d variables)", path, line,
                        KAP_MCP_ENVFILE_MAX);
            kap_mcp_envfile_free(ef);
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

const char *
kap_mcp_envfile_get(const struct kap_mcp_envfile *ef, const char *var)
{
    size_t i;

    for (i = ef->n; i > 0; i--)
        if (strcmp(ef->name[i - 1], var) == 0)
            return ef->value[i - 1];
    return NULL;
}

void
kap_mcp_envfile_free(struct kap_mcp_envfile *ef)
{
    if (ef->buf.data != NULL)
        kap_secret_wipe(ef->buf.data, ef->buf.cap);
    kap_buf_free(&ef->buf);
    ef->n = 0;
}
