
# the app container's /opt/kap/bin/kap-post-start (contrib/kap/kap-post-start)
kap_post_start_script() {
    cat <<'KAP_POST_START_EOF'
#!/bin/sh
# kap-post-start -- runs in the app container on every start (the
# devcontainer's postStartCommand "kap-setup"); the kap sidecar puts it at
# /opt/kap/bin/kap-post-start, read-only.  POSIX sh: the app's image may
# have no bash.
#
#  1. /etc/profile.d/kap-path.sh: /opt/kap/bin (kap-shim, the CLI shims)
#     and ~/.local/bin on PATH in login shells too (a login shell sets
#     PATH from /etc/profile; remoteEnv reaches only the devcontainer
#     CLI's own processes).
#  2. The installs chosen at kap init, recorded in the project's
#     .devcontainer/kap-setup.conf (claude_code, codex, gh = yes|no), each
#     only when missing: Claude Code and Codex with npm by package name
#     into ~/.local (nodejs and npm from Debian first when there is no
#     npm), gh with apt.  Everything goes through the sidecar's proxy, so
#     what kap.conf does not allow fails -- with a warning, never failing
#     the container's start.
#
# Root's work (profile.d, apt) needs root or sudo without a password;
# without either it is skipped with a warning.

set -u
say() { printf 'kap-post-start: %s\n' "$*" >&2; }

# as_root CMD...: CMD as root, with the proxy settings (sudo drops them)
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n env "http_proxy=${http_proxy:-}" "https_proxy=${https_proxy:-}" \
            "HTTP_PROXY=${HTTP_PROXY:-}" "HTTPS_PROXY=${HTTPS_PROXY:-}" \
            "no_proxy=${no_proxy:-}" "NO_PROXY=${NO_PROXY:-}" \
            DEBIAN_FRONTEND=noninteractive "$@"
    else
        return 1
    fi
}

# ---- 1. PATH in login shells ---------------------------------------------
profile=/etc/profile.d/kap-path.sh
# (the file's text: its $ are for the login shell)
# shellcheck disable=SC2016
want='# written by kap-post-start: /opt/kap/bin (kap-shim, CLI shims) first
case ":$PATH:" in *":$HOME/.local/bin:"*) ;; *) PATH="$HOME/.local/bin:$PATH" ;; esac
case ":$PATH:" in *:/opt/kap/bin:*) ;; *) PATH="/opt/kap/bin:$PATH" ;; esac
export PATH'
if [ "$(cat "$profile" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" | as_root tee "$profile" >/dev/null 2>&1 ||
        say "cannot write $profile (neither root nor sudo): login shells do not get /opt/kap/bin on PATH"
fi

# ---- 2. the installs chosen at kap init ------------------------------------
conf=${KAP_SETUP_CONF:-$PWD/.devcontainer/kap-setup.conf}
[ -f "$conf" ] || exit 0

# setting NAME: the last "NAME = value" of the file
setting() {
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\\([a-z]*\\).*/\\1/p" "$conf" | tail -n 1
}

# what is really installed: PATH without /opt/kap (a shim would hide a
# missing tool), with ~/.local/bin
real_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '^/opt/kap' | tr '\n' ':')
real_path="$HOME/.local/bin:${real_path%:}"
have() { PATH=$real_path command -v "$1" >/dev/null 2>&1; }

apt_install() {
    { as_root apt-get update -q && as_root apt-get install -y -q --no-install-recommends "$@"; } \
        >/dev/null 2>&1
}

# npm_install PACKAGE COMMAND
npm_install() {
    have "$2" && return 0
    if ! have npm; then
        say "installing nodejs and npm (Debian packages) for $1"
        apt_install nodejs npm || {
            say "cannot install npm (apt failed, or no root): $1 not installed"
            return 0
        }
    fi
    say "installing $1 with npm"
    PATH=$real_path npm install -g --prefix "$HOME/.local" --no-fund --no-audit "$1" \
        >/dev/null 2>&1 ||
        say "npm install $1 failed: is the npm registry in kap.conf's network.allow? (kap why-denied)"
}

if [ "$(setting claude_code)" = yes ]; then
    npm_install @anthropic-ai/claude-code claude
    # no first-run screen asking to log in again in every new container
    [ -e "$HOME/.claude.json" ] || printf '{"hasCompletedOnboarding": true}\n' > "$HOME/.claude.json"
fi
[ "$(setting codex)" != yes ] || npm_install @openai/codex codex
if [ "$(setting gh)" = yes ] && ! have gh; then
    say "installing gh (Debian package)"
    apt_install gh || say "apt-get install gh failed (no root, or the Debian mirror is not in network.allow)"
fi

# ---- ssh through the sidecar's proxy ----------------------------------------
# kap-shim's SSH bridge as every host's ProxyCommand (the host must be on
# the allowlist with its port: "host:22"); only when there is no
# ~/.ssh/config of the user's own
if [ -n "${HOME:-}" ] && [ ! -e "$HOME/.ssh/config" ]; then
    (umask 077 && mkdir -p "$HOME/.ssh" && printf '%s\n' \
        '# written by kap-post-start: ssh reaches hosts through the sidecar' \
        'Host *' \
        '    ProxyCommand /opt/kap/bin/kap-shim connect %h %p' \
        '    StrictHostKeyChecking accept-new' > "$HOME/.ssh/config") ||
        say "cannot write ~/.ssh/config: ssh does not go through the sidecar"
fi
exit 0
KAP_POST_START_EOF
}
