//! The general request for C: the `luanet_request` object, its setters and
//! `luanet_request_perform`. The rules (tokens, header values, proxies,
//! versions, timeouts) are the core's, as for the Lua `net.request`.

use std::ffi::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::boundary::luanet_result::{self, LUANET_ERR_ARGUMENT, LUANET_OK};
use super::boundary::{bytes_arg, fail, fail_request, guard, out_arg, str_arg, timeout_arg};
use super::http::luanet_response;
use crate::http::{self, Proxy, RequestOptions, Version};

/// A request being described: a URL and options. Opaque; made by
/// `luanet_request_new`, freed with `luanet_request_free`.
pub struct luanet_request {
    options: RequestOptions,
    /// `luanet_fetch` streams the body (`luanet_fetch_read`).
    stream: bool,
}

impl luanet_request {
    /// What `luanet_fetch` starts: the options, checked, and the stream flag.
    pub(super) fn for_fetch(&self) -> Result<(RequestOptions, bool), luanet_result> {
        self.options.check().map_err(argument)?;
        http::check_stream(&self.options, self.stream).map_err(|e| argument(e.to_owned()))?;
        Ok((self.options.clone(), self.stream))
    }
}

/// Runs `body` on the live request `request` (NULL is an argument error).
fn with_request(
    request: *mut luanet_request,
    body: impl FnOnce(&mut RequestOptions) -> Result<luanet_result, luanet_result>,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live request it owns.
        match unsafe { request.as_mut() } {
            Some(request) => body(&mut request.options),
            None => Err(fail(LUANET_ERR_ARGUMENT, "request is NULL")),
        }
    })
}

fn argument(message: String) -> luanet_result {
    fail(LUANET_ERR_ARGUMENT, message)
}

/// A file name argument: not NULL, not empty.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string.
pub(super) unsafe fn path_arg(ptr: *const c_char, what: &str) -> Result<PathBuf, luanet_result> {
    if ptr.is_null() {
        return Err(argument(format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL; NUL-terminated by the caller's promise.
    let bytes = unsafe { std::ffi::CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        return Err(argument(format!("{what} is empty")));
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// Starts a GET of `url` with every default (those of `luanet_http_get`).
///
/// Returns `LUANET_OK` and writes `*out`, or `LUANET_ERR_ARGUMENT` for a
/// NULL, non-UTF-8 or invalid `url` (not http or https, no host). The
/// caller owns `*out`: free it with `luanet_request_free`. A request may be
/// performed any number of times, by one thread at a time.
///
/// # Safety
/// `url` is a NUL-terminated string; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_new(
    url: *const c_char,
    out: *mut *mut luanet_request,
) -> luanet_result {
    guard(|| {
        let url = unsafe { str_arg(url, "url") }?;
        out_arg(out)?;
        let endpoint = http::parse_url(url).map_err(argument)?;
        let request = luanet_request { options: RequestOptions::get(endpoint), stream: false };
        // SAFETY: checked non-NULL above.
        unsafe { out.write(Box::into_raw(Box::new(request))) };
        Ok(LUANET_OK)
    })
}

/// Frees a request; NULL is ignored.
///
/// # Safety
/// `request` is NULL or a request from `luanet_request_new`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_free(request: *mut luanet_request) {
    if !request.is_null() {
        // SAFETY: made by Box::into_raw in luanet_request_new, freed once.
        super::boundary::guard_value((), || drop(unsafe { Box::from_raw(request) }));
    }
}

/// The method: any HTTP token (`"PUT"`, `"PATCH"`, `"PURGE"`), sent as
/// given. `"HEAD"` asks for no body. `LUANET_ERR_ARGUMENT` when it is not a
/// token.
///
/// # Safety
/// `request` is a live request; `method` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_method(
    request: *mut luanet_request,
    method: *const c_char,
) -> luanet_result {
    with_request(request, |options| {
        let method = unsafe { str_arg(method, "method") }?;
        options.method = http::check_method(method.as_bytes()).map_err(argument)?.into();
        Ok(LUANET_OK)
    })
}

/// Adds the request header `name: value`, after those added before (a
/// name may repeat). `LUANET_ERR_ARGUMENT` when the name is not a token or
/// the value holds a CR or LF.
///
/// # Safety
/// `request` is a live request; `name` and `value` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_add_header(
    request: *mut luanet_request,
    name: *const c_char,
    value: *const c_char,
) -> luanet_result {
    with_request(request, |options| {
        let name = unsafe { str_arg(name, "name") }?;
        if value.is_null() {
            return Err(argument("value is NULL".to_owned()));
        }
        // SAFETY: checked non-NULL; NUL-terminated by the caller's promise.
        let value = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
        let name = http::check_header_name(name.as_bytes()).map_err(argument)?;
        http::check_header_value(&name, value).map_err(argument)?;
        options.headers.push((name, value.to_vec()));
        Ok(LUANET_OK)
    })
}

/// The body: `len` bytes at `body` (NULL when 0), copied. No
/// `Content-Type` is sent unless a header gives one.
///
/// # Safety
/// `request` is a live request; `body` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_body(
    request: *mut luanet_request,
    body: *const u8,
    len: usize,
) -> luanet_result {
    with_request(request, |options| {
        let body = unsafe { bytes_arg(body, len, "body") }?;
        options.body = Some(body.to_vec());
        Ok(LUANET_OK)
    })
}

