#!/bin/sh
# t/unit/checksrc.sh -- `make check` step: contrib/checksrc in TAP mode.
# Fails when a C source calls a banned function (sprintf, strcpy, atoi,
# system, ...); style findings are printed as TAP diagnostics only.
# automake's harness exports srcdir; by hand: srcdir=/work/main sh t/unit/checksrc.sh
top=${srcdir:-$(dirname "$0")/../..}
exec perl "$top/contrib/checksrc" --tap "$top"
