//! `net_http_get` and `net_http_post`: argument checks, then the HTTP engine,
//! then the contract's return shape.

use std::ffi::c_int;

use super::args::{check_bytes, check_str, opt_timeout, Callee};
use super::boundary::lua_function;
use super::compat::*;
use crate::http::{self, Request};

lua_function!(
    /// `ok, status, body, err = net_http_get(url, timeout_ms?)`
    http_get => get
);
lua_function!(
    /// `ok, status, body, err = net_http_post(url, content_type, body, timeout_ms?)`
    http_post => post
);

unsafe fn get(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::function("net_http_get");
    let url = unsafe { check_str(L, 1, NAME) }?;
    let timeout = unsafe { opt_timeout(L, 2, NAME) }?;
    let outcome = http::perform(&Request { url, timeout, post: None });
    Ok(unsafe { push_outcome(L, outcome) })
}

unsafe fn post(L: *mut lua_State) -> Result<c_int, String> {
    const NAME: &Callee = &Callee::function("net_http_post");
    let url = unsafe { check_str(L, 1, NAME) }?;
    let content_type = unsafe { check_bytes(L, 2, NAME) }?;
    let body = unsafe { check_bytes(L, 3, NAME) }?;
    let timeout = unsafe { opt_timeout(L, 4, NAME) }?;
    let outcome = http::perform(&Request { url, timeout, post: Some((content_type, body)) });
    Ok(unsafe { push_outcome(L, outcome) })
}

/// `true, status, body, nil` or `false, 0, "", message`.
unsafe fn push_outcome(L: *mut lua_State, outcome: Result<http::Response, String>) -> c_int {
    unsafe {
        match outcome {
            Ok(response) => {
                lua_pushboolean(L, 1);
                push_integer(L, i64::from(response.status));
                push_bytes(L, &response.body);
                lua_pushnil(L);
            }
            Err(message) => {
                lua_pushboolean(L, 0);
                push_integer(L, 0);
                push_bytes(L, b"");
                push_bytes(L, message.as_bytes());
            }
        }
    }
    4
}
