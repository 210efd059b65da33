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

use super::args::{self, Callee};
use super::boundary::{lua_function, Failure, Kind, Lua, Raw};

/// Deepest nesting encoded or decoded (serde_json's own decoding limit).
pub(crate) const MAX_DEPTH: usize = 128;

/// Stack slots one level of the encoder's walk uses (table, key, value).
const SLOTS_PER_LEVEL: c_int = 3;

/// The address behind `net.null`; only its identity matters.
static NULL_SENTINEL: u8 = 0;

fn null_pointer() -> *mut c_void {
    std::ptr::addr_of!(NULL_SENTINEL).cast_mut().cast()
}

/// Pushes `net.null`.
pub(crate) fn push_null(raw: Raw) {
    raw.push_light_userdata(null_pointer());
}

lua_function!(
    /// `text = net.json_encode(value)`
    json_encode => encode_function
);
lua_function!(
    /// `value = net.json_decode(text)`
    json_decode => decode_function
);

fn encode_function(lua: &mut Lua) -> Result<c_int, Failure> {
    if lua.kind(1) == Kind::None {
        return Err(Callee::function("json_encode").bad_argument(1, "value expected"));
    }
    let text = encode(lua, 1).map_err(|e| match e {
        EncodeError::Rule(rule) => Failure::Message(format!("json_encode: {rule}")),
        EncodeError::Lua(raised) => raised,
    })?;
    lua.push_bytes(text.as_bytes())?;
    Ok(1)
}

fn decode_function(lua: &mut Lua) -> Result<c_int, Failure> {
    let text = args::string(lua, 1, &Callee::function("json_decode"))?;
    let value: Value = serde_json::from_slice(text.bytes(lua))
        .map_err(|e| Failure::Message(format!("json_decode: invalid JSON: {e}")))?;
    lua.protected(0, 1, |raw| {
        push_value(raw, &value);
        1
    })?;
    Ok(1)
}

/// Why encoding stopped: a rule of the format, or a Lua error (no stack
/// space) that the caller raises as it is.
enum EncodeError {
    Rule(String),
    Lua(Failure),
}

/// Encodes the value at `idx` as JSON text. The walk uses raw access only
/// (no `__index`, `__pairs` or `__len`), so no Lua code runs and nothing
/// can change the tables under it.
fn encode(lua: &mut Lua, idx: c_int) -> Result<String, EncodeError> {
    let idx = lua.absolute(idx);
    // Every slot the deepest walk needs, reserved up front: the walk itself
    // then allocates nothing in Lua.
    lua.reserve(SLOTS_PER_LEVEL * MAX_DEPTH as c_int + 4).map_err(EncodeError::Lua)?;
    let mut visiting = HashSet::new();
    let value = to_value(lua, idx, &mut visiting).map_err(EncodeError::Rule)?;
    serde_json::to_string(&value).map_err(|e| EncodeError::Rule(e.to_string()))
}

fn to_value(lua: &Lua, idx: c_int, visiting: &mut HashSet<*const c_void>) -> Result<Value, String> {
    match lua.kind(idx) {
        Kind::Nil => Ok(Value::Null),
        Kind::Boolean => Ok(Value::Bool(lua.boolean(idx))),
        Kind::Number => number(lua, idx),
        Kind::String => string(lua, idx).map(Value::String),
        Kind::LightUserdata if lua.userdata(idx) == null_pointer() => Ok(Value::Null),
        Kind::Table => table(lua, idx, visiting),
        other => Err(format!("cannot encode a {}", other.name())),
    }
}

fn number(lua: &Lua, idx: c_int) -> Result<Value, String> {
    if let Some(integer) = lua.integer(idx) {
        return Ok(Value::Number(Number::from(integer)));
    }
    let n = lua.number(idx).unwrap_or(f64::NAN);
    Number::from_f64(n).map(Value::Number).ok_or_else(|| format!("cannot encode the number {n}"))
}

