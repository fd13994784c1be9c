# ---- Docker projects: helpers and the compose overlay (kap overlay) -------
#
# A Docker project is a directory with .devcontainer/devcontainer.json and
# .devcontainer/kap.conf (kap init makes both).  `kap up` starts it with the
# devcontainer CLI; the devcontainer's initializeCommand, `kap overlay`,
# writes .devcontainer/docker-compose.kap.yml: the app joins only the
# internal network kap_sandbox (a fixed /24 whose bridge has no host
# address: the app cannot reach the host either), the sidecar `kap`
# (kapd) joins it and kap_external.  The sidecar's configuration is made on
# the host, from the approved policy, in kap's state directory
# (docker/NAME/etc), and mounted read-only: nothing the app can write is
# read by kapd.  See kap(1) DOCKER and docs/design/docker-isolation.md.

help_overlay() {
    cat <<EOF
usage: kap overlay [-p DIR]

Write DIR/.devcontainer/docker-compose.kap.yml (DIR: the project, default
the one containing the working directory) and the sidecar's configuration
from the approved policy (.devcontainer/kap.conf merged with
~/.kap/kap.conf).  devcontainer up runs it as initializeCommand before
every start; kap up runs it too.  The /24s of the two networks are kept
across restarts and chosen free of every other Docker network.  A policy
that is new or changed since kap allow is not used: the sidecar keeps the
last approved one (and kap up asks).
EOF
}

