/* A custom interpreter: embeds the distribution's Lua, opens luanet by
 * calling luaopen_net itself (no require, no package.cpath), runs the
 * script named on the command line, and closes the state cleanly. Written
 * against the Lua 5.1 API so that it builds for every ABI. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

int luaopen_net(lua_State *L);

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s script.lua\n", argv[0]);
        return 2;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_net);
    lua_call(L, 0, 1); /* installs the globals, returns the module table */
    lua_setglobal(L, "net");
    int status = luaL_dofile(L, argv[1]);
    if (status != 0) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return status != 0;
}
