/*
 * kap_gen.h -- configuration generations.
 *
 * A generation is one complete, checked configuration: module confs,
 * flattened chains, the listener set, the domain allowlist.  It is built
 * whole and made current only on success.  Connections hold a reference
 * to the generation they began in; a retired generation is finalised
 * (module fini, pool destroyed) when its last reference goes.
 */
#ifndef KAP_GEN_H
#define KAP_GEN_H

#include <stdint.h>

struct kap_gen;
struct kap_pool;
struct kap_module;

/* The current generation.  Borrowed: take a reference to keep it. */
struct kap_gen *kap_gen_current(void);
/* Reference counting.  Every kap_gen_ref() needs one kap_gen_unref(). */
void kap_gen_ref(struct kap_gen *gen);
void kap_gen_unref(struct kap_gen *gen);
/* Monotonic id, 1 for the first generation. */
uint64_t kap_gen_id(const struct kap_gen *gen);
/* The generation's pool: lives exactly as long as the generation. */
struct kap_pool *kap_gen_pool(struct kap_gen *gen);
/* Module conf by module name in gen, or NULL if not loaded.  Borrowed. */
void *kap_gen_module_conf(struct kap_gen *gen, const char *name);
/* Non-zero while gen is the current generation. */
int kap_gen_is_current(const struct kap_gen *gen);

#endif /* KAP_GEN_H */
