
# ---- kap remote: a phone watches kapd over the LAN ---------------------------
#
# `kap remote start` runs a host kapd with the remote module, daemonised,
# in the remote directory (KAP_REMOTE_DIR, default STATE_DIR/remote):
#   kap.conf     written by start (listen addresses, paths)
#   kapd.pid     kapd's pid file; error.log its log
#   url          the base URL the QR code points at
#   state/       the module's state_dir (0700): the pairing file and
#                devices/ID (one 0600 file per paired device)
#   audit.jsonl  the host kapd's audit log (answers to questions, who
#                gave them)
# It also listens for capsules (`kap run --ask`) on the channel socket
# ~/.kap/host/channel.sock (KAP_HOST_DIR): a capsule named NAME proves
# the secret in ~/.kap/host/secrets/NAME, which kap run --ask makes on
# first use; every question a capsule forwards waits in the remote
# module for an answer from a phone or `kap approve`.
# The phone pairs with a one-time secret that only kap makes: 16 random
# bytes, shown once in the QR code's URL fragment (#s=HEX, never sent
# over the network by a browser), stored for kapd as its SHA-256 in
# state/pairing (0600).  A new secret replaces the old one; kapd accepts
# it once, for 10 minutes (docs/design/remote-pairing.md).

: "${KAP_QR:=@pkglibexecdir@/kap-qr}"

help_remote() {
    cat <<EOF
usage: kap remote start [--listen IP:PORT]... [--ask-timeout SECONDS]
       kap remote stop
       kap remote status
       kap remote revoke ID
       kap remote qr [--png FILE | --svg FILE]

Watch kapd from a phone on the same network: a host kapd with the remote
module serves a page and a small API on port 19420.

  start    start it (daemonised) and show a pairing QR code.  Listens on
           this machine's first private LAN address and on 127.0.0.1
           (--listen, repeatable, replaces both).  When it is running
           already, only a new QR code is shown.  A question from a
           capsule waits --ask-timeout seconds (60) for an answer
  stop     stop it
  status   whether it runs, where, and the paired devices
  revoke   forget device ID (from status): its token stops working at once
  qr       a new pairing QR code (the previous one stops working); --png or
           --svg write it as an image instead

It also listens for capsules started with kap run --ask: a request no
rule answers waits there until a paired phone or kap approve answers it
(see kap help approve).

A pairing code works once, for 10 minutes.  Scan it with the phone's
camera; the page pairs and keeps a device token.  The phone sees the
audit events of kap run sessions (\$XDG_STATE_HOME/kap/logs).
Files: \$KAP_REMOTE_DIR (default \$XDG_STATE_HOME/kap/remote).
EOF
}

remote_dir() {
    if [ -n "${KAP_REMOTE_DIR:-}" ]; then
        printf '%s' "$KAP_REMOTE_DIR"
    else
        printf '%s/remote' "$(state_dir)"
    fi
}

# remote_pid: the pid of the running remote kapd, or false
remote_pid() {
    _p=$(head -n 1 "$(remote_dir)/kapd.pid" 2>/dev/null) || return 1
    case $_p in ''|*[!0-9]*) return 1 ;; esac
    kill -0 "$_p" 2>/dev/null || return 1
    printf '%s' "$_p"
}

# remote_lan_ip: the first private IPv4 address of an interface that is up
remote_lan_ip() {
    ip -4 -o addr show up scope global 2>/dev/null | LC_ALL=C awk '
    { ip = ""
      for (i = 1; i < NF; i++) if ($i == "inet") { split($(i + 1), a, "/"); ip = a[1] }
      if (ip ~ /^10\./ || ip ~ /^192\.168\./ ||
          ip ~ /^172\.(1[6-9]|2[0-9]|3[01])\./) { print ip; exit } }'
}

# remote_listen_ok ADDR: die unless ADDR looks like IP:PORT
remote_listen_ok() {
    case $1 in
    *[!0-9A-Fa-f.:\[\]]*|'') die "remote: bad --listen $(printf '%s' "$1" | sanitize) (want IP:PORT)" ;;
    *:[0-9]*) ;;
    *) die "remote: bad --listen $(printf '%s' "$1" | sanitize) (want IP:PORT)" ;;
    esac
}

