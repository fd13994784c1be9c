/*
 * kapd_conf_read.h -- what a build needs from kapd_conf_read.c: the
 * configuration text with @include expanded, its line map, the files read
 * (into the build's file list, for the content watch), and the -g merge.
 */
#ifndef KAPD_CONF_READ_H
#define KAPD_CONF_READ_H

#include <libconfig.h>

#include "kapd.h"

#define KAPD_CONF_MAX_BYTES   (16u * 1024 * 1024)  /* all files together */
#define KAPD_INCLUDE_DEPTH    10                   /* nested @include */

struct kapd_src_line {
    const char *file;       /* gen pool */
    int         line;
};

struct kapd_conf_text {
    struct kapd_build *b;   /* the files read go into b->files */
    struct kap_pool *pool;
    struct kap_buf   text;
    struct kapd_src_line *map;
    size_t           nmap, capmap;
    size_t           total;
    struct kap_err  *err;
};

/*
 * Read path and every file it @includes into rd->text (rd->pool, rd->b
 * and rd->err set by the caller, the rest zero): KAP_OK, or KAP_ERROR with
 * rd->err set at the including file:line.  The caller frees rd->text
 * (kap_buf_free) and rd->map (free).
 */
int  kapd_conf_read(struct kapd_conf_text *rd, const char *path);
/* Give every setting under s the file:line it came from (rd's map). */
void kapd_conf_fix_positions(config_setting_t *s,
                             const struct kapd_conf_text *rd);
/* Merge the global configuration file at path under root (-g); the files
   read go into b's list too. */
int  kapd_conf_merge_global(config_setting_t *root, const char *path,
                            struct kap_pool *pool, struct kapd_build *b,
                            struct kap_err *err);
/* A whole file (heap, NUL-terminated, at most max bytes); NULL and errno
   on failure. */
char *kapd_conf_read_file(const char *path, size_t *len, size_t max);
/* Set err's position to file:line (file NULL: none). */
void kapd_conf_err_pos(struct kap_err *err, const char *file, int line);
/* The SHA-256 of path's content now (a glob: of the names it matches). */
void kapd_conf_digest(const char *path, unsigned char d[32]);

#endif /* KAPD_CONF_READ_H */
