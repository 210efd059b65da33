//! `net_http_get` and `net_http_post`: argument checks, then the HTTP engine,
//! then the contract's return shape.

use std::ffi::c_int;

use super::args::{self, Callee};
use super::boundary::{lua_function, Failure, Lua};
use crate::http::{self, Request};

lua_function!(
    /// `ok, status, body = net_http_get(url, timeout_ms?)`, plus the error
    /// message on failure
    http_get => get
);
lua_function!(
    /// `ok, status, body = net_http_post(url, content_type, body, timeout_ms?)`,
    /// plus the error message on failure
    http_post => post
);

fn get(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::function("net_http_get");
    let url = args::utf8(lua, 1, NAME)?;
    let timeout = args::timeout(lua, 2, NAME)?;
    let outcome = http::perform(&Request { url: url.str(lua), timeout, post: None });
    push_outcome(lua, outcome)
}

fn post(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::function("net_http_post");
    let url = args::utf8(lua, 1, NAME)?;
    let content_type = args::string(lua, 2, NAME)?;
    let body = args::string(lua, 3, NAME)?;
    let timeout = args::timeout(lua, 4, NAME)?;
    let post = Some((content_type.bytes(lua), body.bytes(lua)));
    let outcome = http::perform(&Request { url: url.str(lua), timeout, post });
    push_outcome(lua, outcome)
}

/// `true, status, body` or `false, 0, "", message`: the contract's three
/// values, and the message as a fourth only on failure.
fn push_outcome(lua: &mut Lua, outcome: Result<http::Response, String>) -> Result<c_int, Failure> {
    match &outcome {
        Ok(response) => {
            let (status, body) = (i64::from(response.status), response.body.as_slice());
            lua.protected(0, 3, |raw| {
                raw.push_boolean(true);
                raw.push_integer(status);
                raw.push_bytes(body);
                3
            })?;
            Ok(3)
        }
        Err(message) => {
            let message = message.as_bytes();
            lua.protected(0, 4, |raw| {
                raw.push_boolean(false);
                raw.push_integer(0);
                raw.push_bytes(b"");
                raw.push_bytes(message);
                4
            })?;
            Ok(4)
        }
    }
}