fn string(lua: &Lua, idx: c_int) -> Result<String, String> {
    let bytes = lua.string(idx).unwrap_or_default();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| "cannot encode a string that is not valid UTF-8".to_owned())
}

fn table(lua: &Lua, idx: c_int, visiting: &mut HashSet<*const c_void>) -> Result<Value, String> {
    // Absolute: the walk pushes keys and values above it.
    let idx = lua.absolute(idx);
    let identity = lua.identity(idx);
    if visiting.len() >= MAX_DEPTH {
        return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
    }
    if !visiting.insert(identity) {
        return Err("cannot encode a table that contains itself".to_owned());
    }
    let result = match array_length(lua, idx) {
        Some(n) => array(lua, idx, n, visiting),
        None => object(lua, idx, visiting),
    };
    visiting.remove(&identity);
    result
}

/// `Some(n)` when the keys are exactly 1..n with n >= 1.
fn array_length(lua: &Lua, idx: c_int) -> Option<usize> {
    let (mut count, mut max) = (0usize, 0i64);
    let mut sequence = true;
    lua.push_nil();
    while lua.next(idx) {
        lua.pop(1);
        count += 1;
        if sequence {
            if let Some(key) = lua.integer(-1).filter(|&key| key >= 1) {
                max = max.max(key);
                continue;
            }
        }
        sequence = false;
    }
    (sequence && count > 0 && usize::try_from(max) == Ok(count)).then_some(count)
}

fn array(
    lua: &Lua,
    idx: c_int,
    n: usize,
    visiting: &mut HashSet<*const c_void>,
) -> Result<Value, String> {
    let mut items = Vec::with_capacity(n);
    for i in 1..=n {
        lua.push_raw_index(idx, i as i64);
        let item = to_value(lua, -1, visiting);
        lua.pop(1);
        items.push(item?);
    }
    Ok(Value::Array(items))
}

fn object(lua: &Lua, idx: c_int, visiting: &mut HashSet<*const c_void>) -> Result<Value, String> {
    let mut map = Map::new();
    lua.push_nil();
    while lua.next(idx) {
        let entry = key(lua, -2).and_then(|key| Ok((key, to_value(lua, -1, visiting)?)));
        match entry {
            Ok((key, value)) => {
                map.insert(key, value);
                lua.pop(1);
            }
            Err(e) => {
                lua.pop(2);
                return Err(e);
            }
        }
    }
    Ok(Value::Object(map))
}

/// An object key. Numbers are never converted on the stack: that would
/// confuse `lua_next`.
fn key(lua: &Lua, idx: c_int) -> Result<String, String> {
    match lua.kind(idx) {
        Kind::String => string(lua, idx),
        Kind::Number => match lua.integer(idx) {
            Some(integer) => Ok(integer.to_string()),
            None => {
                let n = lua.number(idx).unwrap_or(f64::NAN);
                if n.is_finite() {
                    Ok(n.to_string())
                } else {
                    Err(format!("cannot encode the table key {n}"))
                }
            }
        },
        other => Err(format!("cannot encode a table key of type {}", other.name())),
    }
}

/// Pushes a decoded JSON value, inside a protected section: it only
/// borrows the tree, and recursion is bounded by serde_json's depth limit.
fn push_value(raw: Raw, value: &Value) {
    raw.reserve(3);
    match value {
        Value::Null => push_null(raw),
        Value::Bool(b) => raw.push_boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => raw.push_integer(i),
            None => raw.push_number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => raw.push_bytes(s.as_bytes()),
        Value::Array(items) => {
            raw.create_table(items.len(), 0);
            let mut i = 0;
            for item in items {
                i += 1;
                push_value(raw, item);
                raw.raw_set_index(-2, i);
            }
        }
        Value::Object(map) => {
            raw.create_table(0, map.len());
            for (key, item) in map {
                raw.push_bytes(key.as_bytes());
                push_value(raw, item);
                raw.raw_set(-3);
            }
        }
    }
}
