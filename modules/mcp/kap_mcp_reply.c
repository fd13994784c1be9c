/*
 * kap_mcp_reply.c -- filter the JSON-RPC an MCP server sends towards the
 * agent (kap_mcp.h, docs/design/mcp-filter.md): a JSON reply body, one
 * SSE event's data, one message or a batch.
 *
 * Every message is parsed strictly (duplicate keys, bad UTF-8 refused;
 * numbers loose: a number cannot hide a tool).  A message carrying a
 * tools list -- any member a case-insensitive client reads as "result"
 * holding one it reads as "tools" -- is printed again without the tools
 * the policy denies and without tools whose name is missing, not a
 * string, or doubled by a case variant.  Every other message passes on
 * as the server wrote it.  What does not parse is not passed on.
 */
#include "config.h"

#include <string.h>

#include "kap_mcp.h"

/* The name of tool object t, or NULL when a reader could see another. */
static const char *
tool_name(const struct kap_json *t)
{
    const struct kap_json *c, *name = NULL;
    const char *k;

    if (kap_json_type(t) != KAP_JSON_OBJECT)
        return NULL;
    for (c = kap_json_child(t); c; c = kap_json_next(c)) {
        k = kap_json_key(c);
        if (!kap_mcp_fold_eq(k, "name"))
            continue;
        if (name != NULL || strcmp(k, "name") != 0)
            return NULL;
        name = c;
    }
    return kap_json_string(name);
}

static int
keep_tool(const struct kap_mcp_filter *f, const struct kap_json *t,
          struct kap_mcp_reply_stats *st)
{
    struct kap_mcp_verdict v;
    const char *name = tool_name(t);

    st->tools++;
    if (name != NULL) {
        kap_mcp_tools_match(f->tools, name, &v);
        if (v.allow && (f->keep == NULL || f->keep(f->arg, name, t)))
            return 1;
    }
    st->removed++;
    return 0;
}

/* Members of object o a client may read as `name` holding type `type`. */
static int
has_member(const struct kap_json *o, const char *name, enum kap_json_type type)
{
    const struct kap_json *c;

    for (c = kap_json_child(o); c; c = kap_json_next(c))
        if (kap_json_type(c) == type && kap_mcp_fold_eq(kap_json_key(c), name))
            return 1;
    return 0;
}

/* 1 when message m carries a tools list anywhere a client may read one */
static int
lists_tools(const struct kap_json *m)
{
    const struct kap_json *c;

    if (kap_json_type(m) != KAP_JSON_OBJECT)
        return 0;
    for (c = kap_json_child(m); c; c = kap_json_next(c))
        if (kap_json_type(c) == KAP_JSON_OBJECT
            && kap_mcp_fold_eq(kap_json_key(c), "result")
            && has_member(c, "tools", KAP_JSON_ARRAY))
            return 1;
    return 0;
}

/* Write object o; members fold-named `name` of type `type` through fn. */
static void
write_obj(struct kap_json_writer *w, const struct kap_json *o,
          const char *name, enum kap_json_type type,
          void (*fn)(struct kap_json_writer *, const struct kap_json *,
                     const struct kap_mcp_filter *, struct kap_mcp_reply_stats *),
          const struct kap_mcp_filter *f, struct kap_mcp_reply_stats *st)
{
    const struct kap_json *c;

    kap_json_w_obj_begin(w);
    for (c = kap_json_child(o); c; c = kap_json_next(c)) {
        kap_json_w_key(w, kap_json_key(c));
        if (kap_json_type(c) == type && kap_mcp_fold_eq(kap_json_key(c), name))
            fn(w, c, f, st);
        else
            kap_json_w_tree(w, c);
    }
    kap_json_w_obj_end(w);
}

static void
write_tools(struct kap_json_writer *w, const struct kap_json *tools,
            const struct kap_mcp_filter *f, struct kap_mcp_reply_stats *st)
{
    const struct kap_json *t;

    st->lists++;
    kap_json_w_arr_begin(w);
    for (t = kap_json_child(tools); t; t = kap_json_next(t))
        if (keep_tool(f, t, st))
            kap_json_w_tree(w, t);
    kap_json_w_arr_end(w);
}

static void
write_result(struct kap_json_writer *w, const struct kap_json *res,
             const struct kap_mcp_filter *f, struct kap_mcp_reply_stats *st)
{
    write_obj(w, res, "tools", KAP_JSON_ARRAY, write_tools, f, st);
}

/* One message of the reply, filtered when it lists tools. */
static void
write_msg(struct kap_json_writer *w, const struct kap_json *m,
          const struct kap_mcp_filter *f, struct kap_mcp_reply_stats *st)
{
    st->messages++;
    if (lists_tools(m))
        write_obj(w, m, "result", KAP_JSON_OBJECT, write_result, f, st);
    else
        kap_json_w_tree(w, m);
}

int
kap_mcp_reply_json(const struct kap_mcp_filter *f, const char *data,
                   size_t len, const struct kap_mcp_req *merge,
                   struct kap_buf *out, struct kap_mcp_reply_stats *st,
                   struct kap_err *err)
{
    struct kap_json_limits lim = f->lim;
    struct kap_json_writer w;
    struct kap_json *root;
    const struct kap_json *c;
    size_t start = out->len, i;
    int merging = merge != NULL && merge->ndenied > 0;
    int change = merging;
    int batch;

    if (lim.max_bytes == 0)
        lim.max_bytes = KAP_MCP_REPLY_MAX;
    if (lim.max_depth == 0)
        lim.max_depth = KAP_MCP_REPLY_DEPTH;
    if (lim.max_members == 0)
        lim.max_members = lim.max_bytes;
    lim.flags |= KAP_JSON_LOOSE_NUMBERS;
    root = kap_json_parse(data, len, &lim, err);
    if (root == NULL)
        return strncmp(err ? err->msg : "", "out of memory", 13) == 0
               ? KAP_ERROR : KAP_MCP_REFUSED;
    batch = kap_json_type(root) == KAP_JSON_ARRAY;
    if (!batch && kap_json_type(root) != KAP_JSON_OBJECT) {
        kap_json_free(root);
        kap_err_set(err, "a JSON-RPC message is an object or a batch");
        return KAP_MCP_REFUSED;
    }
    if (batch) {
        for (c = kap_json_child(root); c; c = kap_json_next(c))
            if (kap_json_type(c) != KAP_JSON_OBJECT || lists_tools(c))
                change = 1;
    } else if (lists_tools(root)) {
        change = 1;
    }
    if (!change) {
        st->messages += batch ? kap_json_size(root) : 1;
        kap_json_free(root);
        return KAP_MCP_PASS;
    }
    kap_json_w_init(&w, out);
    if (batch || merging)
        kap_json_w_arr_begin(&w);
    if (!batch) {
        write_msg(&w, root, f, st);
    } else {
        for (c = kap_json_child(root); c; c = kap_json_next(c)) {
            if (kap_json_type(c) == KAP_JSON_OBJECT)
                write_msg(&w, c, f, st);
            else
                st->dropped++;
        }
    }
    if (merging)
        for (i = 0; i < merge->nmsgs; i++)
            if (merge->msgs[i].denied)
                kap_mcp_msg_error_w(&w, &merge->msgs[i]);
    if (batch || merging)
        kap_json_w_arr_end(&w);
    kap_json_free(root);
    if (kap_json_w_finish(&w) != KAP_OK) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    return KAP_MCP_REWRITTEN;
}