# remote_secret: a new pairing secret on stdout; its hash replaces the
# pairing file (0600, written whole, then renamed into place)
remote_secret() {
    _st="$(remote_dir)/state"
    [ -d "$_st" ] || die "remote: not started (kap remote start)"
    _s=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    [ ${#_s} = 32 ] || die "remote: cannot read /dev/urandom"
    _h=$(printf '%s' "$_s" | sha256sum | cut -c1-64)
    if ! ( umask 077 && printf 'sha256:%s\n' "$_h" > "$_st/pairing.tmp" ) \
        || ! mv -f "$_st/pairing.tmp" "$_st/pairing"; then
        die "remote: cannot write $_st/pairing"
    fi
    printf '%s' "$_s"
}

# remote_qr [--png FILE | --svg FILE]: a new secret, as a QR code
remote_qr() {
    _url=$(head -n 1 "$(remote_dir)/url" 2>/dev/null) || _url=
    [ -n "$_url" ] || die "remote: not started (kap remote start)"
    [ -x "$KAP_QR" ] || die "remote: kap-qr not found at $KAP_QR (set KAP_QR=...)"
    _sec=$(remote_secret) || exit 1
    _full="$_url/#s=$_sec"
    if [ $# -eq 2 ]; then
        "$KAP_QR" "$1" "$2" "$_full" || die "remote: cannot write $2"
        say "pairing code written to $2 (valid once, for 10 minutes)"
        return 0
    fi
    "$KAP_QR" "$_full" || die "remote: kap-qr failed"
    say "$_full"
    say "Scan it with the phone's camera (same network).  Valid once, for 10 minutes."
}

remote_start() {
    _listen=
    _ato=60
    while [ $# -gt 0 ]; do
        case $1 in
        --ask-timeout) [ $# -ge 2 ] || die "remote: --ask-timeout needs seconds"; _ato=$2; shift 2 ;;
        --ask-timeout=*) _ato=${1#--ask-timeout=}; shift ;;
        --listen) [ $# -ge 2 ] || die "remote: --listen needs IP:PORT"
            remote_listen_ok "$2"; _listen="$_listen $2"; shift 2 ;;
        --listen=*) remote_listen_ok "${1#--listen=}"; _listen="$_listen ${1#--listen=}"; shift ;;
        *) die "remote: unknown argument $(printf '%s' "$1" | sanitize) (see kap help remote)" ;;
        esac
    done
    case $_ato in
    ''|*[!0-9]*|0) die "remote: --ask-timeout takes whole seconds (1 or more), not $(printf '%s' "$_ato" | sanitize)" ;;
    esac
    _d=$(remote_dir)
    if _pid=$(remote_pid); then
        say "kap remote is running already (pid $_pid); a new pairing code:"
        remote_qr
        return 0
    fi
    ( umask 077 && mkdir -p "$_d" ) || die "remote: cannot create $_d"
    chmod 700 "$_d"
    if [ -z "$_listen" ]; then
        _lan=$(remote_lan_ip)
        _listen=" 127.0.0.1:19420"
        if [ -n "$_lan" ]; then
            _listen=" $_lan:19420$_listen"
        else
            say "no private LAN address found: listening on 127.0.0.1 only (use --listen IP:PORT)"
        fi
    fi
    _hd=$(approve_host_dir)
    for _x in "$_hd" "$_hd/secrets"; do
        if ! ( umask 077 && mkdir -p "$_x" ) || ! chmod 700 "$_x"; then
            die "remote: cannot create $_x"
        fi
    done
    _local=
    _list=
    _host=
    for _a in $_listen; do
        _list="$_list${_list:+, }\"$_a\""
        case $_a in
        127.*|\[::1\]*) [ -n "$_local" ] || _local=$_a ;;
        *) [ -n "$_host" ] || _host=$_a ;;
        esac
    done
    [ -n "$_host" ] || _host=${_listen# }
    _host=${_host%% *}
    case $(state_dir)${KAP_MODULE_PATH:-}$_hd in
    *[\"\\]*) die "remote: the state directory, KAP_HOST_DIR or KAP_MODULE_PATH holds a quote or backslash" ;;
    esac
    _mp=
    [ -n "${KAP_MODULE_PATH:-}" ] && _mp="module_path = [\"$KAP_MODULE_PATH\"]; "
    cat > "$_d/kap.conf.tmp" <<EOC || die "remote: cannot write $_d/kap.conf"
# written by kap remote start (rewritten on every start)
kapd: { load = ["remote", "channel"]; ${_mp}pid_file = "kapd.pid"; error_log = "error.log"; log_level = "info";
        policy: { chain = ["network", "remote", "channel"]; }; };
audit_log: { path = "audit.jsonl"; };
remote: {
    listen = [$_list];
    state_dir = "state";
    audit_logs = ["$(state_dir)/logs"];
    follow = ["$(state_dir)/logs"];
    ask_timeout = $_ato;
};
# kap run --ask: capsules ask here; NAME's secret is secrets/NAME
channel: {
    listen = ["unix:$_hd/channel.sock"];
    secrets_dir = "$_hd/secrets";
};
EOC
    # followed live (inotify), so it must exist before kapd starts
    mkdir -p "$(state_dir)/logs" || die "remote: cannot make $(state_dir)/logs"
    mv -f "$_d/kap.conf.tmp" "$_d/kap.conf"
    printf 'http://%s\n' "$_host" > "$_d/url"
    # kap approve talks to it on loopback when it listens there
    printf 'http://%s\n' "${_local:-$_host}" > "$_d/local-url"
    rm -f "$_d/approve.header"                  # paired again below
    if ! "$KAPD" -d -c "$_d/kap.conf" -p "$_d" >/dev/null 2>"$_d/start.err"; then
        err "remote: kapd did not start:"
        tail -n 5 "$_d/start.err" "$_d/error.log" 2>/dev/null | sanitize >&2
        exit 1
    fi
    _pid=$(remote_pid) || die "remote: kapd did not stay up (see $_d/error.log)"
    say "kap remote started (pid $_pid), listening on$_listen"
    say "capsules (kap run --ask) ask here: $_hd/channel.sock; answer with kap approve or the phone"
    approve_pair || err "remote: warning: kap approve could not pair with kapd (it will retry)"
    remote_qr
}

remote_stop() {
    _d=$(remote_dir)
    if ! _pid=$(remote_pid); then
        if [ -e "$_d/kapd.pid" ]; then
            rm -f "$_d/kapd.pid"
            say "kap remote was not running (removed a stale pid file)"
        else
            say "kap remote is not running"
        fi
        return 0
    fi
    kill -TERM "$_pid" || die "remote: cannot signal pid $_pid"
    _i=0
    while kill -0 "$_pid" 2>/dev/null; do
        _i=$((_i + 1))
        [ $_i -le 100 ] || die "remote: kapd (pid $_pid) did not stop within 10 s"
        sleep 0.1
    done
    rm -f "$_d/kapd.pid" "$_d/state/pairing" "$_d/approve.header"
    say "kap remote stopped"
}

remote_status() {
    _d=$(remote_dir)
    if _pid=$(remote_pid); then
        say "kap remote is running (pid $_pid): $(head -n 1 "$_d/url" 2>/dev/null)/"
    else
        say "kap remote is not running"
    fi
    _n=0
    for _f in "$_d"/state/devices/*; do
        _id=${_f##*/}
        case $_id in *[!0-9a-f]*|'') continue ;; esac
        [ ${#_id} = 12 ] || continue
        [ $_n = 0 ] && printf '%-12s  %-20s  %-20s  %s\n' ID PAIRED LAST_SEEN NAME
        _n=$((_n + 1))
        _name=$(sed -n 's/^name=//p' "$_f" | head -n 1 | sanitize)
        _paired=$(sed -n 's/^paired=//p' "$_f" | head -n 1 | sanitize)
        _seen=$(head -n 1 "$_f.seen" 2>/dev/null | sanitize)
        printf '%-12s  %-20s  %-20s  %s\n' "$_id" "$_paired" "${_seen:--}" "$_name"
    done
    [ $_n -gt 0 ] || say "no paired devices (kap remote qr, then scan the code)"
}

remote_revoke() {
    [ $# -eq 1 ] || die "remote: usage: kap remote revoke ID"
    case $1 in
    *[!0-9a-f]*|'') die "remote: bad device id $(printf '%s' "$1" | sanitize) (12 hex digits, see kap remote status)" ;;
    esac
    [ ${#1} = 12 ] || die "remote: bad device id $1 (12 hex digits, see kap remote status)"
    _f="$(remote_dir)/state/devices/$1"
    [ -f "$_f" ] || die "remote: no device $1"
    rm -f "$_f" "$_f.seen" || die "remote: cannot remove $_f"
    say "revoked device $1"
}

cmd_remote() {
    [ $# -gt 0 ] || { help_remote >&2; exit 2; }
    _c=$1
    shift
    case $_c in
    start) remote_start "$@" ;;
    stop) [ $# -eq 0 ] || die "remote: stop takes no arguments"; remote_stop ;;
    status) [ $# -eq 0 ] || die "remote: status takes no arguments"; remote_status ;;
    revoke) remote_revoke "$@" ;;
    qr)
        case $# in
        0) remote_qr ;;
        2) case $1 in
           --png|--svg) remote_qr "$1" "$2" ;;
           *) die "remote: usage: kap remote qr [--png FILE | --svg FILE]" ;;
           esac ;;
        *) die "remote: usage: kap remote qr [--png FILE | --svg FILE]" ;;
        esac ;;
    -h|--help|help) help_remote ;;
    *) die "remote: unknown command $(printf '%s' "$_c" | sanitize) (see kap help remote)" ;;
    esac
}
