#!/bin/sh
# Builds the library for one ABI into the directory of DEST: libluanet.so,
# and DEST (net.so, the name `require "net"` looks for) linked to it.
# Usage: build-module.sh ABI DEST CARGO_TARGET_DIR
# Builds for different ABIs share one target dir (dependencies compile once)
# but write the same artefact, so build-and-copy runs under one lock.
set -eu
abi=$1 dest=$2 target=$3
mkdir -p "$target" "$(dirname "$dest")"
exec flock "$target/.luanet-module.lock" sh -c '
  cargo build --release --quiet --no-default-features --features "$1" --target-dir "$3" &&
  dir=$(dirname "$2") &&
  cp "$3/release/libluanet.so" "$dir/libluanet.so.tmp" &&
  mv "$dir/libluanet.so.tmp" "$dir/libluanet.so" &&
  ln -sf libluanet.so "$2"' sh "$abi" "$dest" "$target"
