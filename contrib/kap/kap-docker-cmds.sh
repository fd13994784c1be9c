# ---- Docker projects: up, down, exec, list, status, logs ---------------------
#
# The lifecycle of a Docker project (see kap-docker.sh for the overlay).
# Every command finds the project's containers by the compose project
# name kap gives it (dk_name: base name and a hash of the path), so two
# checkouts never see each other's containers.

help_up() {
    cat <<EOF
usage: kap up [-p DIR] [--reset]

Start the devcontainer of the project DIR (default: the one containing the
working directory): check the policy is approved (asks at a terminal),
build the sidecar image kap-sidecar:$KAP_VERSION from the kap source tree
($KAP_SRCDIR, contrib/docker/Dockerfile; set KAP_SRCDIR to move it) when
it is missing or older than kap (sidecar.image in ~/.kap/kap.conf names
another), write the overlay, run devcontainer up, wait for the sidecar to
be healthy, then run kap status.  --reset first removes the project's
containers and networks (and clears its audit log).
Needs docker, docker-compose (or docker compose) and the devcontainer CLI.
EOF
}

help_down() {
    cat <<EOF
usage: kap down [PROJECT] [-v]

Stop and remove the containers and networks of PROJECT (a name from kap
list, or a unique prefix of one; default: the project containing the
working directory).  -v also removes its volumes (the audit log).
EOF
}

help_exec() {
    cat <<EOF
usage: kap exec [-p PROJECT] [CMD [ARGS...]]

Run CMD (default: bash) in the app container of PROJECT (default: the
project containing the working directory), with devcontainer exec; kap
exits with CMD's status.
EOF
}

help_list() {
    cat <<EOF
usage: kap list [--stats]

The running kap devcontainers: project, app and sidecar containers and
their state; --stats adds CPU and memory use.
EOF
}

help_status() {
    cat <<EOF
usage: kap status [-p DIR]

Check the project's devcontainer from the host (probes run in the
containers with docker exec): the policy approved and in the sidecar,
the sidecar healthy, the app only on the internal network whose bridge
has no host address, no capabilities added, IPv6 off, the proxy variables,
DNS through the sidecar, the proxy reachable, a denied name refused by
DNS and the proxy, .devcontainer and .git read-only in the app.  Each line
is "ok" or "FAIL" with the fix; the exit status is non-zero when one
fails.
EOF
}

help_logs() {
    cat <<EOF
usage: kap logs [-p DIR] [-f]

The sidecar's log (kapd's errors and notices); -f follows it.  Denials:
kap why-denied.
EOF
}

# dk_need_docker: docker and an engine that answers
dk_need_docker() {
    command -v docker >/dev/null 2>&1 ||
        die "docker is not installed (Debian/Ubuntu: apt-get install docker.io; elsewhere: Docker's install guide)"
    docker info >/dev/null 2>&1 ||
        die "no Docker engine answers (start it: systemctl start docker, or dockerd)"
}

# dk_need_tools: compose and the devcontainer CLI too
dk_need_tools() {
    dk_need_docker
    command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ||
        die "Docker Compose is not installed (Debian/Ubuntu: apt-get install docker-compose)"
    command -v devcontainer >/dev/null 2>&1 ||
        die "the devcontainer CLI is not installed (npm install -g @devcontainers/cli)"
}

# dk_cid NAME SERVICE: the container id of SERVICE in compose project NAME
dk_cid() {
    docker ps -a -q --filter "label=com.docker.compose.project=$1" \
        --filter "label=com.docker.compose.service=$2" 2>/dev/null | head -n 1
}

# dk_projects: the compose project names of the kap projects on this engine
dk_projects() {
    docker ps -a --filter label=kap.project \
        --format '{{.Label "com.docker.compose.project"}}' 2>/dev/null | sort -u
}

