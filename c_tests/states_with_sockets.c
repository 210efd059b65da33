/* A C host that opens and closes 100 Lua states, each loading luanet
 * with `require` (so Lua dlopens it, and dlcloses it again in lua_close)
 * and leaving WebSockets open, some with messages still arriving. Then it
 * checks that the process is healthy: a new state still works, the server
 * sees every connection closed, and the library's I/O thread has exited.
 * Run by CTest inside testpeer/serve.py (LUANET_WS) with LUA_CPATH set. */
#define _POSIX_C_SOURCE 200809L
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "process.h"

enum { STATES = 100 };

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
    printf("%s - %s%s%s\n", ok ? "ok" : "not ok", what, detail ? ": " : "", detail ? detail : "");
    ok ? passed++ : failed++;
}

/* Runs `code` in a fresh state with `net` required; returns 1 on success,
 * leaving the state open in *out when out is not NULL. */
static int run(const char *code, lua_State **out, char *error, size_t size) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    int ok = luaL_dostring(L, "net = require 'net'") == 0 && luaL_dostring(L, code) == 0;
    if (!ok) snprintf(error, size, "%s", lua_tostring(L, -1));
    if (out) *out = L;
    else lua_close(L);
    return ok;
}

/* Sockets left open: one idle, one echoing, one receiving a stream. */
static const char *const leave_open =
    "local base = os.getenv('LUANET_WS')\n"
    "local a = assert(ws_connect(base .. '/silent', 5000))\n"
    "local b = assert(ws_connect(base .. '/echo', 5000))\n"
    "local c = assert(ws_connect(base .. '/send?count=1000&size=100', 5000))\n"
    "assert(b:send_text('hello'))\n"
    "keep = {a, b, c}\n";

/* After everything: the server reports no connection of ours open. */
static const char *const verify =
    "local base = os.getenv('LUANET_WS')\n"
    "local e = assert(ws_connect(base .. '/echo', 5000))\n"
    "assert(e:send_text('still working'))\n"
    "assert(e:recv(5000) == 'still working', 'echo after 100 states')\n"
    "e:close()\n"
    "local stats\n"
    "for attempt = 1, 30 do\n"
    "  local s = assert(ws_connect(base .. '/stats', 5000))\n"
    "  stats = s:recv(5000)\n"
    "  s:close()\n"
    "  if stats and stats:match('^open=0 ') then return end\n"
    "  local t = os.clock() + 0.1 while os.clock() < t do end\n"
    "end\n"
    "error('server still sees open connections: ' .. tostring(stats))\n";

int main(void) {
    char error[512] = "";
    if (!getenv("LUANET_WS") || !getenv("LUA_CPATH")) {
        fprintf(stderr, "run under testpeer/serve.py with LUA_CPATH set\n");
        return 2;
    }
    int before = threads();
    int opened = 0;
    for (int i = 0; i < STATES; i++) {
        lua_State *L;
        if (run(leave_open, &L, error, sizeof error)) opened++;
        else break;
        lua_close(L); /* collects the sockets and unloads the module */
    }
    char detail[64];
    snprintf(detail, sizeof detail, "%d of %d", opened, STATES);
    check(opened == STATES, "states closed with sockets open", opened == STATES ? detail : error);

    check(run(verify, NULL, error, sizeof error), "a new state works and every socket was closed",
          error[0] ? error : NULL);

    /* The I/O thread exits once its last socket is released. */
    int after = -1;
    for (int waited = 0; waited < 5000; waited += 50) {
        after = threads();
        if (after == before) break;
        sleep_ms(50);
    }
    snprintf(detail, sizeof detail, "%d before, %d after", before, after);
    check(after == before, "no library thread is left running", detail);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
