/*
 * test_jsonc.c -- kap-shim's JSONC reader and editor
 * (contrib/shim/kap_shim_jsonc.c, kap_shim_jsonc_edit.c): what it
 * accepts and refuses (with the place), what it reads, and that edits
 * change only the bytes they must.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "kap_shim_jsonc.h"

/* parse s; on failure, "L:C why" in err */
static int
parse(struct kap_jsonc *d, const char *s, char *err, size_t errlen)
{
    if (kap_jsonc_parse(d, s, strlen(s)) == 0)
        return 0;
    unsigned l, c;
    kap_jsonc_linecol(s, strlen(s), d->error_at, &l, &c);
    snprintf(err, errlen, "%u:%u %s", l, c, d->error);
    return -1;
}

static void
accepts(const char *s, const char *name)
{
    struct kap_jsonc d;
    char err[200] = "";
    ok(parse(&d, s, err, sizeof err) == 0, "accepts %s", name);
    if (err[0])
        diag("%s", err);
    kap_jsonc_free(&d);
}

static void
refuses(const char *s, const char *where, const char *name)
{
    struct kap_jsonc d;
    char err[200] = "";
    int rc = parse(&d, s, err, sizeof err);
    ok(rc < 0 && strncmp(err, where, strlen(where)) == 0
       && err[strlen(where)] == ' ', "refuses %s at %s (%s)", name, where, err);
    kap_jsonc_free(&d);
}

/* get: the top-level member key as a string or compact JSON */
static char *
get(const char *s, const char *key)
{
    struct kap_jsonc d;
    char err[200], *o = NULL;
    size_t ol;
    if (parse(&d, s, err, sizeof err) < 0)
        return NULL;
    int m = kap_jsonc_member(&d, 0, key, strlen(key), NULL);
    if (m >= 0) {
        if (d.nodes[m].type == KAP_JSONC_STRING)
            kap_jsonc_decode(s, d.nodes[m].start, d.nodes[m].end, &o, &ol);
        else
            kap_jsonc_compact(&d, m, &o, &ol);
    }
    kap_jsonc_free(&d);
    return o;
}

static void
is_get(const char *s, const char *key, const char *want, const char *name)
{
    char *o = get(s, key);
    is_str(o ? o : "(none)", want, name);
    free(o);
}

enum op { SET, REMOVE, APPEND };

/* apply op to the member key of the root (or the array it holds) */
static void
edit(enum op op, const char *s, const char *key, const char *v,
     const char *want, const char *name)
{
    struct kap_jsonc d;
    char err[200], *o = NULL;
    size_t ol;
    const char *why = "?";
    if (parse(&d, s, err, sizeof err) < 0) {
        ok(0, "%s: parse: %s", name, err);
        return;
    }
    int m = kap_jsonc_member(&d, 0, key, strlen(key), NULL);
    int rc = op == SET ? kap_jsonc_set(&d, 0, key, strlen(key), v, strlen(v), &o, &ol, &why)
           : op == REMOVE ? kap_jsonc_remove(&d, m, &o, &ol, &why)
           : kap_jsonc_append(&d, m, v, strlen(v), &o, &ol, &why);
    if (rc < 0) {
        ok(0, "%s: %s", name, why);
    } else {
        is_str(o, want, name);
        struct kap_jsonc d2;
        ok(parse(&d2, o, err, sizeof err) == 0, "%s: the result parses", name);
        kap_jsonc_free(&d2);
    }
    free(o);
    kap_jsonc_free(&d);
}

static const char DOC[] =
    "// a devcontainer\n"
    "{\n"
    "\t\"name\": \"demo\", // the name\n"
    "\t/* the image */\n"
    "\t\"image\": \"debian:bookworm-slim\",\n"
    "\t\"features\": {\n"
    "\t\t\"x/y:1\": {},\n"
    "\t},\n"
    "\t\"mounts\": [\n"
    "\t\t\"a\",\n"
    "\t\t\"b\"\n"
    "\t]\n"
    "}\n";

