/* A C host that runs one Lua state per thread, all using luanet at the
 * same time: requests must succeed in every state and reuse connections
 * across calls (the pool is shared between threads). Run by CTest inside
 * testpeer/serve.py, which provides LUANET_HTTP. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_net(lua_State *L);

enum { THREADS = 4, REQUESTS = 25, MAX_PORTS = THREADS * REQUESTS };

struct worker {
    int ports[REQUESTS];
    char error[256];
};

/* Each request returns the client port the server saw. */
static const char *const script =
    "local url, count = ...\n"
    "local ports = {}\n"
    "for i = 1, count do\n"
    "  local ok, status, body, err = net_http_get(url .. '/inspect?i=' .. i, 10000)\n"
    "  assert(ok == true and status == 200, 'request ' .. i .. ': ' .. tostring(err))\n"
    "  assert(body:match('path=/inspect%?i=' .. i .. '\\n'), 'wrong body: ' .. body)\n"
    "  ports[i] = tonumber(body:match('client%-port=(%d+)'))\n"
    "end\n"
    "return (table.unpack or unpack)(ports)\n";

static void *run_state(void *arg) {
    struct worker *w = arg;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_net);
    lua_call(L, 0, 0);
    if (luaL_loadstring(L, script) != 0) {
        snprintf(w->error, sizeof w->error, "load: %s", lua_tostring(L, -1));
    } else {
        lua_pushstring(L, getenv("LUANET_HTTP"));
        lua_pushinteger(L, REQUESTS);
        if (lua_pcall(L, 2, REQUESTS, 0) != 0) {
            snprintf(w->error, sizeof w->error, "run: %s", lua_tostring(L, -1));
        } else {
            for (int i = 0; i < REQUESTS; i++)
                w->ports[i] = (int)lua_tointeger(L, i - REQUESTS);
        }
    }
    lua_close(L);
    return NULL;
}

int main(void) {
    if (!getenv("LUANET_HTTP")) {
        fprintf(stderr, "LUANET_HTTP is not set: run under testpeer/serve.py\n");
        return 2;
    }
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    memset(workers, 0, sizeof workers);
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&threads[t], NULL, run_state, &workers[t]) != 0) return 2;
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);

    int passed = 0, failed = 0, distinct = 0, seen[MAX_PORTS];
    for (int t = 0; t < THREADS; t++) {
        if (workers[t].error[0]) {
            printf("not ok - state %d: %s\n", t, workers[t].error);
            failed++;
            continue;
        }
        printf("ok - state %d: %d requests\n", t, REQUESTS);
        passed++;
        for (int i = 0; i < REQUESTS; i++) {
            int port = workers[t].ports[i], known = 0;
            for (int k = 0; k < distinct; k++) known |= seen[k] == port;
            if (!known) seen[distinct++] = port;
        }
    }
    /* Without reuse every request would open its own connection. */
    if (failed || distinct > THREADS) {
        printf("not ok - %d connections for %d requests in %d states (expected at most %d)\n",
               distinct, THREADS * REQUESTS, THREADS, THREADS);
        failed++;
    } else {
        printf("ok - %d connections served %d requests\n", distinct, THREADS * REQUESTS);
        passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
