/*
 * kap_shim_jsonc_cmd.c -- the `kap-shim jsonc` role: what kap init needs
 * of a devcontainer.json, from sh.
 *
 *   kap-shim jsonc check FILE                  exit 0 when FILE is valid
 *                                              (and names no member twice)
 *   kap-shim jsonc type FILE [KEY...]          object, array, string, ...
 *   kap-shim jsonc get FILE [KEY...]           a string's text, else the
 *                                              value as compact JSON
 *   kap-shim jsonc keys FILE [KEY...]          the member names of the
 *                                              object there, one a line
 *   kap-shim jsonc set FILE KEY... JSON        the document with KEY set
 *   kap-shim jsonc remove FILE KEY...          ... with KEY removed
 *   kap-shim jsonc append FILE KEY... JSON     ... with JSON appended to
 *                                              the array at KEY
 *   kap-shim jsonc quote STRING                STRING as a JSON string
 *
 * KEY... is a path from the top-level object: member names, or decimal
 * indexes into arrays.  FILE "-" is standard input.  Edits write the
 * whole new document to standard output (the caller replaces the file).
 * Exit status: 0 done; 1 the path does not exist (type, get, remove)
 * or leads through something that is not an object (set, append); 2
 * usage, I/O or an invalid document, reported as FILE:LINE:COL: why.
 */
#define _GNU_SOURCE
#include "kap_shim_jsonc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kap_shim_say.h"

#define JSONC_MAX_FILE (4u << 20)    /* a devcontainer.json is small */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kap_shim_vsay("kap-shim jsonc", fmt, ap);
    va_end(ap);
}

static int
usage(int rc)
{
    static const char u[] =
"usage: kap-shim jsonc check FILE\n"
"       kap-shim jsonc type|get|keys FILE [KEY...]\n"
"       kap-shim jsonc set|append FILE KEY... JSON\n"
"       kap-shim jsonc remove FILE KEY...\n"
"       kap-shim jsonc quote STRING\n"
"Read and edit a JSON-with-comments file (devcontainer.json) keeping its\n"
"comments and layout; edits print the new document.  FILE - is stdin.\n";
    int fd = rc == 0 ? 1 : 2;
    ssize_t w = write(fd, u, sizeof u - 1);
    (void)w;
    return rc;
}

static int
write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            say("cannot write the output: %s", strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* FILE (or stdin for "-") into a new buffer */
static char *
slurp(const char *path, size_t *len)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (b == NULL) {
            say("%s: out of memory", path);
            break;
        }
        if (n == cap) {
            if (cap >= JSONC_MAX_FILE) {
                say("%s: larger than %u bytes", path, JSONC_MAX_FILE);
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (nb == NULL) {
                say("%s: out of memory", path);
                break;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            say("%s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) {
            if (fd != 0)
                close(fd);
            *len = n;
            return b;
        }
        n += (size_t)r;
    }
    free(b);
    if (fd != 0)
        close(fd);
    return NULL;
}

static void
report(const char *path, const struct kap_jsonc *d, size_t at, const char *why)
{
    unsigned l, c;
    kap_jsonc_linecol(d->text, d->len, at, &l, &c);
    say("%s:%u:%u: %s", path, l, c, why);
}

/* an array index: decimal digits only */
static int
index_of(const char *s)
{
    long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 1000000)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return (int)v;
}

/*
 * Follow keys[0..nk) from the root: the node, -1 when absent, -2 when the
 * document is unusable (reported).
 */
static int
walk(const char *path, const struct kap_jsonc *d, char **keys, int nk)
{
    int n = 0;
    for (int k = 0; k < nk && n >= 0; k++) {
        int t = d->nodes[n].type;
        if (t == KAP_JSONC_ARRAY && index_of(keys[k]) >= 0) {
            n = kap_jsonc_element(d, n, index_of(keys[k]));
        } else if (t == KAP_JSONC_OBJECT) {
            size_t dup = 0;
            n = kap_jsonc_member(d, n, keys[k], strlen(keys[k]), &dup);
            if (n == -2) {
                report(path, d, dup, "the member name occurs twice");
                return -2;
            }
        } else {
            n = -1;
        }
    }
    return n;
}

#define JSONC_MAX_MEMBERS 10000      /* per object, for the duplicate check */

/* check: no object names a member twice (which one would count?) */
static int
no_duplicates(const char *path, const struct kap_jsonc *d)
{
    for (int o = 0; o < d->n; o++) {
        if (d->nodes[o].type != KAP_JSONC_OBJECT)
            continue;
        if (d->nodes[o].count > JSONC_MAX_MEMBERS) {
            report(path, d, d->nodes[o].start, "an object with too many members");
            return -1;
        }
        for (int m = d->nodes[o].first; m >= 0; m = d->nodes[m].next) {
            char *k;
            size_t kl, dup = 0;
            if (kap_jsonc_decode(d->text, d->nodes[m].key_start, d->nodes[m].key_end,
                                 &k, &kl) < 0) {
                report(path, d, d->nodes[m].key_start, "a member name with a NUL (\\u0000)");
                return -1;
            }
            int r = kap_jsonc_member(d, o, k, kl, &dup);
            free(k);
            if (r == -2) {
                report(path, d, dup, "the member name occurs twice");
                return -1;
            }
        }
    }
    return 0;
}

static const char *
type_name(int t)
{
    static const char *const names[] = { "?", "object", "array", "string",
                                         "number", "true", "false", "null" };
    return t >= 1 && t <= 7 ? names[t] : "?";
}

static int
emit(char *p, size_t n, int newline)
{
    int rc = write_all(p, n) < 0 || (newline && write_all("\n", 1) < 0) ? 2 : 0;
    free(p);
    return rc;
}

/* keys: the member names of object n, one a line; a name holding a
   control character cannot be a line of its own and is refused */
static int
member_names(const char *path, const struct kap_jsonc *d, int n)
{
    if (d->nodes[n].type != KAP_JSONC_OBJECT) {
        say("%s: not an object", path);
        return 1;
    }
    for (int m = d->nodes[n].first; m >= 0; m = d->nodes[m].next) {
        char *k;
        size_t kl;
        if (kap_jsonc_decode(d->text, d->nodes[m].key_start, d->nodes[m].key_end,
                             &k, &kl) < 0) {
            report(path, d, d->nodes[m].key_start, "a member name with a NUL (\\u0000)");
            return 2;
        }
        for (size_t i = 0; i < kl; i++) {
            if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f) {
                free(k);
                report(path, d, d->nodes[m].key_start,
                       "a member name with a control character");
                return 2;
            }
        }
        if (emit(k, kl, 1) != 0)
            return 2;
    }
    return 0;
}

