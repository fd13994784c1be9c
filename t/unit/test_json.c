/*
 * test_json.c -- kap_json (kap_json.h): every refusal of the strict
 * parser with its message and offset, next to what cJSON alone does with
 * the same bytes; the accepted forms and how they print; look-up; pool
 * ownership; the streaming writer.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include "kapd_json_int.h"
#include "tap.h"

/* Does cJSON, used naively (cJSON_ParseWithLength), accept these bytes? */
static int
cjson_accepts(const char *s, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(s, n);
    int    ok_ = j != NULL;

    cJSON_Delete(j);
    return ok_;
}

/*
 * s (n bytes) must be refused with a message containing want; cj says
 * whether cJSON alone accepts it (1), refuses it (0), or either (-1).
 */
static void
rej_lim(const char *name, const char *s, size_t n,
        const struct kap_json_limits *lim, const char *want, int cj)
{
    struct kap_err   err;
    struct kap_json *j;

    memset(&err, 0, sizeof(err));
    j = kap_json_parse(s, n, lim, &err);
    if (!ok(j == NULL && err.set && strstr(err.msg, want) != NULL,
            "refused: %s", name))
        diag("got %s, message \"%s\", want \"%s\"",
             j ? "a tree" : "NULL", err.msg, want);
    kap_json_free(j);
    if (cj >= 0) {
        int c = cjson_accepts(s, n);
        if (!ok(c == cj, "  cJSON alone %s it", cj ? "accepts" : "refuses"))
            diag("cJSON %s", c ? "accepts" : "refuses");
    }
}

#define REJ(name, lit, want, cj) \
    rej_lim(name, lit, sizeof(lit) - 1, NULL, want, cj)

/* s must be accepted and print as want (NULL: as s itself). */
static void
acc_lim(const char *name, const char *s, size_t n,
        const struct kap_json_limits *lim, const char *want)
{
    struct kap_err   err;
    struct kap_buf   b = { 0 }, b2 = { 0 };
    struct kap_json *j, *j2;

    memset(&err, 0, sizeof(err));
    j = kap_json_parse(s, n, lim, &err);
    if (!ok(j != NULL, "accepted: %s", name)) {
        diag("message \"%s\"", err.msg);
        return;
    }
    ok(kap_json_print(j, &b) == KAP_OK, "  printed");
    is_str(b.data, want ? want : s, "  prints as expected");
    /* what was printed parses again and prints the same */
    j2 = b.data ? kap_json_parse(b.data, b.len, lim, &err) : NULL;
    ok(j2 != NULL && kap_json_print(j2, &b2) == KAP_OK
       && b2.data && strcmp(b.data, b2.data) == 0, "  printing is stable");
    kap_json_free(j2);
    kap_json_free(j);
    kap_buf_free(&b);
    kap_buf_free(&b2);
}

#define ACC(name, lit, want) acc_lim(name, lit, sizeof(lit) - 1, NULL, want)

