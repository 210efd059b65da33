//! `ws_connect` and the `net_ws` object: a userdata that owns one
//! [`Socket`], with the contract's methods and `__gc` / `__tostring`.

use std::ffi::{c_int, CStr};

use super::args::{check_bytes, check_number, check_str, opt_timeout, Callee};
use super::boundary::lua_function;
use super::compat::*;
use crate::ws::{Outgoing, Polled, Socket};

/// The registry name of the metatable, as the contract names it.
pub(crate) const METATABLE: &CStr = c"net_ws";

/// What the userdata holds; `None` once `__gc` has run.
struct Userdata {
    socket: Option<Socket>,
}

lua_function!(
    /// `ws = ws_connect(url, timeout_ms?)` or `nil, message`
    ws_connect => connect
);
lua_function!(send_text_method => send_text);
lua_function!(send_binary_method => send_binary);
lua_function!(send_json_method => send_json);
lua_function!(recv_method => recv);
lua_function!(poll_method => poll);
lua_function!(is_open_method => is_open);
lua_function!(close_method => close);
lua_function!(error_method => error);
lua_function!(gc_metamethod => gc);
lua_function!(tostring_metamethod => tostring);

/// Methods of `net_ws`, reached through `__index`; each is a closure over
/// the metatable (upvalue 1).
pub(crate) const METHODS: &[(&CStr, lua_CFunction)] = &[
    (c"send_text", send_text_method),
    (c"send_binary", send_binary_method),
    (c"send_json", send_json_method),
    (c"recv", recv_method),
    (c"poll", poll_method),
    (c"is_open", is_open_method),
    (c"close", close_method),
    (c"error", error_method),
];

/// Metamethods of `net_ws` other than `__index`.
pub(crate) const METAMETHODS: &[(&CStr, lua_CFunction)] =
    &[(c"__gc", gc_metamethod), (c"__tostring", tostring_metamethod)];

unsafe fn connect(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::function("ws_connect");
    let url = unsafe { check_str(L, 1, NAME) }?;
    let timeout = unsafe { opt_timeout(L, 2, NAME) }?;
    match Socket::connect(url, timeout) {
        Ok(socket) => {
            unsafe {
                let userdata = lua_newuserdata(L, size_of::<Userdata>()).cast::<Userdata>();
                userdata.write(Userdata { socket: Some(socket) });
                luaL_getmetatable(L, METATABLE.as_ptr());
                lua_setmetatable(L, -2);
            }
            Ok(1)
        }
        Err(message) => {
            unsafe {
                lua_pushnil(L);
                push_bytes(L, message.as_bytes());
            }
            Ok(2)
        }
    }
}

/// Whether stack index 1 is a `net_ws` userdata. Every method and
/// metamethod holds the metatable as upvalue 1, so the check is a pointer
/// comparison: `poll` is called every frame.
unsafe fn is_socket(L: *mut lua_State) -> bool {
    unsafe {
        if lua_type(L, 1) != LUA_TUSERDATA || lua_getmetatable(L, 1) == 0 {
            return false;
        }
        let same = lua_rawequal(L, -1, lua_upvalueindex(1)) != 0;
        lua_pop(L, 1);
        same
    }
}

/// The socket behind `self` (stack index 1).
unsafe fn this<'a>(L: *mut lua_State, callee: &Callee) -> Result<&'a Socket, String> {
    if !unsafe { is_socket(L) } {
        return Err(unsafe { callee.type_error(L, 1, "net_ws") });
    }
    // SAFETY: a userdata with our metatable was made by `connect`.
    let userdata = unsafe { &*lua_touserdata(L, 1).cast::<Userdata>() };
    userdata.socket.as_ref().ok_or_else(|| callee.bad_argument(1, "the socket was collected"))
}

/// `true`, or `false, message`.
unsafe fn push_sent(L: *mut lua_State, sent: Result<(), String>) -> c_int {
    unsafe {
        match sent {
            Ok(()) => {
                lua_pushboolean(L, 1);
                1
            }
            Err(message) => {
                lua_pushboolean(L, 0);
                push_bytes(L, message.as_bytes());
                2
            }
        }
    }
}

fn text(bytes: &[u8]) -> Result<Outgoing, String> {
    std::str::from_utf8(bytes)
        .map(|s| Outgoing::Text(s.to_owned()))
        .map_err(|_| "text message is not valid UTF-8 (use send_binary for bytes)".to_owned())
}

unsafe fn send_text(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::method("send_text");
    let socket = unsafe { this(L, NAME) }?;
    let message = unsafe { check_bytes(L, 2, NAME) }?;
    let sent = text(message).and_then(|m| socket.send(m));
    Ok(unsafe { push_sent(L, sent) })
}

unsafe fn send_binary(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::method("send_binary");
    let socket = unsafe { this(L, NAME) }?;
    let data = unsafe { check_bytes(L, 2, NAME) }?;
    let sent = socket.send(Outgoing::Binary(data.to_vec()));
    Ok(unsafe { push_sent(L, sent) })
}

