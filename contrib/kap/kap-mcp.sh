# ---- kap mcp: register remote MCP servers on the host -------------------------
#
# `kap mcp add|get|list|remove` keep one file per server in the auth
# directory (KAP_AUTH_DIR, default ~/.kap/auth): NAME.json, mode 0600, in
# a directory of mode 0700 -- the rule kapd's kap_secret applies before it
# reads a credential (kap_secret.h), so a file kap writes is one kapd
# accepts.  The file is JSON:
#   { "name": NAME, "upstream": URL, "headers": { "K": "V", ... } }
# where V is a literal value (the secret itself) or holds ${VAR}
# references that kapd fills in from its environment or the project's env
# file.  The mcp module forwards to the upstream with these headers; the
# capsule never sees them.  JSON is written and read with `kap-shim jsonc`
# (a real parser), never by hand.  Nothing here prints a literal value.

help_mcp() {
    cat <<EOF
usage: kap mcp add NAME URL [--header K=V | --header K]... [--reauth]
       kap mcp get NAME
       kap mcp list [KAP.CONF]
       kap mcp remove NAME
       kap mcp check NAME
       kap mcp refresh NAME
       kap mcp pin NAME [--accept]

Register remote MCP servers for kapd's MCP proxy: the agent talks to
http://127.0.0.1:3129/NAME and kapd forwards to URL with the headers
below, so no credential enters the capsule.  One file per server,
\$KAP_AUTH_DIR/NAME.json (default ~/.kap/auth), mode 0600 in a 0700
directory.

  add NAME URL  NAME: letters, digits, '-' and '_' (up to 64, first a
                letter or digit); URL: http:// or https://, no user:password@
  --header K=V  send header K with value V upstream.  V may hold \${VAR}
                references, filled in by kapd from its environment or the
                project's env file (nothing secret on the command line);
                a literal V is stored in the file.  --header K (no '=')
                reads V from the first line of standard input instead, so
                it is neither in the process list nor in the shell history
  --reauth      replace an existing registration (else: say so, exit 0)
  get NAME      the registration: upstream, header names, for each value
                whether it is literal (never shown) or its \${VAR} names
  list          every registration: name, upstream (query hidden), auth;
                with KAP.CONF also the servers it names that are not
                registered (kapd refuses such a configuration)
  remove NAME   delete the registration (NAME.json, NAME.lock and the
                pins NAME.pins.json)
  check NAME    initialize + tools/list with the registration: its tools
  refresh NAME  refresh an OAuth registration's token now
  pin NAME      the server's tools against the pins kapd keeps (pin = true
                in kap.conf): changed definitions shown; --accept pins
                the definitions shown

Without --header, add probes URL (then URL/mcp): a server that asks for
OAuth gets the OAuth 2.1 flow in your browser (KAP_OPEN or BROWSER or
xdg-open; the URL is printed too), and its tokens are stored and
refreshed before they expire.

Then name the server in kap.conf (kap.conf(5)):
  mcp: { servers = ( { name = "NAME"; allow = ["*"]; } ); };
EOF
}

# mcp_dir: the auth directory
mcp_dir() {
    if [ -n "${KAP_AUTH_DIR:-}" ]; then
        printf '%s' "$KAP_AUTH_DIR"
    elif [ -n "${HOME:-}" ]; then
        printf '%s/.kap/auth' "$HOME"
    else
        die "mcp: neither KAP_AUTH_DIR nor HOME is set"
    fi
}

# mcp_name NAME: die unless NAME is a server name
mcp_name() {
    case $1 in
    ''|[!A-Za-z0-9]*|*[!A-Za-z0-9_-]*)
        die "mcp: bad server name '$(printf '%s' "$1" | sanitize)' (letters, digits, '-' and '_', first a letter or digit)" ;;
    esac
    [ ${#1} -le 64 ] || die "mcp: server name longer than 64 characters"
}

# mcp_ctl S: true when S holds a control character (or DEL)
mcp_ctl() {
    case $1 in
    *[[:cntrl:]]*) return 0 ;;
    *) return 1 ;;
    esac
}

