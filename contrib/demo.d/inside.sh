#!/bin/sh
# contrib/demo.d/inside.sh -- what the demo runs inside the capsule.
# The capsule's only network device is loopback; kapd is its only door.
say() { printf '\n\033[1m--- %s\033[0m\n' "$*"; }
fails=0
expect() {  # expect WHAT OK?  (records an unexpected outcome)
    if [ "$2" = 0 ]; then printf '    => as expected: %s\n' "$1"
    else printf '    => UNEXPECTED: %s\n' "$1"; fails=$((fails + 1)); fi
}

say "1. an allowed domain, through the proxy: curl http://github.com/"
out=$(curl -sS -m 10 http://github.com/ 2>&1); echo "    $out"
case $out in *"stand-in for github.com"*) expect "served by the local origin" 0 ;;
*) expect "served by the local origin" 1 ;; esac

say "2. the same through a CONNECT tunnel: curl --proxytunnel http://api.github.com/"
out=$(curl -sS -m 10 --proxytunnel http://api.github.com/ 2>&1); echo "    $out"
case $out in *"stand-in for api.github.com"*) expect "tunnel opened after kapd resolved and checked the address" 0 ;;
*) expect "tunnel works" 1 ;; esac

say "3. a domain that is not on the allowlist: curl http://example.org/"
code=$(curl -sS -m 10 -o /tmp/kap-demo-body -w '%{http_code}' http://example.org/ 2>&1)
sed 's/^/    /' /tmp/kap-demo-body 2>/dev/null
[ "$code" = 403 ]; expect "403 from kapd (got $code)" $?

say "4. DNS for an allowed and a denied name (resolver: 127.0.0.1, the bridge to kapd)"
printf '    github.com  -> %s\n' "$(dig +short +time=3 +tries=1 github.com A 2>&1)"
st=$(dig +time=3 +tries=1 example.org A 2>&1 | sed -n 's/.*status: \([A-Z]*\).*/\1/p')
printf '    example.org -> %s\n' "$st"
[ "$st" = NXDOMAIN ]; expect "NXDOMAIN for the denied name" $?

say "5. a direct connection, around the proxy: curl --noproxy '*' http://198.51.100.10/"
out=$(curl -sS -m 5 --noproxy '*' http://198.51.100.10/ 2>&1); st=$?
echo "    $out"
[ $st != 0 ]; expect "no route out of the capsule" $?

say "6. a DNS query straight to the outside resolver: dig @198.51.100.53 github.com"
out=$(dig +time=2 +tries=1 @198.51.100.53 github.com 2>&1 | grep -E 'timed out|unreachable|no servers' | head -n 1)
echo "    $out"
[ -n "$out" ]; expect "unreachable from the capsule" $?

exit $fails
