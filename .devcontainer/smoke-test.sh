#!/bin/sh
# .devcontainer/smoke-test.sh -- check every layer of kap's isolation from
# inside this project's app container:
#
#   kap up && kap exec .devcontainer/smoke-test.sh
#
# (or `sh .devcontainer/smoke-test.sh` in a shell there).  Relies on
# kap.conf allowing github.com and not example.com.  Each check prints
# "ok" or "FAIL" with what it means; the exit status is 1 when one
# failed.  POSIX sh; needs curl, and dig for the NXDOMAIN check.
#
#   1. the proxy variables name the sidecar, resolv.conf too
#   2. an allowed name through the proxy: reached (CONNECT 200)
#   3. a denied name through the proxy: 403, for CONNECT and plain HTTP
#   4. DNS: the allowed name resolves, the denied one is NXDOMAIN
#   5. no route out: no default route; the allowed name's own address
#      directly, without the proxy, fails; `env -u HTTPS_PROXY curl` fails
#   6. the host: nothing answers on the network's gateway address
#   7. the policy: .devcontainer/kap.conf cannot be written from here

allowed=github.com
denied=example.com
fails=0
ok()   { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; fails=$((fails + 1)); }

command -v curl >/dev/null 2>&1 || { echo "smoke-test: curl is needed" >&2; exit 2; }

# ---- 1. the proxy settings ------------------------------------------------
proxy=${HTTPS_PROXY:-${https_proxy:-}}
case $proxy in
http://*:*) ok "HTTPS_PROXY is $proxy" ;;
*) fail "HTTPS_PROXY is not set to the sidecar (is docker-compose.kap.yml the last compose file? kap status)"
   echo "smoke-test: nothing else can be checked without the proxy" >&2
   exit 1 ;;
esac
hp=${proxy#http://}
hp=${hp%%/*}
sidecar=${hp%:*}
if grep -q "^nameserver[[:space:]]*$sidecar\$" /etc/resolv.conf; then
    ok "DNS goes to the sidecar ($sidecar)"
else
    fail "/etc/resolv.conf does not name the sidecar $sidecar"
fi

# ---- 2, 3. the proxy's decisions ---------------------------------------------
c=$(curl -s -o /dev/null -w '%{http_connect} %{http_code}' --max-time 30 "https://$allowed/")
case $c in
200\ [1-5]??) ok "https://$allowed/ through the proxy (CONNECT 200, HTTP ${c#* })" ;;
*) fail "https://$allowed/ through the proxy: $c (is it in network.allow? kap why-denied)" ;;
esac
c=$(curl -s -o /dev/null -w '%{http_connect}' --max-time 30 "https://$denied/")
if [ "$c" = 403 ]; then
    ok "https://$denied/ refused by the proxy (CONNECT 403)"
else
    fail "https://$denied/ through the proxy: CONNECT $c, not 403"
fi
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "http://$denied/")
if [ "$c" = 403 ]; then
    ok "http://$denied/ refused by the proxy (403)"
else
    fail "http://$denied/ through the proxy: $c, not 403"
fi

# ---- 4. DNS ------------------------------------------------------------------
addr=$(getent ahostsv4 "$allowed" 2>/dev/null | awk 'NR == 1 { print $1 }')
if [ -n "$addr" ]; then
    ok "$allowed resolves ($addr)"
else
    fail "$allowed does not resolve through the sidecar"
fi
if command -v dig >/dev/null 2>&1; then
    st=$(dig +time=5 +tries=1 "$denied" A | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')
    if [ "$st" = NXDOMAIN ]; then
        ok "$denied is NXDOMAIN"
    else
        fail "$denied: DNS status ${st:-none}, not NXDOMAIN"
    fi
elif getent hosts "$denied" >/dev/null 2>&1; then
    fail "$denied resolves"
else
    ok "$denied does not resolve (no dig here to see NXDOMAIN itself)"
fi

# ---- 5. no route out ---------------------------------------------------------
if awk 'NR > 1 && $2 == "00000000" { found = 1 } END { exit !found }' /proc/net/route; then
    fail "there is a default route (the app must be on the internal network only)"
else
    ok "no default route"
fi
if [ -n "$addr" ]; then
    if curl -s -o /dev/null --noproxy '*' --connect-timeout 5 --max-time 8 -k \
        "https://$addr/"; then
        fail "https://$addr/ ($allowed's address) answered without the proxy"
    else
        ok "https://$addr/ ($allowed's address) unreachable without the proxy"
    fi
fi
if env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy -u ALL_PROXY -u all_proxy \
    curl -s -o /dev/null --connect-timeout 5 --max-time 8 "https://$allowed/"; then
    fail "env -u HTTPS_PROXY curl https://$allowed/ worked: the proxy is not the only way"
else
    ok "env -u HTTPS_PROXY curl https://$allowed/ fails"
fi

# ---- 6. the host -------------------------------------------------------------
# the gateway of the sidecar's /24 (.1) is the host's address on a
# bridge that has one: a refusal means the host answered
gw=${sidecar%.*}.1
e=$(curl -sS -o /dev/null --noproxy '*' --connect-timeout 3 --max-time 5 "http://$gw:22/" 2>&1)
case $e in
*refused*|*"Empty reply"*|*"Received HTTP"*|'')
    fail "$gw (the host's side of the network) answered: $e" ;;
*) ok "the host is not reachable at $gw" ;;
esac

# ---- 7. the policy -----------------------------------------------------------
if [ -f .devcontainer/kap.conf ]; then
    if (: >> .devcontainer/kap.conf) 2>/dev/null; then
        fail ".devcontainer/kap.conf is writable from the container"
    else
        ok ".devcontainer/kap.conf is read-only here"
    fi
else
    fail "no .devcontainer/kap.conf here: run it from the project's top directory"
fi

if [ "$fails" -gt 0 ]; then
    echo "smoke-test: $fails check(s) failed"
    exit 1
fi
echo "smoke-test: all checks passed"
