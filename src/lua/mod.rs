//! The Lua module `net`: `luaopen_net` and one file per Lua-facing area.
//!
//! Rules: Lua runs only on the thread that called it; no Lua value crosses
//! into the engines, only owned or call-scoped bytes.

#![allow(non_snake_case)] // `L` is the Lua C API's own name for the state.

pub(crate) mod args;
pub(crate) mod boundary;
mod fetch;
mod http;
mod json;
mod request;
mod ws;

use std::ffi::{c_int, CStr};

use boundary::{lua_CFunction, lua_State, Kind, Raw, Upvalues};

/// Module functions, each also set as the contract's global name.
const FUNCTIONS: &[(&CStr, Option<&CStr>, lua_CFunction)] = &[
    (c"http_get", Some(c"net_http_get"), http::http_get),
    (c"http_post", Some(c"net_http_post"), http::http_post),
    (c"request", None, request::net_request),
    (c"fetch", None, fetch::net_fetch),
    (c"configure", None, fetch::net_configure),
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
/// What it raises (no memory, a `_G` whose `__newindex` raises) reaches the
/// caller as a plain Lua error: see [`boundary::open`].
///
/// # Safety
/// `L` is a valid Lua state of the ABI this library was built for.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_net(L: *mut lua_State) -> c_int {
    crate::lifetime::pin_library();
    // SAFETY: the host calls this with a valid state.
    unsafe { boundary::open(L, open_module) }
}

/// A raw frame: owns nothing, calls only [`Raw`].
fn open_module(raw: Raw) -> c_int {
    raw.reserve(10);
    raw.push_trampoline();
    let trampoline = raw.top();
    let ws_created = raw.new_metatable(ws::METATABLE);
    let ws_metatable = raw.top();
    let request_created = raw.new_metatable(fetch::METATABLE);
    let request_metatable = raw.top();
    let upvalues = Upvalues { ws_metatable, trampoline, request_metatable };
    if ws_created {
        fill_metatable(raw, upvalues, ws_metatable, ws::METATABLE, ws::METHODS, ws::METAMETHODS);
    }
    if request_created {
        let (name, methods, metamethods) = (fetch::METATABLE, fetch::METHODS, fetch::METAMETHODS);
        fill_metatable(raw, upvalues, request_metatable, name, methods, metamethods);
    }
    raw.create_table(0, FUNCTIONS.len() + 2);
    let module = raw.top();
    for (field, global, function) in FUNCTIONS {
        raw.push_function(*function, upvalues);
        if let Some(global) = global {
            raw.push_copy(-1);
            raw.set_global(global);
        }
        raw.set_field(module, field);
    }
    raw.push_bytes(crate::VERSION.as_bytes());
    raw.set_field(module, c"version");
    json::push_null(raw);
    raw.set_field(module, c"null");
    for (global, field) in JSON_GLOBALS {
        let defined = raw.get_global(global) != Kind::Nil;
        raw.pop(1);
        if !defined {
            raw.get_field(module, field);
            raw.set_global(global);
        }
    }
    // The module table is on top: the one result.
    1
}

/// Methods or metamethods, each a luanet closure.
type Functions = &'static [(&'static CStr, lua_CFunction)];

/// Fills a metatable made once per state (a second `luaopen_net` reuses
/// it): its methods (in `__index`) and metamethods. `__metatable` keeps
/// `getmetatable(obj)` from handing out `__gc`: it returns the name.
fn fill_metatable(
    raw: Raw,
    upvalues: Upvalues,
    metatable: c_int,
    name: &CStr,
    methods: Functions,
    metamethods: Functions,
) {
    for (field, function) in metamethods {
        raw.push_function(*function, upvalues);
        raw.set_field(metatable, field);
    }
    raw.create_table(0, methods.len());
    for (field, function) in methods {
        raw.push_function(*function, upvalues);
        raw.set_field(-2, field);
    }
    raw.set_field(metatable, c"__index");
    raw.push_bytes(name.to_bytes());
    raw.set_field(metatable, c"__name");
    raw.push_bytes(name.to_bytes());
    raw.set_field(metatable, c"__metatable");
}