# dk_root [DIR]: set dk_dir to the project (DIR, or the nearest directory
# up from the working directory with .devcontainer/devcontainer.json),
# canonical; die when there is none
dk_root() {
    if [ -n "${1:-}" ]; then
        dk_dir=$(cd "$1" 2>/dev/null && pwd -P) || die "no such directory: $1"
        [ -f "$dk_dir/.devcontainer/devcontainer.json" ] ||
            die "$dk_dir has no .devcontainer/devcontainer.json (run kap init there)"
        return 0
    fi
    dk_dir=$(pwd -P) || die "cannot find the working directory"
    while [ ! -f "$dk_dir/.devcontainer/devcontainer.json" ]; do
        [ "$dk_dir" = / ] && die "no .devcontainer/devcontainer.json here or above (run kap init, or pass -p DIR)"
        dk_dir=${dk_dir%/*}; [ -n "$dk_dir" ] || dk_dir=/
    done
}

# dk_name DIR: the compose project name of DIR: its base name (lower case,
# [a-z0-9-]) and a hash of its path, so two checkouts of the same name never
# share containers or networks
dk_name() {
    _b=$(printf '%s' "${1##*/}" | LC_ALL=C tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9-' '-' | cut -c1-40)
    _b=${_b#-}
    [ -n "$_b" ] || _b=project
    printf '%s_kap%s' "$_b" "$(printf '%s' "$1" | sha256sum | cut -c1-8)"
}

# dk_state NAME: this project's directory in kap's state directory
dk_state() { printf '%s/docker/%s' "$(state_dir)" "$1"; }

# dk_jsonc FILE: every string (and literal) value of a JSONC file as
# PATH=VALUE lines (PATH: keys joined with ".", array elements as [N]);
# comments, trailing commas and nesting are read as JSONC has them
dk_jsonc() {
    LC_ALL=C awk '
function val(v) { print path() "=" v; after() }
function path(   k, p) { p = ""; for (k = 1; k <= d; k++) p = p (typ[k] == "[" ? "[" idx[k] "]" : (p == "" ? "" : ".") key[k]); return p }
function after() { if (d > 0 && typ[d] == "[") idx[d]++; else if (d > 0) key[d] = "" }
{ text = text $0 "\n" }
END {
    n = length(text); d = 0
    for (i = 1; i <= n; i++) {
        c = substr(text, i, 1)
        if (c == "\"") {
            s = ""; i++
            while (i <= n && (c = substr(text, i, 1)) != "\"") {
                if (c == "\\") {
                    i++; c = substr(text, i, 1)
                    if (c == "n") c = "\n"; else if (c == "t") c = "\t"
                    else if (c == "u") { c = "?"; i += 4 }
                }
                s = s c; i++
            }
            if (d > 0 && typ[d] == "{" && key[d] == "") {
                key[d] = s
                while (i + 1 <= n && substr(text, i + 1, 1) ~ /[ \t\r\n]/) i++
                if (substr(text, i + 1, 1) == ":") { i++; continue }
            }
            gsub(/\n/, " ", s); val(s); continue
        }
        if (c == "/" && substr(text, i + 1, 1) == "/") { while (i <= n && substr(text, i, 1) != "\n") i++; continue }
        if (c == "/" && substr(text, i + 1, 1) == "*") {
            j = index(substr(text, i + 2), "*/"); i = (j == 0) ? n : i + j + 2; continue
        }
        if (c == "{" || c == "[") { d++; typ[d] = c; key[d] = ""; idx[d] = 0; continue }
        if (c == "}" || c == "]") { d--; after(); continue }
        if (c ~ /[A-Za-z0-9.+-]/) {
            s = c
            while (i + 1 <= n && substr(text, i + 1, 1) ~ /[A-Za-z0-9.+-]/) { i++; s = s substr(text, i, 1) }
            val(s); continue
        }
    }
}' "$1"
}

# dk_conf_str FILE GROUP KEY: the string value of GROUP.KEY in a libconfig
# file (comments and strings respected), nothing when absent
dk_conf_str() {
    LC_ALL=C awk -v G="$2" -v K="$3" '
{ text = text $0 "\n" }
END {
    n = length(text); depth = 0; grp = ""; key = ""; last = ""
    for (i = 1; i <= n; i++) {
        c = substr(text, i, 1)
        if (c == "\"") {
            v = ""; i++
            while (i <= n && (c = substr(text, i, 1)) != "\"") {
                if (c == "\\") { i++; c = substr(text, i, 1) }
                v = v c; i++
            }
            if (depth == 1 && grp == G && key == K && v !~ /\n/) { print v; exit }
            continue
        }
        if (c == "#" || (c == "/" && substr(text, i + 1, 1) == "/")) { while (i <= n && substr(text, i, 1) != "\n") i++; continue }
        if (c == "/" && substr(text, i + 1, 1) == "*") { j = index(substr(text, i + 2), "*/"); i = (j == 0) ? n : i + j + 2; continue }
        if (c ~ /[A-Za-z_]/) {
            w = c
            while (i + 1 <= n && substr(text, i + 1, 1) ~ /[A-Za-z0-9_*-]/) { i++; w = w substr(text, i, 1) }
            last = w; if (depth == 1) key = w
            continue
        }
        if (c == "{" || c == "[" || c == "(") { if (depth == 0) grp = last; depth++; continue }
        if (c == "}" || c == "]" || c == ")") { depth--; if (depth == 0) grp = ""; continue }
        if (c == ";" || c == ",") { if (depth == 1) key = "" }
    }
}' "$1"
}

# dk_yq S: S as a YAML double-quoted scalar, "$" doubled for compose
dk_yq() {
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\$/$$/g')"
}

# ---- subnets (the pair S, E: kap_sandbox S.0/24, kap_external E = S+1) ------
#
# Fixed /24s keep Docker from handing out a /16 per network, keep the
# app's and the sidecar's addresses (S.2, S.3) stable, and must collide
# with no other network.  In order: the project's networks as they exist
# (compose never changes an existing network), the pair of the current
# overlay when still free, the pair derived from the project path when
# free, else the next free pair from there; without Docker the overlay's
# pair, else the derived one.

# dk_subnets DIR NAME OVERLAY: print "S E" (each like 172.20.7)
dk_subnets() {
    _old=
    [ -f "$3" ] && _old=$(sed -n 's/^# kap-subnets: \([0-9.]*\) \([0-9.]*\)$/\1 \2/p' "$3" | head -n 1)
    _nets=
    if command -v docker >/dev/null 2>&1 && _ls=$(docker network ls --format '{{.Name}}' 2>/dev/null); then
        # shellcheck disable=SC2086
        [ -z "$_ls" ] || _nets=$(docker network inspect --format '{{.Name}}{{range .IPAM.Config}} {{.Subnet}}{{end}}' $_ls 2>/dev/null) || _nets=
        _docker=1
    else
        _docker=0
    fi
    printf '%s\n' "$_nets" | LC_ALL=C awk -v P="$1" -v NAME="$2" -v OLD="$_old" -v DOCKER="$_docker" '
BEGIN { for (i = 1; i < 256; i++) ORD[sprintf("%c", i)] = i }
function key(b2, b3) { return b2 "." b3 }
function nxt() { b3++; if (b3 > 255) { b3 = 0; b2++; if (b2 > 31) b2 = 18 } }
function free(b2, b3) { return !((key(b2, b3)) in taken) }
function pair(b2, b3,   e2, e3) {
    e2 = b2; e3 = b3 + 1; if (e3 > 255) { e3 = 0; e2 = b2 + 1; if (e2 > 31) e2 = 18 }
    return "172." b2 "." b3 " 172." e2 "." e3
}
function pairfree(b2, b3,   e2, e3) {
    e2 = b2; e3 = b3 + 1; if (e3 > 255) { e3 = 0; e2 = b2 + 1; if (e2 > 31) e2 = 18 }
    return free(b2, b3) && free(e2, e3)
}
function p24(cidr) { split(cidr, q, /[.\/]/); return "172." q[2] "." q[3] }
# mark every /24 of a CIDR as taken (shorter than /16: its first /24)
function take(cidr,   a, m, base, cnt, k, x, y) {
    if (cidr !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\/[0-9]+$/) return
    split(cidr, a, /[.\/]/); m = a[5] + 0
    if (a[1] != 172) return
    if (m >= 24 || m < 16) { taken[key(a[2] + 0, a[3] + 0)] = 1; return }
    cnt = 2 ^ (24 - m); base = a[3] - a[3] % cnt
    for (k = 0; k < cnt; k++) taken[key(a[2] + 0, base + k)] = 1
}
{
    if ($1 == NAME "_kap_sandbox" && NF > 1) sb = $2
    else if ($1 == NAME "_kap_external" && NF > 1) ex = $2
    else for (f = 2; f <= NF; f++) take($f)
}
END {
    h = 0; n = length(P)
    for (i = 1; i <= n; i++) h = (h * 31 + ORD[substr(P, i, 1)]) % 4294967296
    pb2 = 18 + h % 14; pb3 = int(h / 256) % 256
    if (sb != "" && ex != "") { print p24(sb), p24(ex); exit }
    if (OLD != "") { split(OLD, o, /[. ]/); ob2 = o[2] + 0; ob3 = o[3] + 0 }
    if (!DOCKER) { print (OLD != "" ? pair(ob2, ob3) : pair(pb2, pb3)); exit }
    if (OLD != "" && pairfree(ob2, ob3)) { print pair(ob2, ob3); exit }
    if (pairfree(pb2, pb3)) { print pair(pb2, pb3); exit }
    b2 = pb2; b3 = pb3
    for (s = 0; s < 1792; s++) {
        nxt(); nxt()
        if (pairfree(b2, b3)) { print pair(b2, b3); exit }
    }
    print pair(pb2, pb3)
}'
}

# ---- the sidecar's configuration, from the approved policy --------------------

# dk_policy_ok PATH: the policy at PATH is approved as it is now
dk_policy_ok() {
    _t=$(mktemp) || return 1
    cp -- "$1" "$_t" && approved "$(abs_file "$1")" "$_t"
    _r=$?
    rm -f "$_t"
    return $_r
}

# dk_write_conf DIR NAME: write docker/NAME/etc/kapd.conf and global.conf
# from the approved project policy and ~/.kap/kap.conf (each renamed into
# place: kapd sees a complete file and reloads it).  An unapproved policy
# keeps the last approved configuration (warning); with none, fails.
dk_write_conf() {
    _st=$(dk_state "$2")
    mkdir_private "$(state_dir)" && mkdir_private "$(state_dir)/docker" &&
        mkdir_private "$_st" || return 1
    # the sidecar's user reads this directory through the mount
    mkdir -p "$_st/etc" && chmod 0755 "$_st/etc" || return 1
    printf '%s\n' "$1" > "$_st/project"
    _pol=$1/.devcontainer/kap.conf
    [ -f "$_pol" ] || { err "overlay: $_pol is missing (run kap init)"; return 1; }
    _tmp=$(mktemp) || return 1
    cp -- "$_pol" "$_tmp" || { rm -f "$_tmp"; return 1; }
    if approved "$(abs_file "$_pol")" "$_tmp"; then
        _sc=$(dk_conf_str "$_tmp" sidecar image)$(dk_conf_str "$_tmp" sidecar build)
        [ -z "$_sc" ] || err "overlay: $_pol: ignoring the sidecar group: only ~/.kap/kap.conf chooses the sidecar image (it enforces the policy)"
        if ! { rewrite_conf "$_tmp" "" /var/log/kap/audit.jsonl 0 "" "$_pol" docker \
                > "$_st/etc/kapd.conf.tmp" && chmod 0644 "$_st/etc/kapd.conf.tmp" &&
                mv -f "$_st/etc/kapd.conf.tmp" "$_st/etc/kapd.conf"; }; then
            rm -f "$_tmp"; return 1
        fi
    elif [ -f "$_st/etc/kapd.conf" ]; then
        err "overlay: $_pol is new or changed since you last allowed it: the sidecar keeps the last approved policy (read it, then: kap allow)"
    else
        rm -f "$_tmp"
        err "overlay: $_pol is new or changed since you last allowed it."
        err "overlay: a policy decides what the agent may reach; read it, then allow it with:"
        printf '  kap allow %s\n' "$(sh_quote "$_pol" | sanitize)" >&2
        return 1
    fi
    _g="${HOME:-/nonexistent}/.kap/kap.conf"
    if [ -f "$_g" ]; then
        cp -- "$_g" "$_tmp" || { rm -f "$_tmp"; return 1; }
        if approved "$(abs_file "$_g")" "$_tmp"; then
            rewrite_conf "$_tmp" "" /var/log/kap/audit.jsonl 0 "" "$_g" docker \
                > "$_st/etc/global.conf.tmp" 2>/dev/null
        else
            err "overlay: $_g is new or changed since you last allowed it: not used (kap allow $_g)"
            [ -f "$_st/etc/global.conf" ] || printf '# no approved global policy\n' > "$_st/etc/global.conf.tmp"
        fi
    else
        printf '# no global policy (~/.kap/kap.conf)\n' > "$_st/etc/global.conf.tmp"
    fi
    if [ -f "$_st/etc/global.conf.tmp" ]; then
        chmod 0644 "$_st/etc/global.conf.tmp" && mv -f "$_st/etc/global.conf.tmp" "$_st/etc/global.conf"
    fi
    rm -f "$_tmp"
    return 0
}

# dk_after_allow FILE...: after kap allow: refresh the sidecar configuration
# of every Docker project whose policy (or the global one) was approved
dk_after_allow() {
    _g=$(abs_file "${HOME:-/nonexistent}/.kap/kap.conf" 2>/dev/null) || _g=
    for _f in "$@"; do
        _p=$(abs_file "$_f") || continue
        for _pf in "$(state_dir)"/docker/*/project; do
            [ -f "$_pf" ] || continue
            _d=$(cat "$_pf")
            if [ "$_p" = "$_d/.devcontainer/kap.conf" ] || [ "$_p" = "$_g" ]; then
                dk_write_conf "$_d" "$(dk_name "$_d")" || continue
                say "kap: the sidecar of $(printf '%s' "$_d" | sanitize) uses it now (kapd reloads within seconds)"
                # the agent's .mcp.json follows the mcp group (the sidecar's
                # address from the overlay's subnet line)
                _s=$(sed -n 's/^# kap-subnets: \([0-9.]*\) .*/\1/p' "$_d/.devcontainer/docker-compose.kap.yml" 2>/dev/null)
                [ -z "$_s" ] || dk_mcp_json "$_d" "$(dk_state "$(dk_name "$_d")")" "http://$_s.3:3129"
            fi
        done
    done
}

# ---- the overlay ---------------------------------------------------------------

# dk_image: the sidecar image (sidecar.image of the approved global policy,
# else kap-sidecar:VERSION, built by kap up from KAP_SRCDIR)
dk_image() {
    _g="${HOME:-/nonexistent}/.kap/kap.conf"
    if [ -f "$_g" ] && dk_policy_ok "$_g"; then
        _i=$(dk_conf_str "$_g" sidecar image)
        [ -n "$_i" ] && { printf '%s' "$_i"; return 0; }
    fi
    printf 'kap-sidecar:%s' "$KAP_VERSION"
}

# dk_git_mounts ROOT WS: the app's mounts that pin .git and make its
# code-bearing parts read-only (as kap run does): .git is a mount point (it
# cannot be renamed and replaced), hooks, info, modules, worktrees (made
# when missing: else the agent could create them), config and friends
dk_git_mounts() {
    [ -e "$1/.git" ] || return 0
    if [ -f "$1/.git" ]; then
        dk_mount "$1/.git" "$2/.git" true; return 0
    fi
    dk_mount "$1/.git" "$2/.git" false
    for _n in hooks info modules worktrees; do
        [ -d "$1/.git/$_n" ] || mkdir -p "$1/.git/$_n"
        dk_mount "$1/.git/$_n" "$2/.git/$_n" true
    done
    for _n in config commondir config.worktree gitdir; do
        [ -f "$1/.git/$_n" ] && dk_mount "$1/.git/$_n" "$2/.git/$_n" true
    done
    return 0
}

# dk_mount SRC DST RO: one bind mount (long syntax: any character in paths)
dk_mount() {
    printf '      - type: bind\n        source: %s\n        target: %s\n        read_only: %s\n' \
        "$(dk_yq "$1")" "$(dk_yq "$2")" "$3"
}

# dk_validate DIR: warnings for a devcontainer.json that would not use kap
dk_validate() {
    _j=$(dk_jsonc "$1/.devcontainer/devcontainer.json")
    printf '%s\n' "$_j" | grep -q '^initializeCommand.*=.*kap overlay' ||
        err "warning: devcontainer.json: initializeCommand does not run \"kap overlay\" (the overlay is not refreshed on start)"
    _last=$(printf '%s\n' "$_j" | sed -n 's/^dockerComposeFile\(\[[0-9]*\]\)\{0,1\}=//p' | tail -n 1)
    [ "$_last" = docker-compose.kap.yml ] ||
        err "warning: devcontainer.json: dockerComposeFile must list docker-compose.kap.yml last (the app is not isolated otherwise)"
    printf '%s\n' "$_j" | grep -q '^remoteEnv\.PATH=.*/opt/kap/bin' ||
        err "warning: devcontainer.json: remoteEnv.PATH lacks /opt/kap/bin (kap's shims are not on PATH)"
    printf '%s\n' "$_j" | grep -q '^postStartCommand.*kap-post-start' ||
        err "warning: devcontainer.json: postStartCommand does not run /opt/kap/bin/kap-post-start"
}

# dk_service DIR: the app's service name (devcontainer.json "service")
dk_service() {
    _s=$(dk_jsonc "$1/.devcontainer/devcontainer.json" | sed -n 's/^service=//p' | head -n 1)
    case $_s in
    ''|*[!A-Za-z0-9_.-]*) printf app ;;
    *) printf '%s' "$_s" ;;
    esac
}