/// A string goes as is; a table goes through the global `json_encode`,
/// whose absence or failure raises, as the contract says.
unsafe fn send_json(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::method("send_json");
    let socket = unsafe { this(L, NAME) }?;
    let encoded = match unsafe { lua_type(L, 2) } {
        LUA_TSTRING => unsafe { to_bytes(L, 2) },
        LUA_TTABLE => unsafe { call_json_encode(L) }?,
        _ => return Err(unsafe { NAME.type_error(L, 2, "string or table") }),
    };
    let sent = text(encoded).and_then(|m| socket.send(m));
    Ok(unsafe { push_sent(L, sent) })
}

/// Calls the global `json_encode` on argument 2 and returns its string,
/// left on the stack for the rest of the call.
unsafe fn call_json_encode<'a>(L: *mut lua_State) -> Result<&'a [u8], String> {
    unsafe {
        lua_checkstack(L, 3);
        if lua_getglobal(L, c"json_encode".as_ptr()) != LUA_TFUNCTION {
            let got = type_name(L, -1);
            return Err(format!(
                "send_json: the global 'json_encode' is not a function (got {got})"
            ));
        }
        lua_pushvalue(L, 2);
        if lua_pcall(L, 1, 1, 0) != LUA_OK {
            let reason = String::from_utf8_lossy(to_display(L, -1)).into_owned();
            return Err(format!("send_json: json_encode failed: {reason}"));
        }
        if lua_type(L, -1) != LUA_TSTRING {
            let got = type_name(L, -1);
            return Err(format!("send_json: json_encode returned {got}, expected a string"));
        }
        Ok(to_bytes(L, -1))
    }
}

/// `msg, is_text`; `nil, nil` when nothing came (yet); `nil, false` when
/// closed and drained.
unsafe fn push_polled(L: *mut lua_State, polled: Polled) -> c_int {
    unsafe {
        match polled {
            Polled::Message(data, is_text) => {
                push_bytes(L, &data);
                lua_pushboolean(L, c_int::from(is_text));
            }
            Polled::Empty => {
                lua_pushnil(L);
                lua_pushnil(L);
            }
            Polled::Closed => {
                lua_pushnil(L);
                lua_pushboolean(L, 0);
            }
        }
    }
    2
}

unsafe fn recv(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::method("recv");
    let socket = unsafe { this(L, NAME) }?;
    let timeout = unsafe { opt_timeout(L, 2, NAME) }?;
    let polled = socket.recv(timeout);
    Ok(unsafe { push_polled(L, polled) })
}

unsafe fn poll(L: *mut lua_State) -> Result<c_int, String> {
    let socket = unsafe { this(L, &Callee::method("poll")) }?;
    Ok(unsafe { push_polled(L, socket.poll()) })
}

unsafe fn is_open(L: *mut lua_State) -> Result<c_int, String> {
    let socket = unsafe { this(L, &Callee::method("is_open")) }?;
    unsafe { lua_pushboolean(L, c_int::from(socket.is_open())) };
    Ok(1)
}

unsafe fn error(L: *mut lua_State) -> Result<c_int, String> {
    let socket = unsafe { this(L, &Callee::method("error")) }?;
    match socket.close_error() {
        Some(message) => unsafe { push_bytes(L, message.as_bytes()) },
        None => unsafe { lua_pushnil(L) },
    }
    Ok(1)
}

/// Close codes a client may send (RFC 6455 section 7.4).
fn sendable_close_code(code: f64) -> bool {
    code.fract() == 0.0 && matches!(code as i64, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

unsafe fn close(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::method("close");
    let socket = unsafe { this(L, NAME) }?;
    let code = if unsafe { lua_isnoneornil(L, 2) } != 0 {
        1000
    } else {
        let code = unsafe { check_number(L, 2, NAME) }?;
        if !sendable_close_code(code) {
            return Err(
                NAME.bad_argument(2, "close code must be 1000-1003, 1007-1014 or 3000-4999")
            );
        }
        code as u16
    };
    socket.close(code);
    Ok(0)
}

unsafe fn gc(L: *mut lua_State) -> Result<c_int, String> {
    if unsafe { is_socket(L) } {
        // SAFETY: made by `connect`; taking the socket makes a second __gc
        // (after resurrection) harmless.
        let userdata = unsafe { &mut *lua_touserdata(L, 1).cast::<Userdata>() };
        drop(userdata.socket.take()); // starts the close, does not wait
    }
    Ok(0)
}

unsafe fn tostring(L: *mut lua_State) -> Result<c_int, String> {
    let socket = unsafe { this(L, &Callee::method("__tostring")) }?;
    let text: &[u8] = if socket.is_open() { b"websocket(open)" } else { b"websocket(closed)" };
    unsafe { push_bytes(L, text) };
    Ok(1)
}