static void
refusals(void)
{
    /* duplicate keys, after unescaping, at any depth */
    REJ("duplicate key", "{\"a\":1,\"a\":2}",
        "duplicate key \"a\" at offset 7", 1);
    REJ("duplicate key, escaped", "{\"a\":1,\"\\u0061\":2}",
        "duplicate key \"a\" at offset 7", 1);
    REJ("duplicate key, nested", "{\"x\":{\"b\":1,\"b\":2}}",
        "duplicate key \"b\" at offset 12", 1);
    REJ("duplicate key in an array's object", "[{},{\"id\":1,\"id\":2}]",
        "duplicate key \"id\" at offset 12", 1);
    REJ("duplicate JSON-RPC id",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"id\":2}",
        "duplicate key \"id\" at offset 37", 1);
    REJ("third of three equal keys reported at the second",
        "{\"k\":1,\"z\":0,\"k\":2,\"k\":3}", "\"k\" at offset 13", 1);
    REJ("duplicate key after a nested object",
        "{\"a\":{\"a\":1},\"a\":2}", "\"a\" at offset 13", 1);
    REJ("inner duplicate comes first",
        "{\"o\":{\"p\":1,\"p\":2},\"o\":3}", "\"p\" at offset 12", 1);
    REJ("duplicate empty key", "{\"\":1,\"\":2}", "\"\" at offset 6", 1);
    REJ("duplicate key with a quote, message escaped",
        "{\"a\\\"\":1,\"a\\\"\":2}", "\"a\\x22\" at offset 9", 1);

    /* UTF-8 */
    REJ("invalid UTF-8 byte", "\"\xff\"", "invalid UTF-8 at offset 1", 1);
    REJ("overlong /", "\"\xc0\xaf\"", "invalid UTF-8 at offset 1", 1);
    REJ("overlong 3-byte", "\"\xe0\x80\xaf\"", "invalid UTF-8", 1);
    REJ("encoded surrogate", "\"\xed\xa0\x80\"", "invalid UTF-8", 1);
    REJ("above U+10FFFF", "\"\xf4\x90\x80\x80\"", "invalid UTF-8", 1);
    REJ("truncated sequence", "\"ab\xe2\x82\"", "invalid UTF-8 at offset 3",
        1);
    REJ("stray continuation byte", "\"\x80\"", "invalid UTF-8", 1);
    REJ("invalid UTF-8 in a key", "{\"\xfe\":1}", "invalid UTF-8 at offset 2",
        1);

    /* surrogate escapes: cJSON refuses these too; checked here anyway */
    REJ("lone high surrogate", "\"\\ud800\"",
        "lone surrogate \\ud800 at offset 1", 0);
    REJ("high surrogate then a letter", "\"\\ud800x\"", "lone surrogate", 0);
    REJ("high surrogate then BMP escape", "\"\\ud800\\u0041\"",
        "lone surrogate", 0);
    REJ("two high surrogates", "\"\\ud800\\ud800\"", "lone surrogate", 0);
    REJ("lone low surrogate", "\"a\\udc00\"",
        "lone surrogate \\udc00 at offset 2", 0);
    REJ("surrogate at the end", "\"\\udbff", "lone surrogate", 0);

    /* NUL */
    REJ("raw NUL in a string", "\"a\0b\"", "NUL byte at offset 2", 1);
    REJ("escaped NUL (cJSON truncates the string)", "\"a\\u0000b\"",
        "escaped NUL (\\u0000) at offset 2", 1);
    REJ("escaped NUL in a key", "{\"a\\u0000\":1}", "escaped NUL", 1);
    REJ("NUL after the value", "{}\0", "NUL byte at offset 2", 1);
    REJ("NUL and garbage after the value", "{}\0{\"x\":1}",
        "NUL byte at offset 2", 1);
    REJ("NUL before the value", "\0{}", "NUL byte at offset 0", 1);
    REJ("NUL between members", "[1,\0 2]", "NUL byte at offset 3", 1);

    /* trailing bytes, byte order mark, whitespace */
    REJ("trailing garbage", "{} x", "trailing bytes at offset 3", 1);
    REJ("extra bracket", "[1]]", "trailing bytes at offset 3", 1);
    REJ("two values", "{}{}", "trailing bytes at offset 2", 1);
    REJ("two numbers", "1 2", "trailing bytes at offset 2", 1);
    REJ("byte order mark", "\xef\xbb\xbf{}", "unexpected byte 0xef", 1);
    REJ("form feed as whitespace", "[\f1]", "unexpected byte 0x0c", 1);
    REJ("vertical tab as whitespace", "[1\v]", "unexpected byte 0x0b", 1);
    REJ("raw tab in a string", "\"a\tb\"",
        "unescaped control character 0x09 at offset 2", 1);
    REJ("raw newline in a string", "\"a\nb\"", "control character 0x0a", 1);
    REJ("raw 0x1f in a key", "{\"\x1f\":1}", "control character 0x1f", 1);

    /* numbers: grammar */
    REJ("leading zero", "[01]", "invalid number at offset 1", 1);
    REJ("trailing dot", "[1.]", "invalid number at offset 1", 1);
    REJ("leading plus", "[+1]", "unexpected byte 0x2b", 0);
    REJ("leading dot", "[.5]", "unexpected byte 0x2e", 0);
    REJ("bare minus", "[-]", "invalid number", 0);
    REJ("exponent without digits", "[1e]", "invalid number", -1);
    REJ("exponent sign only", "[1e+]", "invalid number", -1);
    REJ("hex", "[0x10]", "unexpected byte 0x78", 0);
    REJ("minus zero zero", "-00", "invalid number at offset 0", 1);
    REJ("NaN", "[NaN]", "unexpected byte 0x4e", 0);
    REJ("Infinity", "[Infinity]", "unexpected byte 0x49", 0);
    {
        char   big[160];
        size_t k;
        memcpy(big, "[0.", 3);
        for (k = 3; k < 3 + 120; k++)
            big[k] = '0';
        memcpy(big + k, "1]", 2);
        rej_lim("number over 100 bytes", big, k + 2, NULL,
                "number longer than 100 bytes at offset 1", -1);
        /* 100 bytes pass (cJSON reads all of them) */
        memcpy(big, "[0.", 3);
        for (k = 3; k < 100; k++)
            big[k] = '0';
        memcpy(big + k, "1]", 3);
        acc_lim("number of 100 bytes", big, k + 2, NULL, big);
    }

    /* numbers: exactness (strict mode) */
    REJ("2^53+1 (cJSON reads 2^53 and prints 9.00719925474099e+15)",
        "{\"id\":9007199254740993}", "integer beyond +-2^53 at offset 6", 1);
    REJ("-(2^53+1)", "[-9007199254740993]", "integer beyond +-2^53", 1);
    REJ("20-digit integer", "[12345678901234567890]", "integer beyond", 1);
    REJ("16 significant digits", "[0.1234567890123456]",
        "more than 15 significant digits at offset 1", 1);
    REJ("16 significant digits with exponent", "[1.234567890123456e10]",
        "more than 15 significant digits", 1);
    REJ("overflow (cJSON prints null)", "[1e999]",
        "number too large for a double at offset 1", 1);
    REJ("overflow, negative", "[-1.5e400]", "too large", 1);
    REJ("underflow to 0 (cJSON prints 0)", "[1e-999]",
        "number too small for a double at offset 1", 1);
    REJ("subnormal", "[4e-320]", "number too small", 1);
    {
        struct kap_json_limits loose = { .flags = KAP_JSON_LOOSE_NUMBERS };
        rej_lim("overflow even when loose", "[1e999]", 7, &loose,
                "too large", -1);
    }

    /* grammar */
    REJ("trailing comma in array", "[1,]", "unexpected byte 0x5d", 0);
    REJ("trailing comma in object", "{\"a\":1,}",
        "unexpected byte 0x7d (a member name) at offset 7", 0);
    REJ("single quotes", "{'a':1}", "unexpected byte 0x27", 0);
    REJ("bare key", "{a:1}", "unexpected byte 0x61", 0);
    REJ("number key", "{1:2}", "a member name", 0);
    REJ("missing colon", "{\"a\" 1}", "':'", 0);
    REJ("missing comma", "[1 2]", "',' or ']'", 0);
    REJ("missing comma in object", "{\"a\":1 \"b\":2}", "',' or '}'", 0);
    REJ("truncated literal", "[tru]", "invalid literal at offset 1", 0);
    REJ("literal with suffix", "[truex]", "invalid literal", 0);
    REJ("capital literal", "[True]", "unexpected byte 0x54", 0);
    REJ("unterminated string", "\"abc", "unterminated string at offset 0", 0);
    REJ("unterminated array", "[1,2", "unexpected end of input at offset 4",
        0);
    REJ("unterminated object", "{\"a\":", "unexpected end of input", 0);
    REJ("invalid escape", "\"\\x41\"", "invalid escape at offset 1", 0);
    REJ("short \\u escape", "\"\\u12\"", "invalid escape", 0);
    REJ("non-hex \\u escape", "\"\\u12g4\"", "invalid escape", 1);
    REJ("escape at the end", "\"\\", "unterminated string", 0);
    REJ("comment", "[1]//x", "trailing bytes", 1);
    REJ("empty input", "", "empty input", 0);
    REJ("only whitespace", "  \n", "unexpected end of input at offset 3", 0);
}

