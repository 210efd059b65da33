#!/bin/sh
# Builds the Lua module for one ABI and copies it to DEST.
# Usage: build-module.sh ABI DEST CARGO_TARGET_DIR
# Builds for different ABIs share one target dir (dependencies compile once)
# but write the same artefact, so build-and-copy runs under one lock.
set -eu
abi=$1 dest=$2 target=$3
mkdir -p "$target" "$(dirname "$dest")"
exec flock "$target/.luanet-module.lock" sh -c '
  cargo build --release --quiet --no-default-features --features "$1" --target-dir "$3" &&
  cp "$3/release/libluanet.so" "$2.tmp" && mv "$2.tmp" "$2"' sh "$abi" "$dest" "$target"
