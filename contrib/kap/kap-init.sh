
# ---- kap init -----------------------------------------------------------------
#
# Scaffolds .devcontainer/ for kap (a new project), or converts an existing
# devcontainer (image-based -> Docker Compose) so that `kap up` can add the
# sidecar.  devcontainer.json is JSONC: it is read and edited only through
# `kap-shim jsonc` (a real parser that edits the text in place), so the
# user's keys, order, comments and layout stay as they were.

help_init() {
    cat <<EOF
usage: kap init [-p DIR] [-y] [-f]

Set up DIR (default: the current directory) for kap up: .devcontainer/
with devcontainer.json, docker-compose.yml (the app service), a
Dockerfile for it, kap.conf (the policy: what the agent may reach) and
kap-setup.conf (what kap-post-start installs in the container), and
.devcontainer/docker-compose.kap.yml in .gitignore.

An existing .devcontainer/devcontainer.json is kept and edited in place
(keys, comments and layout are kept): one that names an "image" or a
Dockerfile ("build") becomes a Docker Compose one (docker-compose.yml
runs that image, or builds that Dockerfile, as service "app"); dockerComposeFile gets docker-compose.kap.yml (the sidecar,
written by kap overlay on every start) last; initializeCommand,
remoteEnv.PATH and postStartCommand get kap's part.  What cannot be
merged is printed as a note.

The questions (install Claude Code, Codex, gh in the container; sudo for
the container's user) are asked on the terminal.
  -y   answer every question with its default, and convert without asking
  -f   redo a project that has .devcontainer/kap.conf already (the old
       kap.conf is kept as kap.conf.bak); files kap init did not write
       are never overwritten
EOF
}

# init_slug NAME: NAME with anything but [A-Za-z0-9._-] as "-"
init_slug() {
    _s=$(printf '%s' "$1" | LC_ALL=C tr -c 'A-Za-z0-9._-' '-')
    case $_s in ''|.|..) _s=my-project ;; esac
    printf '%s' "$_s"
}

# init_ask QUESTION DEFAULT(y|n): y or n, asked on the terminal; the
# default with -y or when there is no terminal
init_ask() {
    if [ "$i_yes" = 1 ] || ! (true </dev/tty) 2>/dev/null; then
        printf '%s' "$2"
        return 0
    fi
    if [ "$2" = y ]; then _h='[Y/n]'; else _h='[y/N]'; fi
    printf '%s %s ' "$1" "$_h" >/dev/tty
    _a=
    read -r _a </dev/tty || _a=
    case $_a in
    [yY]|[yY][eE][sS]) printf y ;;
    [nN]|[nN][oO]) printf n ;;
    *) printf '%s' "$2" ;;
    esac
}

# kap-shim's JSONC reader on the working copy of devcontainer.json
# (exit 1: absent; an error -- a duplicate member name -- ends kap init)
jread() {
    "$KAP_SHIM" jsonc "$@" 2> "$i_tmp/dc.err"
    _rc=$?
    if [ "$_rc" -gt 1 ]; then
        die "init: $(sed "s|^kap-shim jsonc: $i_tmp/dc.json|$i_dc/devcontainer.json|" "$i_tmp/dc.err" | sanitize)"
    fi
    return "$_rc"
}
jget()  { jread get "$i_tmp/dc.json" "$@"; }
jtype() { jread type "$i_tmp/dc.json" "$@"; }
jquote() { "$KAP_SHIM" jsonc quote "$1"; }
# jedit OP KEY... [JSON]: edit the working copy
jedit() {
    _op=$1
    shift
    "$KAP_SHIM" jsonc "$_op" "$i_tmp/dc.json" "$@" > "$i_tmp/dc.new" 2> "$i_tmp/dc.err" ||
        die "init: cannot edit devcontainer.json ($_op $1): $(sanitize < "$i_tmp/dc.err")"
    mv -f "$i_tmp/dc.new" "$i_tmp/dc.json"
}

init_note() {
    say "note: $*"
}