static void
test_grammar(void)
{
    accepts(DOC, "a commented devcontainer.json");
    accepts("\xef\xbb\xbf{}", "a BOM");
    accepts("{\"a\": [1, 2,], \"b\": {\"c\": -0.5e+3,},}", "trailing commas");
    accepts("{\"s\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}", "every escape");
    accepts("{\"a\": /* x */ true /* y */, \"b\": null // z\n}", "comments between tokens");
    accepts("{\"k\": \"caf\xc3\xa9\"}", "UTF-8 in a string");
    refuses("", "1:1", "empty input");
    refuses("{\n  \"a\": 1\n  \"b\": 2\n}", "3:3", "a missing comma");
    refuses("{\"a\": 1,,}", "1:9", "a double comma");
    refuses("[,]", "1:2", "a lone comma");
    refuses("{\"a\" 1}", "1:6", "a missing colon");
    refuses("{a: 1}", "1:2", "an unquoted key");
    refuses("{\"a\": 01}", "1:8", "a leading zero");
    refuses("{\"a\": 1.}", "1:9", "a bare decimal point");
    refuses("{\"a\": tru}", "1:7", "a broken literal");
    refuses("{\"a\": truex}", "1:11", "a literal run on");
    refuses("{\"a\": \"x\ny\"}", "1:9", "a newline in a string");
    refuses("{\"a\": \"\\x\"}", "1:8", "a bad escape");
    refuses("{\"a\": \"\\u12g4\"}", "1:8", "a bad \\u escape");
    refuses("{\"a\": \"abc", "1:7", "an unterminated string");
    refuses("{\"a\": 1 /* x", "1:9", "an unterminated comment");
    refuses("{\"a\": 1 / 2}", "1:9", "a lone slash");
    refuses("{\"a\": 1", "1:8", "a missing brace");
    refuses("{} {}", "1:4", "two values");
    refuses("{\"\xc3\xa9\": [1 2]}", "1:10", "a missing comma (column in characters)");
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 199);
    deep[399] = '\0';
    refuses(deep, "1:129", "nesting deeper than the limit");
}

static void
test_read(void)
{
    is_get(DOC, "name", "demo", "get a string");
    is_get(DOC, "features", "{\"x/y:1\":{}}", "get an object as compact JSON");
    is_get(DOC, "mounts", "[\"a\",\"b\"]", "get an array as compact JSON");
    is_get(DOC, "nope", "(none)", "get an absent member");
    is_get("{\"a\\u0062\": \"\\u00e9\\ud83d\\ude00\\ud800x\"}", "ab",
           "\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx", "escaped key, UTF-16 pairs, lone surrogate");
    is_get("{\"a\": \"x\\u0000y\"}", "a", "(none)", "a string with NUL is not decoded");
    is_get("{\"a\": [1, /* c */ 2, // d\n ], }", "a", "[1,2]", "compact drops comments and commas");

    struct kap_jsonc d;
    size_t dup = 0;
    kap_jsonc_parse(&d, "{\"a\": 1, \"a\": 2}", 16);
    is_int(kap_jsonc_member(&d, 0, "a", 1, &dup), -2, "a duplicate member name is reported");
    is_int((int)dup, 9, "... at the second one");
    kap_jsonc_free(&d);
    kap_jsonc_parse(&d, "{\"a\": [1, 2, 3]}", 16);
    int a = kap_jsonc_member(&d, 0, "a", 1, NULL);
    ok(kap_jsonc_element(&d, a, 2) > 0 && kap_jsonc_element(&d, a, 3) == -1,
       "array elements by index");
    kap_jsonc_free(&d);

    char *q;
    size_t ql;
    kap_jsonc_quote("a\"b\\c\n\x01\xc3\xa9", 9, &q, &ql);
    is_str(q, "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\"", "quote");
    free(q);
}

