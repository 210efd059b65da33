#!/bin/sh
# Runs luanet's benchmarks against its peers and writes docs/benchmarks.md
# and docs/benchmarks.svg. Installs the peers (Debian packages) and builds
# the raw libcurl and tungstenite programs first.
# Usage: scripts/bench.sh [--runs N] [--smoke] [--out DIR] [--cases a,b]   (see benches/run.py)
set -eu
cd "$(dirname "$0")/.."

scripts/setup.sh
missing=""
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || missing="$missing $1"; }
need_cmd nginx nginx-light
need_cmd curl curl
[ -x /usr/bin/time ] || missing="$missing time"
need_cmd curl-config libcurl4-openssl-dev
for peer in lua-socket lua-sec lua-http lua-curl; do need_pkg $peer; done
if [ -n "$missing" ]; then
    echo "bench: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# luanet for every interpreter a peer runs on, and the raw peers.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j 2 --target lua_module_lua54 lua_module_lua53 lua_module_lua52
cargo build --release --quiet --manifest-path benches/peers/Cargo.toml --target-dir target
mkdir -p build/bench
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Werror benches/c/curl_client.c -o build/bench/curl_client $(curl-config --cflags --libs)
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Werror benches/c/curl_multi.c -o build/bench/curl_multi $(curl-config --cflags --libs)

exec python3 benches/run.py "$@"
