/*
 * kap_mcp_envfile.h -- the project's env file (mcp.env_file, default
 * none; `kap run` and `kap up` name ~/.kap/envs/PROJECT/.env): the values
 * of the ${VAR} references in the servers' header values, before kapd's
 * own environment.
 *
 * The file is read under the secret file rule (kap_secret_file_read():
 * no symbolic link, 0700 directory, 0600 file); a missing file is an
 * empty one (the project has set nothing yet).  Lines: blank, "# ...",
 * or [export ]NAME=VALUE with NAME [A-Za-z_][A-Za-z0-9_]* and VALUE the
 * rest of the line (a trailing CR dropped; one pair of matching quotes
 * around it removed, nothing inside them interpreted).  Any other line
 * is an error naming the file and the line number, never its text.  The
 * values only ever reach kap_mcp_reg_value(), which makes them secrets;
 * kap_mcp_envfile_free() wipes the bytes read.
 *
 * Configuring time only (blocking file I/O).
 */
#ifndef KAP_MCP_ENVFILE_H
#define KAP_MCP_ENVFILE_H

#include <stddef.h>

#include <kapd/kap_core.h>

#define KAP_MCP_ENVFILE_MAX 256         /* variables in one file */

struct kap_mcp_envfile {
    struct kap_buf buf;                 /* the file, cut into strings */
    const char    *name[KAP_MCP_ENVFILE_MAX];   /* into buf */
    const char    *value[KAP_MCP_ENVFILE_MAX];  /* into buf */
    size_t         n;
};

/* Read path into ef (zeroed by the caller; ef owns what it reads until
 * kap_mcp_envfile_free()).  KAP_OK, or KAP_ERROR with err set. */
int kap_mcp_envfile_read(struct kap_mcp_envfile *ef, const char *path,
                         struct kap_err *err);
/* The last value given to var, or NULL.  Borrowed from ef. */
const char *kap_mcp_envfile_get(const struct kap_mcp_envfile *ef,
                                const char *var);
/* Wipe and free what ef read; ef may be read into again. */
void kap_mcp_envfile_free(struct kap_mcp_envfile *ef);

#endif /* KAP_MCP_ENVFILE_H */