/// One budget for the whole request, redirects included; 0 means the
/// defaults (as for `luanet_http_get`).
///
/// # Safety
/// `request` is a live request.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_timeout_ms(
    request: *mut luanet_request,
    timeout_ms: u32,
) -> luanet_result {
    with_request(request, |options| {
        options.timeout = timeout_arg(timeout_ms);
        Ok(LUANET_OK)
    })
}

/// The budget for connecting (resolve, TCP, TLS); 0 means the default
/// (60 s).
///
/// # Safety
/// `request` is a live request.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_connect_timeout_ms(
    request: *mut luanet_request,
    timeout_ms: u32,
) -> luanet_result {
    with_request(request, |options| {
        options.connect_timeout = timeout_arg(timeout_ms);
        Ok(LUANET_OK)
    })
}

/// Whether redirects are followed (default true) and how many at most
/// (default 10). Without following, the 3xx itself is the response.
///
/// # Safety
/// `request` is a live request.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_redirects(
    request: *mut luanet_request,
    follow: bool,
    max_redirects: u32,
) -> luanet_result {
    with_request(request, |options| {
        options.follow_redirects = follow;
        options.max_redirects = max_redirects;
        Ok(LUANET_OK)
    })
}

/// `false` turns off every certificate and host name check: anyone on the
/// path can read and change the traffic. For tests only.
///
/// # Safety
/// `request` is a live request.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_verify(
    request: *mut luanet_request,
    verify: bool,
) -> luanet_result {
    with_request(request, |options| {
        options.verify = verify;
        Ok(LUANET_OK)
    })
}

/// Trust exactly the CA certificates in the PEM file `path` for this
/// request, instead of the trust store.
///
/// # Safety
/// `request` is a live request; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_ca_file(
    request: *mut luanet_request,
    path: *const c_char,
) -> luanet_result {
    with_request(request, |options| {
        options.ca_file = Some(unsafe { path_arg(path, "path") }?);
        Ok(LUANET_OK)
    })
}

/// A client certificate for mutual TLS: PEM files `cert` and `key` (NULL
/// when the key is in `cert`).
///
/// # Safety
/// `request` is a live request; `cert` a NUL-terminated string; `key` NULL
/// or one.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_client_cert(
    request: *mut luanet_request,
    cert: *const c_char,
    key: *const c_char,
) -> luanet_result {
    with_request(request, |options| {
        let cert = unsafe { path_arg(cert, "cert") }?;
        let key = if key.is_null() { None } else { Some(unsafe { path_arg(key, "key") }?) };
        options.client_cert = Some(cert);
        options.client_key = key;
        Ok(LUANET_OK)
    })
}

/// The proxy: a URL (`http://`, `https://`, `socks5h://`, ...); `""` for
/// none, whatever the environment says; NULL for the environment's
/// (`http_proxy`, ...), the default.
///
/// # Safety
/// `request` is a live request; `proxy` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_proxy(
    request: *mut luanet_request,
    proxy: *const c_char,
) -> luanet_result {
    with_request(request, |options| {
        options.proxy = unsafe { proxy_arg(proxy) }?;
        Ok(LUANET_OK)
    })
}

