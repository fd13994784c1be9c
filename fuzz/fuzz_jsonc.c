/*
 * fuzz_jsonc.c -- libFuzzer target for kap-shim's JSONC reader and
 * editor (contrib/shim/kap_shim_jsonc.c, kap_shim_jsonc_edit.c): a
 * devcontainer.json is whatever a cloned repository ships.
 *
 * Invariants checked: a refusal has a reason and an offset within the
 * input; every node's span lies within the input and within its
 * parent's; compact output parses again; and on an object root every
 * edit kap init makes -- set a new member, replace an existing one,
 * remove one, append to an array -- gives a document that parses, in
 * which the edited member reads back as written, the other members are
 * still there, and the bytes before the first change are untouched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_shim_jsonc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_spans(const struct kap_jsonc *d)
{
    for (int i = 0; i < d->n; i++) {
        const struct kap_jsonc_node *n = &d->nodes[i];
        if (n->start >= n->end || n->end > d->len)
            abort();
        if (n->parent >= 0) {
            const struct kap_jsonc_node *p = &d->nodes[n->parent];
            if (n->start <= p->start || n->end >= p->end)
                abort();
            if ((n->key_start != KAP_JSONC_NONE) != (p->type == KAP_JSONC_OBJECT))
                abort();
        }
        if (n->comma != KAP_JSONC_NONE && (n->comma < n->end || d->text[n->comma] != ','))
            abort();
    }
}

/* the edited document parses and member key of the root reads as want */
static void
check_edit(const struct kap_jsonc *d, char *o, size_t ol,
           const char *key, const char *want, int others)
{
    struct kap_jsonc e;
    if (kap_jsonc_parse(&e, o, ol) < 0 || e.nodes[0].type != KAP_JSONC_OBJECT)
        abort();
    int m = kap_jsonc_member(&e, 0, key, strlen(key), NULL);
    if (want == NULL ? m != -1 : m < 0)
        abort();
    if (want != NULL) {
        char *c;
        size_t cl;
        if (kap_jsonc_compact(&e, m, &c, &cl) < 0)
            abort();
        if (strcmp(c, want) != 0)
            abort();
        free(c);
    }
    if (e.nodes[0].count != d->nodes[0].count + others)
        abort();
    kap_jsonc_free(&e);
    free(o);
}

static void
edits(const struct kap_jsonc *d)
{
    char *o;
    size_t ol;
    const char *why;
    /* a new member (kap_fuzz_new cannot be in the document twice) */
    if (kap_jsonc_member(d, 0, "kap_fuzz_new", 12, NULL) == -1) {
        if (kap_jsonc_set(d, 0, "kap_fuzz_new", 12, "[\"a\", 1]", 8, &o, &ol, &why) < 0)
            abort();
        check_edit(d, o, ol, "kap_fuzz_new", "[\"a\",1]", 1);
    }
    int f = d->nodes[0].first;
    if (f < 0)
        return;
    char *key;
    size_t kl;
    if (kap_jsonc_decode(d->text, d->nodes[f].key_start, d->nodes[f].key_end, &key, &kl) < 0)
        return;
    if (strlen(key) == kl && kap_jsonc_member(d, 0, key, kl, NULL) == f) {
        if (kap_jsonc_set(d, 0, key, kl, "{\"x\": true}", 11, &o, &ol, &why) < 0)
            abort();
        if (memcmp(o, d->text, d->nodes[f].start) != 0)
            abort();
        check_edit(d, o, ol, key, "{\"x\":true}", 0);
        if (kap_jsonc_remove(d, f, &o, &ol, &why) < 0)
            abort();
        check_edit(d, o, ol, key, NULL, -1);
        if (d->nodes[f].type == KAP_JSONC_ARRAY) {
            if (kap_jsonc_append(d, f, "\"z\"", 3, &o, &ol, &why) < 0)
                abort();
            if (memcmp(o, d->text, d->nodes[f].start) != 0)
                abort();
            /* reads as before, with "z" last */
            char *c0, want[64 + 8];
            size_t c0l;
            if (kap_jsonc_compact(d, f, &c0, &c0l) < 0)
                abort();
            if (c0l <= 64) {
                memcpy(want, c0, c0l - 1);
                memcpy(want + c0l - 1, c0l == 2 ? "\"z\"]" : ",\"z\"]", c0l == 2 ? 5 : 6);
                check_edit(d, o, ol, key, want, 0);
            } else {
                free(o);
            }
            free(c0);
        }
    }
    free(key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_jsonc d;
    const char *text = (const char *)data;
    if (kap_jsonc_parse(&d, text, size) < 0) {
        if (d.error == NULL || d.error[0] == '\0' || d.error_at > size || d.nodes != NULL)
            abort();
        unsigned l, c;
        kap_jsonc_linecol(text, size, d.error_at, &l, &c);
        if (l == 0 || c == 0)
            abort();
        return 0;
    }
    check_spans(&d);
    char *c;
    size_t cl;
    if (kap_jsonc_compact(&d, 0, &c, &cl) < 0)
        abort();
    struct kap_jsonc d2;
    if (kap_jsonc_parse(&d2, c, cl) < 0 || d2.n != d.n)
        abort();
    kap_jsonc_free(&d2);
    free(c);
    if (d.nodes[0].type == KAP_JSONC_OBJECT)
        edits(&d);
    kap_jsonc_free(&d);
    return 0;
}
