/*
 * kapd_curl_fetch.c -- one kap_curl transfer (kap_curl.h): check the URL,
 * resolve the host with kapd's resolver, ask a KAP_REQ_ADDR question for
 * every address, then let libcurl fetch with exactly those addresses.
 *
 * The addresses are pinned three ways, because any one of them alone
 * leaves a way round: CURLOPT_RESOLVE makes them libcurl's only answer
 * for the host (so it never resolves by itself, where a second answer
 * could differ: DNS rebinding); CURLOPT_OPENSOCKETFUNCTION refuses a
 * socket to anything else (a missed cache entry, a literal spelled in a
 * way we did not foresee); CURLOPT_PREREQFUNCTION refuses a connection
 * libcurl took from its cache when it is not to one of them (the cache is
 * shared by the generation's transfers and matched by name, not address).
 *
 * A transfer lives on the heap, not in the caller's pool, so a long-lived
 * connection that fetches often does not grow its pool by a transfer's
 * size each time; the pool gets a cleanup that releases it.
 */
#include "kapd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <kapd/kap_addr.h>
#include <kapd/kap_resolver.h>
#include <kapd/kap_upstream.h>

#include "kapd_curl_int.h"

static struct kap_curl *kc_live;

static void kc_transfer(struct kap_curl *cu);

static uint64_t
kc_conn_id(const struct kap_curl *cu)
{
    return cu->conn != NULL ? cu->conn->id : 0;
}

/* ---- release ----------------------------------------------------------- */

/* stop whatever is pending: resolver, policy question, libcurl, timer */
static void
kc_stop(struct kap_curl *cu)
{
    ev_timer_stop(kap_loop(), &cu->tm);
    kapd_curl_stream_stop(cu);
    kap_upstream_cancel(cu->up);        /* cancels a waiting question */
    cu->up = NULL;
    if (cu->in_multi) {
        kapd_curl_multi_remove(cu->gen, cu->easy);
        cu->in_multi = 0;
    }
}

static void
kc_free(struct kap_curl *cu)
{
    struct kap_gen *gen = cu->gen;

    kc_stop(cu);
    if (cu->easy != NULL)
        curl_easy_cleanup(cu->easy);
    curl_slist_free_all(cu->hdrs);
    curl_slist_free_all(cu->resolve);
    curl_url_cleanup(cu->url);
    kap_buf_free(&cu->hbuf);
    kap_buf_free(&cu->bbuf);
    free(cu->asked_by);
    free(cu->host);
    free(cu->method);
    free(cu->body);
    free(cu->ca_file);
    free(cu->unix_path);
    if (cu->prev)
        cu->prev->next = cu->next;
    else
        kc_live = cu->next;
    if (cu->next)
        cu->next->prev = cu->prev;
    cu->magic = 0;
    free(cu);
    kap_gen_unref(gen);     /* last: may retire the generation's multi */
}

/* the caller's pool is being destroyed, or kap_curl_cancel() */
static void
kc_pool_gone(void *data)
{
    struct kap_curl *cu = data;

    cu->pool = NULL;
    if (cu->in_done)
        return;             /* kc_finish() frees it when done returns */
    if (cu->in_cb) {
        /* inside libcurl's callback: the callback stops the transfer,
           and it is freed from the loop, where libcurl allows it */
        cu->gone = 1;
        ev_timer_stop(kap_loop(), &cu->tm);
        ev_timer_set(&cu->tm, 0., 0.);
        ev_timer_start(kap_loop(), &cu->tm);
        return;
    }
    kc_free(cu);
}

void
kap_curl_cancel(struct kap_curl *cu)
{
    if (cu == NULL || cu->magic != KC_MAGIC || cu->in_done
        || cu->pool == NULL || cu->gone)
        return;
    kap_pool_cleanup_run(cu->pool, kc_pool_gone, cu);
}

unsigned
kap_curl_pending(struct kap_gen *gen)
{
    const struct kap_curl *cu;
    unsigned n = 0;

    for (cu = kc_live; cu != NULL; cu = cu->next)
        if (cu->gen == gen && cu->state != KC_DONE)
            n++;
    return n;
}

/* ---- the end ----------------------------------------------------------- */