# dk_workspace DIR: where the project is in the app (workspaceFolder)
dk_workspace() {
    _w=$(dk_jsonc "$1/.devcontainer/devcontainer.json" | sed -n 's/^workspaceFolder=//p' | head -n 1)
    case $_w in
    /*) printf '%s' "${_w%/}" ;;
    *) printf '/workspaces/%s' "${1##*/}" ;;
    esac
}

# dk_post_start FILE: the app's post-start script: kap's kap-post-start
# (contrib/kap/kap-post-start, joined into kap at build time) or a minimal
# one (PATH for login shells, ssh through the proxy)
dk_post_start() {
    if kap_fn_exists kap_post_start_script; then
        kap_post_start_script > "$1.tmp"
    else
        cat > "$1.tmp" <<'EOF'
#!/bin/sh
# /opt/kap/bin/kap-post-start -- written by kap overlay; runs in the app on
# every start (devcontainer.json postStartCommand).  Puts kap's shims on
# PATH for login shells.
if [ ! -f /etc/profile.d/kap-path.sh ]; then
    line='case ":$PATH:" in *:/opt/kap/bin:*) ;; *) PATH=/opt/kap/bin:$PATH ;; esac'
    if [ "$(id -u)" = 0 ]; then
        printf '%s\n' "$line" > /etc/profile.d/kap-path.sh
    elif command -v sudo >/dev/null 2>&1; then
        printf '%s\n' "$line" | sudo -n tee /etc/profile.d/kap-path.sh >/dev/null 2>&1 || true
    fi
fi
# ssh through the sidecar's proxy (the host must be on the allowlist, with
# its port: "host:22"); only when the user has no ~/.ssh/config of their own
if [ -n "${HOME:-}" ] && [ ! -e "$HOME/.ssh/config" ]; then
    (umask 077 && mkdir -p "$HOME/.ssh" && cat > "$HOME/.ssh/config" <<'EOC'
# written by kap-post-start: ssh reaches hosts through the sidecar's proxy
Host *
    ProxyCommand /opt/kap/bin/kap-shim connect %h %p
    StrictHostKeyChecking accept-new
EOC
    ) || true
fi
exit 0
EOF
    fi
    chmod 0755 "$1.tmp" && mv -f "$1.tmp" "$1"
}

