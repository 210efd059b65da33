//! JSON for Lua on serde_json: `net.json_encode(value)` and
//! `net.json_decode(text)`, also installed as the globals `json_encode` /
//! `json_decode` when the host has not defined its own.
//!
//! Rules (also in the README):
//! - A table whose keys are exactly 1..n (n >= 1) is an array; any other
//!   table is an object. An empty table is `{}`. Object keys must be strings
//!   or numbers (numbers become their decimal text).
//! - Integers (5.3+ integer subtype; on 5.1/LuaJIT, numbers with no
//!   fraction) are JSON integers; other numbers are JSON floats. NaN and
//!   infinities raise an error.
//! - `net.null` encodes as `null`, and `null` decodes to `net.null` (a nil
//!   would vanish from tables).
//! - Strings must be UTF-8. Cycles and nesting deeper than
//!   [`MAX_DEPTH`] raise an error, as do functions, userdata and threads.

use std::collections::HashSet;
use std::ffi::{c_int, c_void};

use serde_json::{Map, Number, Value};

use super::args::{check_bytes, Callee};
use super::boundary::lua_function;
use super::compat::*;

/// Deepest nesting encoded or decoded (serde_json's own decoding limit).
pub(crate) const MAX_DEPTH: usize = 128;

/// The address behind `net.null`; only its identity matters.
static NULL_SENTINEL: u8 = 0;

fn null_pointer() -> *mut c_void {
    std::ptr::addr_of!(NULL_SENTINEL).cast_mut().cast()
}

/// Pushes `net.null`.
///
/// # Safety
/// `L` is a valid state with room for one more slot.
pub(crate) unsafe fn push_null(L: *mut lua_State) {
    unsafe { lua_pushlightuserdata(L, null_pointer()) };
}

lua_function!(
    /// `text = net.json_encode(value)`
    json_encode => encode_function
);
lua_function!(
    /// `value = net.json_decode(text)`
    json_decode => decode_function
);

unsafe fn encode_function(L: *mut lua_State) -> Result<c_int, String> {
    let text = unsafe { encode(L, 1) }.map_err(|e| format!("json_encode: {e}"))?;
    unsafe { push_bytes(L, text.as_bytes()) };
    Ok(1)
}

unsafe fn decode_function(L: *mut lua_State) -> Result<c_int, String> {
    let text = unsafe { check_bytes(L, 1, &Callee::function("json_decode")) }?;
    let value: Value =
        serde_json::from_slice(text).map_err(|e| format!("json_decode: invalid JSON: {e}"))?;
    unsafe { push_value(L, &value) };
    Ok(1)
}

/// Encodes the value at `idx` as JSON text.
///
/// # Safety
/// `L` is a valid state.
pub(crate) unsafe fn encode(L: *mut lua_State, idx: c_int) -> Result<String, String> {
    let mut visiting = HashSet::new();
    let value = unsafe { to_value(L, idx, &mut visiting) }?;
    serde_json::to_string(&value).map_err(|e| e.to_string())
}

unsafe fn to_value(
    L: *mut lua_State,
    idx: c_int,
    visiting: &mut HashSet<*const c_void>,
) -> Result<Value, String> {
    match unsafe { lua_type(L, idx) } {
        LUA_TNIL => Ok(Value::Null),
        LUA_TBOOLEAN => Ok(Value::Bool(unsafe { lua_toboolean(L, idx) } != 0)),
        LUA_TNUMBER => unsafe { number(L, idx) },
        LUA_TSTRING => unsafe { string(L, idx) }.map(Value::String),
        LUA_TLIGHTUSERDATA if unsafe { lua_touserdata(L, idx) } == null_pointer() => {
            Ok(Value::Null)
        }
        LUA_TTABLE => unsafe { table(L, idx, visiting) },
        _ => Err(format!("cannot encode a {}", unsafe { type_name(L, idx) })),
    }
}

unsafe fn number(L: *mut lua_State, idx: c_int) -> Result<Value, String> {
    if unsafe { lua_isinteger(L, idx) } != 0 {
        return Ok(Value::Number(Number::from(unsafe { lua_tointeger(L, idx) } as i64)));
    }
    let n = unsafe { lua_tonumber(L, idx) };
    Number::from_f64(n).map(Value::Number).ok_or_else(|| format!("cannot encode the number {n}"))
}

unsafe fn string(L: *mut lua_State, idx: c_int) -> Result<String, String> {
    let bytes = unsafe { to_bytes(L, idx) };
    String::from_utf8(bytes.to_vec())
        .map_err(|_| "cannot encode a string that is not valid UTF-8".to_owned())
}

