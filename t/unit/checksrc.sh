#!/bin/sh
# t/unit/checksrc.sh -- `make check` step: contrib/checksrc in TAP mode.
# Fails when a C source calls a banned function (sprintf, strcpy, atoi,
# system, ...), a module names the "decision" audit event (only the core
# audits decisions), or a function definition breaks the one style
# (contrib/checksrc's header); other style findings are printed as TAP
# diagnostics only.
# automake's harness exports srcdir; by hand: srcdir=/work/main sh t/unit/checksrc.sh
top=${srcdir:-$(dirname "$0")/../..}
# the rules themselves first: a module that writes a "decision" audit
# event and one that calls sprintf must both be refused
probe=$(mktemp -d) || exit 1
mkdir -p "$probe/modules/probe"
printf '/* probe */\nstatic const char *ev = "decision";\n' > "$probe/modules/probe/a.c"
printf '/* probe */\nvoid\nf(char *b)\n{\n    sprintf(b, "x");\n}\n' > "$probe/modules/probe/b.c"
# a definition with its type and name on one line, and one with its
# brace after the parameters, break the one function style
printf '/* probe */\nstatic int f(void)\n{\n    return 0;\n}\n' > "$probe/modules/probe/c.c"
printf '/* probe */\nstatic int\nf(void) {\n    return 0;\n}\n' > "$probe/modules/probe/d.c"
printf '/* probe */\nstatic int\nf(void)\n{\n    return 0;\n}\n' > "$probe/modules/probe/ok.c"
if ! perl "$top/contrib/checksrc" -q "$probe" modules/probe/ok.c >/dev/null 2>&1; then
    echo "Bail out! contrib/checksrc refused modules/probe/ok.c, which follows every rule"
    rm -rf "$probe"
    exit 1
fi
for f in a.c b.c c.c d.c; do
    if perl "$top/contrib/checksrc" -q "$probe" "modules/probe/$f" >/dev/null 2>&1; then
        echo "Bail out! contrib/checksrc passed modules/probe/$f, which breaks a rule"
        rm -rf "$probe"
        exit 1
    fi
done
rm -rf "$probe"
exec perl "$top/contrib/checksrc" --tap "$top"