static void
kc_finish(struct kap_curl *cu, int rc, long status, const char *err)
{
    struct kap_curl_result res;

    if (cu->state == KC_DONE)
        return;
    cu->state = KC_DONE;
    kc_stop(cu);
    if (rc != KAP_OK)
        KAP_LOG(KAP_LOG_INFO, cu->asked_by, kc_conn_id(cu),
                "fetch from %s:%u %s: %s", cu->host ? cu->host : "-",
                cu->port, rc == KAP_DECLINED ? "refused" : "failed",
                err ? err : "error");
    memset(&res, 0, sizeof(res));
    res.rc = rc;
    res.status = status;
    res.headers = &cu->hbuf;
    res.body = &cu->bbuf;
    res.error = rc == KAP_OK ? NULL : (err ? err : "error");
    cu->in_done = 1;
    cu->done(cu, &res, cu->data);
    cu->in_done = 0;
    if (cu->pool != NULL)
        kap_pool_cleanup_run(cu->pool, kc_pool_gone, cu);
    else
        kc_free(cu);
}

/* a failure found while starting: reported from the loop, since done is
   never called before kap_curl_fetch() returns */
static void
kc_fail_later(struct kap_curl *cu, int rc, const char *why)
{
    if (cu->later_rc != KAP_OK)
        return;             /* the first reason wins */
    snprintf(cu->why, sizeof(cu->why), "%s", why);
    cu->later_rc = rc;
    ev_timer_stop(kap_loop(), &cu->tm);
    ev_timer_set(&cu->tm, 0., 0.);
    ev_timer_start(kap_loop(), &cu->tm);
}

static void
kc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kap_curl *cu = (struct kap_curl *)((char *)w
                                              - offsetof(struct kap_curl,
                                                         tm));
    char why[64];

    (void)loop;
    (void)revents;
    if (cu->gone) {
        kc_free(cu);
        return;
    }
    if (cu->later_rc != KAP_OK) {
        kc_finish(cu, cu->later_rc, 0, cu->why);
        return;
    }
    if (cu->state == KC_RESOLVE && cu->unix_path != NULL) {
        /* a unix socket: nothing to resolve or ask; started from the
           loop, since done is never called before kap_curl_fetch()
           returns */
        ev_timer_set(&cu->tm, cu->timeout, 0.);
        ev_timer_start(kap_loop(), &cu->tm);
        kc_transfer(cu);
        return;
    }
    snprintf(why, sizeof(why), "timeout after %g s", cu->timeout);
    kc_finish(cu, KAP_ERROR, 0, why);
}

/* ---- libcurl callbacks ------------------------------------------------- */

static size_t
kc_body_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    struct kap_curl *cu = ud;
    size_t n = size * nmemb;

    if (cu->stream)
        return kapd_curl_stream_body(cu, p, n);
    if (n > cu->max_body - cu->bbuf.len) {
        cu->over = "response body over the size limit";
        return 0;           /* != n: libcurl stops with a write error */
    }
    if (n > 0 && kap_buf_append(&cu->bbuf, p, n) != KAP_OK) {
        cu->over = "out of memory";
        return 0;
    }
    return n;
}

static size_t
kc_header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    struct kap_curl *cu = ud;
    size_t n = size * nmemb;

    if (cu->stream)
        return kapd_curl_stream_header(cu, p, n);
    return kapd_curl_header_keep(cu, p, n);
}

size_t
kapd_curl_header_keep(struct kap_curl *cu, const char *p, size_t n)
{
    /* a new status line: an interim 1xx block ends, keep the final one */
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        kap_buf_reset(&cu->hbuf);
    if (n > KAP_CURL_MAX_HEADERS - cu->hbuf.len) {
        cu->over = "response headers over the size limit";
        return 0;
    }
    if (n > 0 && kap_buf_append(&cu->hbuf, p, n) != KAP_OK) {
        cu->over = "out of memory";
        return 0;
    }
    return n;
}

/* CURLOPT_OPENSOCKETFUNCTION: a socket only to an address that was asked
   about and allowed, with the URL's port */