unsafe fn table(
    L: *mut lua_State,
    idx: c_int,
    visiting: &mut HashSet<*const c_void>,
) -> Result<Value, String> {
    // Absolute: the walk pushes keys and values above it.
    let idx = unsafe { lua_absindex(L, idx) };
    let identity = unsafe { lua_topointer(L, idx) };
    if visiting.len() >= MAX_DEPTH {
        return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
    }
    if !visiting.insert(identity) {
        return Err("cannot encode a table that contains itself".to_owned());
    }
    if unsafe { lua_checkstack(L, 3) } == 0 {
        return Err("out of Lua stack space".to_owned());
    }
    let result = match unsafe { array_length(L, idx) } {
        Some(n) => unsafe { array(L, idx, n, visiting) },
        None => unsafe { object(L, idx, visiting) },
    };
    visiting.remove(&identity);
    result
}

/// `Some(n)` when the keys are exactly 1..n with n >= 1.
unsafe fn array_length(L: *mut lua_State, idx: c_int) -> Option<usize> {
    let (mut count, mut max) = (0usize, 0i64);
    let mut sequence = true;
    unsafe {
        lua_pushnil(L);
        while lua_next(L, idx) != 0 {
            lua_pop(L, 1);
            count += 1;
            if sequence && lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1) != 0 {
                let key = lua_tointeger(L, -1) as i64;
                if key >= 1 {
                    max = max.max(key);
                    continue;
                }
            }
            sequence = false;
        }
    }
    (sequence && count > 0 && max as usize == count).then_some(count)
}

unsafe fn array(
    L: *mut lua_State,
    idx: c_int,
    n: usize,
    visiting: &mut HashSet<*const c_void>,
) -> Result<Value, String> {
    let mut items = Vec::with_capacity(n);
    for i in 1..=n {
        unsafe { lua_rawgeti(L, idx, i as lua_Integer) };
        let item = unsafe { to_value(L, -1, visiting) };
        unsafe { lua_pop(L, 1) };
        items.push(item?);
    }
    Ok(Value::Array(items))
}

unsafe fn object(
    L: *mut lua_State,
    idx: c_int,
    visiting: &mut HashSet<*const c_void>,
) -> Result<Value, String> {
    let mut map = Map::new();
    unsafe { lua_pushnil(L) };
    while unsafe { lua_next(L, idx) } != 0 {
        let entry =
            unsafe { key(L, -2) }.and_then(|key| Ok((key, unsafe { to_value(L, -1, visiting) }?)));
        match entry {
            Ok((key, value)) => {
                map.insert(key, value);
                unsafe { lua_pop(L, 1) };
            }
            Err(e) => {
                unsafe { lua_pop(L, 2) };
                return Err(e);
            }
        }
    }
    Ok(Value::Object(map))
}

/// An object key. Numbers are copied before converting: `lua_tolstring` on
/// the key itself would confuse `lua_next`.
unsafe fn key(L: *mut lua_State, idx: c_int) -> Result<String, String> {
    match unsafe { lua_type(L, idx) } {
        LUA_TSTRING => unsafe { string(L, idx) },
        LUA_TNUMBER if unsafe { lua_isinteger(L, idx) } != 0 => {
            Ok((unsafe { lua_tointeger(L, idx) } as i64).to_string())
        }
        LUA_TNUMBER => {
            let n = unsafe { lua_tonumber(L, idx) };
            if n.is_finite() {
                Ok(n.to_string())
            } else {
                Err(format!("cannot encode the table key {n}"))
            }
        }
        _ => Err(format!("cannot encode a table key of type {}", unsafe { type_name(L, idx) })),
    }
}

/// Pushes a decoded JSON value.
///
/// # Safety
/// `L` is a valid state.
unsafe fn push_value(L: *mut lua_State, value: &Value) {
    unsafe {
        lua_checkstack(L, 3);
        match value {
            Value::Null => push_null(L),
            Value::Bool(b) => lua_pushboolean(L, c_int::from(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => push_integer(L, i),
                None => lua_pushnumber(L, n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => push_bytes(L, s.as_bytes()),
            Value::Array(items) => {
                lua_createtable(L, items.len().min(c_int::MAX as usize) as c_int, 0);
                for (i, item) in items.iter().enumerate() {
                    push_value(L, item);
                    lua_rawseti(L, -2, (i + 1) as lua_Integer);
                }
            }
            Value::Object(map) => {
                lua_createtable(L, 0, map.len().min(c_int::MAX as usize) as c_int);
                for (key, item) in map {
                    push_bytes(L, key.as_bytes());
                    push_value(L, item);
                    lua_rawset(L, -3);
                }
            }
        }
    }
}
