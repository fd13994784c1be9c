# ---- dispatcher -------------------------------------------------------------
#
# The kap program is contrib/kap/kap.in (common helpers, run, allow,
# why-denied), then every contrib/kap/kap-*.sh fragment (one per command
# group, each defining cmd_NAME and help_NAME), then this file, joined by
# the Makefile.  A command NAME with dashes runs cmd_NAME with
# underscores; `kap help NAME` runs help_NAME.

# kap_fn_exists NAME: true when the shell function NAME is defined
kap_fn_exists() {
    case $(command -v "$1" 2>/dev/null) in
    "$1") return 0 ;;
    *) return 1 ;;
    esac
}

[ $# -gt 0 ] || { usage >&2; exit 2; }
cmd=$1
shift
case $cmd in
-h|--help) usage ;;
help)
    case ${1:-} in
    '') usage ;;
    why-denied) help_why ;;
    version) say "usage: kap version" ;;
    *[!a-z0-9-]*) die "help: unknown command ${1} (see kap --help)" ;;
    *)
        fn=help_$(printf '%s' "$1" | tr - _)
        kap_fn_exists "$fn" || die "help: unknown command ${1} (see kap --help)"
        "$fn" ;;
    esac ;;
version|--version|-V) say "kap $KAP_VERSION" ;;
why-denied) cmd_why "$@" ;;
__rewrite-conf) rewrite_conf "$@" ;;   # internal, for tests: SRC RT LOG OBS MP
*[!a-z0-9-]*|-*) err "unknown command $cmd"; usage >&2; exit 2 ;;
*)
    fn=cmd_$(printf '%s' "$cmd" | tr - _)
    kap_fn_exists "$fn" || { err "unknown command $cmd"; usage >&2; exit 2; }
    "$fn" "$@" ;;
esac
