/* A host whose lua_Alloc refuses allocations: it runs failing_alloc.lua
 * (HTTP, WebSocket and JSON through luanet, loaded with require) again
 * and again in fresh states, each time refusing every allocation from the
 * Nth on, or every Nth one, for many N. Each run must end in success or a
 * Lua memory error ("not enough memory", possibly inside a luanet message),
 * never in an abort or a crash; lua_close must then work. Under ASan with
 * leak detection, nothing may leak. Written against the Lua 5.1 API, so
 * it builds for every ABI.
 *
 * Usage: failing_alloc SCRIPT (inside testpeer/serve.py, LUA_CPATH set). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Lua 5.5 takes a seed for its hashes. */
#if LUA_VERSION_NUM >= 505
#define new_state(f, ud) lua_newstate((f), (ud), 0)
#else
#define new_state(f, ud) lua_newstate((f), (ud))
#endif

typedef struct {
    int armed;
    long count;     /* allocations asked for since arming */
    long fail_from; /* refuse from this allocation on; 0: never */
    long every;     /* refuse every this many; 0: never */
} control;

static void *allocate(void *ud, void *ptr, size_t osize, size_t nsize) {
    control *c = ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    /* Lua assumes that shrinking never fails. */
    int shrinking = ptr != NULL && nsize <= osize;
    if (c->armed && !shrinking) {
        c->count++;
        if ((c->fail_from > 0 && c->count >= c->fail_from) || (c->every > 0 && c->count % c->every == 0))
            return NULL;
    }
    return realloc(ptr, nsize);
}

/* One run; returns 1 when it ended well. *allocations gets the count. */
static int run(const char *script, long fail_from, long every, long *allocations, char *why, size_t size) {
    control c = {0, 0, fail_from, every};
    lua_State *L = new_state(allocate, &c);
    if (!L) {
        snprintf(why, size, "lua_newstate failed");
        return 0;
    }
    luaL_openlibs(L);
    int ok = 1;
    if (luaL_loadfile(L, script) != 0) {
        snprintf(why, size, "cannot load: %s", lua_tostring(L, -1));
        ok = 0;
    } else {
        c.armed = 1;
        int status = lua_pcall(L, 0, 0, 0);
        c.armed = 0;
        if (status != 0) {
            const char *message = lua_tostring(L, -1);
            if (!message || !strstr(message, "not enough memory")) {
                snprintf(why, size, "status %d: %s", status, message ? message : "(not a string)");
                ok = 0;
            }
        }
    }
    *allocations = c.count;
    lua_close(L);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s script.lua\n", argv[0]);
        return 2;
    }
    char why[512] = "";
    long total = 0;
    CHECK(run(argv[1], 0, 0, &total, why, sizeof why), "the script passes with no refusal");
    if (why[0]) printf("# %s\n", why);
    printf("# %ld allocations in a full run\n", total);
    CHECK(total > 50, "the script allocates");

    /* Refuse from the Nth allocation on: every point of the script fails
     * once. At most about 1500 runs, spread over the whole script. */
    long stride = total / 1500 + 1, bad = 0, errors = 0, count = 0;
    for (long n = 1; n <= total + 1; n += stride) {
        why[0] = 0;
        if (!run(argv[1], n, 0, &count, why, sizeof why)) {
            if (bad++ < 5) printf("# refusing from allocation %ld: %s\n", n, why);
        }
        errors++;
    }
    printf("# %ld runs refusing from the Nth allocation on\n", errors);
    CHECK(bad == 0, "refusing from the Nth allocation on: a memory error or success every time");

    /* Refuse every Nth allocation. */
    bad = 0;
    for (long n = 2; n <= 64; n++) {
        why[0] = 0;
        if (!run(argv[1], 0, n, &count, why, sizeof why)) {
            if (bad++ < 5) printf("# refusing every %ldth allocation: %s\n", n, why);
        }
    }
    CHECK(bad == 0, "refusing every Nth allocation: a memory error or success every time");

    why[0] = 0;
    CHECK(run(argv[1], 0, 0, &total, why, sizeof why), "a state still works after all that");
    if (why[0]) printf("# %s\n", why);
    return finish();
}