# dk_resolve [PROJECT]: set dk_proj (the compose name) and dk_dir (the
# project directory): PROJECT exactly or by a unique prefix, else the
# project containing the working directory
dk_resolve() {
    if [ -z "${1:-}" ]; then
        dk_root ""
        dk_proj=$(dk_name "$dk_dir")
        return 0
    fi
    _all=$(dk_projects)
    dk_proj=$(printf '%s\n' "$_all" | grep -xF -- "$1") ||
        dk_proj=$(printf '%s\n' "$_all" | while IFS= read -r _n; do
            case $_n in "$1"*) printf '%s\n' "$_n" ;; esac; done)
    case $dk_proj in
    '') die "no kap project $1 (see kap list)" ;;
    *"
"*) die "$1 is ambiguous: $(printf '%s' "$dk_proj" | tr '\n' ' ')" ;;
    esac
    _c=$(dk_cid "$dk_proj" kap)
    dk_dir=$(docker inspect -f '{{index .Config.Labels "kap.project"}}' "$_c" 2>/dev/null)
}

# dk_compose_cmd: docker-compose (v1) or docker compose (v2)
dk_compose() {
    if command -v docker-compose >/dev/null 2>&1; then docker-compose "$@"
    else docker compose "$@"; fi
}

# dk_remove NAME VOLUMES: remove the project's containers, networks (and
# volumes) by their compose labels: works without its compose files.
# Containers of others still attached to its networks are disconnected.
dk_remove() {
    _ok=0
    _ids=$(docker ps -a -q --filter "label=com.docker.compose.project=$1")
    # shellcheck disable=SC2086
    [ -z "$_ids" ] || docker rm -f $_ids >/dev/null || _ok=1
    for _n in $(docker network ls -q --filter "label=com.docker.compose.project=$1"); do
        for _c in $(docker network inspect -f '{{range $k, $v := .Containers}}{{$k}} {{end}}' "$_n" 2>/dev/null); do
            docker network disconnect -f "$_n" "$_c" >/dev/null 2>&1
        done
        docker network rm "$_n" >/dev/null || _ok=1
    done
    if [ "$2" = 1 ]; then
        _ids=$(docker volume ls -q --filter "label=com.docker.compose.project=$1")
        # shellcheck disable=SC2086
        [ -z "$_ids" ] || docker volume rm $_ids >/dev/null || _ok=1
    fi
    return $_ok
}

# dk_image_ready IMAGE: build kap-sidecar:VERSION when missing or older
# than this kap program (the image's label kap.program holds the program's
# modification time it was built for)
dk_image_ready() {
    case $1 in
    "kap-sidecar:$KAP_VERSION") ;;
    *)  docker image inspect "$1" >/dev/null 2>&1 && return 0
        say "==> pulling the sidecar image $1"
        docker pull "$1" || die "up: cannot get the sidecar image $1 (sidecar.image in ~/.kap/kap.conf)"
        return 0 ;;
    esac
    _mt=$(date -r "$0" +%s 2>/dev/null) || _mt=0
    _lab=$(docker image inspect -f '{{index .Config.Labels "kap.program"}}' "$1" 2>/dev/null) || _lab=
    case $_lab in ''|*[!0-9]*) ;; *) [ "$_mt" -gt "$_lab" ] || return 0 ;; esac
    [ -f "$KAP_SRCDIR/contrib/docker/Dockerfile" ] ||
        die "up: no kap source tree at $KAP_SRCDIR to build the sidecar image from (set KAP_SRCDIR, or sidecar.image in ~/.kap/kap.conf)"
    if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
        say "==> the base image debian:bookworm-slim is missing: it is pulled (without a registry: $KAP_SRCDIR/contrib/docker/import-base-image)"
    fi
    _old=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null) || _old=
    say "==> building the sidecar image $1 from $KAP_SRCDIR (a few minutes the first time)"
    _log="$(state_dir)/docker/image-build.log"
    if ! DOCKER_BUILDKIT=0 docker build -f "$KAP_SRCDIR/contrib/docker/Dockerfile" \
            --label "kap.program=$_mt" -t "$1" "$KAP_SRCDIR" > "$_log" 2>&1; then
        tail -n 30 "$_log" >&2
        die "up: building the sidecar image failed (log: $_log)"
    fi
    # the image it replaces, unless a container still uses it
    if [ -n "$_old" ] && [ "$_old" != "$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null)" ]; then
        docker rmi "$_old" >/dev/null 2>&1 || true
    fi
}

