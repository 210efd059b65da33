//! HTTP for C: `luanet_http_get`, `luanet_http_post` and the response
//! object.

use std::ffi::c_char;

use super::boundary::luanet_result::{self, LUANET_ERR_NETWORK, LUANET_OK};
use super::boundary::{
    bytes_arg, bytes_out, fail, guard, guard_value, out_arg, str_arg, timeout_arg,
};
use crate::http::{self, Request};

/// A response received at the transport level, whatever its status.
/// Opaque; free with `luanet_response_free`.
pub struct luanet_response {
    status: u32,
    body: Vec<u8>,
}

fn respond(
    request: &Request<'_>,
    out: *mut *mut luanet_response,
) -> Result<luanet_result, luanet_result> {
    match http::perform(request) {
        Ok(response) => {
            let response = luanet_response { status: response.status, body: response.body };
            // SAFETY: checked non-NULL by out_arg before the request.
            unsafe { out.write(Box::into_raw(Box::new(response))) };
            Ok(LUANET_OK)
        }
        Err(message) => Err(fail(LUANET_ERR_NETWORK, message)),
    }
}

/// HTTP(S) GET of `url`, blocking until the whole response arrived.
///
/// `timeout_ms` bounds resolve, connect, send and receive together; 0 means
/// the defaults (connect 60 s; fail after 30 s without data). Redirects,
/// keep-alive, TLS and proxies behave as for the Lua `net_http_get`.
///
/// Returns `LUANET_OK` and writes `*out` when a response arrived (any
/// status, 404 included); `LUANET_ERR_NETWORK` on a transport failure and
/// `LUANET_ERR_ARGUMENT` for a NULL or non-UTF-8 `url`, with the reason in
/// `luanet_last_error()`. The caller owns `*out`: free it with
/// `luanet_response_free`.
///
/// Thread-safe: any number of threads may make requests at once.
///
/// # Safety
/// `url` is a NUL-terminated string; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_http_get(
    url: *const c_char,
    timeout_ms: u32,
    out: *mut *mut luanet_response,
) -> luanet_result {
    guard(|| {
        let url = unsafe { str_arg(url, "url") }?;
        out_arg(out)?;
        respond(&Request { url, timeout: timeout_arg(timeout_ms), post: None }, out)
    })
}

/// HTTP(S) POST of `body_len` bytes at `body` (NULL when 0) with the
/// `Content-Type` `content_type` to `url`. Otherwise as `luanet_http_get`.
///
/// # Safety
/// `url` and `content_type` are NUL-terminated strings; `body` points to
/// `body_len` readable bytes; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_http_post(
    url: *const c_char,
    content_type: *const c_char,
    body: *const u8,
    body_len: usize,
    timeout_ms: u32,
    out: *mut *mut luanet_response,
) -> luanet_result {
    guard(|| {
        let url = unsafe { str_arg(url, "url") }?;
        let content_type = unsafe { str_arg(content_type, "content_type") }?;
        let body = unsafe { bytes_arg(body, body_len, "body") }?;
        out_arg(out)?;
        let post = Some((content_type.as_bytes(), body));
        respond(&Request { url, timeout: timeout_arg(timeout_ms), post }, out)
    })
}

/// The HTTP status code (200, 404, ...); 0 for NULL.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_status(response: *const luanet_response) -> u32 {
    // SAFETY: the caller passes NULL or a live response.
    guard_value(0, || unsafe { response.as_ref() }.map_or(0, |r| r.status))
}

/// The body bytes, which may contain NUL bytes; their count goes to `*len`
/// (when `len` is not NULL). Borrowed: valid until the response is freed.
/// NULL (and 0) for NULL.
///
/// # Safety
/// `response` is NULL or a live response; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_body(
    response: *const luanet_response,
    len: *mut usize,
) -> *const u8 {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live response, and NULL or a
        // writable `len`.
        unsafe { bytes_out(response.as_ref().map(|r| r.body.as_slice()), len) }
    })
}

/// Frees a response; NULL is ignored.
///
/// # Safety
/// `response` is NULL or a response from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_free(response: *mut luanet_response) {
    if !response.is_null() {
        // SAFETY: made by Box::into_raw in `respond`, freed once.
        guard_value((), || drop(unsafe { Box::from_raw(response) }));
    }
}