static void
limits(void)
{
    char   deep[300];
    size_t k;
    struct kap_json_limits lim;

    /* default depth 64: 64 nested arrays pass, 65 do not */
    for (k = 0; k < 64; k++) {
        deep[k] = '[';
        deep[128 + k] = ']';
    }
    memmove(deep + 64, deep + 128, 64);
    deep[128] = '\0';
    acc_lim("64 nested arrays", deep, 128, NULL, deep);
    for (k = 0; k < 65; k++) {
        deep[k] = '[';
        deep[65 + k] = ']';
    }
    rej_lim("65 nested arrays", deep, 130, NULL,
            "nesting deeper than 64 at offset 64", 1);
    memset(&lim, 0, sizeof(lim));
    lim.max_depth = 2;
    rej_lim("depth limit 2", "{\"a\":[{}]}", 10, &lim,
            "nesting deeper than 2 at offset 6", -1);
    acc_lim("depth 2 within limit 2", "{\"a\":[]}", 8, &lim, NULL);
    lim.max_depth = 100000;          /* capped at 1000 */
    for (k = 0; k < 150; k++) {
        deep[k] = '{';
        deep[150 + k] = '}';
    }
    rej_lim("objects need keys", deep, 300, &lim, "a member name", -1);

    memset(&lim, 0, sizeof(lim));
    lim.max_bytes = 10;
    rej_lim("input over max_bytes", "[1,2,3,4,5]", 11, &lim,
            "input of 11 bytes is over the limit of 10", -1);
    acc_lim("input at max_bytes", "[1,2,3,45]", 10, &lim, NULL);

    memset(&lim, 0, sizeof(lim));
    lim.max_members = 2;
    rej_lim("array over max_members", "[1,2,3]", 7, &lim,
            "more than 2 members in the array opened at offset 0 at offset 5",
            -1);
    rej_lim("object over max_members", "{\"a\":1,\"b\":2,\"c\":3}", 19, &lim,
            "more than 2 members in the object opened at offset 0", -1);
    rej_lim("nested array over max_members", "[[1,2,3]]", 9, &lim,
            "array opened at offset 1", -1);
    acc_lim("max_members reached, not passed", "[{\"a\":1,\"b\":2},[1,2]]",
            21, &lim, NULL);
}

