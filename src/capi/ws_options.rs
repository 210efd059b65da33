//! WebSocket connect options for C (`net`'s `ws_connect(url, options)`):
//! the `luanet_ws_options` object, `luanet_ws_connect_with` and the chosen
//! subprotocol. The rules (header names and values, the handshake's own
//! lines, subprotocol tokens, timeouts, bounds) are the core's, as for Lua.

use std::ffi::{c_char, CString};

use super::boundary::luanet_result::{self, LUANET_ERR_ARGUMENT, LUANET_ERR_NETWORK, LUANET_OK};
use super::boundary::{fail, guard, out_arg, str_arg, timeout_arg};
use super::http::luanet_response;
use super::request::{path_arg, proxy_arg};
use super::ws::luanet_ws;
use crate::http::{self, Reply};
use crate::ws::{self as core, check_upgrade_header, ConnectOptions, Socket};

/// How a WebSocket connects: a budget, upgrade headers, subprotocols,
/// bounds, keepalive, trust and proxy. Opaque; made by
/// `luanet_ws_options_new`, freed with `luanet_ws_options_free`. One thread
/// at a time.
pub struct luanet_ws_options {
    options: ConnectOptions,
}

fn argument(message: impl Into<Vec<u8>>) -> luanet_result {
    fail(LUANET_ERR_ARGUMENT, message)
}

/// Runs `body` on the live options `options` (NULL is an argument error).
fn with_options(
    options: *mut luanet_ws_options,
    body: impl FnOnce(&mut luanet_ws_options) -> Result<luanet_result, luanet_result>,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or live options it owns.
        match unsafe { options.as_mut() } {
            Some(options) => body(options),
            None => Err(argument("options is NULL")),
        }
    })
}

/// New options with every default (those of `luanet_ws_connect` with a
/// timeout of 0). The caller owns `*out`: free it with
/// `luanet_ws_options_free`.
///
/// # Safety
/// `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_new(out: *mut *mut luanet_ws_options) -> luanet_result {
    guard(|| {
        out_arg(out)?;
        let options = luanet_ws_options { options: ConnectOptions::default() };
        // SAFETY: checked non-NULL above.
        unsafe { out.write(Box::into_raw(Box::new(options))) };
        Ok(LUANET_OK)
    })
}

/// Frees options; NULL is ignored.
///
/// # Safety
/// `options` is NULL or from `luanet_ws_options_new`, not used again.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_free(options: *mut luanet_ws_options) {
    super::boundary::guard_value((), || {
        if !options.is_null() {
            // SAFETY: made by `luanet_ws_options_new`, freed once.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// One budget for resolve, connect, TLS and the upgrade (0: the defaults).
///
/// # Safety
/// `options` is live options.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_set_timeout_ms(
    options: *mut luanet_ws_options,
    timeout_ms: u32,
) -> luanet_result {
    with_options(options, |options| {
        options.options.timeout = timeout_arg(timeout_ms);
        Ok(LUANET_OK)
    })
}

/// Adds the upgrade header `name: value`, after those added before.
/// `LUANET_ERR_ARGUMENT` for a name that is not a token, a value with a CR,
/// LF or NUL, or one of the handshake's own lines (`Connection`, `Upgrade`,
/// `Sec-WebSocket-*`). A `Host` or `User-Agent` replaces luanet's.
///
/// # Safety
/// `options` is live options; `name` and `value` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_add_header(
    options: *mut luanet_ws_options,
    name: *const c_char,
    value: *const c_char,
) -> luanet_result {
    with_options(options, |options| {
        let name = unsafe { str_arg(name, "name") }?;
        if value.is_null() {
            return Err(argument("value is NULL"));
        }
        // SAFETY: checked non-NULL; NUL-terminated by the caller's promise.
        let value = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
        let name = http::check_header_name(name.as_bytes()).map_err(argument)?;
        http::check_header_value(&name, value).map_err(argument)?;
        check_upgrade_header(&name).map_err(argument)?;
        options.options.upgrade.headers.push((name, value.to_vec()));
        Ok(LUANET_OK)
    })
}

/// Offers the subprotocol `name`, after those offered before (in order of
/// preference). `LUANET_ERR_ARGUMENT` for a name that is not an HTTP token
/// or is offered already.
///
/// # Safety
/// `options` is live options; `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_add_protocol(
    options: *mut luanet_ws_options,
    name: *const c_char,
) -> luanet_result {
    with_options(options, |options| {
        let name = unsafe { str_arg(name, "name") }?;
        let name = http::check_subprotocol(name.as_bytes()).map_err(argument)?;
        let protocols = &mut options.options.upgrade.protocols;
        if protocols.contains(&name) {
            return Err(argument(format!("'{name}' is offered twice")));
        }
        protocols.push(name);
        Ok(LUANET_OK)
    })
}

/// Keepalive: a ping every `interval_ms` (0: none; 20000 by default),
/// and the connection fails with `"no pong within <N> ms"` when one gets
/// no pong within `pong_timeout_ms` (0: the default, 20000; `UINT32_MAX`:
/// never). While reading is paused at the inbox bound no pong is waited
/// for.
///
/// # Safety
/// `options` is live options.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_set_keepalive(
    options: *mut luanet_ws_options,
    interval_ms: u32,
    pong_timeout_ms: u32,
) -> luanet_result {
    with_options(options, |options| {
        let limits = &mut options.options.limits;
        limits.ping_interval = core::ping_interval(f64::from(interval_ms)).map_err(argument)?;
        limits.pong_timeout = core::pong_timeout(f64::from(pong_timeout_ms)).map_err(argument)?;
        Ok(LUANET_OK)
    })
}

