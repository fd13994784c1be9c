/*
 * test_mcp_reg.c -- an MCP server registration as kap mcp add writes it,
 * read for the mcp module (modules/mcp/kap_mcp_reg.c): upstream and
 * headers, ${VAR} expansion from a lookup, every value a secret (injected
 * with kap_secret_header(), redacted, the variable alone too), and every
 * refusal (missing file, open mode, not JSON, duplicate member, wrong
 * name, bad upstream, headers kapd sets, non-string values, unset or
 * malformed references) with a message that carries no value.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_secret.h>
#include "kapd.h"
#include "kapd_secret.h"
#include "kap_mcp_reg.h"
#include "tap.h"
#include "tap_tmpdir.h"

#define LIT "lit-secret-0123456789"
#define TOK "tok-from-env-98765"

static char dir[256];

static const char *
env(const char *var, void *data)
{
    (void)data;
    if (strcmp(var, "GH_TOKEN") == 0)
        return TOK;
    if (strcmp(var, "EMPTY") == 0)
        return "";
    return NULL;
}

static void
put(const char *name, const char *text, mode_t mode)
{
    char p[512];
    int fd;

    snprintf(p, sizeof(p), "%s/%s.json", dir, name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
            diag("short write");
        close(fd);
    }
    chmod(p, mode);
}

/* load name: refused with a message holding want and no secret text */
static void
refused(const char *name, const char *text, const char *want,
        const char *what)
{
    struct kap_pool *p = kap_pool_create();
    struct kap_mcp_reg reg;
    struct kap_err e = { 0 };

    if (text != NULL)
        put(name, text, 0600);
    if (!ok(kap_mcp_reg_load(p, dir, name, env, NULL, &reg, &e) == KAP_ERROR
            && e.set && strstr(e.msg, want) != NULL
            && strstr(e.msg, "lit-secret") == NULL
            && strstr(e.msg, "tok-from") == NULL && reg.upstream == NULL,
            "refused: %s", what))
        diag("message: %s", e.set ? e.msg : "(none)");
    else
        diag("%s", e.msg);
    kap_pool_destroy(p);
}

