//! `lua5.5 [-e code]... [script [args...]]`: the subset of the standard `lua`
//! command that luanet's tests use, on Lua 5.5 built from the lua-src
//! crate (Debian ships no Lua 5.5 yet). build.rs exports the Lua API from
//! the executable, as the standard interpreter does, for `require "net"`.

#![allow(non_snake_case)] // `L` is the Lua C API's own name for the state.

use std::ffi::{c_int, CStr, CString};
use std::process::ExitCode;

use mlua_sys::*;

/// Prints the error message on top of the stack.
unsafe fn report(L: *mut lua_State) {
    let message = unsafe { CStr::from_ptr(lua_tolstring(L, -1, std::ptr::null_mut())) };
    eprintln!("lua5.5: {}", message.to_string_lossy());
}

/// Calls the chunk below its `nargs` arguments with a traceback handler;
/// false (after reporting) on error.
unsafe fn run(L: *mut lua_State, nargs: c_int) -> bool {
    unsafe {
        let base = lua_gettop(L) - nargs;
        lua_pushcfunction(L, traceback);
        lua_insert(L, base);
        let status = lua_pcall(L, nargs, 0, base);
        lua_remove(L, base);
        if status != LUA_OK {
            report(L);
        }
        status == LUA_OK
    }
}

unsafe extern "C-unwind" fn traceback(L: *mut lua_State) -> c_int {
    unsafe { luaL_traceback(L, L, lua_tolstring(L, 1, std::ptr::null_mut()), 1) };
    1
}

fn main() -> ExitCode {
    let args: Vec<CString> =
        std::env::args().map(|a| CString::new(a).expect("no NUL in arguments")).collect();
    // SAFETY: one state, used on this thread only, with the documented API.
    unsafe {
        let L = luaL_newstate();
        luaL_openlibs(L);
        let mut code = Vec::new();
        let mut script = 1;
        while script + 1 < args.len() && args[script].as_bytes() == b"-e" {
            code.push(script + 1);
            script += 2;
        }
        // arg, as lua.c makes it: the script at 0, the interpreter and options
        // below, arguments above; without a script the interpreter is at 0.
        let base = if script < args.len() { script } else { 0 };
        lua_createtable(L, args.len() as c_int, base as c_int + 1);
        for (n, a) in args.iter().enumerate() {
            lua_pushstring(L, a.as_ptr());
            lua_rawseti(L, -2, n as lua_Integer - base as lua_Integer);
        }
        lua_setglobal(L, c"arg".as_ptr());
        for &c in &code {
            if luaL_loadstring(L, args[c].as_ptr()) != LUA_OK {
                report(L);
                return ExitCode::FAILURE;
            }
            if !run(L, 0) {
                return ExitCode::FAILURE;
            }
        }
        if script < args.len() {
            if luaL_loadfile(L, args[script].as_ptr()) != LUA_OK {
                report(L);
                return ExitCode::FAILURE;
            }
            let extra = &args[script + 1..];
            for a in extra {
                lua_pushstring(L, a.as_ptr());
            }
            if !run(L, extra.len() as c_int) {
                return ExitCode::FAILURE;
            }
        }
        lua_close(L);
    }
    ExitCode::SUCCESS
}
