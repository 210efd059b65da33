#!/bin/sh
# Builds consumer.c against an installed luanet with pkg-config alone, then
# runs the command that follows (in the build dir).
# Usage: pkg-config.sh INSTALL_PREFIX BUILD_DIR COMMAND...
set -eu
prefix=$1 build=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
mkdir -p "$build"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror "$here/consumer.c" -o "$build/consumer" \
    $(pkg-config --cflags --libs luanet) -Wl,-rpath,"$(pkg-config --variable=libdir luanet)"
cd "$build"
exec "$@"