cmd_up() {
    _pd='' _reset=0
    while [ $# -gt 0 ]; do
        case $1 in
        -p) [ $# -ge 2 ] || die "up: -p needs a directory"; _pd=$2; shift 2 ;;
        --reset) _reset=1; shift ;;
        -h|--help) help_up; exit 0 ;;
        *) die "up: unknown argument $1 (see kap help up)" ;;
        esac
    done
    dk_root "$_pd"
    [ -f "$dk_dir/.devcontainer/kap.conf" ] || die "up: $dk_dir/.devcontainer/kap.conf is missing (run kap init)"
    dk_need_tools
    _name=$(dk_name "$dk_dir")
    say "==> project $dk_dir (compose project $_name)"
    # the policy: approved now, at a terminal, or the way to approve it
    _pol=$dk_dir/.devcontainer/kap.conf
    if ! dk_policy_ok "$_pol"; then
        if [ -t 0 ] && [ -t 2 ]; then
            _t=$(mktemp) || die "up: cannot create a temporary file"
            cp -- "$_pol" "$_t" || die "up: cannot read $_pol"
            err "the policy $_pol is new or changed since you last allowed it:"
            ask_approval "$(abs_file "$_pol")" "$_t" || { rm -f "$_t"; die "up: not allowed; nothing was started"; }
            rm -f "$_t"
        elif [ ! -f "$(dk_state "$_name")/etc/kapd.conf" ]; then
            err "up: the policy $_pol is new or changed since you last allowed it."
            err "up: a policy decides what the agent may reach; read it, then allow it with:"
            printf '  kap allow %s\n' "$(sh_quote "$_pol" | sanitize)" >&2
            exit 1
        fi
    fi
    if [ "$_reset" = 1 ]; then
        say "==> --reset: removing the project's containers and networks"
        dk_remove "$_name" 0 || die "up: cannot remove the old containers"
    fi
    dk_overlay "$dk_dir" || die "up: cannot write the overlay"
    _img=$(dk_image)
    dk_image_ready "$_img"
    # kap-shim for the app, from the image (the app's platform, not the host's)
    _bin="$(dk_state "$_name")/opt/bin"
    if ! { docker run --rm --network none --entrypoint cat "$_img" /usr/libexec/kap/kap-shim \
            > "$_bin/kap-shim.tmp" && chmod 0755 "$_bin/kap-shim.tmp" &&
            mv -f "$_bin/kap-shim.tmp" "$_bin/kap-shim"; }; then
        err "warning: could not copy kap-shim out of $_img"
    fi
    say "==> devcontainer up (log: $(dk_state "$_name")/up.log)"
    set -- --workspace-folder "$dk_dir"
    [ "$_reset" = 1 ] && set -- "$@" --remove-existing-container
    if ! COMPOSE_PROJECT_NAME=$_name DOCKER_BUILDKIT=0 devcontainer up "$@" \
            > "$(dk_state "$_name")/up.log" 2>&1; then
        tail -n 30 "$(dk_state "$_name")/up.log" >&2
        die "up: devcontainer up failed (log: $(dk_state "$_name")/up.log)"
    fi
    say "==> waiting for the sidecar to be healthy"
    _i=0 _h=
    while [ $_i -lt 120 ]; do
        _c=$(dk_cid "$_name" kap)
        _h=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$_c" 2>/dev/null) || _h=
        [ "$_h" = "running healthy" ] && break
        sleep 0.5
        _i=$((_i + 1))
    done
    [ "$_h" = "running healthy" ] || die "up: the sidecar is not healthy ($_h): see kap logs"
    if [ "$_reset" = 1 ]; then
        docker exec "$_c" sh -c ': > /var/log/kap/audit.jsonl' 2>/dev/null || true
    fi
    say "==> up; checking"
    dk_status "$dk_dir" "$_name" || err "some checks failed (see above)"
    say "==> ready: kap exec -p $_name   (or: cd $dk_dir && kap exec)"
}

