//! `net.request{...}`: the option table read into the core's
//! [`RequestOptions`], the request, then the result table or
//! `nil, message, kind`.
//!
//! The table is read without metamethods (`lua_next`, raw indexing): a
//! hostile `__index` or `__pairs` runs no code here.

use std::borrow::Cow;
use std::ffi::c_int;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::args::Callee;
use super::boundary::{lua_function, Failure, Kind, Lua};
use crate::endpoint::Endpoint;
use crate::http::{self, Proxy, Reply, RequestError, RequestOptions, Version};

lua_function!(
    /// `res = net.request(options)`, or `nil, message, kind` on failure
    net_request => request
);

const NAME: &str = "net.request";
const CALLEE: &Callee = &Callee::function(NAME);

/// An option of a function's table, for error messages.
#[derive(Clone, Copy)]
pub(super) struct Opt {
    /// The function, as scripts call it.
    name: &'static str,
    key: &'static str,
}

impl Opt {
    pub(super) fn new(name: &'static str, key: &'static str) -> Opt {
        Opt { name, key }
    }
}

/// The option table's keys.
const KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "timeout_ms",
    "connect_timeout_ms",
    "follow_redirects",
    "max_redirects",
    "verify",
    "ca_file",
    "client_cert",
    "client_key",
    "proxy",
    "max_body_bytes",
    "output",
    "http_version",
];

fn request(lua: &mut Lua) -> Result<c_int, Failure> {
    if lua.kind(1) != Kind::Table {
        return Err(CALLEE.type_error(lua, 1, "table"));
    }
    // Table walks nest three deep: key and value, a header's key and
    // value, and a pair's two fields.
    lua.reserve(8)?;
    let (options, _) = read_options(lua, 1, NAME, false)?;
    let outcome = http::request(&options);
    push_outcome(lua, &outcome)
}

/// A bad value for option `key`.
pub(super) fn bad(key: Opt, problem: impl std::fmt::Display) -> Failure {
    Failure::Message(format!("bad option '{}' to '{}' ({problem})", key.key, key.name))
}

/// "`expected` expected, got <type of the value on top>".
pub(super) fn wrong_type(lua: &Lua, key: Opt, expected: &str) -> Failure {
    bad(key, format!("{expected} expected, got {}", lua.kind(-1).name()))
}

/// The most of an unknown key an error message quotes.
const QUOTED_KEY_BYTES: usize = 64;

/// The key of the table entry `lua.next` is on (index -2): a string, or
/// an error naming `function`.
pub(super) fn option_key<'l>(lua: &'l Lua, function: &str) -> Result<&'l [u8], Failure> {
    lua.string(-2).ok_or_else(|| {
        let got = lua.kind(-2).name();
        Failure::Message(format!("bad option key to '{function}' (string expected, got {got})"))
    })
}

/// An option `function` does not know.
pub(super) fn unknown_option(function: &str, key: &[u8]) -> Failure {
    let shown = String::from_utf8_lossy(&key[..key.len().min(QUOTED_KEY_BYTES)]);
    Failure::Message(format!("bad option '{shown}' to '{function}'"))
}

/// Reads the option table at `table` for the function `name`; with
/// `streams`, the `stream` flag too (false when absent).
pub(super) fn read_options(
    lua: &Lua,
    table: c_int,
    name: &'static str,
    streams: bool,
) -> Result<(RequestOptions, bool), Failure> {
    let mut options = RequestOptions::get(find_url(lua, table, name)?);
    let mut stream = false;
    lua.push_nil();
    while lua.next(table) {
        let key = option_key(lua, name)?;
        if streams && key == b"stream" {
            stream = flag(lua, Opt { name, key: "stream" })?;
            lua.pop(1);
            continue;
        }
        let Some(&key) = KEYS.iter().find(|k| k.as_bytes() == key) else {
            return Err(unknown_option(name, key));
        };
        set_option(lua, &mut options, Opt { name, key })?;
        lua.pop(1);
    }
    options
        .check()
        .map_err(|problem| Failure::Message(format!("bad options to '{name}' ({problem})")))?;
    http::check_stream(&options, stream)
        .map_err(|problem| Failure::Message(format!("bad options to '{name}' ({problem})")))?;
    Ok((options, stream))
}

/// The `url` option, which every request needs.
fn find_url(lua: &Lua, table: c_int, name: &'static str) -> Result<Endpoint, Failure> {
    let key = Opt { name, key: "url" };
    lua.push_nil();
    while lua.next(table) {
        if lua.kind(-2) == Kind::String && lua.string(-2) == Some(b"url") {
            let url = text(lua, key)?;
            let url =
                std::str::from_utf8(url).map_err(|_| bad(key, "string is not valid UTF-8"))?;
            let endpoint = http::parse_url(url).map_err(|e| bad(key, e))?;
            lua.pop(2);
            return Ok(endpoint);
        }
        lua.pop(1);
    }
    Err(bad(key, "string expected, got nil"))
}