static void
accepted(void)
{
    struct kap_json_limits loose = { .flags = KAP_JSON_LOOSE_NUMBERS };

    ACC("JSON-RPC request, whitespace dropped",
        " {\"jsonrpc\": \"2.0\", \"id\": 7,\n \"method\": \"tools/call\","
        " \"params\": {\"name\": \"x\", \"arguments\": {}}}\r\n",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
        "\"params\":{\"name\":\"x\",\"arguments\":{}}}");
    ACC("scalars: number", "1", NULL);
    ACC("scalars: string", "\"s\"", NULL);
    ACC("scalars: true", " true ", "true");
    ACC("scalars: null", "null", NULL);
    ACC("empty containers", "[{},[],{\"\":[]}]", NULL);
    ACC("same key in different objects", "{\"a\":{\"x\":1},\"b\":{\"x\":2}}",
        NULL);
    ACC("keys differing in case only", "{\"id\":1,\"ID\":2,\"Id\":3}", NULL);
    ACC("unicode escapes become UTF-8",
        "\"\\u00e9\\ud83d\\ude00\\uFFFF\"",
        "\"\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbf\"");
    ACC("raw UTF-8 kept", "\"\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf\"", NULL);
    ACC("escapes re-escaped",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001F\\u007f\"",
        "\"\\\"\\\\/\\u0008\\u000c\\n\\r\\t\\u0001\\u001f\\u007f\"");
    ACC("U+2028 escaped on output", "\"\xe2\x80\xa8\"", "\"\\u2028\"");
    ACC("numbers keep their checked text",
        "[9007199254740992,-9007199254740992,1.0,1e2,-0,0.1,1.5E+3,"
        "123456789012345,0.000001,1.23456789012345e300,0e999,"
        "2.2250738585073e-308,100000000000000000000000.0]", NULL);
    {
        static const char l[] =
            "[9007199254740993,0.1234567890123456789,1.0,1e-999]";
        acc_lim("loose numbers are printed from the double", l,
                sizeof(l) - 1, &loose,
                "[9007199254740992,0.12345678901234568,1,0]");
    }
}

