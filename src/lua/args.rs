//! Argument checks with the messages Lua's own library gives
//! ("bad argument #1 to 'net_http_get' (string expected, got nil)").

use std::ffi::c_int;
use std::time::Duration;

use super::boundary::{Failure, Kind, Lua};

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

    /// A bad argument error for the value at stack `index`.
    pub(crate) fn bad_argument(&self, index: c_int, problem: &str) -> Failure {
        Failure::Message(match (self.method, index) {
            (true, 1) => format!("calling '{}' on bad self ({problem})", self.name),
            (true, _) => format!("bad argument #{} to '{}' ({problem})", index - 1, self.name),
            (false, _) => format!("bad argument #{index} to '{}' ({problem})", self.name),
        })
    }

    /// "`expected` expected, got <type of the value at index>".
    pub(crate) fn type_error(&self, lua: &Lua, index: c_int, expected: &str) -> Failure {
        let got = lua.kind(index).name();
        self.bad_argument(index, &format!("{expected} expected, got {got}"))
    }
}

/// A stack slot checked to hold a string argument; read it with
/// [`Text::bytes`] while the call runs.
#[derive(Clone, Copy)]
pub(crate) struct Text(c_int);

impl Text {
    /// The slot at `index`, which the caller has seen holds a string.
    pub(crate) fn at(index: c_int) -> Text {
        Text(index)
    }

    /// The bytes, borrowed from Lua.
    pub(crate) fn bytes(self, lua: &Lua) -> &[u8] {
        lua.string(self.0).unwrap_or_default()
    }

    /// The text of a slot checked by [`utf8`].
    pub(crate) fn str(self, lua: &Lua) -> &str {
        std::str::from_utf8(self.bytes(lua)).unwrap_or_default()
    }
}

/// A string argument; a number is converted in place, as in
/// `luaL_checklstring`.
pub(crate) fn string(lua: &mut Lua, index: c_int, callee: &Callee) -> Result<Text, Failure> {
    match lua.kind(index) {
        Kind::String => {}
        Kind::Number => lua.convert_to_string(index)?,
        _ => return Err(callee.type_error(lua, index, "string")),
    }
    Ok(Text(index))
}

/// Like [`string`], for text that must be UTF-8 (URLs).
pub(crate) fn utf8(lua: &mut Lua, index: c_int, callee: &Callee) -> Result<Text, Failure> {
    let text = string(lua, index, callee)?;
    if std::str::from_utf8(text.bytes(lua)).is_err() {
        return Err(callee.bad_argument(index, "string is not valid UTF-8"));
    }
    Ok(text)
}

/// A number argument (numeric strings convert, as in `luaL_checknumber`).
pub(crate) fn number(lua: &Lua, index: c_int, callee: &Callee) -> Result<f64, Failure> {
    lua.number(index).ok_or_else(|| callee.type_error(lua, index, "number"))
}

/// An optional `timeout_ms` under the rule of [`crate::timeout`]: absent,
/// `nil`, `0`, `+inf` or too large for the engine mean `None`.
pub(crate) fn timeout(
    lua: &Lua,
    index: c_int,
    callee: &Callee,
) -> Result<Option<Duration>, Failure> {
    if lua.is_none_or_nil(index) {
        return Ok(None);
    }
    crate::timeout::from_millis(number(lua, index, callee)?)
        .map_err(|rule| callee.bad_argument(index, rule))
}

/// An optional WebSocket close code (1000 when absent): an integer the
/// core's rule accepts, else an error; nothing wraps.
pub(crate) fn close_code(lua: &Lua, index: c_int, callee: &Callee) -> Result<u16, Failure> {
    if lua.is_none_or_nil(index) {
        return Ok(1000);
    }
    let code = number(lua, index, callee)?;
    let integral = code.is_finite() && code.fract() == 0.0;
    let code = if integral { code as i64 } else { i64::MIN };
    crate::ws::sendable_close_code(code).map_err(|rule| callee.bad_argument(index, rule))
}

/// An optional WebSocket close reason (`""` when absent): a string the
/// core's rule accepts (UTF-8, at most 123 bytes), else an error.
pub(crate) fn close_reason(
    lua: &mut Lua,
    index: c_int,
    callee: &Callee,
) -> Result<String, Failure> {
    if lua.is_none_or_nil(index) {
        return Ok(String::new());
    }
    if lua.kind(index) != Kind::String {
        return Err(callee.type_error(lua, index, "string"));
    }
    let reason = lua.string(index).unwrap_or_default();
    crate::ws::sendable_close_reason(reason)
        .map(str::to_owned)
        .map_err(|rule| callee.bad_argument(index, rule))
}