/// Which byte bound a `luanet_ws_options_set_limit` sets.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum luanet_ws_limit {
    /// The largest incoming message (64 MiB by default); a larger one fails
    /// the connection with close code 1009.
    LUANET_WS_MAX_MESSAGE_BYTES = 1,
    /// Unread messages past which the socket is not read (64 MiB by
    /// default), so TCP holds the server back; nothing is dropped.
    LUANET_WS_MAX_QUEUED_BYTES = 2,
    /// Unwritten output past which a send is refused with `LUANET_FULL`
    /// (16 MiB by default).
    LUANET_WS_MAX_SEND_BUFFER_BYTES = 3,
}

/// Sets the byte bound `limit` to `bytes` (1 to 2^63-1).
///
/// # Safety
/// `options` is live options; `limit` one of `luanet_ws_limit`.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_set_limit(
    options: *mut luanet_ws_options,
    limit: std::ffi::c_int,
    bytes: u64,
) -> luanet_result {
    with_options(options, |options| {
        let bytes = core::byte_bound(bytes).map_err(|rule| argument(format!("bytes {rule}")))?;
        let limits = &mut options.options.limits;
        use luanet_ws_limit::*;
        // Compared as numbers: a C caller may pass any int.
        let bound = match limit {
            l if l == LUANET_WS_MAX_MESSAGE_BYTES as std::ffi::c_int => {
                &mut limits.max_message_bytes
            }
            l if l == LUANET_WS_MAX_QUEUED_BYTES as std::ffi::c_int => &mut limits.max_queued_bytes,
            l if l == LUANET_WS_MAX_SEND_BUFFER_BYTES as std::ffi::c_int => {
                &mut limits.max_send_buffer_bytes
            }
            _ => return Err(argument(format!("limit {limit} is not a luanet_ws_limit"))),
        };
        *bound = bytes;
        Ok(LUANET_OK)
    })
}

/// `false` turns off every certificate and host name check (for tests);
/// `ca_file` (NULL: the trust store) trusts exactly the CAs in that PEM
/// file.
///
/// # Safety
/// `options` is live options; `ca_file` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_set_tls(
    options: *mut luanet_ws_options,
    verify: bool,
    ca_file: *const c_char,
) -> luanet_result {
    with_options(options, |options| {
        let ca_file =
            if ca_file.is_null() { None } else { Some(unsafe { path_arg(ca_file, "ca_file") }?) };
        options.options.verify = verify;
        options.options.ca_file = ca_file;
        Ok(LUANET_OK)
    })
}

/// The proxy, as `luanet_request_set_proxy` takes it: a URL, `""` for none,
/// NULL for the environment's (the default). The WebSocket goes through an
/// HTTP proxy as a CONNECT tunnel.
///
/// # Safety
/// `options` is live options; `proxy` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_options_set_proxy(
    options: *mut luanet_ws_options,
    proxy: *const c_char,
) -> luanet_result {
    with_options(options, |options| {
        options.options.proxy = unsafe { proxy_arg(proxy) }?;
        Ok(LUANET_OK)
    })
}

/// As `luanet_ws_connect`, with `options` (NULL: the defaults). When the
/// server refuses the upgrade and `refusal` is not NULL, `*refusal` is its
/// answer (status, headers and body, as `luanet_request_perform` gives
/// one; the caller frees it with `luanet_response_free`), and the result
/// is `LUANET_ERR_NETWORK` with `"WebSocket upgrade refused: HTTP 403
/// Forbidden"` in `luanet_last_error()`. `*refusal` is written only then.
///
/// # Safety
/// `url` is a NUL-terminated string; `options` NULL or live options; `out`
/// points to writable storage; `refusal` is NULL or does.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_connect_with(
    url: *const c_char,
    options: *const luanet_ws_options,
    out: *mut *mut luanet_ws,
    refusal: *mut *mut luanet_response,
) -> luanet_result {
    guard(|| {
        let url = unsafe { str_arg(url, "url") }?;
        out_arg(out)?;
        let defaults = luanet_ws_options { options: ConnectOptions::default() };
        // SAFETY: the caller passes NULL or live options.
        let options = unsafe { options.as_ref() }.unwrap_or(&defaults);
        let socket = match Socket::connect_with(url, &options.options) {
            Ok(socket) => socket,
            Err(e) => {
                if let (Some(answer), false) = (e.refusal, refusal.is_null()) {
                    let reply = Reply {
                        status: u32::from(answer.status),
                        headers: answer.headers,
                        body: answer.body,
                        url: url.to_owned(),
                        ..Reply::default()
                    };
                    let response = luanet_response::from_reply(reply);
                    // SAFETY: checked non-NULL.
                    unsafe { refusal.write(Box::into_raw(Box::new(response))) };
                }
                return Err(fail(LUANET_ERR_NETWORK, e.message));
            }
        };
        // SAFETY: checked non-NULL by out_arg.
        unsafe { out.write(Box::into_raw(Box::new(luanet_ws::new(socket)))) };
        Ok(LUANET_OK)
    })
}

/// The subprotocol the server chose, NUL-terminated and valid until the
/// socket is freed; NULL when it chose none (or for NULL).
///
/// # Safety
/// `ws` is NULL or a live socket.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_protocol(ws: *const luanet_ws) -> *const c_char {
    super::boundary::guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live socket.
        match unsafe { ws.as_ref() }.and_then(|ws| ws.protocol.as_ref()) {
            Some(name) => name.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// The chosen subprotocol as a C string (a token: no NUL inside).
pub(super) fn protocol_c(socket: &Socket) -> Option<CString> {
    socket.protocol().and_then(|name| CString::new(name).ok())
}