# mcp_url URL: die unless URL is one kapd would fetch
mcp_url() {
    mcp_ctl "$1" && die "mcp: the URL holds a control character"
    case $1 in
    *' '*) die "mcp: the URL holds a space" ;;
    http://?*|https://?*) ;;
    *) die "mcp: the URL must start with http:// or https://" ;;
    esac
    _a=${1#*://}
    _a=${_a%%/*}
    _a=${_a%%\?*}
    _a=${_a%%#*}
    case $_a in
    *@*) die "mcp: no user:password@ in the URL (use --header for credentials)" ;;
    '') die "mcp: the URL has no host" ;;
    esac
    [ ${#1} -le 8192 ] || die "mcp: the URL is longer than 8192 characters"
}

# mcp_url_shown URL: URL with its query and fragment hidden (a key may sit
# in the query string)
mcp_url_shown() {
    case $1 in
    *\?*|*\#*) _u=${1%%\?*}; printf '%s?[hidden]' "${_u%%#*}" ;;
    *) printf '%s' "$1" ;;
    esac
}

# mcp_header_name K: die unless K is an HTTP field name kapd may set
mcp_header_name() {
    case $1 in
    ''|*[!A-Za-z0-9!#\$%\&\'*+.^_\`\|~-]*)
        die "mcp: bad header name '$(printf '%s' "$1" | sanitize)'" ;;
    esac
    _l=$(printf '%s' "$1" | LC_ALL=C tr '[:upper:]' '[:lower:]')
    case $_l in
    host|content-length|transfer-encoding|connection|keep-alive|upgrade|te|\
    trailer|proxy-*|content-type|accept|mcp-session-id|mcp-protocol-version|\
    last-event-id)
        die "mcp: header $1 is kapd's to set, not a credential" ;;
    esac
}

# mcp_value_kind V: how get shows a value: its ${VAR} references, or that
# it is literal (its length), never the value
mcp_value_kind() {
    _v=$1 _refs='' _lit=0
    while :; do
        case $_v in
        *"\${"*"}"*)
            _pre=${_v%%"\${"*}
            [ -n "$(printf '%s' "$_pre" | tr -d ' ')" ] && _lit=1
            _v=${_v#*"\${"}
            _refs="$_refs \${${_v%%"}"*}}"
            _v=${_v#*"}"} ;;
        *)
            [ -n "$(printf '%s' "$_v" | tr -d ' ')" ] && _lit=1
            break ;;
        esac
    done
    if [ -z "$_refs" ]; then
        printf '[literal, %s bytes]' "$(printf '%s' "$1" | wc -c | tr -d ' ')"
    elif [ "$_lit" = 1 ]; then
        printf '[literal text with%s]' "$_refs"
    else
        printf '%s' "${_refs# }"
    fi
}

# mcp_check_file F: warn when F is not a regular 0600 file of ours, as
# kapd would refuse it
mcp_check_file() {
    if [ -L "$1" ] || [ ! -f "$1" ]; then
        err "mcp: $1 is not a regular file: kapd will refuse it"
    elif [ -z "$(find "$1" -maxdepth 0 -user "$(id -u)" -perm 600 2>/dev/null)" ] &&
         [ -z "$(find "$1" -maxdepth 0 -user "$(id -u)" -perm 400 2>/dev/null)" ]; then
        err "mcp: $1 is not mode 0600 and yours: kapd will refuse it (chmod 600 $1)"
    fi
}

# mcp_get FILE KEY...: a value of a registration (empty when absent)
mcp_get() {
    "$KAP_SHIM" jsonc get "$@" 2>/dev/null
}

mcp_add() {
    [ $# -ge 2 ] || die "mcp add: usage: kap mcp add NAME URL [--header K=V]... [--reauth]"
    _name=$1 _url=$2
    shift 2
    mcp_name "$_name"
    mcp_url "$_url"
    _reauth=0 _hdrs='' _seen=' '
    while [ $# -gt 0 ]; do
        case $1 in
        --reauth) _reauth=1 ;;
        --header|-H)
            [ $# -ge 2 ] || die "mcp add: --header needs K=V"
            shift
            case $1 in
            *=*) _k=${1%%=*} _v=${1#*=} ;;
            *)
                _k=$1
                IFS= read -r _v || [ -n "$_v" ] ||
                    die "mcp add: --header $1: no value on standard input" ;;
            esac
            mcp_header_name "$_k"
            mcp_ctl "$_v" && die "mcp add: the value of $_k holds a control character"
            [ -n "$_v" ] || die "mcp add: the value of $_k is empty"
            _lk=$(printf '%s' "$_k" | LC_ALL=C tr '[:upper:]' '[:lower:]')
            case $_seen in
            *" $_lk "*) die "mcp add: header $_k given twice" ;;
            esac
            _seen="$_seen$_lk "
            _hdrs="$_hdrs${_hdrs:+,}
    $("$KAP_SHIM" jsonc quote "$_k"): $("$KAP_SHIM" jsonc quote "$_v")" ;;
        *) die "mcp add: unknown argument '$(printf '%s' "$1" | sanitize)'" ;;
        esac
        shift
    done
    _dir=$(mcp_dir)
    _f="$_dir/$_name.json"
    if [ -e "$_f" ] && [ "$_reauth" = 0 ]; then
        say "$_name is already registered ($(mcp_url_shown "$(mcp_get "$_f" upstream)"))."
        say "To replace it: kap mcp add $_name URL ... --reauth"
        return 0
    fi
    if ! mkdir_private "$_dir" || ! chmod 0700 "$_dir"; then
        die "mcp: cannot use $_dir"
    fi
    if [ -z "$_hdrs" ]; then
        # no credential given: kap-mcp probes the server and runs the
        # OAuth 2.1 flow when it answers 401 (docs/design/mcp-oauth.md)
        [ -x "$KAP_MCP" ] || die "mcp: kap-mcp not found at $KAP_MCP (set KAP_MCP=...)"
        if [ "$_reauth" = 1 ]; then
            exec "$KAP_MCP" add "$_name" "$_url" --reauth
        fi
        exec "$KAP_MCP" add "$_name" "$_url"
    fi
    _tmp="$_dir/.$_name.json.$$"
    (
        umask 077
        {
            printf '{\n  "name": %s,\n  "upstream": %s' \
                "$("$KAP_SHIM" jsonc quote "$_name")" \
                "$("$KAP_SHIM" jsonc quote "$_url")"
            [ -n "$_hdrs" ] && printf ',\n  "headers": {%s\n  }' "$_hdrs"
            printf '\n}\n'
        } > "$_tmp"
    ) || { rm -f "$_tmp"; die "mcp: cannot write $_tmp"; }
    chmod 0600 "$_tmp"
    if ! "$KAP_SHIM" jsonc check "$_tmp" >/dev/null 2>&1; then
        rm -f "$_tmp"
        die "mcp: the registration is not valid JSON (a bug)"
    fi
    mv -f "$_tmp" "$_f" || { rm -f "$_tmp"; die "mcp: cannot write $_f"; }
    say "registered $_name: $(mcp_url_shown "$_url") ($_f)"
    # initialize + tools/list with these headers; a server that is down or
    # a ${VAR} not set in this shell leaves the registration as it is
    if [ -x "$KAP_MCP" ]; then
        "$KAP_MCP" check "$_name" || err "mcp: $_name is registered but not checked (kap mcp check $_name)"
    fi
    say "add it to kap.conf, with the tools the agent may call:"
    say "  mcp: { servers = ( { name = \"$_name\"; allow = [\"*\"]; } ); };"
}

# mcp_file NAME: the registration file of NAME, or die
mcp_file() {
    mcp_name "$1"
    _f="$(mcp_dir)/$1.json"
    [ -f "$_f" ] || die "mcp: $1 is not registered (kap mcp add $1 URL)"
    printf '%s' "$_f"
}

# mcp_auth F: "oauth (ISSUER)", "headers (K1, K2)" or "none"
mcp_auth() {
    _is=$(mcp_get "$1" oauth issuer)
    if [ -n "$_is" ]; then printf 'oauth (%s)' "$_is"; return 0; fi
    _ks=$("$KAP_SHIM" jsonc keys "$1" headers 2>/dev/null | sanitize | tr '\n' ',' | sed 's/,$//; s/,/, /g')
    if [ -n "$_ks" ]; then printf 'headers (%s)' "$_ks"; else printf 'none'; fi
}

mcp_show() {
    [ $# -eq 1 ] || die "mcp get: usage: kap mcp get NAME"
    _f=$(mcp_file "$1") || exit 1
    mcp_check_file "$_f"
    "$KAP_SHIM" jsonc check "$_f" >/dev/null 2>&1 ||
        die "mcp: $_f is not valid JSON: kap mcp add $1 URL ... --reauth"
    say "name:     $1"
    say "upstream: $(mcp_url_shown "$(mcp_get "$_f" upstream)" | sanitize)"
    say "auth:     $(mcp_auth "$_f")"
    "$KAP_SHIM" jsonc keys "$_f" headers 2>/dev/null | while IFS= read -r _k; do
        _v=$(mcp_get "$_f" headers "$_k")
        say "  $_k: $(mcp_value_kind "$_v")"
    done | sanitize
    say "file:     $_f"
}

mcp_list() {
    [ $# -le 1 ] || die "mcp list: usage: kap mcp list [KAP.CONF]"
    _dir=$(mcp_dir)
    _n=0
    for _f in "$_dir"/*.json; do
        [ -f "$_f" ] || continue
        case $_f in *.pins.json) continue ;; esac   # kapd's tool pins
        _name=${_f##*/}
        _name=${_name%.json}
        _n=$((_n + 1))
        if ! "$KAP_SHIM" jsonc check "$_f" >/dev/null 2>&1; then
            printf '%s\t(not valid JSON)\n' "$_name"
            continue
        fi
        mcp_check_file "$_f"
        printf '%s\t%s\t%s\n' "$_name" \
            "$(mcp_url_shown "$(mcp_get "$_f" upstream)")" "$(mcp_auth "$_f")"
    done | sanitize
    [ -n "$(find "$_dir" -maxdepth 1 -name '*.json' ! -name '*.pins.json' 2>/dev/null | head -n 1)" ] ||
        say "no MCP servers registered (kap mcp add NAME URL)"
    # servers a kap.conf names that nobody registered (kapd would refuse it)
    if [ $# -eq 1 ]; then
        [ -f "$1" ] || die "mcp list: no file $1"
        "$KAP_MCP" missing "$1" || exit 1
    fi
}

mcp_remove() {
    [ $# -eq 1 ] || die "mcp remove: usage: kap mcp remove NAME"
    _f=$(mcp_file "$1") || exit 1
    # (its pins too: a server added again under the name is a new one)
    rm -f "$_f" "${_f%.json}.lock" "${_f%.json}.pins.json" || die "mcp: cannot remove $_f"
    say "removed $1"
}

cmd_mcp() {
    [ $# -gt 0 ] || { help_mcp >&2; exit 2; }
    _sub=$1
    shift
    case $_sub in
    add) mcp_add "$@" ;;
    get) mcp_show "$@" ;;
    list|ls) mcp_list "$@" ;;
    remove|rm) mcp_remove "$@" ;;
    check)
        [ $# -eq 1 ] || die "mcp check: usage: kap mcp check NAME"
        _f=$(mcp_file "$1") || exit 1
        exec "$KAP_MCP" check "$1" ;;
    pin)
        case $# in
        1) ;;
        2) [ "$2" = --accept ] || die "mcp pin: usage: kap mcp pin NAME [--accept]" ;;
        *) die "mcp pin: usage: kap mcp pin NAME [--accept]" ;;
        esac
        _f=$(mcp_file "$1") || exit 1
        exec "$KAP_MCP" pin "$@" ;;
    refresh)
        [ $# -eq 1 ] || die "mcp refresh: usage: kap mcp refresh NAME"
        _f=$(mcp_file "$1") || exit 1
        exec "$KAP_MCP" refresh "$1" --force ;;
    -h|--help|help) help_mcp ;;
    *) err "mcp: unknown command $(printf '%s' "$_sub" | sanitize)"; help_mcp >&2; exit 2 ;;
    esac
}
