//! HTTP for C: `luanet_http_get`, `luanet_http_post` and the response
//! object (also what `luanet_request_perform` returns).

use std::ffi::{c_char, CStr, CString};

use super::boundary::luanet_result::{self, LUANET_ERR_ARGUMENT, LUANET_ERR_NETWORK, LUANET_OK};
use super::boundary::{
    bytes_arg, bytes_out, fail, guard, guard_value, out_arg, str_arg, timeout_arg,
};
use crate::http::{self, Request};

/// A response received at the transport level, whatever its status.
/// Opaque; free with `luanet_response_free`.
pub struct luanet_response {
    status: u32,
    body: Vec<u8>,
    /// Header lines in arrival order, each name and value NUL-terminated.
    headers: http::ResponseHeaders,
    /// For each name that repeats: its first line and the joined values,
    /// NUL-terminated.
    repeated: Vec<(usize, Vec<u8>)>,
    /// The final URL; only for `luanet_request_perform`'s responses.
    url: Option<CString>,
    redirects: u32,
    http_version: Option<&'static CStr>,
    timings: luanet_timings,
}

/// Milliseconds from the start of a request to the end of each phase;
/// each is at least the one before.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct luanet_timings {
    /// The host name resolved.
    pub dns_ms: f64,
    /// TCP connected.
    pub connect_ms: f64,
    /// TLS handshake done (`connect_ms` without TLS).
    pub tls_ms: f64,
    /// The first response byte arrived.
    pub first_byte_ms: f64,
    /// The whole response arrived.
    pub total_ms: f64,
}

impl luanet_response {
    fn plain(status: u32, body: Vec<u8>) -> luanet_response {
        luanet_response {
            status,
            body,
            headers: http::ResponseHeaders::default(),
            repeated: Vec::new(),
            url: None,
            redirects: 0,
            http_version: None,
            timings: luanet_timings::default(),
        }
    }

    pub(super) fn from_reply(reply: http::Reply) -> luanet_response {
        let headers = &reply.headers;
        let repeated = (headers.joined().into_iter().enumerate())
            .filter_map(|(i, joined)| match joined {
                Some(std::borrow::Cow::Owned(mut all)) => {
                    all.push(0);
                    Some((i, all))
                }
                _ => None,
            })
            .collect();
        let t = reply.timings;
        let without_nul = |text: &str| CString::new(text.replace('\0', "")).unwrap_or_default();
        luanet_response {
            status: reply.status,
            headers: reply.headers,
            repeated,
            url: Some(without_nul(&reply.url)),
            redirects: reply.redirects,
            http_version: Some(reply.http_version),
            timings: luanet_timings {
                dns_ms: t.dns,
                connect_ms: t.connect,
                tls_ms: t.tls,
                first_byte_ms: t.first_byte,
                total_ms: t.total,
            },
            body: reply.body,
        }
    }
}

/// The bytes of a NUL-terminated value, its length (without the NUL) to
/// `*len` when `len` is not NULL.
///
/// # Safety
/// `len` is NULL or writable.
unsafe fn value_out(value: Option<&[u8]>, len: *mut usize) -> *const c_char {
    let bytes = value.map(|v| &v[..v.len() - 1]);
    // SAFETY: the caller's promise on `len`; the NUL follows the bytes.
    unsafe { bytes_out(bytes, len) }.cast()
}

