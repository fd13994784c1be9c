#!/bin/sh
# t/unit/shellcheck.sh -- `make check` step: shellcheck on the kap program
# as installed (the joined file, POSIX sh) and on the other sh programs
# kap ships or runs (kap-post-start, the dogfood smoke test).  Every
# finding fails; a reviewed exception is a "# shellcheck disable=SCnnnn"
# line with its reason above the command.
# automake's harness exports srcdir; the kap program is in the build dir.
top=${srcdir:-$(dirname "$0")/../..}
echo "1..1"
if ! command -v shellcheck >/dev/null 2>&1; then
    echo "Bail out! shellcheck is not installed (contrib/install-deps --test)"
    exit 1
fi
set -- kap "$top/contrib/kap/kap-post-start"
[ -f "$top/.devcontainer/smoke-test.sh" ] && set -- "$@" "$top/.devcontainer/smoke-test.sh"
# bash programs: kap-probe (the Kubernetes image's probe)
bash_progs="$top/contrib/k8s/kap-probe"
if out=$(shellcheck -s sh -f gcc "$@" 2>&1 && shellcheck -s bash -f gcc "$bash_progs" 2>&1); then
    echo "ok 1 - shellcheck: $* $bash_progs"
else
    printf '%s\n' "$out" | sed 's/^/# /'
    echo "not ok 1 - shellcheck: $* $bash_progs"
fi
