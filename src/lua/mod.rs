//! The Lua module `net`: `luaopen_net` and one file per Lua-facing area.
//!
//! Rules: Lua runs only on the thread that called it; no Lua value crosses
//! into the engines, only owned or call-scoped bytes.

#![allow(non_snake_case)] // `L` is the Lua C API's own name for the state.

pub(crate) mod args;
pub(crate) mod boundary;
pub(crate) mod compat;
mod http;

use std::ffi::{c_int, CStr};

use compat::*;

/// Module functions, each also set as the contract's global name.
const FUNCTIONS: &[(&CStr, Option<&CStr>, lua_CFunction)] = &[
    (c"http_get", Some(c"net_http_get"), http::http_get),
    (c"http_post", Some(c"net_http_post"), http::http_post),
];

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
    }
    Ok(1)
}
