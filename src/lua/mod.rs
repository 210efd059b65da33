//! The Lua module `net`: `luaopen_net` and one file per Lua-facing area.
//!
//! Rules: Lua runs only on the thread that called it; no Lua value crosses
//! into the engines, only owned or call-scoped bytes.

#![allow(non_snake_case)] // `L` is the Lua C API's own name for the state.

pub(crate) mod args;
pub(crate) mod boundary;
pub(crate) mod compat;
mod http;
mod json;
mod ws;

use std::ffi::{c_int, CStr};

use compat::*;

/// Module functions, each also set as the contract's global name.
const FUNCTIONS: &[(&CStr, Option<&CStr>, lua_CFunction)] = &[
    (c"http_get", Some(c"net_http_get"), http::http_get),
    (c"http_post", Some(c"net_http_post"), http::http_post),
    (c"ws_connect", Some(c"ws_connect"), ws::ws_connect),
    (c"json_encode", None, json::json_encode),
    (c"json_decode", None, json::json_decode),
];

/// Globals set to the module's JSON functions only when the host has not
/// defined its own: a host's encoder always wins.
const JSON_GLOBALS: &[(&CStr, &CStr)] =
    &[(c"json_encode", c"json_encode"), (c"json_decode", c"json_decode")];

/// Entry point for `require "net"` and for hosts that call it directly.
/// Returns the module table and installs the contract's globals.
///
/// # Safety
/// `L` is a valid Lua state of the ABI this library was built for.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_net(L: *mut lua_State) -> c_int {
    // SAFETY: the host calls this with a valid state.
    unsafe { boundary::protect(L, open_module) }
}

unsafe fn open_module(L: *mut lua_State) -> Result<c_int, String> {
    crate::lifetime::pin_library();
    unsafe {
        lua_checkstack(L, 4);
        lua_createtable(L, 0, FUNCTIONS.len() as c_int + 1);
        for (field, global, function) in FUNCTIONS {
            lua_pushcclosure(L, *function, 0);
            if let Some(global) = global {
                lua_pushvalue(L, -1);
                lua_setglobal(L, global.as_ptr());
            }
            lua_setfield(L, -2, field.as_ptr());
        }
        push_bytes(L, crate::VERSION.as_bytes());
        lua_setfield(L, -2, c"version".as_ptr());
        json::push_null(L);
        lua_setfield(L, -2, c"null".as_ptr());
        for (global, field) in JSON_GLOBALS {
            let defined = lua_getglobal(L, global.as_ptr()) != LUA_TNIL;
            lua_pop(L, 1);
            if !defined {
                lua_getfield(L, -1, field.as_ptr());
                lua_setglobal(L, global.as_ptr());
            }
        }
        register_ws_metatable(L);
    }
    Ok(1)
}

/// Creates the `net_ws` metatable once per state (a second `luaopen_net`
/// reuses it): `__index` holds the methods. Methods and metamethods are
/// closures over the metatable, which is how they recognise their `self`.
unsafe fn register_ws_metatable(L: *mut lua_State) {
    unsafe {
        if luaL_newmetatable(L, ws::METATABLE.as_ptr()) != 0 {
            for (name, function) in ws::METAMETHODS {
                lua_pushvalue(L, -1);
                lua_pushcclosure(L, *function, 1);
                lua_setfield(L, -2, name.as_ptr());
            }
            lua_createtable(L, 0, ws::METHODS.len() as c_int);
            for (name, function) in ws::METHODS {
                lua_pushvalue(L, -2);
                lua_pushcclosure(L, *function, 1);
                lua_setfield(L, -2, name.as_ptr());
            }
            lua_setfield(L, -2, c"__index".as_ptr());
            push_bytes(L, ws::METATABLE.to_bytes());
            lua_setfield(L, -2, c"__name".as_ptr());
        }
        lua_pop(L, 1);
    }
}