static void
lookup(void)
{
    static const char doc[] =
        "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"tools/call\","
        "\"params\":{\"n\":-3,\"f\":1.5,\"t\":true,\"z\":null,"
        "\"a\":[1,\"two\",false]},\"big\":9007199254740992}";
    struct kap_err          err = { 0 };
    struct kap_json        *j = kap_json_parse(doc, sizeof(doc) - 1, NULL,
                                               &err);
    const struct kap_json  *p, *a, *c;
    int64_t                 i = 0;
    double                  d = 0;
    size_t                  n;

    ok(j != NULL, "lookup document parsed (%s)", err.msg);
    is_int(kap_json_type(j), KAP_JSON_OBJECT, "root is an object");
    is_str(kap_json_get_string(j, "jsonrpc"), "2.0", "get_string");
    is_str(kap_json_get_string(j, "id"), NULL, "get_string of a number");
    is_str(kap_json_get_string(j, "JSONRPC"), NULL,
           "look-up is case-sensitive");
    ok(kap_json_get(j, "Method") == NULL, "no Method");
    ok(kap_json_int(kap_json_get(j, "id"), &i) == KAP_OK && i == 42, "int 42");
    ok(kap_json_int(kap_json_get(j, "big"), &i) == KAP_OK
       && i == 9007199254740992LL, "int 2^53");
    ok(kap_json_int(kap_json_get(j, "method"), &i) == KAP_ERROR,
       "int of a string is -1");
    p = kap_json_get(j, "params");
    is_int(kap_json_type(p), KAP_JSON_OBJECT, "params is an object");
    ok(kap_json_int(kap_json_get(p, "n"), &i) == KAP_OK && i == -3, "int -3");
    ok(kap_json_int(kap_json_get(p, "f"), &i) == KAP_ERROR,
       "int of 1.5 is -1");
    ok(kap_json_number(kap_json_get(p, "f"), &d) == KAP_OK && d == 1.5,
       "number 1.5");
    ok(kap_json_number(kap_json_get(p, "t"), &d) == KAP_ERROR,
       "number of true is -1");
    is_int(kap_json_bool(kap_json_get(p, "t")), 1, "bool true");
    is_int(kap_json_bool(kap_json_get(p, "z")), -1, "bool of null is -1");
    is_int(kap_json_type(kap_json_get(p, "z")), KAP_JSON_NULL, "null");
    a = kap_json_get(p, "a");
    is_int(kap_json_size(a), 3, "array of 3");
    is_int(kap_json_size(p), 5, "object of 5");
    is_int(kap_json_size(kap_json_get(p, "n")), 0, "size of a number");
    ok(kap_json_get(a, "0") == NULL, "get on an array is NULL");
    c = kap_json_child(a);
    ok(kap_json_key(c) == NULL, "array elements have no key");
    c = kap_json_next(c);
    is_str(kap_json_string(c), "two", "second element");
    is_int(kap_json_bool(kap_json_next(c)), 0, "third element false");
    ok(kap_json_next(kap_json_next(c)) == NULL, "end of array");
    for (n = 0, c = kap_json_child(j); c != NULL; c = kap_json_next(c))
        n++;
    is_int(n, 5, "iterated 5 members");
    is_str(kap_json_key(kap_json_child(j)), "jsonrpc", "first key");
    ok(kap_json_key(j) == NULL, "root has no key");
    /* NULL everywhere */
    is_int(kap_json_type(NULL), KAP_JSON_INVALID, "type(NULL)");
    ok(kap_json_get(NULL, "x") == NULL && kap_json_get(j, NULL) == NULL,
       "get with NULL");
    ok(kap_json_string(NULL) == NULL && kap_json_bool(NULL) == -1
       && kap_json_int(NULL, &i) == KAP_ERROR && kap_json_size(NULL) == 0
       && kap_json_child(NULL) == NULL && kap_json_next(NULL) == NULL,
       "getters of NULL");
    {
        struct kap_buf b = { 0 };
        ok(kap_json_print(NULL, &b) == KAP_ERROR, "print(NULL) fails");
        kap_buf_free(&b);
    }
    kap_json_free(j);
    kap_json_free(NULL);
}

static void
pool(void)
{
    struct kap_pool *p = kap_pool_create();
    struct kap_err   err = { 0 };
    struct kap_json *j;

    j = kap_json_parse_pool(p, "{\"a\":[1,2]}", 11, NULL, &err);
    ok(j != NULL && kap_json_size(kap_json_get(j, "a")) == 2,
       "tree owned by a pool");
    j = kap_json_parse_pool(p, "{\"a\":1,\"a\":1}", 13, NULL, &err);
    ok(j == NULL && strstr(err.msg, "duplicate"), "pool parse refuses too");
    ok(kap_json_parse_pool(NULL, "1", 1, NULL, NULL) == NULL, "no pool");
    kap_pool_destroy(p);             /* frees the tree (valgrind: no leak) */
    ok(1, "pool destroyed with its tree");
}

