/*
 * kapd_gen_dump.c -- kapd -T: a generation as text on stdout: the files
 * it read, the effective kapd settings, its listeners with the clients
 * each accepts, its modules in load order and its policy and audit
 * chains per request kind.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kapd.h"
#include "kapd_conf_read.h"

static void
print_names(const char *label, const char *const *v)
{
    size_t i;

    printf("#   %s:", label);
    if (v == NULL)
        printf(" (default)");
    for (i = 0; v != NULL && v[i]; i++)
        printf(" %s", v[i]);
    printf("\n");
}

void
kapd_gen_dump(struct kap_gen *gen)
{
    struct kapd_conf_file *f;
    size_t i, k;

    for (f = gen->files; f != NULL; f = f->next) {
        size_t len;
        char *buf;
        if (strncmp(f->path, "glob:", 5) == 0) {
            printf("# include pattern %s\n\n", f->path + 5);
            continue;
        }
        printf("# configuration file %s:\n", f->path);
        buf = kapd_conf_read_file(f->path, &len, KAPD_CONF_MAX_BYTES);
        if (buf != NULL) {
            fwrite(buf, 1, len, stdout);
            if (len > 0 && buf[len - 1] != '\n')
                fputc('\n', stdout);
            free(buf);
        }
        printf("\n");
    }

    printf("# effective kapd settings (generation %llu):\n",
           (unsigned long long) gen->id);
    print_names("load", gen->core.load);
    print_names("module_path", gen->core.module_path);
    printf("#   policy.default: %s\n",
           gen->core.policy_default == KAP_ALLOW ? "allow" : "deny");
    printf("#   policy.observe: %s\n",
           gen->core.policy_observe ? "true" : "false");
    printf("#   error_log: %s\n",
           gen->core.error_log ? gen->core.error_log : "stderr");
    printf("#   log_level: %s\n", kapd_log_level_name(gen->core.log_level));
    printf("#   pid_file: %s\n",
           gen->core.pid_file ? gen->core.pid_file : "(none)");
    printf("#   shutdown_grace: %g\n", gen->core.shutdown_grace);
    printf("#   reload_check: %g\n", gen->core.reload_check);
    printf("#   user: %s\n", gen->core.user ? gen->core.user : "(none)");

    kapd_listen_dump(gen);

    printf("# modules, in load order:\n");
    for (i = 0; i < gen->nmods; i++) {
        const struct kapd_gen_module *gm = &gen->mods[i];
        printf("#   %s %s (%s)\n", gm->mod->name,
               gm->mod->version ? gm->mod->version : "-",
               gm->ref->builtin ? "built in" : gm->ref->path);
    }

    printf("# chains, per request kind:\n");
    for (k = 0; k < KAPD_NKINDS; k++) {
        int ki = kapd_kind_index(1u << k);
        const struct kapd_chain *c;
        if (ki < 0)
            continue;                   /* no kind has this bit */
        c = &gen->policy[ki];
        printf("#   policy %s:", kap_req_kind_name(1u << k));
        for (i = 0; i < c->n; i++)
            printf(" %s", c->v[i].gm->mod->name);
        printf("%s default %s\n", c->n ? " ->" : "",
               gen->core.policy_default == KAP_ALLOW ? "allow" : "deny");
    }
    for (k = 0; k < KAPD_NKINDS; k++) {
        int ki = kapd_kind_index(1u << k);
        const struct kapd_chain *c;
        if (ki < 0)
            continue;
        c = &gen->audit[ki];
        printf("#   audit %s:", kap_req_kind_name(1u << k));
        for (i = 0; i < c->n; i++)
            printf(" %s", c->v[i].gm->mod->name);
        printf("%s\n", c->n ? "" : " (none)");
    }
    fflush(stdout);
}
