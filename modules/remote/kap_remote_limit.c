/*
 * kap_remote_limit.c -- rate limits of the remote module: fixed windows
 * per (kind, key), in a small table that lives as long as the process
 * (a reload does not reset them).
 *
 * KR_LIMIT_PAIR counts every pairing attempt under the key "*": however
 * many addresses a LAN attacker uses, only pair_limit guesses per window
 * reach the secret.  KR_LIMIT_AUTH counts failed authentications per
 * client address.  When the table is full, the entry whose window
 * started first is reused: an attacker can at worst reset old entries,
 * never lift the global pairing limit.
 */
#include <stdio.h>
#include <string.h>

#include "kap_remote.h"

#define KR_LIMIT_SLOTS 256
#define KR_KEY_MAX     64

struct kr_slot {
    int      used, kind;
    char     key[KR_KEY_MAX];
    double   start;
    unsigned count;
};

static struct kr_slot kr_slots[KR_LIMIT_SLOTS];

static struct kr_slot *
kr_find(int kind, const char *key, int make, double window)
{
    struct kr_slot *s, *old = NULL;
    double now = kap_now();
    size_t i;

    for (i = 0; i < KR_LIMIT_SLOTS; i++) {
        s = &kr_slots[i];
        if (s->used && s->kind == kind && strcmp(s->key, key) == 0) {
            if (now - s->start >= window) {
                s->start = now;
                s->count = 0;
            }
            return s;
        }
    }
    if (!make)
        return NULL;
    for (i = 0; i < KR_LIMIT_SLOTS; i++) {
        s = &kr_slots[i];
        if (!s->used || now - s->start >= window) {
            old = s;
            break;
        }
        if (old == NULL || s->start < old->start)
            old = s;
    }
    memset(old, 0, sizeof(*old));
    old->used = 1;
    old->kind = kind;
    snprintf(old->key, sizeof(old->key), "%s", key);
    old->start = now;
    return old;
}

int
kr_limit_over(int kind, const char *key, long long max, double window,
              double *retry)
{
    struct kr_slot *s = kr_find(kind, key, 0, window);

    if (s == NULL || (long long) s->count < max)
        return 0;
    *retry = s->start + window - kap_now();
    if (*retry < 1)
        *retry = 1;
    return 1;
}

void
kr_limit_hit(int kind, const char *key, double window)
{
    struct kr_slot *s = kr_find(kind, key, 1, window);

    if (s != NULL)
        s->count++;
}