static curl_socket_t
kc_open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct kap_curl *cu = clientp;
    char at[KAP_ADDR_TEXT_MAX];
    int fd;

    if (cu->unix_path != NULL) {
        const struct sockaddr_un *un = (const void *)&a->addr;
        if (purpose == CURLSOCKTYPE_IPCXN && a->family == AF_UNIX
            && strncmp(un->sun_path, cu->unix_path, sizeof(un->sun_path))
               == 0)
            return socket(AF_UNIX, a->socktype | SOCK_CLOEXEC, 0);
        snprintf(cu->why, sizeof(cu->why), "a socket other than %s",
                 cu->unix_path);
        KAP_LOG(KAP_LOG_WARN, cu->asked_by, kc_conn_id(cu), "%s", cu->why);
        return CURL_SOCKET_BAD;
    }
    if (purpose != CURLSOCKTYPE_IPCXN
        || !kapd_curl_addr_allowed(&a->addr, a->addrlen, cu->port,
                                   cu->addrs, cu->naddrs)) {
        if (kap_addr_to_text(&a->addr, at, sizeof(at)) == NULL)
            snprintf(at, sizeof(at), "family %d", a->family);
        snprintf(cu->why, sizeof(cu->why),
                 "libcurl wanted to connect to %s, which is not an allowed "
                 "address of %s:%u", at, cu->host, cu->port);
        KAP_LOG(KAP_LOG_WARN, cu->asked_by, kc_conn_id(cu), "%s", cu->why);
        return CURL_SOCKET_BAD;
    }
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* CURLOPT_PREREQFUNCTION: before each request, on a new or a reused
   connection */
static int
kc_prereq_cb(void *clientp, char *primary_ip, char *local_ip,
             int primary_port, int local_port)
{
    struct kap_curl *cu = clientp;

    (void)local_ip;
    (void)local_port;
    /* a unix socket transfer: libcurl reuses a connection only with the
       same socket path (CURLOPT_UNIX_SOCKET_PATH is part of its match) */
    if (cu->unix_path != NULL)
        return CURL_PREREQFUNC_OK;
    if (primary_port > 0
        && kapd_curl_addr_text_allowed(primary_ip, (unsigned)primary_port,
                                       cu->addrs, cu->naddrs))
        return CURL_PREREQFUNC_OK;
    cu->prereq_refused = 1;
    snprintf(cu->why, sizeof(cu->why),
             "connection to %s port %d is not to an allowed address of %s:%u",
             primary_ip ? primary_ip : "-", primary_port, cu->host,
             cu->port);
    KAP_LOG(KAP_LOG_WARN, cu->asked_by, kc_conn_id(cu), "%s", cu->why);
    return CURL_PREREQFUNC_ABORT;
}

/* ---- the transfer ------------------------------------------------------ */

/* CURLOPT_RESOLVE: the allowed addresses are libcurl's only answer; a
   name with a trailing dot gets an entry without it as well, whichever
   form libcurl looks up */
static int
kc_pin(struct kap_curl *cu)
{
    char entry[2048];  /* a name, a port, 32 addresses of <= 48 */
    size_t hl = strlen(cu->host);
    int pass;

    if (cu->literal || cu->unix_path != NULL)
        return KAP_OK;      /* libcurl resolves neither */
    for (pass = 0; pass < 2; pass++) {
        char host[300];
        struct curl_slist *l;

        if (hl >= sizeof(host))
            return KAP_ERROR;
        memcpy(host, cu->host, hl + 1);
        if (pass == 1) {
            if (hl < 2 || host[hl - 1] != '.')
                break;
            host[hl - 1] = '\0';
        }
        if (kapd_curl_resolve_entry(entry, sizeof(entry), host, cu->port,
                                    cu->addrs, cu->naddrs) < 0
            || (l = curl_slist_append(cu->resolve, entry)) == NULL)
            return KAP_ERROR;
        cu->resolve = l;
    }
    return KAP_OK;
}

#define KC_SET(opt, val)                                                  \
    do {                                                                  \
        if (curl_easy_setopt(e, opt, val) != CURLE_OK) {                  \
            bad = #opt;                                                   \
            goto out;                                                     \
        }                                                                 \
    } while (0)