static void
writer(void)
{
    struct kap_json_writer w;
    struct kap_buf         b = { 0 };
    struct kap_json       *t;
    int                    k;

    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "s");
    kap_json_w_str(&w, "q\"b\\\n\x01\x7f\xc3\xa9\xff\xe2\x80\xa9");
    kap_json_w_key(&w, "n");
    kap_json_w_int(&w, -5);
    kap_json_w_key(&w, "u");
    kap_json_w_uint(&w, 18446744073709551615ULL);
    kap_json_w_key(&w, "d");
    kap_json_w_double(&w, 0.1);
    kap_json_w_key(&w, "i");
    kap_json_w_double(&w, 3.0);
    kap_json_w_key(&w, "e");
    kap_json_w_double(&w, 1e300);
    kap_json_w_key(&w, "nan");
    kap_json_w_double(&w, NAN);
    kap_json_w_key(&w, "b");
    kap_json_w_bool(&w, 1);
    kap_json_w_key(&w, "z");
    kap_json_w_str(&w, NULL);
    kap_json_w_key(&w, "a");
    kap_json_w_arr_begin(&w);
    kap_json_w_int(&w, 1);
    kap_json_w_strn(&w, "a\0b", 3);
    kap_json_w_arr_begin(&w);
    kap_json_w_arr_end(&w);
    kap_json_w_obj_begin(&w);
    kap_json_w_obj_end(&w);
    kap_json_w_arr_end(&w);
    t = kap_json_parse("{\"x\":[1.50,\"y\"]}", 16, NULL, NULL);
    kap_json_w_key(&w, "tree");
    kap_json_w_tree(&w, t);
    kap_json_free(t);
    kap_json_w_obj_end(&w);
    is_int(kap_json_w_finish(&w), KAP_OK, "writer finished");
    is_str(b.data,
           "{\"s\":\"q\\\"b\\\\\\n\\u0001\\u007f\xc3\xa9\\u00ff\\u2029\","
           "\"n\":-5,\"u\":18446744073709551615,\"d\":0.1,\"i\":3,"
           "\"e\":1e+300,\"nan\":null,\"b\":true,\"z\":null,"
           "\"a\":[1,\"a\\u0000b\",[],{}],\"tree\":{\"x\":[1.50,\"y\"]}}",
           "writer output");
    {
        struct kap_json_limits loose = { .flags = KAP_JSON_LOOSE_NUMBERS };
        char *nonul = strstr(b.data, "\"a\\u0000b\"");
        /* \u0000 is refused by the parser: blank it out and re-read */
        if (nonul)
            memcpy(nonul, "\"a______b\"", 10);
        t = kap_json_parse(b.data, b.len, &loose, NULL);
        ok(t != NULL, "writer output parses (loose: u is beyond 2^53)");
        is_str(kap_json_get_string(t, "s"),
               "q\"b\\\n\x01\x7f\xc3\xa9\xc3\xbf\xe2\x80\xa9",
               "string read back (0xff became U+00FF)");
        kap_json_free(t);
    }
    kap_buf_reset(&b);

    /* misuse is remembered and reported by finish */
    kap_json_w_init(&w, &b);
    kap_json_w_key(&w, "k");
    is_int(kap_json_w_finish(&w), KAP_ERROR, "key outside an object");
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_int(&w, 1);
    kap_json_w_obj_end(&w);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "value without a key");
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "k");
    kap_json_w_obj_end(&w);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "key without a value");
    kap_json_w_init(&w, &b);
    kap_json_w_arr_begin(&w);
    kap_json_w_obj_end(&w);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "mismatched end");
    kap_json_w_init(&w, &b);
    kap_json_w_arr_begin(&w);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "unclosed array");
    kap_json_w_init(&w, &b);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "nothing written");
    kap_json_w_init(&w, &b);
    kap_json_w_int(&w, 1);
    kap_json_w_int(&w, 2);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "two top-level values");
    kap_json_w_init(&w, &b);
    for (k = 0; k < KAP_JSON_WRITER_DEPTH + 1; k++)
        kap_json_w_arr_begin(&w);
    for (k = 0; k < KAP_JSON_WRITER_DEPTH + 1; k++)
        kap_json_w_arr_end(&w);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "nesting beyond the writer");
    kap_json_w_init(&w, &b);
    kap_json_w_tree(&w, NULL);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "NULL tree");
    kap_json_w_init(&w, NULL);
    kap_json_w_null(&w);
    is_int(kap_json_w_finish(&w), KAP_ERROR, "no buffer");
    kap_buf_reset(&b);
    kap_json_w_init(&w, &b);
    kap_json_w_double(&w, -0.0);
    is_int(kap_json_w_finish(&w), KAP_OK, "-0 written");
    is_str(b.data, "-0", "-0 keeps its sign");
    kap_buf_free(&b);
}

/* Doubles are written with the fewest digits that read back: from 1 to
 * 17 digits, either side of the 15 where the search for normal numbers
 * starts, and subnormals (whose search starts at 1). */