static void
test_set(void)
{
    edit(SET, DOC, "name", "\"other\"",
         "// a devcontainer\n{\n\t\"name\": \"other\", // the name\n"
         "\t/* the image */\n\t\"image\": \"debian:bookworm-slim\",\n\t\"features\": {\n"
         "\t\t\"x/y:1\": {},\n\t},\n\t\"mounts\": [\n\t\t\"a\",\n\t\t\"b\"\n\t]\n}\n",
         "set replaces a value in place");
    edit(SET, DOC, "service", "\"app\"",
         "// a devcontainer\n{\n\t\"name\": \"demo\", // the name\n"
         "\t/* the image */\n\t\"image\": \"debian:bookworm-slim\",\n\t\"features\": {\n"
         "\t\t\"x/y:1\": {},\n\t},\n\t\"mounts\": [\n\t\t\"a\",\n\t\t\"b\"\n\t],\n"
         "\t\"service\": \"app\"\n}\n",
         "set appends a member, indented like the last");
    edit(SET, "{\n  \"a\": 1, // one\n}\n", "b", "[2]",
         "{\n  \"a\": 1, // one\n  \"b\": [2],\n}\n",
         "after a trailing comma and a comment: the new one gets a comma too");
    edit(SET, "{\n  \"a\": 1 // one\n}\n", "b", "2",
         "{\n  \"a\": 1, // one\n  \"b\": 2\n}\n", "the comma goes before the comment");
    edit(SET, "{\"a\": 1}", "b", "2", "{\"a\": 1, \"b\": 2}", "inline object");
    edit(SET, "{}", "b", "2", "{\n    \"b\": 2\n}", "empty root object");
    edit(SET, "// c\n{\n}\n", "b", "2", "// c\n{\n    \"b\": 2\n}\n", "empty object over lines");
    edit(SET, "{\r\n  \"a\": 1\r\n}\r\n", "b", "2",
         "{\r\n  \"a\": 1,\r\n  \"b\": 2\r\n}\r\n", "CRLF kept");
    edit(SET, "{\"a\": 1}", "q\"k", "true", "{\"a\": 1, \"q\\\"k\": true}",
         "a key that needs quoting");

    struct kap_jsonc d;
    char *o = NULL;
    size_t ol;
    const char *why = NULL;
    kap_jsonc_parse(&d, "{\"a\": 1}", 8);
    ok(kap_jsonc_set(&d, 0, "b", 1, "{oops", 5, &o, &ol, &why) < 0 && o == NULL
       && why != NULL, "set refuses a value that is not JSON");
    kap_jsonc_free(&d);
}

static void
test_remove_append(void)
{
    edit(REMOVE, DOC, "image", "",
         "// a devcontainer\n{\n\t\"name\": \"demo\", // the name\n"
         "\t/* the image */\n\t\"features\": {\n"
         "\t\t\"x/y:1\": {},\n\t},\n\t\"mounts\": [\n\t\t\"a\",\n\t\t\"b\"\n\t]\n}\n",
         "remove a member: its line goes, the rest stays");
    edit(REMOVE, DOC, "mounts", "",
         "// a devcontainer\n{\n\t\"name\": \"demo\", // the name\n"
         "\t/* the image */\n\t\"image\": \"debian:bookworm-slim\",\n\t\"features\": {\n"
         "\t\t\"x/y:1\": {},\n\t}\n}\n",
         "remove the last member over lines and the comma before it");
    edit(REMOVE, "{\n  \"a\": 1, // about a\n  \"b\": 2\n}", "a", "",
         "{\n  \"b\": 2\n}", "remove a member with its line comment");
    edit(REMOVE, "{\"a\": 1, \"b\": 2}", "a", "", "{\"b\": 2}", "remove inline, first");
    edit(REMOVE, "{\"a\": 1, \"b\": 2}", "b", "", "{\"a\": 1}", "remove inline, last");
    edit(REMOVE, "{\"a\": 1}", "a", "", "{}", "remove the only member");
    edit(REMOVE, "{\n\"a\": 1,\n\"b\": 2\n}\n", "b", "", "{\n\"a\": 1\n}\n",
         "remove the last member of lines without indentation");
    edit(APPEND, DOC, "mounts", "\"c\"",
         "// a devcontainer\n{\n\t\"name\": \"demo\", // the name\n"
         "\t/* the image */\n\t\"image\": \"debian:bookworm-slim\",\n\t\"features\": {\n"
         "\t\t\"x/y:1\": {},\n\t},\n\t\"mounts\": [\n\t\t\"a\",\n\t\t\"b\",\n\t\t\"c\"\n\t]\n}\n",
         "append over lines");
    edit(APPEND, "{\"f\": [\"x.yml\"]}", "f", "\"y.yml\"", "{\"f\": [\"x.yml\", \"y.yml\"]}",
         "append inline");
    edit(APPEND, "{\"f\": []}", "f", "1", "{\"f\": [1]}", "append to an empty array");
}

int
main(void)
{
    test_grammar();
    test_read();
    test_set();
    test_remove_append();
    return done_testing();
}