static void
kc_transfer(struct kap_curl *cu)
{
    const char *bad = NULL;
    CURL *e;
    double left = cu->deadline - kap_now();

    cu->state = KC_TRANSFER;
    if (kc_pin(cu) != KAP_OK) {
        kc_finish(cu, KAP_ERROR, 0, "cannot pin the allowed addresses");
        return;
    }
    if ((e = cu->easy = curl_easy_init()) == NULL) {
        kc_finish(cu, KAP_ERROR, 0, "out of memory");
        return;
    }
    if (left < 0.001)
        left = 0.001;
    /* the security settings: a failure here fails the fetch closed */
    KC_SET(CURLOPT_CURLU, cu->url);
    KC_SET(CURLOPT_PROTOCOLS_STR, "http,https");
    KC_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    KC_SET(CURLOPT_FOLLOWLOCATION, 0L);
    KC_SET(CURLOPT_MAXREDIRS, 0L);
    KC_SET(CURLOPT_PROXY, "");              /* none, not even from env */
    KC_SET(CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    KC_SET(CURLOPT_RESOLVE, cu->resolve);
    KC_SET(CURLOPT_OPENSOCKETFUNCTION, kc_open_cb);
    KC_SET(CURLOPT_OPENSOCKETDATA, cu);
    KC_SET(CURLOPT_PREREQFUNCTION, kc_prereq_cb);
    KC_SET(CURLOPT_PREREQDATA, cu);
    if (cu->unix_path != NULL)
        KC_SET(CURLOPT_UNIX_SOCKET_PATH, cu->unix_path);
    KC_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    KC_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (cu->ca_file != NULL) {
        KC_SET(CURLOPT_CAINFO, cu->ca_file);
        KC_SET(CURLOPT_CAPATH, (char *)NULL);
    }
    /* the rest */
    KC_SET(CURLOPT_NOSIGNAL, 1L);
    KC_SET(CURLOPT_PRIVATE, cu);
    KC_SET(CURLOPT_ERRORBUFFER, cu->errbuf);
    KC_SET(CURLOPT_WRITEFUNCTION, kc_body_cb);
    KC_SET(CURLOPT_WRITEDATA, cu);
    KC_SET(CURLOPT_HEADERFUNCTION, kc_header_cb);
    KC_SET(CURLOPT_HEADERDATA, cu);
    /* a stream has a deadline only to its head: cu->tm, stopped when the
       head arrives (kapd_curl_stream_header) */
    if (!cu->stream)
        KC_SET(CURLOPT_TIMEOUT_MS, (long)(left * 1000.0) + 1);
    /* a paused stream holds its connection back with TCP flow control:
       over HTTP/2 that would stall every transfer multiplexed with it */
    if (cu->stream)
        KC_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    KC_SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(cu->connect_timeout * 1000.0));
    if (cu->max_body > 0)
        KC_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cu->max_body);
    if (cu->hdrs != NULL)
        KC_SET(CURLOPT_HTTPHEADER, cu->hdrs);
    if (cu->has_body) {
        KC_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)cu->body_len);
        KC_SET(CURLOPT_POSTFIELDS, cu->body);
    }
    if (cu->method != NULL) {
        if (strcmp(cu->method, "HEAD") == 0)
            KC_SET(CURLOPT_NOBODY, 1L);
        else if (!(strcmp(cu->method, "GET") == 0 && !cu->has_body)
                 && !(strcmp(cu->method, "POST") == 0 && cu->has_body))
            KC_SET(CURLOPT_CUSTOMREQUEST, cu->method);
    }
    if (kapd_curl_multi_add(cu->gen, e) != KAP_OK) {
        kc_finish(cu, KAP_ERROR, 0, "cannot start the transfer");
        return;
    }
    cu->in_multi = 1;
    return;
out:
    {
        char why[128];
        snprintf(why, sizeof(why), "libcurl refused %s", bad);
        kc_finish(cu, KAP_ERROR, 0, why);
    }
}

/*
 * The pre-request check refused a connection libcurl took from the
 * generation's cache: it matches connections by name and port, and this
 * one was opened for another transfer whose answer for the name differed
 * (the DNS answer changed).  Nothing was sent on it, so the request is
 * made once more on a new connection, which the open-socket check limits
 * to this transfer's addresses.
 */