static void
shortest_doubles(void)
{
    static const struct {
        double      v;
        const char *text;
    } c[] = {
        { 0.5, "0.5" },
        { 0.1, "0.1" },
        { 1234.5678, "1234.5678" },
        { 0.001953125, "0.001953125" },
        { 123456789012.345, "123456789012.345" },
        { 1.0 / 3.0, "0.3333333333333333" },
        { 0.1 + 0.2, "0.30000000000000004" },
        { 2.5e-7, "2.5e-07" },
        { 1e300, "1e+300" },
        { 1.7976931348623157e308, "1.7976931348623157e+308" },
        { 2.2250738585072014e-308, "2.2250738585072014e-308" },
        { 5e-324, "5e-324" },
        { -1.5e-310, "-1.5e-310" },
        { 6.2773490077855e-311, "6.2773490077855e-311" },
    };
    struct kap_buf         b = { 0 };
    struct kap_json_writer w;
    char                   what[64];

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        kap_buf_reset(&b);
        kap_json_w_init(&w, &b);
        kap_json_w_double(&w, c[i].v);
        snprintf(what, sizeof(what), "double %s", c[i].text);
        is_int(kap_json_w_finish(&w), KAP_OK, what);
        is_str(b.data, c[i].text, what);
        is_int(strtod(b.data, NULL) == c[i].v, 1, "reads back");
    }
    kap_buf_free(&b);
}

/* the fewest %g digits that read back: the writer's text by definition */
static void
ref_double(double v, char *out, size_t n)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* The fixed-point fast path (durations and rates: up to six decimals)
 * and the integer path write exactly what the %g search writes: checked
 * on values around every edge of the fast path and a sweep of others. */
static void
doubles_match_reference(void)
{
    static const double edge[] = {
        1e-4, 1.00001e-4, 9.9999e-5, 0.000123, 0.0009765625, 0.001, 0.1,
        0.25, 0.123456, 0.1234567, 1.000001, 999999999.999999, 1e9,
        999999999.5, 123456789.123456, 1e9 - 1e-6, 4.5, 1e15 + 0.5,
        9007199254740993.0, -0.000123, -42.125, -1e-4, 3.0000005,
        0.0001234565, 2.675, 1.005, 123.4565, 7e-5, 1e-6,
    };
    struct kap_buf         b = { 0 };
    struct kap_json_writer w;
    char                   want[64];
    unsigned long long     x = 88172645463325252ULL;
    int                    bad = 0, n = 0;

    for (int k = 0; k < 200000 && bad < 5; k++) {
        double v;

        if (k < (int)(sizeof(edge) / sizeof(edge[0]))) {
            v = edge[k];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            switch (k % 4) {
            case 0:  v = (double)(x % 2000000000000ULL) / 1e6; break;
            case 1: {
                static const double p10[] = { 1, 10, 100, 1e3, 1e4, 1e5,
                                              1e6, 1e7, 1e8, 1e9, 1e10, 1e11 };
                v = (double)(x % 100000000ULL) / p10[x % 12];
                break;
            }
            case 2:  v = -(double)(x % 1000000000ULL) / 1e3; break;
            default: {
                double d;
                memcpy(&d, &x, sizeof(d));
                v = isfinite(d) ? d : 1.5;
            }
            }
        }
        kap_buf_reset(&b);
        kap_json_w_init(&w, &b);
        kap_json_w_double(&w, v);
        if (v == 0 || (fabs(v) <= 9007199254740992.0
                       && v == (double)(long long)v))
            snprintf(want, sizeof(want), "%lld", (long long)v);
        else
            ref_double(v, want, sizeof(want));
        if (kap_json_w_finish(&w) != KAP_OK || strcmp(b.data, want) != 0) {
            if (!(v == 0 && signbit(v))) {
                diag("%.17g: wrote %s, %%g search %s", v, b.data, want);
                bad++;
            }
        }
        n++;
    }
    ok(bad == 0, "%d doubles: the same text as the shortest %%g search", n);
    kap_buf_free(&b);
}

/*
 * The writer's string escaping (a word-at-a-time scan for bytes that need
 * escaping) against a byte-by-byte reference: random strings drawn mostly
 * from the bytes at the edges of each class ('"', '\\', 0x1f/0x20, 0x7e/
 * 0x7f/0x80, UTF-8 leads and continuations), every length 0..40 and some
 * long ones, at every alignment; as values and as keys.
 */
/* Length of a valid UTF-8 sequence at s, 0 if invalid: by decoding the
 * code point and checking its range (the writer checks byte ranges). */
static size_t
ref_utf8(const unsigned char *s, size_t n)
{
    size_t        len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2
                        : 0;
    unsigned long cp, min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t        i;

    if (len == 0 || len > n || s[0] >= 0xf8)
        return 0;
    cp = s[0] & (0x7f >> len);
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void
ref_escape(struct kap_buf *o, const unsigned char *s, size_t n)
{
    size_t i = 0, k;
    char   e[7];

    kap_buf_append(o, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            kap_buf_append(o, s + i, 1);
            i++;
        } else if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            kap_buf_append(o, e, 2);
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            kap_buf_append(o, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t",
                           2);
            i++;
        } else if ((k = c >= 0x80 ? ref_utf8(s + i, n - i) : 0) == 3
                   && c == 0xe2 && s[i + 1] == 0x80
                   && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
            kap_buf_append(o, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
            i += 3;
        } else if (k > 0) {
            kap_buf_append(o, s + i, k);
            i += k;
        } else {
            snprintf(e, sizeof(e), "\\u%04x", c);
            kap_buf_append(o, e, 6);
            i++;
        }
    }
    kap_buf_append(o, "\"", 1);
}