cmd_down() {
    _p='' _v=0
    while [ $# -gt 0 ]; do
        case $1 in
        -v|--volumes) _v=1; shift ;;
        -h|--help) help_down; exit 0 ;;
        -*) die "down: unknown option $1 (see kap help down)" ;;
        *) [ -z "$_p" ] || die "down: one project at a time"; _p=$1; shift ;;
        esac
    done
    dk_need_docker
    dk_resolve "$_p"
    dk_remove "$dk_proj" "$_v" || die "down: could not remove everything of $dk_proj (see above)"
    say "kap: $dk_proj is down"
}

cmd_exec() {
    _p=
    while [ $# -gt 0 ]; do
        case $1 in
        -p) [ $# -ge 2 ] || die "exec: -p needs a project"; _p=$2; shift 2 ;;
        -h|--help) help_exec; exit 0 ;;
        --) shift; break ;;
        *) break ;;
        esac
    done
    dk_need_tools
    if [ -n "$_p" ] && [ -d "$_p/.devcontainer" ]; then
        dk_root "$_p"; dk_proj=$(dk_name "$dk_dir")
    else
        dk_resolve "$_p"
    fi
    [ -n "$(dk_cid "$dk_proj" kap)" ] || die "exec: $dk_proj is not running (kap up)"
    [ $# -gt 0 ] || set -- bash
    COMPOSE_PROJECT_NAME=$dk_proj devcontainer exec --workspace-folder "$dk_dir" "$@"
}

cmd_list() {
    _stats=0
    while [ $# -gt 0 ]; do
        case $1 in
        -s|--stats) _stats=1; shift ;;
        -h|--help) help_list; exit 0 ;;
        *) die "list: unknown argument $1 (see kap help list)" ;;
        esac
    done
    dk_need_docker
    _all=$(dk_projects)
    [ -n "$_all" ] || { say "no kap devcontainers"; return 0; }
    _st=
    [ "$_stats" = 1 ] && _st=$(docker stats --no-stream --format '{{.ID}} {{.CPUPerc}} {{.MemUsage}}' 2>/dev/null)
    printf '%s\n' "$_all" | while IFS= read -r _n; do
        _c=$(dk_cid "$_n" kap)
        say "$_n  $(docker inspect -f '{{index .Config.Labels "kap.project"}}' "$_c" 2>/dev/null | sanitize)"
        docker ps -a --filter "label=com.docker.compose.project=$_n" \
            --format '{{.ID}} {{.Label "com.docker.compose.service"}} {{.Status}}' |
        while read -r _id _svc _rest; do
            _x=
            [ -n "$_st" ] && _x=$(printf '%s\n' "$_st" | awk -v I="$_id" 'index($1, I) == 1 || index(I, $1) == 1 { $1 = ""; print "  cpu/mem:" $0 }')
            say "  $_svc: $_rest$_x"
        done
    done
}

cmd_logs() {
    _pd='' _f=''
    while [ $# -gt 0 ]; do
        case $1 in
        -p) [ $# -ge 2 ] || die "logs: -p needs a directory"; _pd=$2; shift 2 ;;
        -f|--follow) _f=-f; shift ;;
        -h|--help) help_logs; exit 0 ;;
        *) die "logs: unknown argument $1 (see kap help logs)" ;;
        esac
    done
    dk_need_docker
    dk_root "$_pd"
    _c=$(dk_cid "$(dk_name "$dk_dir")" kap)
    [ -n "$_c" ] || die "logs: the project is not running (kap up)"
    docker logs $_f "$_c"
}