/// Reads the value on top into the option `key`.
fn set_option(lua: &Lua, options: &mut RequestOptions, key: Opt) -> Result<(), Failure> {
    match key.key {
        "url" => {}
        "method" => {
            options.method = http::check_method(text(lua, key)?).map_err(|e| bad(key, e))?.into()
        }
        "headers" => options.headers = read_headers(lua, key)?,
        "body" => options.body = Some(text(lua, key)?.to_vec()),
        "timeout_ms" => options.timeout = milliseconds(lua, key)?,
        "connect_timeout_ms" => options.connect_timeout = milliseconds(lua, key)?,
        "follow_redirects" => options.follow_redirects = flag(lua, key)?,
        "max_redirects" => {
            options.max_redirects =
                u32::try_from(count(lua, key, u64::from(u32::MAX))?).expect("bounded by count")
        }
        "verify" => options.verify = flag(lua, key)?,
        "ca_file" => options.ca_file = Some(path(lua, key)?),
        "client_cert" => options.client_cert = Some(path(lua, key)?),
        "client_key" => options.client_key = Some(path(lua, key)?),
        "proxy" => options.proxy = proxy(lua, key)?,
        "max_body_bytes" => options.max_body_bytes = Some(count(lua, key, i64::MAX as u64)?),
        "output" => options.output = Some(path(lua, key)?),
        "http_version" => {
            let name = match lua.kind(-1) {
                Kind::Number => lua.number(-1).unwrap_or_default().to_string().into_bytes(),
                _ => text(lua, key)?.to_vec(),
            };
            options.http_version = Some(Version::parse(&name).map_err(|e| bad(key, e))?);
        }
        _ => unreachable!("every key in KEYS is handled"),
    }
    Ok(())
}

/// The string on top (no number conversion: that would change the value
/// under the table walk).
pub(super) fn text(lua: &Lua, key: Opt) -> Result<&[u8], Failure> {
    match lua.kind(-1) {
        Kind::String => Ok(lua.string(-1).unwrap_or_default()),
        _ => Err(wrong_type(lua, key, "string")),
    }
}

/// `proxy`: a proxy URL, or `false` for none whatever the environment says.
pub(super) fn proxy(lua: &Lua, key: Opt) -> Result<Proxy, Failure> {
    match lua.kind(-1) {
        Kind::Boolean if !lua.boolean(-1) => Ok(Proxy::Direct),
        Kind::String => {
            let url = std::str::from_utf8(text(lua, key)?)
                .map_err(|_| bad(key, "string is not valid UTF-8"))?;
            Proxy::url(url).map_err(|e| bad(key, e))
        }
        _ => Err(wrong_type(lua, key, "string or false")),
    }
}

pub(super) fn flag(lua: &Lua, key: Opt) -> Result<bool, Failure> {
    match lua.kind(-1) {
        Kind::Boolean => Ok(lua.boolean(-1)),
        _ => Err(wrong_type(lua, key, "boolean")),
    }
}

/// The number on top (no string conversion, as for `text`).
pub(super) fn number(lua: &Lua, key: Opt) -> Result<f64, Failure> {
    match lua.kind(-1) {
        Kind::Number => Ok(lua.number(-1).unwrap_or_default()),
        _ => Err(wrong_type(lua, key, "number")),
    }
}

/// A timeout under the [`crate::timeout`] rule.
pub(super) fn milliseconds(lua: &Lua, key: Opt) -> Result<Option<std::time::Duration>, Failure> {
    let ms = number(lua, key)?;
    crate::timeout::from_millis(ms).map_err(|_| bad(key, "must be a non-negative number"))
}

/// A whole number from 0 to `max`.
pub(super) fn count(lua: &Lua, key: Opt, max: u64) -> Result<u64, Failure> {
    let n = number(lua, key)?;
    if !(n.fract() == 0.0 && n >= 0.0 && n <= max as f64) {
        return Err(bad(key, format!("must be a whole number from 0 to {max}")));
    }
    Ok(n as u64)
}

/// A file name: a non-empty string without NUL.
pub(super) fn path(lua: &Lua, key: Opt) -> Result<PathBuf, Failure> {
    let name = text(lua, key)?;
    if name.is_empty() || name.contains(&0) {
        return Err(bad(key, "a file name without NUL expected"));
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(name)))
}

/// `headers`: a table of name = value, and of {name, value} pairs in
/// array order (for repeated names). Pairs are sent first, in order, then
/// the named ones sorted by name, so a request is the same every time.
pub(super) fn read_headers(lua: &Lua, key: Opt) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    if lua.kind(-1) != Kind::Table {
        return Err(wrong_type(lua, key, "table"));
    }
    let table = lua.absolute(-1);
    let mut pairs: Vec<(i64, String, Vec<u8>)> = Vec::new();
    let mut named: Vec<(String, Vec<u8>)> = Vec::new();
    lua.push_nil();
    while lua.next(table) {
        match lua.kind(-2) {
            Kind::String => {
                let name = lua.string(-2).unwrap_or_default();
                let name = http::check_header_name(name).map_err(|e| bad(key, e))?;
                let value = header_value(lua, key, &name)?;
                named.push((name, value));
            }
            Kind::Number if lua.integer(-2).is_some_and(|i| i >= 1) => {
                let index = lua.integer(-2).unwrap_or_default();
                let (name, value) = header_pair(lua, key, index)?;
                pairs.push((index, name, value));
            }
            other => {
                return Err(bad(
                    key,
                    format!("names or {{name, value}} pairs expected, got a {} key", other.name()),
                ));
            }
        }
        lua.pop(1);
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    if pairs.is_empty() {
        return Ok(named);
    }
    pairs.sort_by_key(|(index, _, _)| *index);
    Ok(pairs.into_iter().map(|(_, name, value)| (name, value)).chain(named).collect())
}

