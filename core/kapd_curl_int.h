/*
 * kapd_curl_int.h -- the parts of kap_curl (kap_curl.h) that talk to each
 * other: the per-generation multi handle on the loop (kapd_curl.c), the
 * transfers (kapd_curl_fetch.c) and the address pinning helpers
 * (kapd_curl_pin.c, pure, unit-tested by t/unit/test_curl_pin.c).
 */
#ifndef KAPD_CURL_INT_H
#define KAPD_CURL_INT_H

#include <stddef.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include <kapd/kap_curl.h>

/* Most addresses one transfer may be pinned to. */
#define KAPD_CURL_MAX_ADDRS 32

#define KC_MAGIC       0x4b43524cU      /* "KCRL" */
#define KC_METHOD_MAX  32
#define KC_WHY_MAX     512

enum kc_state { KC_RESOLVE = 1, KC_TRANSFER, KC_DONE };

/*
 * One transfer (kapd_curl_fetch.c), streamed or whole.  Needs kapd.h (ev,
 * kap_buf) included first, like every core file.
 */
struct kap_curl {
    uint32_t            magic;
    int                 state;          /* enum kc_state */
    struct kap_gen     *gen;            /* referenced */
    struct kap_pool    *pool;           /* the caller's; NULL once gone */
    kap_curl_done_fn    done;
    void               *data;
    int                 in_done;        /* done is running */

    char               *asked_by;       /* heap copies from here on */
    struct kap_conn    *conn;
    char               *host;           /* no brackets */
    unsigned            port;
    int                 literal;        /* host is an address */
    char               *method;         /* NULL: libcurl's choice */
    char               *body;
    size_t              body_len;
    int                 has_body;
    char               *ca_file;
    char               *unix_path;      /* kap_curl_opts.unix_socket */
    size_t              max_body;       /* 0 (streams only): no limit */
    double              timeout;
    double              deadline;       /* kap_now() based */
    double              connect_timeout;
    CURLU              *url;
    struct curl_slist  *hdrs;
    struct curl_slist  *resolve;

    ev_timer            tm;             /* deadline, or a failure to report
                                           from the loop (later_rc), or a
                                           release deferred out of a
                                           libcurl callback (gone) */
    int                 later_rc;       /* KAP_OK: none */
    struct kap_upstream *up;            /* resolving and asking */
    struct sockaddr_storage addrs[KAPD_CURL_MAX_ADDRS];
    size_t              naddrs;

    CURL               *easy;
    int                 in_multi;
    int                 prereq_refused; /* a connection was not ours */
    int                 retried;        /* once, on a fresh connection */
    struct kap_buf      hbuf, bbuf;
    const char         *over;           /* a limit that ended it */
    char                why[KC_WHY_MAX];   /* our own refusal */
    char                errbuf[CURL_ERROR_SIZE];

    /* streaming (kapd_curl_stream.c); stream == 0: the whole response */
    int                 stream;
    struct kap_curl_stream_ops ops;
    int                 head_done;      /* ops.head was called */
    long                block_status;   /* status of the header block read */
    int                 in_cb;          /* inside a libcurl callback */
    int                 gone;           /* released inside one: freed from
                                           the loop (tm) */
    int                 want_pause;     /* the caller asked: no more data */
    int                 paused;         /* libcurl holds the next piece */
    ev_timer            resume_tm;      /* curl_easy_pause from the loop */
    size_t              streamed;       /* body bytes handed over */

    struct kap_curl    *prev, *next;    /* every live transfer */
};

/* ---- kapd_curl.c: one multi handle per generation --------------------- */

/*
 * Add easy to gen's multi handle (created on first use); libcurl starts
 * it from the loop, never from inside this call.  KAP_OK or KAP_ERROR
 * (out of memory, libcurl refused).
 */
int  kapd_curl_multi_add(struct kap_gen *gen, CURL *easy);
/* Take easy out of gen's multi handle (no-op when it is not in it). */
void kapd_curl_multi_remove(struct kap_gen *gen, CURL *easy);

/* ---- kapd_curl_fetch.c ------------------------------------------------- */

/* libcurl finished easy (CURLMSG_DONE) with rc: end its transfer.  Called
   by kapd_curl.c from the loop, after curl_multi_socket_action returned. */
void kapd_curl_fetch_finished(CURL *easy, CURLcode rc);

/* Keep a header line in cu->hbuf (a status line starts a new block), with
   the header limit; n, or 0 with cu->over set. */
size_t kapd_curl_header_keep(struct kap_curl *cu, const char *p, size_t n);

/*
 * Start a transfer (kap_curl_fetch() and kap_curl_stream() share it); ops
 * NULL: the whole response.  Same contract as kap_curl_fetch().
 */
struct kap_curl *kapd_curl_start(struct kap_gen *gen, struct kap_pool *pool,
                                 const struct kap_curl_opts *o,
                                 const struct kap_curl_stream_ops *ops,
                                 kap_curl_done_fn done, void *data);

/* ---- kapd_curl_stream.c: the response in pieces ------------------------ */

/*
 * libcurl's header and write callbacks for a streamed transfer: the
 * return value is theirs (n taken, 0 to stop, CURL_WRITEFUNC_PAUSE).
 */
size_t kapd_curl_stream_header(struct kap_curl *cu, const char *p, size_t n);
size_t kapd_curl_stream_body(struct kap_curl *cu, const char *p, size_t n);
/* Set cu up for streaming with ops, or for the whole response (NULL). */
void   kapd_curl_stream_init(struct kap_curl *cu,
                             const struct kap_curl_stream_ops *ops);
/* The transfer ends or is released: stop the resume timer. */
void   kapd_curl_stream_stop(struct kap_curl *cu);

/* ---- kapd_curl_pin.c: the allowed addresses ---------------------------- */

/*
 * The CURLOPT_RESOLVE entry "host:port:addr1,[v6addr2],..." for the
 * addresses (AF_INET / AF_INET6) into buf.  host must hold no ':' (an
 * IPv6 literal needs no entry: libcurl does not resolve literals).
 * Returns the length written, or -1 when host is empty or holds ':', an
 * address is of another family, or buf is too small (nothing usable is
 * left in buf then).
 */
int  kapd_curl_resolve_entry(char *buf, size_t len, const char *host,
                             unsigned port,
                             const struct sockaddr_storage *addrs,
                             size_t naddrs);

/*
 * Non-zero when sa (AF_INET or AF_INET6, its port included) is one of the
 * addresses, with port.  An IPv4-mapped IPv6 sockaddr matches its IPv4
 * address.  salen is the length libcurl gave (checked against the
 * family).
 */
int  kapd_curl_addr_allowed(const struct sockaddr *sa, size_t salen,
                            unsigned port,
                            const struct sockaddr_storage *addrs,
                            size_t naddrs);

/* Same for an address in text form ("192.0.2.1", "2001:db8::1"), as
   CURLOPT_PREREQFUNCTION reports it.  Not an address: 0. */
int  kapd_curl_addr_text_allowed(const char *ip, unsigned port,
                                 const struct sockaddr_storage *addrs,
                                 size_t naddrs);

#endif /* KAPD_CURL_INT_H */
