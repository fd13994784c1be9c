#!/bin/sh
# t/unit/checksrc.sh -- `make check` step: contrib/checksrc in TAP mode.
# Fails when a C source calls a banned function (sprintf, strcpy, atoi,
# system, ...) or a module names the "decision" audit event (only the core
# audits decisions); style findings are printed as TAP diagnostics only.
# automake's harness exports srcdir; by hand: srcdir=/work/main sh t/unit/checksrc.sh
top=${srcdir:-$(dirname "$0")/../..}
# the rules themselves first: a module that writes a "decision" audit
# event and one that calls sprintf must both be refused
probe=$(mktemp -d) || exit 1
mkdir -p "$probe/modules/probe"
printf '/* probe */\nstatic const char *ev = "decision";\n' > "$probe/modules/probe/a.c"
printf '/* probe */\nvoid f(char *b) { sprintf(b, "x"); }\n' > "$probe/modules/probe/b.c"
for f in a.c b.c; do
    if perl "$top/contrib/checksrc" -q "$probe" "modules/probe/$f" >/dev/null 2>&1; then
        echo "Bail out! contrib/checksrc passed modules/probe/$f, which breaks a rule"
        rm -rf "$probe"
        exit 1
    fi
done
rm -rf "$probe"
exec perl "$top/contrib/checksrc" --tap "$top"
