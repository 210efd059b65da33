#!/bin/sh
# Runs every check and test of luanet: lints, the build of each Lua ABI, the
# generated header's drift check, and the CTest suites against local servers.
set -eu
cd "$(dirname "$0")/.."
started=$(date +%s)

scripts/setup.sh

echo "== lints"
cargo fmt --all -- --check
cargo fmt --manifest-path tools/lua55/Cargo.toml -- --check
cargo clippy --release --quiet -- -D warnings                        # the Lua 5.4 module
cargo clippy --release --quiet --no-default-features -- -D warnings  # the C library
# The Lua boundary's rule holds by construction only if nothing else
# reaches the raw C API.
if grep -rln "mlua_sys" src --include='*.rs' | grep -v '^src/lua/boundary/'; then
    echo "test.sh: only src/lua/boundary/ may use mlua_sys (the raw Lua C API)" >&2
    exit 1
fi

echo "== unit tests"
cargo test --release --quiet --lib

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j 2

echo "== generated header is committed as built"
if [ -d .git ]; then
    git diff --exit-code -- include/luanet.h
fi

echo "== tests"
ctest --test-dir build --output-on-failure -j 2

echo "== benchmarks, smoke mode (tiny counts, so the harness cannot rot)"
scripts/bench.sh --smoke --out build/bench-smoke

echo "test.sh: all passed in $(( $(date +%s) - started )) s"