# init_write FILE CONTENT-FILE: install the content unless FILE has it
# already; a changed kap.conf is kept as .bak.  Reports what it did.
init_write() {
    _rel=${1#"$i_top"/}
    if [ -f "$1" ] && cmp -s "$1" "$2"; then
        say "  kept     $_rel (unchanged)"
        return 0
    fi
    if [ -f "$1" ]; then
        cp -p -- "$1" "$1.bak" || die "init: cannot keep a copy of $_rel"
        cat -- "$2" > "$1" || die "init: cannot write $_rel"
        say "  updated  $_rel (the previous one is $_rel.bak)"
    else
        cat -- "$2" > "$1" || die "init: cannot write $_rel"
        say "  wrote    $_rel"
    fi
}

# init_url_host URL: the host of URL (no scheme, user, port or path)
init_url_host() {
    printf '%s\n' "$1" | sed -n \
        's|^[A-Za-z][A-Za-z0-9+.-]*://\([^/@]*@\)\{0,1\}\([A-Za-z0-9.-]*\).*|\2|p'
}

# init_group TITLE HOW HOST...: one commented group of the allowlist.  The
# host names come from this machine's own tools and settings (kap names no
# package registry itself); with none, the group says where to find them.
init_group() {
    _t=$1 _how=$2
    shift 2
    _hosts=$(for _h in "$@"; do
        case $_h in *.*) printf '%s\n' "$_h" ;; esac
    done | LC_ALL=C sort -u | tr '\n' ' ')
    if [ -z "$_hosts" ]; then
        printf '\n        # %s: add its host names here (%s)' "$_t" "$_how"
        return
    fi
    printf ',\n        # %s (from this machine: %s)\n        ' "$_t" "$_how"
    _sep=
    for _h in $_hosts; do
        printf '%s"%s"' "$_sep" "$_h"
        _sep=', '
    done
}

# init_apt_hosts: the hosts of this machine's apt sources (one-line and
# deb822 files)
init_apt_hosts() {
    for _f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
              /etc/apt/sources.list.d/*.sources; do
        [ -r "$_f" ] || continue
        sed -n -e 's/^[[:space:]]*deb\(-src\)\{0,1\}[[:space:]][[:space:]]*\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\3/p' \
               -e 's/^[[:space:]]*URIs:[[:space:]]*//p' "$_f" 2>/dev/null
    done | tr ' ' '\n' | while IFS= read -r _u; do init_url_host "$_u"; done
}

# init_pip_hosts: pip's configured index, else its default one
init_pip_hosts() {
    command -v python3 >/dev/null 2>&1 || return 0
    python3 -m pip config list 2>/dev/null |
        sed -n "s/.*index-url='\([^']*\)'.*/\1/p"
    python3 -c 'from pip._internal.models.index import PyPI
print(PyPI.url); print("https://" + PyPI.file_storage_domain + "/")' 2>/dev/null
}

# init_go_hosts: go's module proxy and checksum database
init_go_hosts() {
    command -v go >/dev/null 2>&1 || return 0
    go env GOPROXY 2>/dev/null | tr ',|' '\n'
    _db=$(go env GOSUMDB 2>/dev/null)
    case $_db in off|'') ;; *) printf 'https://%s/\n' "${_db%%[ +]*}" ;; esac
}

# init_cargo_hosts: the registries of ~/.cargo/config(.toml), and
# rustup's dist server when it is set
init_cargo_hosts() {
    for _f in "${CARGO_HOME:-$HOME/.cargo}/config.toml" \
              "${CARGO_HOME:-$HOME/.cargo}/config"; do
        [ -r "$_f" ] &&
            sed -n 's/^[[:space:]]*index[[:space:]]*=[[:space:]]*"\(sparse+\)\{0,1\}\([^"]*\)".*/\2/p' "$_f"
    done
    [ -z "${RUSTUP_DIST_SERVER:-}" ] || printf '%s\n' "$RUSTUP_DIST_SERVER"
}

# init_hosts: the host of every URL on standard input
init_hosts() {
    while IFS= read -r _u; do init_url_host "$_u"; done
}