static int
kc_retry_fresh(struct kap_curl *cu)
{
    long fresh = -1;

    if (curl_easy_getinfo(cu->easy, CURLINFO_NUM_CONNECTS, &fresh)
        != CURLE_OK || fresh != 0)
        return KAP_ERROR;           /* a new connection: no excuse */
    KAP_LOG(KAP_LOG_INFO, cu->asked_by, kc_conn_id(cu),
            "%s: asking again on a new connection", cu->why);
    cu->retried = 1;
    if (curl_easy_setopt(cu->easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK
        || kapd_curl_multi_add(cu->gen, cu->easy) != KAP_OK)
        return KAP_ERROR;
    /* it starts from the loop: nothing has run yet */
    cu->in_multi = 1;
    cu->prereq_refused = 0;
    cu->why[0] = '\0';
    cu->errbuf[0] = '\0';
    kap_buf_reset(&cu->hbuf);
    kap_buf_reset(&cu->bbuf);
    return KAP_OK;
}

void
kapd_curl_fetch_finished(CURL *easy, CURLcode rc)
{
    struct kap_curl *cu = NULL;
    long status = 0;
    const char *err;

    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&cu) != CURLE_OK
        || cu == NULL || cu->magic != KC_MAGIC || cu->state != KC_TRANSFER)
        return;
    if (cu->gone) {             /* released inside a callback */
        kc_free(cu);
        return;
    }
    kapd_curl_multi_remove(cu->gen, easy);
    cu->in_multi = 0;
    (void)curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK) {
        kc_finish(cu, KAP_OK, status, NULL);
        return;
    }
    if (cu->prereq_refused && !cu->retried && kc_retry_fresh(cu) == KAP_OK)
        return;
    if (cu->why[0] != '\0') {       /* our pin refused: nothing was sent */
        kc_finish(cu, KAP_DECLINED, 0, cu->why);
        return;
    }
    if (cu->over != NULL)
        err = cu->over;
    else if (rc == CURLE_FILESIZE_EXCEEDED)
        err = "response body over the size limit";
    else if (cu->errbuf[0] != '\0')
        err = cu->errbuf;
    else
        err = curl_easy_strerror(rc);
    kc_finish(cu, KAP_ERROR, status, err);
}

/* ---- the address questions --------------------------------------------- */

/* every address resolved and allowed (kap_upstream_resolve): pin libcurl
   to them and start; a refused address or no address ends the fetch */
static void
kc_checked(void *data, const struct kap_upstream_result *res)
{
    struct kap_curl *cu = data;
    size_t i;

    cu->up = NULL;
    if (res->rc == KAP_DENY) {
        snprintf(cu->why, sizeof(cu->why), "address %s of %s refused: %s",
                 res->req->subject, cu->host, res->reason);
        kc_finish(cu, KAP_DECLINED, 0, cu->why);
        return;
    }
    if (res->rc != KAP_OK) {
        snprintf(cu->why, sizeof(cu->why), "%s", res->reason);
        kc_finish(cu, KAP_ERROR, 0, cu->why);
        return;
    }
    for (i = 0; i < res->naddrs && i < KAPD_CURL_MAX_ADDRS; i++)
        cu->addrs[i] = res->addrs[i];
    cu->naddrs = i;
    kc_transfer(cu);
}

/* ---- the start --------------------------------------------------------- */

/* an HTTP method token (RFC 9110 tchar), short */
static int
kc_method_ok(const char *m)
{
    size_t i;

    for (i = 0; m[i] != '\0'; i++)
        if (i >= KC_METHOD_MAX
            || !(strchr("!#$%&'*+-.^_`|~", m[i]) != NULL
                 || (m[i] >= '0' && m[i] <= '9')
                 || (m[i] >= 'A' && m[i] <= 'Z')
                 || (m[i] >= 'a' && m[i] <= 'z')))
            return 0;
    return i > 0;
}

/* the URL: http or https, an ASCII host, no zone id; libcurl parses it
   once (CURLU) and fetches exactly what was parsed (CURLOPT_CURLU) */
