# ---- kap cli: the cli module's rules, on the host --------------------------------
#
# `kap cli test [-c FILE] TOOL -- ARGS...` prints the verdict kapd's cli
# module would give `TOOL ARGS...`, the rule that decided it and the
# canonical argv it would run, from the policy file and the tool's
# profile alone (kap-cli-test: the module's rule engine; nothing runs,
# the tool need not be installed, no kapd is asked).  Exit 0 when the
# call would run, 126 when it would be denied, 2 on an error.


help_cli() {
    cat <<EOF
usage: kap cli test [-c FILE] TOOL [--] ARGS...

Show what kapd's cli module would do with \`TOOL ARGS...\`: the canonical
argv it would run, the verdict (allow or deny), the rule that decided,
and for a denial the one line the shim would print and a rule that
would allow the call.  Nothing is run and the tool need not be
installed.  Exit 0 when the call would run, 126 when it would be denied.

  -c FILE   policy file (default: .devcontainer/kap.conf of the project,
            else ~/.kap/kap.conf, as kap run finds it)
EOF
}

cli_test() {
    _conf=
    if [ "${1:-}" = -c ]; then
        [ $# -ge 2 ] || die "cli test: -c needs a file"
        _conf=$2
        shift 2
    fi
    [ $# -ge 1 ] || { help_cli >&2; exit 2; }
    if [ -z "$_conf" ]; then
        _conf=$(find_conf) || die "cli test: no policy file: pass -c FILE"
    fi
    [ -f "$_conf" ] || die "cli test: no such file: $(printf '%s' "$_conf" | sanitize)"
    [ -x "$KAP_CLI_TEST" ] || die "cli test: kap-cli-test not found at $KAP_CLI_TEST (set KAP_CLI_TEST=...)"
    exec "$KAP_CLI_TEST" -c "$_conf" "$@"
}

cmd_cli() {
    [ $# -gt 0 ] || { help_cli >&2; exit 2; }
    _sub=$1
    shift
    case $_sub in
    test) cli_test "$@" ;;
    -h|--help|help) help_cli ;;
    *) err "cli: unknown command $(printf '%s' "$_sub" | sanitize)"; help_cli >&2; exit 2 ;;
    esac
}
