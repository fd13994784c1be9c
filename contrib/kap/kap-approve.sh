
# ---- kap approve: answer the questions capsules wait on, from a terminal ----
#
# The host kapd of `kap remote start` holds every question a capsule
# (kap run --ask) forwards until someone answers it.  kap approve is a
# paired device like a phone: `kap remote start` pairs it with a fresh
# pairing secret of its own (before it shows the QR code) and keeps the
# token as a curl header file, $KAP_REMOTE_DIR/approve.header (0600, in
# the 0700 remote directory: only the user reads it; curl reads it from
# the file, so it never appears in a process list).  It talks to kapd on
# the loopback address in $KAP_REMOTE_DIR/local-url.

help_approve() {
    cat <<EOF
usage: kap approve                  list the questions waiting for an answer
       kap approve [--once | --always | --deny] ID

Answer a question a capsule (kap run --ask) waits on, as a paired phone
would: --once allows this request, --always allows it and adds a rule
for it to the capsule's policy file (its file:line is shown), --deny
refuses it.  Without an
answer option, or without an ID, on a terminal it asks.  A question
nobody answers is denied when its time runs out.  Needs kap remote start.
EOF
}

# approve_host_dir: where the host side of the channel lives
approve_host_dir() {
    printf '%s' "${KAP_HOST_DIR:-${HOME:?HOME is not set}/.kap/host}"
}

# approve_pair: pair kap approve with the running remote kapd (a new
# pairing secret, exchanged at once; a QR code shown before stops working)
approve_pair() {
    _ad=$(remote_dir)
    _au=$(head -n 1 "$_ad/local-url" 2>/dev/null) || _au=
    [ -n "$_au" ] || return 1
    _as=$(remote_secret) || return 1
    _ao=$(printf 'Authorization: Bearer %s\n' "$_as" | curl -sS --max-time 10 \
        -H @- -H 'Content-Type: application/json' \
        --data-binary '{"name":"kap approve (terminal)"}' "$_au/api/pair") || return 1
    _at=$(printf '%s' "$_ao" | "$KAP_SHIM" jsonc get - token 2>/dev/null) || return 1
    _at=${_at#\"}
    _at=${_at%\"}
    case $_at in ''|*[!A-Za-z0-9_-]*) return 1 ;; esac
    ( umask 077 && printf 'Authorization: Bearer %s\n' "$_at" > "$_ad/approve.header.tmp" ) \
        && mv -f "$_ad/approve.header.tmp" "$_ad/approve.header"
}

# approve_call METHOD PATH [BODY]: the API's answer in $_ab (a file),
# its HTTP status on stdout; pairs again once when the token is refused
approve_call() {
    _ad=$(remote_dir)
    _au=$(head -n 1 "$_ad/local-url" 2>/dev/null) || _au=
    [ -n "$_au" ] || die "approve: kap remote is not running (kap remote start)"
    [ -s "$_ad/approve.header" ] || approve_pair || die "approve: cannot pair with kapd at $_au (see $_ad/error.log)"
    for _try in 1 2; do
        if [ $# -ge 3 ]; then
            _code=$(curl -sS --max-time 10 -o "$_ab" -w '%{http_code}' -X "$1" \
                -H @"$_ad/approve.header" -H 'Content-Type: application/json' \
                --data-binary "$3" "$_au$2") || die "approve: cannot reach kapd at $_au"
        else
            _code=$(curl -sS --max-time 10 -o "$_ab" -w '%{http_code}' \
                -H @"$_ad/approve.header" "$_au$2") || die "approve: cannot reach kapd at $_au"
        fi
        [ "$_code" = 401 ] && [ $_try = 1 ] && approve_pair && continue
        break
    done
    printf '%s' "$_code"
}

# approve_field N KEY: member KEY of question N of the list in $_ab
approve_field() {
    _v=$("$KAP_SHIM" jsonc get "$_ab" asks "$1" "$2" 2>/dev/null) || _v=
    _v=${_v#\"}
    _v=${_v%\"}
    printf '%s' "$_v" | sanitize
}

# approve_list: print the waiting questions; their number in $_n
approve_list() {
    _code=$(approve_call GET /api/asks) || exit 1
    [ "$_code" = 200 ] || die "approve: kapd answered $_code: $(sanitize < "$_ab")"
    _n=0
    while [ -n "$(approve_field $_n id)" ]; do
        [ $_n = 0 ] && printf '%-3s %-16s  %-5s  %-9s  %-30s  %-16s  %s\n' \
            '#' ID LEFT KIND WHAT PROJECT RULE
        _what=$(approve_field $_n subject)
        _port=$(approve_field $_n port)
        case $_port in ''|0) ;; *) _what="$_what:$_port" ;; esac
        _left=$(approve_field $_n remaining)
        printf '%-3s %-16s  %-5s  %-9s  %-30s  %-16s  %s\n' "$((_n + 1))" \
            "$(approve_field $_n id)" "${_left%%.*}s" "$(approve_field $_n kind)" \
            "$_what" "$(approve_field $_n project)" "$(approve_field $_n rule)"
        _n=$((_n + 1))
    done
    [ $_n -gt 0 ] || say "no questions are waiting"
}

# approve_answer ID once|always|deny
approve_answer() {
    _code=$(approve_call POST "/api/asks/$1" "{\"answer\":\"$2\"}") || exit 1
    case $_code in
    200) say "$1: $2"
         # always: where the rule went, or why none was written
         sed -n -e 's/.*"rule_file":"\([^"]*\)".*/  rule added at \1/p' \
             -e 's/.*"rule_error":"\([^"]*\)".*/  \1/p' "$_ab" | sanitize ;;
    *) die "approve: $1: $(sed -n 's/.*"error":"\([^"]*\)".*/\1/p' "$_ab" | sanitize) ($_code)" ;;
    esac
}

# approve_ask_answer: once, always or deny, read from the terminal
approve_ask_answer() {
    printf 'allow [o]nce, allow [a]lways, [d]eny, or [s]kip? ' >&2
    read -r _r || return 1
    case $_r in
    o|once) printf once ;;
    a|always) printf always ;;
    d|deny) printf deny ;;
    *) return 1 ;;
    esac
}

