/*
 * kap_mcp_http.c -- kap-mcp's HTTP: one blocking libcurl exchange, no
 * redirects, http(s) only, a size cap, the few answer headers the flow
 * reads (kap_mcp_cli.h).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include <kapd/kap_core.h>
#include <kapd/kap_module.h>
#include <kapd/kap_secret.h>

#include "kap_mcp_cli.h"

void
mcpc_say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void
mcpc_warn(const char *fmt, ...)
{
    va_list ap;

    fputs("kap: mcp: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static size_t
on_body(char *p, size_t sz, size_t n, void *data)
{
    struct mcpc_http *r = data;

    if (r->body.len + sz * n > MCPC_HTTP_MAX
        || kap_buf_append(&r->body, p, sz * n) != KAP_OK)
        return 0;
    return sz * n;
}

/* the value of header line p[0..n) when its name is name: heap copy */
static void
pick(char **dst, const char *name, const char *p, size_t n)
{
    size_t k = strlen(name), e;

    if (*dst != NULL || n <= k + 1 || strncasecmp(p, name, k) != 0
        || p[k] != ':')
        return;
    p += k + 1;
    n -= k + 1;
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    for (e = n; e > 0 && (p[e - 1] == '\r' || p[e - 1] == '\n'
                          || p[e - 1] == ' '); e--)
        ;
    *dst = strndup(p, e);
}

static size_t
on_header(char *p, size_t sz, size_t n, void *data)
{
    struct mcpc_http *r = data;

    n *= sz;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new head (after a 100 Continue): forget the last one's */
        free(r->www_auth);
        free(r->session);
        free(r->ctype);
        r->www_auth = r->session = r->ctype = NULL;
    }
    pick(&r->www_auth, "WWW-Authenticate", p, n);
    pick(&r->session, "Mcp-Session-Id", p, n);
    pick(&r->ctype, "Content-Type", p, n);
    return n;
}

void
mcpc_http_free(struct mcpc_http *r)
{
    if (r->body.data != NULL)
        kap_secret_wipe(r->body.data, r->body.cap);
    kap_buf_free(&r->body);
    free(r->www_auth);
    free(r->session);
    free(r->ctype);
    memset(r, 0, sizeof(*r));
}

int
mcpc_http(const char *method, const char *url, const char *const *hdrs,
          const char *body, struct mcpc_http *r, struct kap_err *err)
{
    struct curl_slist *sl = NULL, *t;
    const char *ca = getenv("KAP_MCP_CA_FILE");
    CURL *c;
    CURLcode cc;
    int rc = KAP_ERROR;

    memset(r, 0, sizeof(*r));
    if ((c = curl_easy_init()) == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (; hdrs != NULL && *hdrs != NULL; hdrs++) {
        if ((t = curl_slist_append(sl, *hdrs)) == NULL)
            goto out;
        sl = t;
    }
    if (body != NULL && (t = curl_slist_append(sl, "Expect:")) != NULL)
        sl = t;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)MCPC_HTTP_TIMEOUT);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kap-mcp/" PACKAGE_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    /* kap-mcp talks to the server the user named, not through a proxy
       the environment may name (the agent's) */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    if (ca != NULL && ca[0] != '\0')
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        kap_err_set(err, "%s: %s", method, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    rc = KAP_OK;
out:
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
    if (rc != KAP_OK)
        mcpc_http_free(r);
    return rc;
}

int
mcpc_http_post_form(const char *url, const char *form, struct kap_buf *body,
                    long *status, void *data, struct kap_err *err)
{
    static const char *const h[] = {
        "Content-Type: application/x-www-form-urlencoded",
        "Accept: application/json", NULL
    };
    struct mcpc_http r;

    (void)data;
    if (mcpc_http("POST", url, h, form, &r, err) != KAP_OK) {
        kap_err_set(err, "the token endpoint did not answer");
        return KAP_ERROR;
    }
    *status = r.status;
    if (kap_buf_append(body, r.body.data ? r.body.data : "", r.body.len)
        != KAP_OK) {
        mcpc_http_free(&r);
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    mcpc_http_free(&r);
    return KAP_OK;
}
