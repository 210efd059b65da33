#!/bin/sh
# Installs what building and testing luanet needs, when it is missing:
# Debian/Ubuntu packages (apt-get, as root), a Python venv with the test
# servers (build/venv) and the npm ws server's package (build/node-peer).
# Safe to run again; does nothing when all is there.
set -eu
cd "$(dirname "$0")/.."

missing=""
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || missing="$missing $1"; }

need_cmd cc build-essential
need_cmd cmake cmake
need_cmd pkg-config pkg-config
need_cmd flock util-linux
need_cmd git git
need_cmd openssl openssl
for version in 5.1 5.2 5.3 5.4; do need_cmd lua$version lua$version; done
need_cmd luajit luajit
need_cmd tinyproxy tinyproxy-bin
for version in 5.2 5.3 5.4; do need_pkg liblua$version-dev; done
need_pkg liblua5.1-0-dev
need_pkg libssl-dev
need_pkg zlib1g-dev
need_cmd python3 python3
need_cmd node nodejs
need_cmd npm npm
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"

if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: run as root, or install these packages first:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The test servers: pinned Python packages in a venv, rebuilt when the pins change.
venv=build/venv
stamp="$venv/.requirements"
if ! cmp -s testpeer/requirements.txt "$stamp" 2>/dev/null; then
    echo "setup: creating $venv"
    rm -rf "$venv"
    mkdir -p build
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r testpeer/requirements.txt
    cp testpeer/requirements.txt "$stamp"
fi

# The npm `ws` test server (testpeer/ws_peer.js): the pinned package, in its
# own folder, installed again when the lock changes.
node_peer=build/node-peer
if ! cmp -s testpeer/package-lock.json "$node_peer/package-lock.json" 2>/dev/null \
    || [ ! -f "$node_peer/node_modules/ws/package.json" ]; then
    echo "setup: installing npm ws into $node_peer"
    rm -rf "$node_peer"
    mkdir -p "$node_peer"
    cp testpeer/package.json testpeer/package-lock.json "$node_peer/"
    npm ci --prefix "$node_peer" --no-audit --no-fund --loglevel=error >/dev/null
fi