int
main(void)
{
    char tmpl[] = "/tmp/kapd-test-mcp-reg-XXXXXX", out[256];
    struct kap_pool *p;
    struct kap_mcp_reg reg;
    struct kap_err e = { 0 };
    const struct kap_secret *s;
    int rc;

    if (mkdtemp(tmpl) == NULL) {
        printf("1..0 # SKIP mkdtemp: %s\n", strerror(errno));
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s", tmpl);
    chmod(dir, 0700);

    put("github", "{\n  \"name\": \"github\",\n  \"upstream\": "
        "\"https://mcp.example.test/mcp\",\n  \"headers\": {\n"
        "    \"Authorization\": \"Bearer ${GH_TOKEN}\",\n"
        "    \"X-Api-Key\": \"" LIT "\"\n  },\n"
        "  \"access_token\": \"\"\n}\n", 0600);
    p = kap_pool_create();
    rc = kap_mcp_reg_load(p, dir, "github", env, NULL, &reg, &e);
    if (!ok(rc == KAP_OK, "a registration loads"))
        diag("%s", e.msg);
    is_str(reg.upstream ? reg.upstream : "", "https://mcp.example.test/mcp",
           "upstream");
    is_int((int)reg.nheaders, 2, "two headers");
    if (reg.nheaders == 2) {
        is_str(reg.headers[0].name, "Authorization", "first header name");
        ok(kap_secret_header(reg.headers[0].value, "Authorization: {}", out,
                             sizeof(out), &e) == KAP_OK
           && strcmp(out, "Authorization: Bearer " TOK) == 0,
           "a reference expanded and injected");
        kap_secret_wipe(out, sizeof(out));
        ok(kap_secret_header(reg.headers[1].value, "X-Api-Key: {}", out,
                             sizeof(out), &e) == KAP_OK
           && strcmp(out, "X-Api-Key: " LIT) == 0, "a literal injected");
        kap_secret_wipe(out, sizeof(out));
    }
    kap_secret_redact("a " LIT " b Bearer " TOK " c " TOK, out, sizeof(out));
    is_str(out, "a [REDACTED] b [REDACTED] c [REDACTED]",
           "the literal, the whole value and the variable alone are redacted");
    is_int((int)kapd_secret_nlive, 3, "three secrets live");
    kap_pool_destroy(p);
    is_int((int)kapd_secret_nlive, 0, "the pool gone: none live");

    put("plain", "{\"upstream\": \"http://127.0.0.1:9/mcp\"}", 0600);
    p = kap_pool_create();
    ok(kap_mcp_reg_load(p, dir, "plain", env, NULL, &reg, &e) == KAP_OK
       && reg.nheaders == 0 && strcmp(reg.name, "plain") == 0,
       "no headers: loads");
    kap_pool_destroy(p);

    refused("missing", NULL, "kap mcp add missing URL", "not registered");
    put("open", "{\"upstream\": \"http://x.test/\"}", 0644);
    refused("open", NULL, "chmod 600", "a 0644 file");
    refused("../x", NULL, "not one kap mcp add registers", "a name with ../");
    refused("notjson", "{\"upstream\": ", "not valid JSON", "truncated JSON");
    refused("dup", "{\"upstream\": \"http://a.test/\", \"upstream\": "
            "\"http://b.test/\"}", "not valid JSON", "a duplicate member");
    refused("arr", "[1]", "not a JSON object", "an array");
    refused("wrongname", "{\"name\": \"other\", \"upstream\": \"http://a/\"}",
            "\"name\" is not wrongname", "a name that is not the file's");
    refused("ftp", "{\"upstream\": \"ftp://a.test/\"}", "http:// or https://",
            "an ftp upstream");
    refused("noup", "{\"headers\": {}}", "http:// or https://",
            "no upstream");
    refused("host", "{\"upstream\": \"http://a/\", \"headers\": {\"Host\": "
            "\"" LIT "\"}}", "kapd sets itself", "a Host header");
    refused("sess", "{\"upstream\": \"http://a/\", \"headers\": "
            "{\"mcp-session-id\": \"x\"}}", "kapd sets itself",
            "Mcp-Session-Id");
    refused("nonstr", "{\"upstream\": \"http://a/\", \"headers\": {\"X\": 1}}",
            "not a string", "a number as a value");
    refused("hdrarr", "{\"upstream\": \"http://a/\", \"headers\": [\"X\"]}",
            "not an object", "headers as an array");
    refused("unset", "{\"upstream\": \"http://a/\", \"headers\": {\"X\": "
            "\"${NOPE}\"}}", "NOPE is not set", "an unset variable");
    refused("emptyvar", "{\"upstream\": \"http://a/\", \"headers\": {\"X\": "
            "\"${EMPTY}\"}}", "EMPTY is not set", "an empty variable");
    refused("badref", "{\"upstream\": \"http://a/\", \"headers\": {\"X\": "
            "\"a ${1X} b\"}}", "variable name", "a reference to 1X");
    refused("openref", "{\"upstream\": \"http://a/\", \"headers\": {\"X\": "
            "\"" LIT " ${GH_TOKEN\"}}", "variable name", "a \"${\" not closed");
    refused("emptyval", "{\"upstream\": \"http://a/\", \"headers\": {\"X\": "
            "\"\"}}", "is empty", "an empty value");
    is_int((int)kapd_secret_nlive, 0, "no secret left live by a refusal");

    p = kap_pool_create();
    ok(kap_mcp_reg_value(p, "conf header", "$HOME and $ {x}", env, NULL, &s,
                         &e) == KAP_OK, "a '$' without '{' is literal");
    kap_pool_destroy(p);
    ok(kap_mcp_reg_header_ok("X-Api-Key") && !kap_mcp_reg_header_ok("Proxy-Authorization")
       && !kap_mcp_reg_header_ok("Bad Name") && !kap_mcp_reg_header_ok(""),
       "header names: a token, not one kapd sets");

    rc = done_testing();
    tap_rmtree(dir);
    return rc;
}