# dk_why_denied TAIL: kap why-denied in a Docker project whose sidecar
# exists: its audit log; false when this is not one
dk_why_denied() {
    command -v docker >/dev/null 2>&1 || return 1
    _d=$(pwd -P) || return 1
    while [ ! -f "$_d/.devcontainer/devcontainer.json" ]; do
        [ "$_d" = / ] && return 1
        _d=${_d%/*}; [ -n "$_d" ] || _d=/
    done
    _c=$(dk_cid "$(dk_name "$_d")" kap)
    [ -n "$_c" ] || return 1
    _log="sidecar:/var/log/kap/audit.jsonl"
    docker exec "$_c" cat /var/log/kap/audit.jsonl 2>/dev/null |
        LC_ALL=C awk -v TAIL=0 -v LOG="$_log" "$CLEAN_AWK$WHY_AWK"
    if [ "$1" = 1 ]; then
        say "--- following $_log (Ctrl-C to stop)"
        docker exec "$_c" tail -n 0 -f /var/log/kap/audit.jsonl |
            LC_ALL=C awk -v TAIL=1 -v LOG="$_log" "$CLEAN_AWK$WHY_AWK"
    fi
    return 0
}

cmd_status() {
    _pd=
    while [ $# -gt 0 ]; do
        case $1 in
        -p) [ $# -ge 2 ] || die "status: -p needs a directory"; _pd=$2; shift 2 ;;
        -h|--help) help_status; exit 0 ;;
        *) die "status: unknown argument $1 (see kap help status)" ;;
        esac
    done
    dk_need_docker
    dk_root "$_pd"
    dk_status "$dk_dir" "$(dk_name "$dk_dir")"
}

# dk_check OK TEXT FIX: one line of kap status
dk_check() {
    if [ "$1" = 0 ]; then
        say "  ok    $2"; _pass=$((_pass + 1))
    else
        say "  FAIL  $2"; say "        -> $3"; _fail=$((_fail + 1))
    fi
}

# dk_app CMD: run a shell command in the app as its user (the app has
# bash: contrib Dockerfile and kap init's)
dk_app() { docker exec "$_app" sh -c "$1" >/dev/null 2>&1; echo $?; }

dk_status() {
    _pass=0 _fail=0
    _st=$(dk_state "$2")
    _pol=$1/.devcontainer/kap.conf
    say "kap status: $1 ($2)"
    _ok=1; [ -f "$_pol" ] && dk_policy_ok "$_pol" && _ok=0
    dk_check $_ok "the policy is approved as it is" "read it, then: kap allow $(sh_quote "$_pol")"
    _r=1
    if [ $_ok = 0 ] && [ -f "$_st/etc/kapd.conf" ]; then
        _t=$(mktemp) && rewrite_conf "$_pol" "" /var/log/kap/audit.jsonl 0 "" "$_pol" docker > "$_t" 2>/dev/null &&
            cmp -s "$_t" "$_st/etc/kapd.conf" && _r=0
        rm -f "$_t"
    fi
    dk_check $_r "the sidecar's configuration is the policy" "kap allow (after reading it), or kap up"
    _kap=$(dk_cid "$2" kap)
    _svc=$(dk_service "$1")
    _app=$(dk_cid "$2" "$_svc")
    _h=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$_kap" 2>/dev/null) || _h=
    _r=1; [ "$_h" = "running healthy" ] && _r=0
    dk_check $_r "the sidecar is running and healthy${_h:+ ($_h)}" "kap up (see kap logs)"
    _h=$(docker inspect -f '{{.State.Status}}' "$_app" 2>/dev/null) || _h=
    _r=1; [ "$_h" = running ] && _r=0
    dk_check $_r "the app container ($_svc) is running" "kap up"
    if [ "$_r" != 0 ] || [ -z "$_kap" ]; then
        say "kap status: $_fail failed, $_pass passed"
        return 1
    fi
    _nets=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$_app")
    _r=1; [ "$_nets" = "${2}_kap_sandbox " ] && _r=0
    dk_check $_r "the app is only on ${2}_kap_sandbox (${_nets% })" "list docker-compose.kap.yml last in dockerComposeFile and give the app no networks of its own"
    _o=$(docker network inspect -f '{{.Internal}} {{index .Options "com.docker.network.bridge.inhibit_ipv4"}}' "${2}_kap_sandbox" 2>/dev/null)
    _r=1; [ "$_o" = "true true" ] && _r=0
    dk_check $_r "the internal network has no host address (the host is unreachable)" "kap up --reset (the network predates this kap)"
    _caps=$(docker inspect -f '{{.HostConfig.CapAdd}} {{.HostConfig.Privileged}}' "$_app")
    _r=1; case $_caps in '[] false'|'<no value> false') _r=0 ;; esac
    dk_check $_r "no capabilities added to the app ($_caps)" "remove cap_add/privileged from the app service"
    _sip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"${2}_kap_sandbox\").IPAddress}}" "$_kap" 2>/dev/null)
    # (run in the app: its $ are the app shell's)
    # shellcheck disable=SC2016
    _r=$(dk_app 'case "$HTTPS_PROXY $HTTP_PROXY" in *'"$_sip"':3128*'"$_sip"':3128*) exit 0;; esac; exit 1')
    dk_check "$_r" "HTTP(S)_PROXY name the sidecar ($_sip:3128)" "docker-compose.kap.yml must be the last compose file; kap up"
    # Docker's resolver (127.0.0.11) forwards what it does not own to dns:
    _r=$(dk_app "grep -q '^nameserver \\($_sip\\|127\\.0\\.0\\.11\\)\$' /etc/resolv.conf && ! grep '^nameserver' /etc/resolv.conf | grep -v -q '$_sip\\|127\\.0\\.0\\.11'")
    dk_check "$_r" "DNS goes to the sidecar" "kap up --reset"
    _dns=$(docker inspect -f '{{.HostConfig.Dns}}' "$_app")
    _r=1; [ "$_dns" = "[$_sip]" ] && _r=0
    dk_check $_r "the app's DNS server is the sidecar ($_dns)" "docker-compose.kap.yml must be the last compose file; kap up"
    # shellcheck disable=SC2016
    _r=$(dk_app 'test "$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6)" = 1')
    dk_check "$_r" "IPv6 is off in the app" "kap up --reset"
    _r=$(dk_app "timeout 5 bash -c 'exec 3<>/dev/tcp/$_sip/3128'")
    dk_check "$_r" "the proxy answers in the app" "kap logs"
    _r=$(dk_app '! getent hosts kap-test.invalid')
    dk_check "$_r" "a name not on the allowlist does not resolve" "kap logs"
    _code=$(docker exec "$_app" sh -c 'curl -s -o /dev/null -w "%{http_code}" --max-time 5 http://kap-test.invalid/' 2>/dev/null)
    _r=1; [ "$_code" = 403 ] && _r=0
    dk_check $_r "the proxy refuses a name not on the allowlist (HTTP ${_code:-none})" "kap logs"
    _ws=$(dk_workspace "$1")
    _r=$(dk_app "! touch '$_ws/.devcontainer/kap.conf' && ! mv '$_ws/.devcontainer' '$_ws/.devcontainer.x'")
    dk_check "$_r" ".devcontainer is read-only in the app" "kap up --reset"
    if [ -d "$1/.git" ]; then
        _r=$(dk_app "! touch '$_ws/.git/hooks/kap-status-probe' && ! mv '$_ws/.git' '$_ws/.git.x'")
        dk_check "$_r" ".git hooks are read-only and .git is pinned in the app" "kap up --reset"
    fi
    _n=$(docker exec "$_kap" cat /var/log/kap/audit.jsonl 2>/dev/null | grep '"denied"' | grep -vc 'kap-test\.invalid')
    [ "${_n:-0}" -gt 0 ] 2>/dev/null && say "  note  $_n denials so far: kap why-denied"
    if [ "$_fail" = 0 ]; then
        say "kap status: all $_pass checks passed"
        return 0
    fi
    say "kap status: $_fail failed, $_pass passed"
    return 1
}