cmd_overlay() {
    _pd=
    while [ $# -gt 0 ]; do
        case $1 in
        -p) [ $# -ge 2 ] || die "overlay: -p needs a directory"; _pd=$2; shift 2 ;;
        -h|--help) help_overlay; exit 0 ;;
        *) die "overlay: unknown argument $1 (see kap help overlay)" ;;
        esac
    done
    dk_root "$_pd"
    dk_overlay "$dk_dir" || exit 1
}

# dk_mcp_json DIR STATE BASE: with an mcp group in the sidecar's
# configuration, the agent's DIR/.mcp.json names its servers at BASE/NAME
# (the sidecar's address; no credential: kapd adds those upstream)
dk_mcp_json() {
    grep -q '"\*:3129"' "$2/etc/kapd.conf" "$2/etc/global.conf" 2>/dev/null || return 0
    if [ ! -x "$KAP_MCP" ]; then
        err "overlay: no kap-mcp at $KAP_MCP: $1/.mcp.json is not written"
        return 0
    fi
    "$KAP_MCP" agent-config --base "$3" "$1/.mcp.json" "$2/etc/kapd.conf" "$2/etc/global.conf" |
        while IFS= read -r _l; do
            say "kap: MCP server ${_l%%	*} at ${_l#*	} (in .mcp.json)"
        done
}