static int
kc_parse_url(struct kap_curl *cu, const char *url)
{
    char *scheme = NULL, *host = NULL, *port = NULL, *zone = NULL;
    struct sockaddr_storage ss;
    int rc = KAP_DECLINED;
    size_t i, hl;
    long p;

    if (strlen(url) > KAP_CURL_MAX_URL) {
        snprintf(cu->why, sizeof(cu->why), "URL longer than %d bytes",
                 KAP_CURL_MAX_URL);
        return KAP_DECLINED;
    }
    if ((cu->url = curl_url()) == NULL)
        return KAP_ERROR;
    if (curl_url_set(cu->url, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(cu->why, sizeof(cu->why), "not a valid URL");
        goto out;
    }
    if (curl_url_get(cu->url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(cu->why, sizeof(cu->why),
                 "scheme %.32s is not allowed (http and https only)",
                 scheme ? scheme : "(none)");
        goto out;
    }
    if (curl_url_get(cu->url, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || host[0] == '\0') {
        snprintf(cu->why, sizeof(cu->why), "URL without a host");
        goto out;
    }
    if (curl_url_get(cu->url, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
        snprintf(cu->why, sizeof(cu->why), "URL with an IPv6 zone id");
        goto out;
    }
    for (i = 0; host[i] != '\0'; i++) {
        /* libcurl would IDN-convert it after our resolver saw the
           Unicode form: two different names */
        if ((unsigned char)host[i] >= 0x80 || (unsigned char)host[i] < 0x21) {
            snprintf(cu->why, sizeof(cu->why),
                     "host is not ASCII (use its xn-- form)");
            goto out;
        }
    }
    hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        cu->host = strndup(host + 1, hl - 2);
    } else {
        cu->host = strdup(host);
    }
    if (cu->host == NULL) {
        rc = KAP_ERROR;
        goto out;
    }
    switch (kap_addr_parse_literal(cu->host, &ss)) {
    case KAP_OK:
        cu->literal = 1;
        break;
    case KAP_DECLINED:
        /* the one host-name rule the policy applies (kap_addr.h) */
        if (kap_host_name_norm(cu->host, strlen(cu->host), NULL, 0) >= 0)
            break;
        snprintf(cu->why, sizeof(cu->why),
                 "host %.255s is not a valid host name", cu->host);
        goto out;
    default:
        snprintf(cu->why, sizeof(cu->why),
                 "host %.255s is not a valid address", cu->host);
        goto out;
    }
    if (curl_url_get(cu->url, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)
        != CURLUE_OK
        || (p = strtol(port, NULL, 10)) <= 0 || p > 65535) {
        snprintf(cu->why, sizeof(cu->why), "URL without a valid port");
        goto out;
    }
    cu->port = (unsigned)p;
    rc = KAP_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(zone);
    return rc;
}

/* copy what is needed later; KAP_OK, KAP_DECLINED (why set), KAP_ERROR */
static int
kc_setup(struct kap_curl *cu, const struct kap_curl_opts *o)
{
    int rc;

    if ((cu->asked_by = strdup(o->asked_by)) == NULL)
        return KAP_ERROR;
    cu->conn = o->conn;
    cu->max_body = o->max_body || cu->stream ? o->max_body
                                             : KAP_CURL_MAX_BODY_DEFAULT;
    cu->timeout = o->timeout > 0 ? o->timeout : KAP_CURL_TIMEOUT_DEFAULT;
    cu->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout
                                                 : KAP_CURL_CONNECT_DEFAULT;
    if (o->ca_file != NULL && (cu->ca_file = strdup(o->ca_file)) == NULL)
        return KAP_ERROR;
    if (o->unix_socket != NULL) {
        if (o->unix_socket[0] != '/'
            || strlen(o->unix_socket) >= sizeof(((struct sockaddr_un *)0)
                                                ->sun_path)) {
            snprintf(cu->why, sizeof(cu->why),
                     "unix socket path must be absolute and short");
            return KAP_DECLINED;
        }
        if ((cu->unix_path = strdup(o->unix_socket)) == NULL)
            return KAP_ERROR;
    }
    if ((rc = kc_parse_url(cu, o->url)) != KAP_OK)
        return rc;
    if (o->method != NULL) {
        if (!kc_method_ok(o->method)) {
            snprintf(cu->why, sizeof(cu->why), "method is not a token");
            return KAP_DECLINED;
        }
        if ((cu->method = strdup(o->method)) == NULL)
            return KAP_ERROR;
    }
    if (o->headers != NULL) {
        const char *const *h;
        for (h = o->headers; *h != NULL; h++) {
            struct curl_slist *l;
            /* CR or LF would end the line early: header injection */
            if (strpbrk(*h, "\r\n") != NULL) {
                snprintf(cu->why, sizeof(cu->why),
                         "a header line holds CR or LF");
                return KAP_DECLINED;
            }
            if ((l = curl_slist_append(cu->hdrs, *h)) == NULL)
                return KAP_ERROR;
            cu->hdrs = l;
        }
    }
    if (o->body != NULL) {
        cu->has_body = 1;
        cu->body_len = o->body_len;
        if ((cu->body = malloc(o->body_len ? o->body_len : 1)) == NULL)
            return KAP_ERROR;
        if (o->body_len)
            memcpy(cu->body, o->body, o->body_len);
    }
    return KAP_OK;
}

struct kap_curl *
kap_curl_fetch(struct kap_gen *gen, struct kap_pool *pool,
               const struct kap_curl_opts *o, kap_curl_done_fn done,
               void *data)
{
    return kapd_curl_start(gen, pool, o, NULL, done, data);
}

struct kap_curl *
kapd_curl_start(struct kap_gen *gen, struct kap_pool *pool,
                const struct kap_curl_opts *o,
                const struct kap_curl_stream_ops *ops,
                kap_curl_done_fn done, void *data)
{
    struct kap_upstream_target t;
    struct kap_curl *cu;
    int rc;

    if (gen == NULL || pool == NULL || o == NULL || o->url == NULL
        || o->asked_by == NULL || done == NULL
        || (ops != NULL && (ops->head == NULL || ops->body == NULL)))
        return NULL;
    if ((cu = calloc(1, sizeof(*cu))) == NULL)
        return NULL;
    if (kap_pool_cleanup_add(pool, kc_pool_gone, cu) != KAP_OK) {
        free(cu);
        return NULL;
    }
    cu->magic = KC_MAGIC;
    cu->state = KC_RESOLVE;
    cu->gen = gen;
    kap_gen_ref(gen);
    cu->pool = pool;
    cu->done = done;
    cu->data = data;
    cu->later_rc = KAP_OK;
    kapd_curl_stream_init(cu, ops);
    ev_timer_init(&cu->tm, kc_timer_cb, 0., 0.);
    cu->next = kc_live;
    if (kc_live)
        kc_live->prev = cu;
    kc_live = cu;

    rc = kc_setup(cu, o);
    if (rc == KAP_ERROR && cu->why[0] == '\0') {
        kap_pool_cleanup_run(pool, kc_pool_gone, cu);
        return NULL;        /* out of memory */
    }
    if (rc != KAP_OK) {
        char why[KC_WHY_MAX];
        memcpy(why, cu->why, sizeof(why));
        kc_fail_later(cu, rc, why);
        return cu;
    }
    cu->deadline = kap_now() + cu->timeout;
    if (cu->unix_path != NULL) {
        ev_timer_set(&cu->tm, 0., 0.);      /* kc_timer_cb starts it */
        ev_timer_start(kap_loop(), &cu->tm);
        return cu;
    }
    ev_timer_set(&cu->tm, cu->timeout, 0.);
    ev_timer_start(kap_loop(), &cu->tm);
    memset(&t, 0, sizeof(t));
    t.gen = gen;
    t.host = cu->host;
    t.port = cu->port;
    t.want_v6 = 1;
    t.asked_by = cu->asked_by;
    t.conn = cu->conn;
    t.client = cu->conn != NULL ? cu->conn->peer_text : NULL;
    t.detail = cu->method != NULL ? cu->method
                                  : (cu->has_body ? "POST" : "GET");
    /* ask about EVERY address before libcurl may connect to any */
    cu->up = kap_upstream_resolve(&t, kc_checked, cu);
    if (cu->up == NULL) {
        char why[KC_WHY_MAX];
        snprintf(why, sizeof(why), "cannot resolve %.255s: resolver "
                 "unavailable", cu->host);
        kc_fail_later(cu, KAP_ERROR, why);
    }
    return cu;
}