# init_registries: the allowlist groups of the package registries, each
# filled with what this machine's own tools and settings name (so a
# project gets the mirrors its owner uses), else left for the user
init_registries() {
    # shellcheck disable=SC2046 # one host name per word
    init_group "Debian and Ubuntu apt" "the mirrors of /etc/apt/sources.list*" \
        $(init_apt_hosts)
    # shellcheck disable=SC2046
    init_group "npm" "npm config get registry" \
        $( { command -v npm >/dev/null 2>&1 &&
             npm config get registry 2>/dev/null; } | init_hosts)
    # shellcheck disable=SC2046
    init_group "PyPI" "pip config list, or pip's default index" \
        $(init_pip_hosts | init_hosts)
    # shellcheck disable=SC2046
    init_group "crates (Rust)" "the index of each registry in ~/.cargo/config.toml" \
        $(init_cargo_hosts | init_hosts)
    # shellcheck disable=SC2046
    init_group "Go modules" "go env GOPROXY GOSUMDB" \
        $(init_go_hosts | init_hosts)
    # shellcheck disable=SC2046
    init_group "Maven and Gradle" "the repository and mirror URLs of ~/.m2/settings.xml" \
        $( { [ -r "$HOME/.m2/settings.xml" ] &&
             sed -n 's|.*<url>\([^<]*\)</url>.*|\1|p' "$HOME/.m2/settings.xml"; } |
           init_hosts)
    # shellcheck disable=SC2046
    init_group "RubyGems" "gem sources --list" \
        $( { command -v gem >/dev/null 2>&1 && gem sources --list 2>/dev/null; } |
           init_hosts)
    printf '\n'
}

# init_kap_conf: the default policy, grouped and commented
init_kap_conf() {
    cat <<'EOF'
# kap.conf -- what the agent in this project's container may reach
# (written by kap init; libconfig syntax; reference: kap.conf(5)).
#
# kapd in the kap sidecar reads it from your machine (never from the
# container) and reloads it when it changes: an edit takes effect without
# a restart.  ~/.kap/kap.conf, when present, merges in (lists add up).
# A new or changed policy is used only after you approve it (kap allow).
# `kap why-denied` shows what was refused and the line that would allow
# it; `kap run --observe` helps build a list.

network: {
    # Exact names, or "*.suffix" for subdomains only ("*.github.com" does
    # not match "github.com").  Without a port a rule allows 80 and 443;
    # "github.com:22" allows git over SSH.  Deny wins over allow.  Remove
    # the groups your project does not use.
    allow = [
        # GitHub
        "github.com", "*.github.com", "*.githubusercontent.com",
        # AI providers
        "anthropic.com", "*.anthropic.com", "claude.ai", "*.claude.ai",
        "claude.com", "*.claude.com", "openai.com", "*.openai.com",
EOF
    printf '        "generativelanguage.googleapis.com"'
    init_registries
    cat <<'EOF'
    ];
    deny = ["gist.github.com"];
};
EOF
    cat <<'EOF'

# ---- MCP servers ---------------------------------------------------------
# Not in this version of kap yet (the mcp module has not landed); the
# syntax below may still change.  The agent will reach MCP servers only
# through the sidecar, which adds the credentials (stored on your machine
# by `kap mcp add NAME URL`) and lets through only the tools allowed here.
#
# mcp: {
#     servers = (
#         { name = "github"; allow = ["get_*", "list_*", "search_*"]; }
#     );
# };
EOF
    if [ "$i_gh_host" = 1 ]; then
        cat <<'EOF'

# ---- CLI tools run by the sidecar ----------------------------------------
# gh was found on this machine.  `kap run` serves this group (kap up does
# not yet): kapd runs gh outside the capsule with your GH_TOKEN, which
# never enters it; the agent's `gh` is a shim that asks kapd.  Try a rule
# with `kap cli test gh -- ARGS`; kap.conf(5) has the rule language.
#
# cli: {
#     tools = (
#         { name = "gh"; env = ["GH_TOKEN"];
#           allow = ["issue list", "issue view", "pr list", "pr view"]; }
#     );
# };
EOF
    fi
}

# init_setup_conf: the installs chosen, for kap-post-start
init_setup_conf() {
    cat <<EOF
# kap-setup.conf -- what kap-post-start (/opt/kap/bin/kap-post-start, the
# devcontainer's postStartCommand) installs in the app container when it
# is missing, on every start (written by kap init; yes or no).  Installs
# go through the sidecar: npm packages by name, Debian packages with apt.
claude_code = $i_claude
codex = $i_codex
gh = $i_gh
EOF
}

