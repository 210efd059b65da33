#!/bin/sh
# Builds the Lua 5.4 module and runs examples/demo.lua against a local
# server it starts itself (no network needed).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target lua_module_lua54
LUA_CPATH="$PWD/build/lua-lua54/?.so" exec build/venv/bin/python testpeer/serve.py -- lua5.4 examples/demo.lua