# dk_overlay DIR: write the sidecar's configuration and the overlay
dk_overlay() {
    _name=$(dk_name "$1")
    _out=$1/.devcontainer/docker-compose.kap.yml
    dk_validate "$1"
    dk_write_conf "$1" "$_name" || return 1
    _st=$(dk_state "$_name")
    mkdir -p "$_st/opt/bin" && chmod 0755 "$_st/opt" "$_st/opt/bin" || return 1
    dk_post_start "$_st/opt/bin/kap-post-start" || return 1
    set -- "$1" "$(dk_subnets "$1" "$_name" "$_out")"
    _s=${2% *} _e=${2#* }
    dk_mcp_json "$1" "$_st" "http://$_s.3:3129"
    _svc=$(dk_service "$1")
    _ws=$(dk_workspace "$1")
    _img=$(dk_image)
    _proxy="http://$_s.3:3128"
    _noproxy="localhost,127.0.0.1,::1,kap,$_s.3"
    _home=${HOME:-/nonexistent}
    # git in the app: the host's identity (its ~/.gitconfig, read-only),
    # then the app's own ~/.gitconfig-kap
    printf '%s\n' '# written by kap overlay: GIT_CONFIG_GLOBAL in the app' \
        '[include]' '    path = /opt/kap-host-gitconfig' '    path = ~/.gitconfig-kap' \
        > "$_st/opt/gitconfig" && chmod 0644 "$_st/opt/gitconfig"
    _agent=
    [ -n "${SSH_AUTH_SOCK:-}" ] && [ -S "$SSH_AUTH_SOCK" ] && _agent=$SSH_AUTH_SOCK
    for _d in "$_home/.kap" "$_home/.kap/auth" "$_home/.kap/envs" "$_home/.kap/envs/$_name"; do
        [ -d "$_d" ] || (umask 077 && mkdir -p "$_d")
    done
    {
        cat <<EOF
# generated by kap overlay -- do not edit: rewritten on every start
# (devcontainer.json initializeCommand); see kap(1).
# kap-subnets: $_s $_e
services:
  $_svc:
    environment:
      HTTP_PROXY: $(dk_yq "$_proxy")
      HTTPS_PROXY: $(dk_yq "$_proxy")
      http_proxy: $(dk_yq "$_proxy")
      https_proxy: $(dk_yq "$_proxy")
      NO_PROXY: $(dk_yq "$_noproxy")
      no_proxy: $(dk_yq "$_noproxy")
      GIT_CONFIG_GLOBAL: /opt/kap/gitconfig
EOF
        [ -z "$_agent" ] || printf '      SSH_AUTH_SOCK: /ssh-agent\n'
        cat <<EOF
    dns:
      - $_s.3
    sysctls:
      net.ipv6.conf.all.disable_ipv6: 1
      net.ipv6.conf.default.disable_ipv6: 1
    labels:
      kap.project: $(dk_yq "$1")
    networks:
      kap_sandbox:
        ipv4_address: $_s.2
    depends_on:
      kap:
        condition: service_healthy
    volumes:
EOF
        dk_mount "$_st/opt" /opt/kap true
        dk_mount "$1/.devcontainer" "$_ws/.devcontainer" true
        [ -z "$_agent" ] || dk_mount "$_agent" /ssh-agent false
        [ ! -f "$_home/.gitconfig" ] || dk_mount "$_home/.gitconfig" /opt/kap-host-gitconfig true
        dk_git_mounts "$1" "$_ws"
        cat <<EOF
  kap:
    image: $(dk_yq "$_img")
    command: ["kapd", "-c", "/etc/kap/project/kapd.conf", "-g", "/etc/kap/project/global.conf", "-p", "/var/lib/kap"]
    restart: unless-stopped
    # kapd runs as the user who runs kap: it reads that user's MCP
    # registrations and env file (0600) and refreshes OAuth tokens in
    # place; one capability, to bind :53 (the image's kapd carries it as a
    # file capability for a user other than root)
    user: "$(id -u):$(id -g)"
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
    labels:
      kap.project: $(dk_yq "$1")
    healthcheck:
      test: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3128"]
      interval: 2s
      timeout: 2s
      retries: 10
    networks:
      kap_sandbox:
        ipv4_address: $_s.3
      kap_external: {}
    volumes:
      - kap-logs:/var/log/kap
EOF
        dk_mount "$_st/etc" /etc/kap/project true
        dk_mount "$1" /workspace true
        dk_mount "$_home/.kap/auth" /etc/kap/auth false
        dk_mount "$_home/.kap/envs/$_name" /etc/kap/envs true
        cat <<EOF
volumes:
  kap-logs: {}
networks:
  kap_sandbox:
    internal: true
    driver: bridge
    driver_opts:
      # no address of the host on this bridge: the app reaches the sidecar
      # and nothing else (an internal network still reaches the host)
      com.docker.network.bridge.inhibit_ipv4: "true"
    ipam:
      config:
        - subnet: $_s.0/24
  kap_external:
    driver: bridge
    ipam:
      config:
        - subnet: $_e.0/24
EOF
    } > "$_out.tmp" || { rm -f "$_out.tmp"; err "overlay: cannot write $_out"; return 1; }
    mv -f "$_out.tmp" "$_out" || { rm -f "$_out.tmp"; err "overlay: cannot write $_out"; return 1; }
}
