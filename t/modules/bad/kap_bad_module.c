/*
 * kap_bad_module.c -- deliberately mis-versioned modules for the ABI
 * tests (never installed).  Built once per variant with one of
 * -DBAD_MAGIC, -DBAD_MAJOR, -DBAD_MINOR, -DBAD_SIZE, -DBAD_SIG, -DBAD_NAME;
 * each exports kap_bad_<variant>_module with exactly one identity field
 * wrong.  kapd must refuse each before calling any of its code (the
 * callbacks abort to prove it).  -DBAD_KIND is a sound module that
 * defines the request kind "th_custom", which test_hooks defines too:
 * loaded together, the configuration is refused (t/005-chain.t).
 */
#include <stdlib.h>

#include <kapd/kap_core.h>

#define BAD_MAGIC_V  KAP_MODULE_MAGIC
#define BAD_MAJOR_V  KAP_ABI_MAJOR
#define BAD_MINOR_V  KAP_ABI_MINOR
#define BAD_SIZE_V   sizeof(struct kap_module)
#define BAD_SIG_V    KAP_BUILD_SIG

#if defined(BAD_MAGIC)
#define BAD_SYM      kap_bad_magic_module
#define BAD_NAME_V   "bad_magic"
#undef  BAD_MAGIC_V
#define BAD_MAGIC_V  0xdeadbeefU
#elif defined(BAD_MAJOR)
#define BAD_SYM      kap_bad_major_module
#define BAD_NAME_V   "bad_major"
#undef  BAD_MAJOR_V
#define BAD_MAJOR_V  (KAP_ABI_MAJOR + 1)
#elif defined(BAD_MINOR)
#define BAD_SYM      kap_bad_minor_module
#define BAD_NAME_V   "bad_minor"
#undef  BAD_MINOR_V
#define BAD_MINOR_V  (KAP_ABI_MINOR + 1)
#elif defined(BAD_SIZE)
#define BAD_SYM      kap_bad_size_module
#define BAD_NAME_V   "bad_size"
#undef  BAD_SIZE_V
#define BAD_SIZE_V   64
#elif defined(BAD_SIG)
#define BAD_SYM      kap_bad_sig_module
#define BAD_NAME_V   "bad_sig"
#undef  BAD_SIG_V
#define BAD_SIG_V    "p4,t4,o4,ev3,lc1,dbg0"
#elif defined(BAD_NAME)
#define BAD_SYM      kap_bad_name_module
#define BAD_NAME_V   "not_bad_name"
#elif defined(BAD_KIND)
#define BAD_SYM      kap_bad_kind_module
#define BAD_NAME_V   "bad_kind"
static const char *const bad_kinds[] = { "th_custom", NULL };
#else
#error "define one of BAD_MAGIC BAD_MAJOR BAD_MINOR BAD_SIZE BAD_SIG BAD_NAME"
#endif

#ifndef BAD_KIND
static void *
bad_conf_create(struct kap_gen *gen)
{
    (void) gen;
    abort();    /* must never run: the ABI check comes first */
}
#endif

extern const struct kap_module BAD_SYM;
const struct kap_module BAD_SYM = {
    .magic = BAD_MAGIC_V,
    .abi_major = BAD_MAJOR_V,
    .abi_minor = BAD_MINOR_V,
    .size = BAD_SIZE_V,
    .build_sig = BAD_SIG_V,
    .name = BAD_NAME_V,
    .version = "0.0",
#ifdef BAD_KIND
    .kinds = bad_kinds,
#else
    .conf_create = bad_conf_create,
#endif
};