/// The pair `{name, value}` on top, entry `index` of `headers`.
fn header_pair(lua: &Lua, key: Opt, index: i64) -> Result<(String, Vec<u8>), Failure> {
    let not_a_pair = || bad(key, format!("entry {index} is not a {{name, value}} pair"));
    if lua.kind(-1) != Kind::Table {
        return Err(not_a_pair());
    }
    let pair = lua.absolute(-1);
    lua.push_raw_index(pair, 1);
    let name = match lua.kind(-1) {
        Kind::String => {
            http::check_header_name(lua.string(-1).unwrap_or_default()).map_err(|e| bad(key, e))?
        }
        _ => return Err(not_a_pair()),
    };
    lua.pop(1);
    lua.push_raw_index(pair, 2);
    if !matches!(lua.kind(-1), Kind::String | Kind::Number) {
        return Err(not_a_pair());
    }
    let value = header_value(lua, key, &name)?;
    lua.pop(1);
    Ok((name, value))
}

/// A header value on top: a string, or an integer written in decimal.
fn header_value(lua: &Lua, key: Opt, name: &str) -> Result<Vec<u8>, Failure> {
    let value = match (lua.kind(-1), lua.integer(-1)) {
        (Kind::String, _) => lua.string(-1).unwrap_or_default().to_vec(),
        (Kind::Number, Some(n)) => n.to_string().into_bytes(),
        _ => {
            let got = lua.kind(-1).name();
            return Err(bad(
                key,
                format!("the value of header '{name}' must be a string, got {got}"),
            ));
        }
    };
    http::check_header_value(name, &value).map_err(|e| bad(key, e))?;
    Ok(value)
}

/// The result table, or `nil, message, kind`.
pub(super) fn push_outcome(
    lua: &mut Lua,
    outcome: &Result<Reply, RequestError>,
) -> Result<c_int, Failure> {
    match outcome {
        Ok(reply) => {
            let headers = &reply.headers;
            let joined = headers.joined();
            let joined = joined.as_slice();
            lua.protected(0, 1, |raw| {
                raw.reserve(8);
                raw.create_table(0, 8);
                let result = raw.top();
                raw.push_integer(i64::from(reply.status));
                raw.set_field(result, c"status");
                // One pass over the lines fills both views; a name or
                // value is made into a Lua string once and copied.
                raw.create_table(0, headers.len());
                let map = raw.top();
                raw.create_table(headers.len(), 0);
                let list = raw.top();
                for (i, joined) in joined.iter().enumerate() {
                    raw.create_table(2, 0);
                    raw.push_bytes(headers.name(i));
                    raw.push_copy(-1);
                    raw.raw_set_index(-3, 1);
                    raw.push_bytes(headers.value(i));
                    raw.push_copy(-1);
                    raw.raw_set_index(-4, 2);
                    // Stack: pair, name, value.
                    match joined {
                        Some(Cow::Borrowed(_)) => raw.raw_set(map),
                        Some(Cow::Owned(all)) => {
                            raw.pop(1);
                            raw.push_bytes(all);
                            raw.raw_set(map);
                        }
                        None => raw.pop(2),
                    }
                    raw.raw_set_index(list, i as i64 + 1);
                }
                raw.push_copy(map);
                raw.set_field(result, c"headers");
                raw.set_field(result, c"header_list");
                raw.pop(1);
                raw.push_bytes(&reply.body);
                raw.set_field(result, c"body");
                raw.push_bytes(reply.url.as_bytes());
                raw.set_field(result, c"url");
                raw.push_integer(i64::from(reply.redirects));
                raw.set_field(result, c"redirects");
                raw.push_bytes(reply.http_version.to_bytes());
                raw.set_field(result, c"http_version");
                let t = reply.timings;
                raw.create_table(0, 5);
                for (name, ms) in [
                    (c"dns", t.dns),
                    (c"connect", t.connect),
                    (c"tls", t.tls),
                    (c"first_byte", t.first_byte),
                    (c"total", t.total),
                ] {
                    raw.push_number(ms);
                    raw.set_field(-2, name);
                }
                raw.set_field(result, c"timings");
                1
            })?;
            Ok(1)
        }
        Err(error) => {
            let (message, kind) = (error.message.as_bytes(), error.kind.name().as_bytes());
            lua.protected(0, 3, |raw| {
                raw.push_nil();
                raw.push_bytes(message);
                raw.push_bytes(kind);
                3
            })?;
            Ok(3)
        }
    }
}
