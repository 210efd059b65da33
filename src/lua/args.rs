//! Argument checks with the messages Lua's own library gives
//! ("bad argument #1 to 'net_http_get' (string expected, got nil)").

use std::ffi::c_int;
use std::time::Duration;

use super::compat::*;

/// The function being called, for error messages.
pub(crate) struct Callee {
    /// The name scripts know it by.
    pub name: &'static str,
    /// A method (`ws:send_text(x)`): `self` is stack index 1 and the first
    /// explicit argument is "#1", as lauxlib counts them.
    pub method: bool,
}

impl Callee {
    pub(crate) const fn function(name: &'static str) -> Callee {
        Callee { name, method: false }
    }

    pub(crate) const fn method(name: &'static str) -> Callee {
        Callee { name, method: true }
    }

    /// A bad argument message for the value at stack `index`.
    pub(crate) fn bad_argument(&self, index: c_int, problem: &str) -> String {
        match (self.method, index) {
            (true, 1) => format!("calling '{}' on bad self ({problem})", self.name),
            (true, _) => format!("bad argument #{} to '{}' ({problem})", index - 1, self.name),
            (false, _) => format!("bad argument #{index} to '{}' ({problem})", self.name),
        }
    }

    /// "`expected` expected, got <type of the value at index>".
    ///
    /// # Safety
    /// `L` is a valid state.
    pub(crate) unsafe fn type_error(
        &self,
        L: *mut lua_State,
        index: c_int,
        expected: &str,
    ) -> String {
        let got = unsafe { type_name(L, index) };
        self.bad_argument(index, &format!("{expected} expected, got {got}"))
    }
}

/// A string argument (numbers convert, as in `luaL_checklstring`), borrowed
/// from Lua: valid while the value stays on the stack, i.e. for the call.
///
/// # Safety
/// `L` is a valid state; the slice must not outlive the current call.
pub(crate) unsafe fn check_bytes<'a>(
    L: *mut lua_State,
    index: c_int,
    callee: &Callee,
) -> Result<&'a [u8], String> {
    let kind = unsafe { lua_type(L, index) };
    if kind != LUA_TSTRING && kind != LUA_TNUMBER {
        return Err(unsafe { callee.type_error(L, index, "string") });
    }
    Ok(unsafe { to_bytes(L, index) })
}

/// Like [`check_bytes`], for text that must be UTF-8 (URLs).
///
/// # Safety
/// As for [`check_bytes`].
pub(crate) unsafe fn check_str<'a>(
    L: *mut lua_State,
    index: c_int,
    callee: &Callee,
) -> Result<&'a str, String> {
    let bytes = unsafe { check_bytes(L, index, callee) }?;
    std::str::from_utf8(bytes).map_err(|_| callee.bad_argument(index, "string is not valid UTF-8"))
}

/// An optional `timeout_ms`: `nil`, absent or `0` mean "no limit / the
/// defaults".
///
/// # Safety
/// `L` is a valid state.
pub(crate) unsafe fn opt_timeout(
    L: *mut lua_State,
    index: c_int,
    callee: &Callee,
) -> Result<Option<Duration>, String> {
    if unsafe { lua_isnoneornil(L, index) } != 0 {
        return Ok(None);
    }
    let ms = unsafe { check_number(L, index, callee) }?;
    if ms.is_nan() || ms < 0.0 {
        return Err(callee.bad_argument(index, "timeout_ms must be a non-negative number"));
    }
    if ms == 0.0 {
        return Ok(None);
    }
    // Round a fraction up so that 0.5 ms is not "no timeout"; cap at ~31 years.
    let ms = ms.ceil().min(1e12) as u64;
    Ok(Some(Duration::from_millis(ms)))
}

/// A number argument (numeric strings convert, as in `luaL_checknumber`).
///
/// # Safety
/// `L` is a valid state.
pub(crate) unsafe fn check_number(
    L: *mut lua_State,
    index: c_int,
    callee: &Callee,
) -> Result<f64, String> {
    let mut is_number = 0;
    let value = unsafe { lua_tonumberx(L, index, &mut is_number) };
    if is_number == 0 {
        return Err(unsafe { callee.type_error(L, index, "number") });
    }
    Ok(value)
}