static int
query(const char *op, const char *path, const struct kap_jsonc *d,
      char **keys, int nk)
{
    int n = walk(path, d, keys, nk);
    if (n < 0)
        return n == -2 ? 2 : 1;
    const struct kap_jsonc_node *nd = &d->nodes[n];
    if (strcmp(op, "type") == 0) {
        const char *s = type_name(nd->type);
        return write_all(s, strlen(s)) < 0 || write_all("\n", 1) < 0 ? 2 : 0;
    }
    if (strcmp(op, "keys") == 0)
        return member_names(path, d, n);
    char *o;
    size_t ol;
    if (nd->type == KAP_JSONC_STRING) {
        if (kap_jsonc_decode(d->text, nd->start, nd->end, &o, &ol) < 0) {
            report(path, d, nd->start, "a string with a NUL character (\\u0000)");
            return 2;
        }
    } else if (kap_jsonc_compact(d, n, &o, &ol) < 0) {
        say("out of memory");
        return 2;
    }
    return emit(o, ol, 1);
}

static int
edit(const char *op, const char *path, const struct kap_jsonc *d,
     char **keys, int nk, const char *value)
{
    const char *why = NULL;
    char *o = NULL;
    size_t ol = 0;
    int rc;
    if (strcmp(op, "set") == 0) {
        int obj = walk(path, d, keys, nk - 1);
        if (obj == -2)
            return 2;
        if (obj < 0 || d->nodes[obj].type != KAP_JSONC_OBJECT) {
            say("%s: no object to set %s in", path, keys[nk - 1]);
            return 1;
        }
        rc = kap_jsonc_set(d, obj, keys[nk - 1], strlen(keys[nk - 1]), value,
                           strlen(value), &o, &ol, &why);
    } else {
        int n = walk(path, d, keys, nk);
        if (n == -2)
            return 2;
        if (n < 0)
            return 1;
        if (strcmp(op, "append") == 0) {
            if (d->nodes[n].type != KAP_JSONC_ARRAY) {
                say("%s: %s is not an array", path, keys[nk - 1]);
                return 1;
            }
            rc = kap_jsonc_append(d, n, value, strlen(value), &o, &ol, &why);
        } else {
            if (d->nodes[n].key_start == KAP_JSONC_NONE) {
                say("%s: %s is not a member of an object", path, keys[nk - 1]);
                return 1;
            }
            rc = kap_jsonc_remove(d, n, &o, &ol, &why);
        }
    }
    if (rc < 0) {
        say("%s: %s: %s", path, op, why);
        return 2;
    }
    return emit(o, ol, 0);
}

int
kap_shim_jsonc(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
        return usage(0);
    if (argc < 3)
        return usage(2);
    const char *op = argv[1];
    if (strcmp(op, "quote") == 0) {
        char *o;
        size_t ol;
        if (argc != 3 || kap_jsonc_quote(argv[2], strlen(argv[2]), &o, &ol) < 0)
            return usage(2);
        return emit(o, ol, 1);
    }
    int is_query = strcmp(op, "type") == 0 || strcmp(op, "get") == 0
                   || strcmp(op, "keys") == 0;
    int takes_value = strcmp(op, "set") == 0 || strcmp(op, "append") == 0;
    int nk = argc - 3 - takes_value;
    if (strcmp(op, "check") == 0 ? argc != 3
        : is_query ? 0 : (!takes_value && strcmp(op, "remove") != 0) || nk < 1)
        return usage(2);

    const char *path = argv[2];
    size_t len;
    char *text = slurp(path, &len);
    if (text == NULL)
        return 2;
    struct kap_jsonc d;
    int rc;
    if (kap_jsonc_parse(&d, text, len) < 0) {
        report(path, &d, d.error_at, d.error);
        rc = 2;
    } else if (d.nodes[0].type != KAP_JSONC_OBJECT) {
        report(path, &d, d.nodes[0].start, "the top-level value is not an object");
        rc = 2;
    } else if (strcmp(op, "check") == 0) {
        rc = no_duplicates(path, &d) < 0 ? 2 : 0;
    } else if (is_query) {
        rc = query(op, path, &d, argv + 3, nk);
    } else {
        rc = edit(op, path, &d, argv + 3, nk, takes_value ? argv[argc - 1] : NULL);
    }
    kap_jsonc_free(&d);
    free(text);
    return rc;
}