init_new_files() {
    _wf="/workspaces/$i_name"
    cat > "$i_tmp/devcontainer.json" <<EOF
// devcontainer.json -- written by kap init; yours to edit (kap keeps your
// keys and comments).  The app container runs the agent; its only
// network peer is the kap sidecar (kapd), which docker-compose.kap.yml
// adds: kap overlay writes that file on every start.
{
    "name": $(jquote "$i_name"),
    "dockerComposeFile": ["docker-compose.yml", "docker-compose.kap.yml"],
    "service": "app",
    "workspaceFolder": $(jquote "$_wf"),
    // on the host, before every start: the sidecar and its networks
    "initializeCommand": "kap overlay",
    "remoteUser": "dev",
    // kap-shim and the CLI shims come first
    "remoteEnv": {
        "PATH": "/opt/kap/bin:\${containerEnv:PATH}"
    },
    // PATH in login shells, and the installs chosen in kap-setup.conf
    "postStartCommand": {
        "kap-setup": "/opt/kap/bin/kap-post-start"
    }
}
EOF
    cat > "$i_tmp/docker-compose.yml" <<EOF
# docker-compose.yml -- the app container (written by kap init; yours to
# edit).  kap overlay adds docker-compose.kap.yml on every start: the kap
# sidecar, the internal network the app is on, and the proxy settings.
# Put the app on no other network: kapd is its only way out.
services:
  app:
    build:
      context: .
      dockerfile: Dockerfile
    volumes:
      - $(jquote "..:$_wf:cached")
    command: sleep infinity
EOF
    {
        cat <<'EOF'
# Dockerfile -- the app container's image (written by kap init; yours to
# edit: add the tools your project needs).  Packages are installed here,
# at build time; in the running container only what kap.conf allows is
# reachable.
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends \
        ca-certificates curl git bash procps sudo openssh-client less \
    && rm -rf /var/lib/apt/lists/*
# the user the agent runs as (devcontainer.json remoteUser)
RUN useradd --create-home --uid 1000 --shell /bin/bash dev
EOF
        if [ "$i_sudo" = y ]; then
            cat <<'EOF'
# passwordless sudo for dev (kap init: you chose it); remove to have none
RUN printf 'dev ALL=(ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/dev \
    && chmod 0440 /etc/sudoers.d/dev
EOF
        fi
        cat <<'EOF'
# /opt/kap/bin (kap-shim, CLI shims) first on PATH in login shells too
RUN printf '%s\n' 'case ":$PATH:" in *:/opt/kap/bin:*) ;; *) PATH="/opt/kap/bin:$PATH" ;; esac' \
        > /etc/profile.d/kap-path.sh
USER dev
EOF
    } > "$i_tmp/Dockerfile"
}

# init_has_cmd KEY WORD: whether the lifecycle command KEY (string, array
# or object form) mentions WORD
init_has_cmd() {
    case $(jget "$1") in *"$2"*) return 0 ;; esac
    return 1
}

# init_merge_cmd KEY NAME COMMAND: make COMMAND part of the lifecycle
# command KEY (a new object member NAME; a string or array becomes an
# object with it as "existing"; an absent initializeCommand becomes
# COMMAND, an absent other one an object)
init_merge_cmd() {
    init_has_cmd "$1" "$3" && return 0
    _q=$(jquote "$3")
    case $(jtype "$1") in
    '') if [ "$1" = initializeCommand ]; then jedit set "$1" "$_q"
        else jedit set "$1" "{$(jquote "$2"): $_q}"; fi ;;
    object) jedit set "$1" "$2" "$_q" ;;
    string)
        jedit set "$1" "{\"existing\": $(jquote "$(jget "$1")"), $(jquote "$2"): $_q}"
        init_note "$1 was one command; it is an object now with your command as \"existing\" and \"$2\": \"$3\" (the two run in parallel)" ;;
    array)
        jedit set "$1" "{\"existing\": $(jget "$1"), $(jquote "$2"): $_q}"
        init_note "$1 was one command; it is an object now with your command as \"existing\" and \"$2\": \"$3\" (the two run in parallel)" ;;
    *) init_note "$1 is not a command (string, array or object): add \"$3\" to it yourself" ;;
    esac
}

# the parts every kap devcontainer.json has (new or converted)
init_common_edits() {
    init_merge_cmd initializeCommand kap-overlay "kap overlay"
    # (a devcontainer variable, not the shell's)
    # shellcheck disable=SC2016
    _path='/opt/kap/bin:${containerEnv:PATH}'
    case $(jtype remoteEnv) in
    '') jedit set remoteEnv "{\"PATH\": $(jquote "$_path")}" ;;
    object)
        case $(jtype remoteEnv PATH) in
        '') jedit set remoteEnv PATH "$(jquote "$_path")" ;;
        string)
            case $(jget remoteEnv PATH) in
            */opt/kap/bin*) ;;
            *) jedit set remoteEnv PATH "$(jquote "/opt/kap/bin:$(jget remoteEnv PATH)")"
               init_note "remoteEnv.PATH: /opt/kap/bin put in front of yours" ;;
            esac ;;
        *) init_note "remoteEnv.PATH is not a string: make it start with /opt/kap/bin:" ;;
        esac ;;
    *) init_note "remoteEnv is not an object: set PATH to $_path in it" ;;
    esac
    init_merge_cmd postStartCommand kap-setup /opt/kap/bin/kap-post-start
}