static void
writer_strings_match_reference(void)
{
    static const unsigned char edge[] = {
        'a', 'Z', '0', ' ', '~', '"', '\\', 0x00, 0x01, 0x09, 0x0a, 0x0d,
        0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7e, 0x7f, 0x80, 0x81, 0xbf, 0xc0,
        0xc2, 0xdf, 0xe0, 0xe2, 0xa8, 0xa9, 0xed, 0x9f, 0xa0, 0xf0, 0xf4,
        0x8f, 0x90, 0xfe, 0xff, 0xa2, 0x22, 0xdc, 0x5c };
    unsigned char  raw[300], key[80];
    unsigned long  seed = 12345;
    struct kap_buf got = { 0 }, want = { 0 };
    int            bad = 0, n = 0, len, off, i, as_key, as_member;

    for (len = 0; len <= 200; len += len < 40 ? 1 : 23) {
        for (off = 0; off < 8; off++) {
            for (i = 0; i < 40; i++) {
                struct kap_json_writer w;
                int                    j, plain = (i % 4) == 0;

                for (j = 0; j < len; j++) {
                    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
                    /* plain runs with a special byte here and there */
                    raw[off + j] = plain || (seed >> 33) % 5
                        ? (unsigned char)(0x20 + (seed >> 40) % 0x5f)
                        : edge[(seed >> 40) % sizeof(edge)];
                    if (raw[off + j] == '"' && plain)
                        raw[off + j] = 'q';
                    if (raw[off + j] == '\\' && plain)
                        raw[off + j] = 'b';
                }
                as_key = len < 64 && (i % 3) == 0;
                as_member = (i % 3) == 1;
                /* now and then from an empty buffer: the path that grows it */
                if (i % 7 == 0)
                    kap_buf_free(&got);
                kap_buf_reset(&got);
                kap_buf_reset(&want);
                kap_json_w_init(&w, &got);
                if (as_key) {
                    /* a key is a C string: no NUL inside */
                    for (j = 0; j < len; j++)
                        key[j] = raw[off + j] ? raw[off + j] : 'n';
                    key[len] = '\0';
                    kap_json_w_obj_begin(&w);
                    kap_json_w_key(&w, (const char *)key);
                    kap_json_w_int(&w, 1);
                    kap_json_w_obj_end(&w);
                    kap_buf_append(&want, "{", 1);
                    ref_escape(&want, key, (size_t)len);
                    kap_buf_append(&want, ":1}", 3);
                } else if (as_member) {
                    /* a member with a constant name, second or first */
                    kap_json_w_obj_begin(&w);
                    if (i % 2)
                        kapd_json_w_member_strn(&w, KAPD_JSON_KEY("a"), "1",
                                                1);
                    kapd_json_w_member_strn(&w, KAPD_JSON_KEY("k"),
                                            (const char *)raw + off,
                                            (size_t)len);
                    kap_json_w_obj_end(&w);
                    kap_buf_append(&want, i % 2 ? "{\"a\":\"1\",\"k\":"
                                                : "{\"k\":", i % 2 ? 13 : 5);
                    ref_escape(&want, raw + off, (size_t)len);
                    kap_buf_append(&want, "}", 1);
                } else {
                    kap_json_w_strn(&w, (const char *)raw + off, (size_t)len);
                    ref_escape(&want, raw + off, (size_t)len);
                }
                n++;
                if (kap_json_w_finish(&w) != KAP_OK || got.len != want.len
                    || memcmp(got.data, want.data, got.len) != 0) {
                    if (bad++ < 3)
                        diag("len %d off %d: got %s want %s", len, off,
                             got.data ? got.data : "(none)", want.data);
                }
            }
        }
    }
    ok(bad == 0, "%d strings, keys and members: escaped as the byte-by-byte "
       "reference", n);
    kap_buf_free(&got);
    kap_buf_free(&want);
}

int
main(void)
{
    doubles_match_reference();
    refusals();
    limits();
    accepted();
    lookup();
    pool();
    writer();
    writer_strings_match_reference();
    shortest_doubles();
    return done_testing();
}
