/*
 * kapd_gen.c -- what a generation is: the process state that points at
 * the current one, a new generation with the core's defaults, references
 * and retirement, and which modules have been started.
 *
 * A generation (struct kap_gen, kapd.h) is one complete configuration:
 * its pool (everything parsed, the listeners, the modules' per-generation
 * state), the modules it loaded, in load order, with their confs, and the
 * policy and audit chains per request kind.  kapd_cycle.c builds one and
 * activates it; from then on the current generation holds a reference
 * and every connection and pending request holds one of its own.  When
 * a newer one becomes current the old one loses the process's reference
 * and retires when its last user lets go: fini() of its modules in
 * reverse load order, its pool destroyed (cleanups may still run module
 * code), then its module references dropped.  A module's startup() runs
 * once, before the first generation that loads it is activated, and its
 * shutdown() when the last generation that loaded it is gone, or at exit.
 *
 * This file calls no other part of the core but pools and module
 * references, so chains, listeners and the reload cycle depend on it and
 * it on none of them.
 */
#include "config.h"

#include <string.h>

#include "kapd.h"

struct kapd_state kapd;

static void module_stopped(const struct kap_module *m);

/* ---- process-wide accessors ------------------------------------------- */

struct ev_loop *
kap_loop(void)
{
    if (kapd.loop == NULL)
        kapd.loop = ev_default_loop(0);
    return kapd.loop;
}

double
kap_now(void)
{
    return ev_now(kap_loop());
}

int
kap_shutting_down(void)
{
    return kapd.shutting_down;
}

/* ---- a new generation --------------------------------------------------- */

struct kap_gen *
kapd_gen_new(void)
{
    struct kap_pool *pool = kap_pool_create();
    struct kap_gen *gen;

    if (pool == NULL || (gen = kap_palloc(pool, sizeof(*gen))) == NULL
        || (gen->mods = kap_palloc(pool, KAPD_MAX_MODULES
                                         * sizeof(*gen->mods))) == NULL) {
        kap_pool_destroy(pool);
        return NULL;
    }
    gen->magic = KAPD_GEN_MAGIC;
    gen->id = kapd.next_gen_id + 1;
    gen->refs = 1;
    gen->pool = pool;
    gen->core.policy_default = KAP_DENY;
    gen->core.policy_observe = kapd.observe;
    gen->core.shutdown_grace = KAPD_DEFAULT_GRACE;
    gen->core.reload_check = KAPD_DEFAULT_RELOAD_CHECK;
    gen->core.log_level = KAP_LOG_NOTICE;
    gen->core.unix_mode = -1;
    return gen;
}

/* ---- generations: references and retirement --------------------------- */

struct kap_gen *
kap_gen_current(void)
{
    return kapd.current;
}

void
kap_gen_ref(struct kap_gen *gen)
{
    if (gen != NULL)
        gen->refs++;
}

static void
gen_destroy(struct kap_gen *gen)
{
    size_t i;
    int was_live = 0;

    for (i = gen->nmods; i-- > 0;) {
        struct kapd_gen_module *gm = &gen->mods[i];
        if (gm->inited) {
            was_live = 1;
            if (gm->mod->fini != NULL)
                gm->mod->fini(gen, gm->conf);
            gm->inited = 0;
        }
    }
    if (was_live)
        KAP_LOG(KAP_LOG_INFO, NULL, 0, "generation %llu retired",
                (unsigned long long) gen->id);
    gen->retired = 1;
    gen->magic = 0;
    /* the pool's cleanups (listeners, module state) may still use the
       modules' code: destroy it before the modules are released */
    {
        struct kapd_modref *refs[KAPD_MAX_MODULES];
        size_t n = gen->nmods < KAPD_MAX_MODULES ? gen->nmods
                                                 : KAPD_MAX_MODULES;
        for (i = 0; i < n; i++)
            refs[i] = gen->mods[i].ref;
        kap_pool_destroy(gen->pool);
        for (i = n; i-- > 0;) {
            /* the last user of a module: shut it down before its code goes */
            if (refs[i]->refs == 1)
                module_stopped(refs[i]->mod);
            kapd_module_unref(refs[i]);
        }
    }
}

