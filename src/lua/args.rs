//! Argument checks with the messages Lua's own library gives
//! ("bad argument #1 to 'net_http_get' (string expected, got nil)").

use std::ffi::c_int;
use std::time::Duration;

use super::compat::*;

/// A bad argument message, in lauxlib's words.
pub(crate) fn bad_argument(function: &str, position: c_int, problem: &str) -> String {
    format!("bad argument #{position} to '{function}' ({problem})")
}

/// A string argument (numbers convert, as in `luaL_checklstring`), borrowed
/// from Lua: valid while the value stays on the stack, i.e. for the call.
///
/// # Safety
/// `L` is a valid state; the slice must not outlive the current call.
pub(crate) unsafe fn check_bytes<'a>(
    L: *mut lua_State,
    position: c_int,
    function: &str,
) -> Result<&'a [u8], String> {
    let kind = unsafe { lua_type(L, position) };
    if kind != LUA_TSTRING && kind != LUA_TNUMBER {
        let got = unsafe { type_name(L, position) };
        return Err(bad_argument(function, position, &format!("string expected, got {got}")));
    }
    let mut len = 0usize;
    let ptr = unsafe { lua_tolstring(L, position, &mut len) };
    // SAFETY: Lua keeps the string alive while it is on the stack.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// Like [`check_bytes`], for text that must be UTF-8 (URLs).
///
/// # Safety
/// As for [`check_bytes`].
pub(crate) unsafe fn check_str<'a>(
    L: *mut lua_State,
    position: c_int,
    function: &str,
) -> Result<&'a str, String> {
    let bytes = unsafe { check_bytes(L, position, function) }?;
    std::str::from_utf8(bytes)
        .map_err(|_| bad_argument(function, position, "string is not valid UTF-8"))
}

/// An optional `timeout_ms`: `nil`, absent or `0` mean "the defaults".
///
/// # Safety
/// `L` is a valid state.
pub(crate) unsafe fn opt_timeout(
    L: *mut lua_State,
    position: c_int,
    function: &str,
) -> Result<Option<Duration>, String> {
    if unsafe { lua_isnoneornil(L, position) } != 0 {
        return Ok(None);
    }
    let mut is_number = 0;
    let ms = unsafe { lua_tonumberx(L, position, &mut is_number) };
    if is_number == 0 {
        let got = unsafe { type_name(L, position) };
        return Err(bad_argument(function, position, &format!("number expected, got {got}")));
    }
    if ms.is_nan() || ms < 0.0 {
        return Err(bad_argument(function, position, "timeout_ms must be a non-negative number"));
    }
    if ms == 0.0 {
        return Ok(None);
    }
    // Round a fraction up so that 0.5 ms is not "no timeout"; cap at ~31 years.
    let ms = ms.ceil().min(1e12) as u64;
    Ok(Some(Duration::from_millis(ms)))
}