fn respond(
    request: &Request<'_>,
    out: *mut *mut luanet_response,
) -> Result<luanet_result, luanet_result> {
    match http::perform(request) {
        Ok(response) => {
            let response = luanet_response::plain(response.status, response.body);
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

/// The value of the response header `name` (any case), repeated headers
/// joined with `", "`; NULL when there is none. NUL-terminated, its length
/// to `*len` when `len` is not NULL. Borrowed: valid until the response is
/// freed. Only responses of `luanet_request_perform` have headers.
///
/// # Safety
/// `response` is NULL or a live response; `name` NULL or a NUL-terminated
/// string; `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_header(
    response: *const luanet_response,
    name: *const c_char,
    len: *mut usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live response.
        let response = unsafe { response.as_ref() };
        let name = (!name.is_null()).then(|| unsafe { CStr::from_ptr(name) }.to_bytes());
        let value = response.zip(name).and_then(|(r, name)| {
            let first = r.headers.position(name)?;
            Some(match r.repeated.iter().find(|(i, _)| *i == first) {
                Some((_, joined)) => joined.as_slice(),
                None => r.headers.value_with_nul(first),
            })
        });
        // SAFETY: the caller's promise on `len`.
        unsafe { value_out(value, len) }
    })
}

/// How many header lines the final response had (each `Set-Cookie` is
/// one); 0 for NULL.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_header_count(response: *const luanet_response) -> usize {
    // SAFETY: the caller passes NULL or a live response.
    guard_value(0, || unsafe { response.as_ref() }.map_or(0, |r| r.headers.len()))
}

/// Header line `index` (from 0, in arrival order): its lower-case name to
/// `*name` and its NUL-terminated value to `*value`, the value's length to
/// `*value_len` (each when not NULL). Borrowed: valid until the response is
/// freed. `LUANET_ERR_ARGUMENT` for NULL or an index out of range.
///
/// # Safety
/// `response` is NULL or a live response; the out-pointers NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_header_at(
    response: *const luanet_response,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const c_char,
    value_len: *mut usize,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live response.
        let response = unsafe { response.as_ref() }
            .ok_or_else(|| fail(LUANET_ERR_ARGUMENT, "response is NULL"))?;
        let headers = &response.headers;
        if index >= headers.len() {
            let message = format!("no header line {index} (there are {})", headers.len());
            return Err(fail(LUANET_ERR_ARGUMENT, message));
        }
        // SAFETY: the caller's promise on the out-pointers.
        unsafe {
            if !name.is_null() {
                name.write(headers.name_with_nul(index).as_ptr().cast());
            }
            let text = value_out(Some(headers.value_with_nul(index)), value_len);
            if !value.is_null() {
                value.write(text);
            }
        }
        Ok(LUANET_OK)
    })
}

/// The final URL, after redirects. Borrowed: valid until the response is
/// freed. NULL for NULL and for `luanet_http_get`/`_post` responses.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_url(response: *const luanet_response) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live response.
        unsafe { response.as_ref() }
            .and_then(|r| r.url.as_ref())
            .map_or(std::ptr::null(), |u| u.as_ptr())
    })
}

/// How many redirects were followed; 0 for NULL.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_redirects(response: *const luanet_response) -> u32 {
    // SAFETY: the caller passes NULL or a live response.
    guard_value(0, || unsafe { response.as_ref() }.map_or(0, |r| r.redirects))
}

/// The HTTP version of the final response: `"1.1"`, `"2"`, ... Static.
/// NULL for NULL and for `luanet_http_get`/`_post` responses.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_http_version(
    response: *const luanet_response,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live response.
        unsafe { response.as_ref() }
            .and_then(|r| r.http_version)
            .map_or(std::ptr::null(), CStr::as_ptr)
    })
}

/// Writes the phase timings to `*out`. `LUANET_ERR_ARGUMENT` for NULL or
/// for a `luanet_http_get`/`_post` response, which has none.
///
/// # Safety
/// `response` is NULL or a live response; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn luanet_response_timings(
    response: *const luanet_response,
    out: *mut luanet_timings,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live response.
        let response = unsafe { response.as_ref() }
            .ok_or_else(|| fail(LUANET_ERR_ARGUMENT, "response is NULL"))?;
        if out.is_null() {
            return Err(fail(LUANET_ERR_ARGUMENT, "the out-parameter is NULL"));
        }
        if response.url.is_none() {
            return Err(fail(
                LUANET_ERR_ARGUMENT,
                "only luanet_request_perform's responses have timings",
            ));
        }
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(response.timings) };
        Ok(LUANET_OK)
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