void
kap_gen_unref(struct kap_gen *gen)
{
    if (gen == NULL)
        return;
    if (--gen->refs > 0)
        return;
    if (gen->current) {
        KAP_LOG(KAP_LOG_ALERT, NULL, 0,
                "generation %llu: last reference dropped while current",
                (unsigned long long) gen->id);
        if (kapd.current == gen)
            kapd.current = NULL;
    }
    gen_destroy(gen);
}

uint64_t
kap_gen_id(const struct kap_gen *gen)
{
    return gen ? gen->id : 0;
}

struct kap_pool *
kap_gen_pool(struct kap_gen *gen)
{
    return gen ? gen->pool : NULL;
}

struct kapd_gen_module *
kapd_gen_find_module(struct kap_gen *gen, const char *name)
{
    size_t i;

    if (gen == NULL || name == NULL)
        return NULL;
    for (i = 0; i < gen->nmods; i++)
        if (strcmp(gen->mods[i].mod->name, name) == 0)
            return &gen->mods[i];
    return NULL;
}

void *
kap_gen_module_conf(struct kap_gen *gen, const char *name)
{
    struct kapd_gen_module *gm = kapd_gen_find_module(gen, name);

    return gm ? gm->conf : NULL;
}

int
kap_gen_is_current(const struct kap_gen *gen)
{
    return gen != NULL && gen->current && kapd.current == gen;
}

/* ---- started modules ---------------------------------------------------- */

static const struct kap_module *started[KAPD_MAX_MODULES * 4];
static size_t nstarted;

static int
is_started(const struct kap_module *m)
{
    size_t i;

    for (i = 0; i < nstarted; i++)
        if (started[i] == m)
            return 1;
    return 0;
}

/* m is released for good: shutdown() if it was started */
static void
module_stopped(const struct kap_module *m)
{
    size_t i;

    for (i = 0; i < nstarted; i++) {
        if (started[i] != m)
            continue;
        memmove(&started[i], &started[i + 1],
                (nstarted - i - 1) * sizeof(started[0]));
        nstarted--;
        if (m->shutdown != NULL)
            m->shutdown();
        return;
    }
}

int
kapd_gen_startup(struct kap_gen *gen, struct kap_err *err)
{
    size_t i;

    for (i = 0; i < gen->nmods; i++) {
        const struct kap_module *m = gen->mods[i].mod;
        if (is_started(m))
            continue;
        if (nstarted >= sizeof(started) / sizeof(started[0])) {
            kap_err_set(err, "too many modules started");
            return KAP_ERROR;
        }
        if (m->startup != NULL && m->startup() != KAP_OK) {
            kap_err_set(err, "module \"%s\" failed to start up", m->name);
            return KAP_ERROR;
        }
        started[nstarted++] = m;
    }
    return KAP_OK;
}

/* ---- the switch: current, previous retired ------------------------------ */

void
kapd_gen_make_current(struct kap_gen *gen)
{
    struct kap_gen *prev = kapd.current;

    gen->current = 1;
    kapd.current = gen;
    if (gen->id > kapd.next_gen_id)
        kapd.next_gen_id = gen->id;
    if (prev != NULL) {
        prev->current = 0;
        kap_gen_unref(prev);
    }
}

void
kapd_gen_exit(void)
{
    struct kapd_modref *refs[KAPD_MAX_MODULES];
    struct kap_gen *gen = kapd.current;
    size_t i, n = 0;

    if (gen != NULL) {
        for (i = 0; i < gen->nmods && n < KAPD_MAX_MODULES; i++) {
            refs[n] = gen->mods[i].ref;
            refs[n]->refs++;        /* keep the code until shutdown() ran */
            n++;
        }
        kapd.current = NULL;
        gen->current = 0;
        kap_gen_unref(gen);
    }
    for (i = nstarted; i-- > 0;)
        if (started[i]->shutdown != NULL) {
            size_t j;
            int loaded = 0;
            for (j = 0; j < n; j++)
                if (refs[j]->mod == started[i])
                    loaded = 1;
            if (loaded)
                started[i]->shutdown();
        }
    nstarted = 0;
    for (i = n; i-- > 0;)
        kapd_module_unref(refs[i]);
}