cmd_approve() {
    _ans=
    _id=
    while [ $# -gt 0 ]; do
        case $1 in
        --once) _ans=once ;;
        --always) _ans=always ;;
        --deny) _ans=deny ;;
        -h|--help) help_approve; return 0 ;;
        -*) die "approve: unknown option $(printf '%s' "$1" | sanitize) (see kap help approve)" ;;
        *) [ -z "$_id" ] || die "approve: one ID at a time"; _id=$1 ;;
        esac
        shift
    done
    [ -n "$_id" ] || [ -z "$_ans" ] || die "approve: --$_ans needs the question's ID (kap approve lists them)"
    case $_id in
    '') ;;
    *[!0-9a-f]*) die "approve: bad ID $(printf '%s' "$_id" | sanitize) (16 hex digits, see kap approve)" ;;
    *) [ ${#_id} = 16 ] || die "approve: bad ID $_id (16 hex digits, see kap approve)" ;;
    esac
    command -v curl >/dev/null 2>&1 || die "approve: curl is needed"
    _ab=$(mktemp "${TMPDIR:-/tmp}/kap-approve.XXXXXX") || die "approve: cannot create a temporary file"
    trap 'rm -f "$_ab"' EXIT
    if [ -n "$_id" ]; then
        if [ -z "$_ans" ]; then
            [ -t 0 ] || die "approve: --once, --always or --deny (no terminal to ask on)"
            _ans=$(approve_ask_answer) || { say "skipped"; return 0; }
        fi
        approve_answer "$_id" "$_ans"
        return 0
    fi
    approve_list
    [ $_n -gt 0 ] && [ -t 0 ] && [ -t 1 ] || return 0
    printf 'answer which (1-%s, Enter to stop)? ' "$_n" >&2
    read -r _k || return 0
    case $_k in ''|*[!0-9]*) return 0 ;; esac
    if [ "$_k" -lt 1 ] || [ "$_k" -gt $_n ]; then
        die "approve: no question $_k"
    fi
    _id=$(approve_field $((_k - 1)) id)
    _ans=$(approve_ask_answer) || { say "skipped"; return 0; }
    approve_answer "$_id" "$_ans"
}
