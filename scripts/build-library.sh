#!/bin/sh
# Builds one flavour of the library with cargo and copies it to DEST.
# Usage: build-library.sh FLAVOUR DEST CARGO_TARGET_DIR
#   FLAVOUR c                                  the Lua-free C library (libluanet.so)
#   FLAVOUR lua51|lua52|lua53|lua54|lua55|luajit  the Lua module for that ABI (net.so)
# Every flavour shares one target dir (dependencies compile once) but writes
# the same artefact, so build-and-copy runs under one lock.
set -eu
flavour=$1 dest=$2 target=$3
case $flavour in
    c) features="" ;;
    lua51|lua52|lua53|lua54|lua55|luajit) features=$flavour ;;
    *) echo "build-library.sh: unknown flavour '$flavour'" >&2; exit 2 ;;
esac
mkdir -p "$target" "$(dirname "$dest")"
exec flock "$target/.luanet-build.lock" sh -c '
  cargo build --release --quiet --no-default-features --features "$1" --target-dir "$3" &&
  cp "$3/release/libluanet.so" "$2.tmp" && mv "$2.tmp" "$2"' sh "$features" "$dest" "$target"