# converts an image- or Dockerfile-based devcontainer.json (in the
# working copy) to Docker Compose; writes the compose file into i_tmp
init_convert() {
    if [ -e "$i_dc/docker-compose.yml" ]; then
        die "init: .devcontainer/docker-compose.yml exists but devcontainer.json does not use it (it names an image or a Dockerfile): rename it, then run kap init again"
    fi
    if [ -n "$(jtype image)" ]; then
        [ "$(jtype image)" = string ] || die "init: devcontainer.json: \"image\" is not a string"
        _img=$(jget image)
        _from="an image"
        _runs="runs $(printf '%s' "$_img" | sanitize)"
        _svc="    image: $(jquote "$_img")"
        _drop=' image'
    else
        # build.dockerfile and build.context (or the older dockerFile and
        # context) are relative to devcontainer.json; compose's dockerfile
        # is relative to the context
        _df=$(jget build dockerfile) || _df=$(jget dockerFile) ||
            die "init: devcontainer.json: \"build\" names no dockerfile"
        _ctx=$(jget build context) || _ctx=$(jget context) || _ctx=.
        case $_ctx in
        .|./) _cdf=$_df ;;
        ..|../) case $_df in ../*) _cdf=${_df#../} ;; *) _cdf=.devcontainer/$_df ;; esac ;;
        *) die "init: devcontainer.json: build context $(printf '%s' "$_ctx" | sanitize): kap init converts a context of \".\" or \"..\" only; write docker-compose.yml yourself, then run kap init again" ;;
        esac
        _from="a Dockerfile"
        _runs="is built from $(printf '%s' "$_df" | sanitize)"
        _svc="    build:
      context: $(jquote "$_ctx")
      dockerfile: $(jquote "$_cdf")"
        if _tg=$(jget build target); then
            _svc="$_svc
      target: $(jquote "$_tg")"
        fi
        [ -z "$(jtype build args)" ] ||
            init_note "build.args: copy them to docker-compose.yml (services.app.build.args)"
        _drop=
        for _k in build dockerFile context; do
            [ -z "$(jtype "$_k")" ] || _drop="$_drop $_k"
        done
    fi
    _wf=/workspaces/$i_base
    if [ "$(jtype workspaceFolder)" = string ]; then
        _wf=$(jget workspaceFolder)
        # (devcontainer variables, not the shell's)
        # shellcheck disable=SC2016
        case $_wf in
        *'${localWorkspaceFolderBasename}'*)
            _l='${localWorkspaceFolderBasename}'
            _wf="${_wf%%"$_l"*}$i_base${_wf#*"$_l"}" ;;
        esac
        # shellcheck disable=SC2016
        case $_wf in
        *'${'*) die "init: devcontainer.json: workspaceFolder $(printf '%s' "$_wf" | sanitize) uses a variable kap init cannot resolve: set it to a path" ;;
        /*) ;;
        *) die "init: devcontainer.json: workspaceFolder is not an absolute path" ;;
        esac
    fi
    if [ "$i_yes" != 1 ]; then
        say "kap init converts .devcontainer/devcontainer.json from $_from to Docker Compose:"
        say "  - writes .devcontainer/docker-compose.yml: service \"app\" $_runs,"
        say "    with the project mounted at $(printf '%s' "$_wf" | sanitize)"
        say "  - in devcontainer.json:$_drop goes; dockerComposeFile, service and kap's"
        say "    initializeCommand, remoteEnv.PATH and postStartCommand are set; the rest stays"
        [ "$(init_ask "Convert it?" y)" = y ] || die "init: nothing was changed"
    fi
    cat > "$i_tmp/docker-compose.yml" <<EOF
# docker-compose.yml -- the app container, converted by kap init from
# $_from in devcontainer.json (yours to edit).  kap overlay adds
# docker-compose.kap.yml on every start: the kap sidecar, the internal
# network the app is on, and the proxy settings.  Put the app on no
# other network: kapd is its only way out.
services:
  app:
$_svc
    volumes:
      - $(jquote "..:$_wf:cached")
    command: sleep infinity
EOF
    for _k in $_drop; do jedit remove "$_k"; done
    jedit set dockerComposeFile '["docker-compose.yml", "docker-compose.kap.yml"]'
    jedit set service '"app"'
    [ -n "$(jtype workspaceFolder)" ] || jedit set workspaceFolder "$(jquote "$_wf")"
    for _k in runArgs appPort workspaceMount; do
        [ -z "$(jtype "$_k")" ] ||
            init_note "$_k is kept but the devcontainer CLI ignores it with Docker Compose: move it to docker-compose.yml"
    done
    [ "$(jget shutdownAction)" != stopContainer ] ||
        init_note "shutdownAction \"stopContainer\" is for images: use \"stopCompose\""
}

# an existing devcontainer.json, in the working copy i_tmp/dc.json
init_existing() {
    _f=$i_dc/devcontainer.json
    "$KAP_SHIM" jsonc check "$_f" 2> "$i_tmp/dc.err" ||
        die "init: $(sed 's/^kap-shim jsonc: //' "$i_tmp/dc.err" | sanitize) (fix it, then run kap init again)"
    cp -- "$_f" "$i_tmp/dc.json" || die "init: cannot read $_f"
    if [ -n "$(jtype dockerComposeFile)" ]; then
        i_kind=compose
        [ "$(jtype service)" = string ] || die "init: devcontainer.json names compose files but no \"service\""
        case $(jtype dockerComposeFile) in
        string)
            case $(jget dockerComposeFile) in
            *docker-compose.kap.yml) ;;
            *) jedit set dockerComposeFile "[$(jquote "$(jget dockerComposeFile)"), \"docker-compose.kap.yml\"]" ;;
            esac ;;
        array)
            _n=0 _last=
            while _v=$(jget dockerComposeFile "$_n"); do _last=$_v; _n=$((_n + 1)); done
            case $(jget dockerComposeFile) in
            *'"docker-compose.kap.yml"'*)
                [ "$_last" = docker-compose.kap.yml ] ||
                    init_note "dockerComposeFile: docker-compose.kap.yml must be the last file (it changes the app service)" ;;
            *) jedit append dockerComposeFile '"docker-compose.kap.yml"' ;;
            esac ;;
        *) die "init: devcontainer.json: dockerComposeFile is neither a string nor an array" ;;
        esac
    elif [ -n "$(jtype image)" ] || [ -n "$(jtype build)" ] || [ -n "$(jtype dockerFile)" ]; then
        i_kind=convert
        init_convert
    else
        die "init: devcontainer.json has no \"image\", \"build\" or \"dockerComposeFile\": kap cannot tell which container to isolate"
    fi
    for _k in privileged capAdd securityOpt; do
        [ -z "$(jtype "$_k")" ] ||
            init_note "$_k: the app container gets extra privileges; kap assumes it has none (remove $_k)"
    done
    init_common_edits
}

cmd_init() {
    i_dir=. i_yes=0 i_force=0
    while [ $# -gt 0 ]; do
        case $1 in
        -p) [ $# -ge 2 ] || die "init: -p needs a directory"; i_dir=$2; shift 2 ;;
        -p*) i_dir=${1#-p}; shift ;;
        -y|--yes) i_yes=1; shift ;;
        -f|--force) i_force=1; shift ;;
        -yf|-fy) i_yes=1; i_force=1; shift ;;
        -h|--help) help_init; exit 0 ;;
        *) die "init: unknown argument $1 (see kap help init)" ;;
        esac
    done
    [ -d "$i_dir" ] || die "init: $(printf '%s' "$i_dir" | sanitize): not a directory"
    i_top=$(cd "$i_dir" && pwd -P) || die "init: cannot enter $(printf '%s' "$i_dir" | sanitize)"
    [ -x "$KAP_SHIM" ] || die "init: kap-shim not found at $KAP_SHIM (set KAP_SHIM)"
    i_dc=$i_top/.devcontainer
    i_base=${i_top##*/}
    i_name=$(init_slug "$i_base")
    if [ -e "$i_top/.devcontainer.json" ] && ! [ -e "$i_dc/devcontainer.json" ]; then
        die "init: kap keeps its files in .devcontainer/: move .devcontainer.json to .devcontainer/devcontainer.json, then run kap init again"
    fi
    if [ -e "$i_dc/kap.conf" ] && [ "$i_force" != 1 ]; then
        die "init: .devcontainer/kap.conf exists: this project is set up already (kap init -f does it again; your kap.conf is kept as kap.conf.bak)"
    fi
    if ! [ -e "$i_dc/devcontainer.json" ]; then
        for _x in docker-compose.yml Dockerfile; do
            [ ! -e "$i_dc/$_x" ] ||
                die "init: .devcontainer/$_x exists but no devcontainer.json: move it away (or write a devcontainer.json that uses it), then run kap init again"
        done
    fi
    i_tmp=$(mktemp -d) || die "init: cannot create a temporary directory"
    trap 'rm -rf "$i_tmp"' EXIT

    if [ "$i_yes" != 1 ] && ! (true </dev/tty) 2>/dev/null; then
        say "kap init: no terminal to ask on: the default answers are used (as with -y)"
    fi
    i_gh_host=0
    command -v gh >/dev/null 2>&1 && i_gh_host=1
    if [ -e "$i_dc/devcontainer.json" ]; then
        i_kind=
        init_existing
    else
        i_kind=new
    fi

    i_claude=$(init_ask "Install Claude Code in the container (npm package)?" y)
    i_codex=$(init_ask "Install Codex in the container (npm package)?" n)
    i_gh=n
    [ "$i_gh_host" = 0 ] || i_gh=$(init_ask "Install gh, the GitHub CLI, in the container (Debian package)?" y)
    i_sudo=n
    [ "$i_kind" != new ] || i_sudo=$(init_ask "Give the container's user passwordless sudo?" y)
    case $i_claude in y) i_claude=yes ;; *) i_claude=no ;; esac
    case $i_codex in y) i_codex=yes ;; *) i_codex=no ;; esac
    case $i_gh in y) i_gh=yes ;; *) i_gh=no ;; esac

    mkdir -p "$i_dc" || die "init: cannot create $i_dc"
    say "kap init: $(printf '%s' "$i_top" | sanitize)"
    if [ "$i_kind" = new ]; then
        init_new_files
        for _x in devcontainer.json docker-compose.yml Dockerfile; do
            init_write "$i_dc/$_x" "$i_tmp/$_x"
        done
    else
        [ "$i_kind" != convert ] || init_write "$i_dc/docker-compose.yml" "$i_tmp/docker-compose.yml"
        if cmp -s "$i_tmp/dc.json" "$i_dc/devcontainer.json"; then
            say "  kept     .devcontainer/devcontainer.json (unchanged)"
        else
            cat -- "$i_tmp/dc.json" > "$i_dc/devcontainer.json" ||
                die "init: cannot write .devcontainer/devcontainer.json"
            say "  updated  .devcontainer/devcontainer.json"
        fi
    fi
    init_kap_conf > "$i_tmp/kap.conf"
    init_write "$i_dc/kap.conf" "$i_tmp/kap.conf"
    init_setup_conf > "$i_tmp/kap-setup.conf"
    init_write "$i_dc/kap-setup.conf" "$i_tmp/kap-setup.conf"

    _gi=$i_top/.gitignore
    if grep -qxF .devcontainer/docker-compose.kap.yml "$_gi" 2>/dev/null; then
        say "  kept     .gitignore (lists docker-compose.kap.yml)"
    else
        # (a last line without its newline gets one)
        _end=$(tail -c 1 "$_gi" 2>/dev/null) || _end=
        {
            if [ -n "$_end" ]; then echo; fi
            printf '%s\n' "# generated by kap (kap overlay, on every start)" \
                .devcontainer/docker-compose.kap.yml
        } >> "$_gi" || die "init: cannot write .gitignore"
        say "  updated  .gitignore"
    fi

    # the user wrote this policy just now, with kap: approve it for kap
    # up and kap run (outside a capsule: inside, approvals mean nothing)
    if [ -z "${KAP_CAPSULE:-}" ] && _p=$(abs_file "$i_dc/kap.conf") &&
        approve "$_p" "$i_dc/kap.conf"; then
        say "  allowed  .devcontainer/kap.conf as it is now (kap allow)"
    fi
    say "next: review .devcontainer/kap.conf, then kap up and kap exec"
}
