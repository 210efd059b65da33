//! The one place that knows Lua versions differ. mlua-sys already gives every
//! ABI the 5.4-style C API (its compat layer fills in `lua_tonumberx` and
//! friends on 5.1/LuaJIT); what is left is here.

pub(crate) use mlua_sys::*;
use std::ffi::{c_int, CStr};

/// Pushes raw bytes (NUL bytes included) as a Lua string.
///
/// # Safety
/// `L` is a valid state with room for one more slot.
pub(crate) unsafe fn push_bytes(L: *mut lua_State, bytes: &[u8]) {
    unsafe { lua_pushlstring(L, bytes.as_ptr().cast(), bytes.len()) };
}

/// Pushes an integer: an integer subtype on 5.3+, a plain number on
/// 5.1/5.2/LuaJIT, as each version's scripts expect.
///
/// # Safety
/// `L` is a valid state with room for one more slot.
pub(crate) unsafe fn push_integer(L: *mut lua_State, n: i64) {
    unsafe { lua_pushinteger(L, n as lua_Integer) };
}

/// The type name Lua's own messages use for the value at `idx`
/// (`"no value"` past the top).
///
/// # Safety
/// `L` is a valid state.
pub(crate) unsafe fn type_name(L: *mut lua_State, idx: c_int) -> String {
    // SAFETY: lua_typename returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(lua_typename(L, lua_type(L, idx))) }.to_string_lossy().into_owned()
}

/// The bytes of the string (or number, converted in place) at `idx`,
/// borrowed from Lua.
///
/// # Safety
/// `L` is a valid state and the value at `idx` is a string or a number; the
/// slice must not be used after the value leaves the stack.
pub(crate) unsafe fn to_bytes<'a>(L: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let ptr = unsafe { lua_tolstring(L, idx, &mut len) };
    // SAFETY: Lua keeps the string alive while it is on the stack.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// The value at `idx` as text for a message, as `tostring` shows it; the
/// text is pushed on the stack.
///
/// # Safety
/// `L` is a valid state with room for one more slot.
pub(crate) unsafe fn to_display<'a>(L: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let ptr = unsafe { luaL_tolstring(L, idx, &mut len) };
    // SAFETY: the pushed string stays on the stack for the call.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}