/// A proxy argument: a URL, `""` for none, NULL for the environment's.
///
/// # Safety
/// `proxy` is NULL or a NUL-terminated string.
pub(super) unsafe fn proxy_arg(proxy: *const c_char) -> Result<Proxy, luanet_result> {
    if proxy.is_null() {
        return Ok(Proxy::Environment);
    }
    match unsafe { str_arg(proxy, "proxy") }? {
        "" => Ok(Proxy::Direct),
        url => Proxy::url(url).map_err(argument),
    }
}

/// A body larger than `max_bytes` fails the request with
/// `LUANET_ERROR_TOO_LARGE`. No limit by default.
///
/// # Safety
/// `request` is a live request.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_max_body_bytes(
    request: *mut luanet_request,
    max_bytes: u64,
) -> luanet_result {
    with_request(request, |options| {
        options.max_body_bytes = Some(max_bytes);
        Ok(LUANET_OK)
    })
}

/// Writes the body to the file `path` instead of memory (NULL: memory
/// again). It goes to `<path>.part`, renamed to `path` on success; a
/// failed request leaves no file and never touches an existing `path`.
///
/// # Safety
/// `request` is a live request; `path` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_output(
    request: *mut luanet_request,
    path: *const c_char,
) -> luanet_result {
    with_request(request, |options| {
        options.output = match path.is_null() {
            true => None,
            false => Some(unsafe { path_arg(path, "path") }?),
        };
        Ok(LUANET_OK)
    })
}

/// The HTTP version to use: `"1.1"` or `"2"`; NULL for the default (HTTP/2
/// over TLS when the server offers it, else 1.1).
///
/// # Safety
/// `request` is a live request; `version` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_http_version(
    request: *mut luanet_request,
    version: *const c_char,
) -> luanet_result {
    with_request(request, |options| {
        options.http_version = match version.is_null() {
            true => None,
            false => Some(
                Version::parse(unsafe { str_arg(version, "version") }?.as_bytes())
                    .map_err(argument)?,
            ),
        };
        Ok(LUANET_OK)
    })
}

/// Performs the request, blocking until the whole response arrived.
///
/// Returns `LUANET_OK` and writes `*out` when a response arrived (any
/// status); `LUANET_ERR_NETWORK` on a failure, with the message in
/// `luanet_last_error()` and the kind in `luanet_last_error_kind()`;
/// `LUANET_ERR_ARGUMENT` for NULL pointers or a key without a certificate.
/// The caller owns `*out`: free it with `luanet_response_free`.
///
/// Thread-safe for different requests; the request is only read.
///
/// # Safety
/// `request` is a live request; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_perform(
    request: *const luanet_request,
    out: *mut *mut luanet_response,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live request.
        let Some(request) = (unsafe { request.as_ref() }) else {
            return Err(fail(LUANET_ERR_ARGUMENT, "request is NULL"));
        };
        out_arg(out)?;
        if request.stream {
            return Err(argument("a streaming request is for luanet_fetch only".to_owned()));
        }
        request.options.check().map_err(argument)?;
        let reply = http::request(&request.options).map_err(|e| fail_request(&e))?;
        let response = luanet_response::from_reply(reply);
        // SAFETY: checked non-NULL by out_arg.
        unsafe { out.write(Box::into_raw(Box::new(response))) };
        Ok(LUANET_OK)
    })
}

/// With `stream` true, `luanet_fetch` hands the body out piece by piece
/// through `luanet_fetch_read` as it arrives, and its response's body is
/// empty. Such a request is for `luanet_fetch` only:
/// `luanet_request_perform` refuses it (`LUANET_ERR_ARGUMENT`).
///
/// # Safety
/// `request` is a live request.
#[no_mangle]
pub unsafe extern "C" fn luanet_request_set_stream(
    request: *mut luanet_request,
    stream: bool,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live request it owns.
        match unsafe { request.as_mut() } {
            Some(request) => {
                request.stream = stream;
                Ok(LUANET_OK)
            }
            None => Err(fail(LUANET_ERR_ARGUMENT, "request is NULL")),
        }
    })
}
