//! WebSocket for C: connect, send, receive (blocking with a timeout, or
//! polled), close, free; and the message object.

use std::ffi::c_char;

use super::boundary::luanet_result::{
    self, LUANET_CLOSED, LUANET_EMPTY, LUANET_ERR_ARGUMENT, LUANET_ERR_NETWORK, LUANET_FULL,
    LUANET_OK, LUANET_TIMEOUT,
};
use super::boundary::{
    bytes_arg, bytes_out, fail, guard, guard_value, out_arg, str_arg, timeout_arg,
};
use crate::ws::{
    sendable_close_code, sendable_close_reason, ClosedBy, Outgoing, Polled, SendError,
    SendErrorKind, Socket, DETACH_LIMIT,
};

/// A client WebSocket. Opaque; free with `luanet_ws_free`.
///
/// Thread-safe: its functions may be called from several threads at once
/// (messages are received by one background I/O thread shared by all
/// sockets).
pub struct luanet_ws {
    socket: Socket,
    /// The subprotocol the server chose, for `luanet_ws_protocol`.
    pub(super) protocol: Option<std::ffi::CString>,
}

impl luanet_ws {
    pub(super) fn new(socket: Socket) -> luanet_ws {
        let protocol = super::ws_options::protocol_c(&socket);
        luanet_ws { socket, protocol }
    }
}

/// One complete incoming message. Opaque; free with `luanet_message_free`.
pub struct luanet_message {
    data: tungstenite::Bytes,
    is_text: bool,
}

/// # Safety
/// `ws` is NULL or a live socket.
unsafe fn socket<'a>(ws: *const luanet_ws) -> Result<&'a Socket, luanet_result> {
    // SAFETY: the caller passes NULL or a live socket.
    match unsafe { ws.as_ref() } {
        Some(ws) => Ok(&ws.socket),
        None => Err(fail(LUANET_ERR_ARGUMENT, "ws is NULL")),
    }
}

/// Opens a WebSocket to a `ws://` or `wss://` `url` (synchronous handshake).
///
/// `timeout_ms` bounds resolve, connect, TLS and the upgrade; 0 means the
/// defaults. On `LUANET_OK` the caller owns `*out` (free it with
/// `luanet_ws_free`); otherwise `LUANET_ERR_NETWORK` or
/// `LUANET_ERR_ARGUMENT`, with the reason in `luanet_last_error()` (e.g.
/// `"WebSocket upgrade refused: HTTP 403 Forbidden"`).
///
/// # Safety
/// `url` is a NUL-terminated string; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_connect(
    url: *const c_char,
    timeout_ms: u32,
    out: *mut *mut luanet_ws,
) -> luanet_result {
    guard(|| {
        let url = unsafe { str_arg(url, "url") }?;
        out_arg(out)?;
        let socket = Socket::connect(url, timeout_arg(timeout_ms))
            .map_err(|e| fail(LUANET_ERR_NETWORK, e))?;
        // SAFETY: checked non-NULL by out_arg.
        unsafe { out.write(Box::into_raw(Box::new(luanet_ws::new(socket)))) };
        Ok(LUANET_OK)
    })
}

fn send(socket: &Socket, message: Outgoing) -> Result<luanet_result, luanet_result> {
    socket.send(message).map(|()| LUANET_OK).map_err(refused)
}

/// `LUANET_FULL` or `LUANET_CLOSED`, with the reason as the last error.
fn refused(e: SendError) -> luanet_result {
    match e.kind {
        SendErrorKind::Full => fail(LUANET_FULL, e.message),
        SendErrorKind::Closed => fail(LUANET_CLOSED, e.message),
    }
}

/// Queues a text message of `len` bytes of UTF-8 at `text` (no NUL needed).
/// `LUANET_OK` once accepted for sending (in order); `LUANET_CLOSED` when
/// the socket is closed; `LUANET_FULL` when the output waiting for the
/// socket is at its `max_send_buffer_bytes` (nothing of this message is
/// sent; the socket stays open); `LUANET_ERR_ARGUMENT` when the bytes are
/// not UTF-8 (nothing is sent).
///
/// # Safety
/// `ws` is a live socket; `text` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_send_text(
    ws: *const luanet_ws,
    text: *const c_char,
    len: usize,
) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        let bytes = unsafe { bytes_arg(text.cast(), len, "text") }?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| fail(LUANET_ERR_ARGUMENT, "text message is not valid UTF-8"))?;
        send(socket, Outgoing::Text(text.to_owned()))
    })
}

/// Queues a binary message of `len` bytes at `data` (NULL when 0). Results
/// as `luanet_ws_send_text`.
///
/// # Safety
/// `ws` is a live socket; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_send_binary(
    ws: *const luanet_ws,
    data: *const u8,
    len: usize,
) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        let data = unsafe { bytes_arg(data, len, "data") }?;
        send(socket, Outgoing::Binary(data.to_vec()))
    })
}

fn deliver(polled: Polled, socket: &Socket, out: *mut *mut luanet_message) -> luanet_result {
    match polled {
        Polled::Message(data, is_text) => {
            // A small message may be a view into the socket's read buffer;
            // a host that keeps it must not keep that buffer too.
            let data = if data.len() <= DETACH_LIMIT {
                tungstenite::Bytes::copy_from_slice(&data)
            } else {
                data
            };
            // SAFETY: checked non-NULL by out_arg.
            unsafe { out.write(Box::into_raw(Box::new(luanet_message { data, is_text }))) };
            LUANET_OK
        }
        Polled::Empty => LUANET_EMPTY,
        Polled::Closed => {
            let why = socket.close_error().unwrap_or_else(|| crate::ws::CLOSED.to_owned());
            fail(LUANET_CLOSED, why)
        }
    }
}

/// Waits for the next message, at most `timeout_ms` (0: no limit).
/// `LUANET_OK` and `*out` (caller owns; free with `luanet_message_free`);
/// `LUANET_TIMEOUT` when nothing came in time; `LUANET_CLOSED` once the
/// socket is closed and every message was taken (`luanet_last_error()` then
/// says why, when it was not a clean close). Messages that arrived before a
/// close are always delivered first.
///
/// # Safety
/// `ws` is a live socket; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_recv(
    ws: *const luanet_ws,
    timeout_ms: u32,
    out: *mut *mut luanet_message,
) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        out_arg(out)?;
        Ok(match deliver(socket.recv(timeout_arg(timeout_ms)), socket, out) {
            LUANET_EMPTY => LUANET_TIMEOUT,
            result => result,
        })
    })
}

/// The next message without waiting: `LUANET_OK` and `*out`;
/// `LUANET_EMPTY` when nothing arrived yet; `LUANET_CLOSED` as for
/// `luanet_ws_recv`. Makes no system call when nothing arrived: meant to be
/// called every frame.
///
/// # Safety
/// `ws` is a live socket; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_poll(
    ws: *const luanet_ws,
    out: *mut *mut luanet_message,
) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        out_arg(out)?;
        Ok(deliver(socket.poll(), socket, out))
    })
}

/// True while the socket is open; false once closed, closing, failed, or
/// for NULL.
///
/// # Safety
/// `ws` is NULL or a live socket.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_is_open(ws: *const luanet_ws) -> bool {
    // SAFETY: the caller passes NULL or a live socket.
    guard_value(false, || unsafe { ws.as_ref() }.is_some_and(|ws| ws.socket.is_open()))
}

/// Sends a close frame with `code` (1000 for a normal closure; 1000-1003,
/// 1007-1014 or 3000-4999), waits about a second at most for the peer's
/// answer, and releases the connection. Messages already received stay
/// readable. Calling it again is harmless. `LUANET_ERR_ARGUMENT` for a code
/// a client may not send.
///
/// # Safety
/// `ws` is a live socket.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_close(ws: *const luanet_ws, code: u16) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        let code = sendable_close_code(i64::from(code))
            .map_err(|rule| fail(LUANET_ERR_ARGUMENT, format!("close code {code}: {rule}")))?;
        socket.close(code, "");
        Ok(LUANET_OK)
    })
}

/// As `luanet_ws_close`, with a close reason: NUL-terminated UTF-8 of at
/// most 123 bytes (NULL: none). `LUANET_ERR_ARGUMENT` for a code a client
/// may not send or a reason that breaks that rule.
///
/// # Safety
/// `ws` is a live socket; `reason` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_close_with_reason(
    ws: *const luanet_ws,
    code: u16,
    reason: *const c_char,
) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        let code = sendable_close_code(i64::from(code))
            .map_err(|rule| fail(LUANET_ERR_ARGUMENT, format!("close code {code}: {rule}")))?;
        let reason: &[u8] = match reason.is_null() {
            true => b"",
            // SAFETY: non-NULL and NUL-terminated by the caller's promise.
            false => unsafe { std::ffi::CStr::from_ptr(reason) }.to_bytes(),
        };
        let reason =
            sendable_close_reason(reason).map_err(|rule| fail(LUANET_ERR_ARGUMENT, rule))?;
        socket.close(code, reason);
        Ok(LUANET_OK)
    })
}

/// Sends a ping with `len` bytes of `payload` (at most 125; NULL with 0:
/// none). Its pong sets `luanet_ws_latency_ms`. `LUANET_CLOSED` once the
/// socket is closed; `LUANET_ERR_ARGUMENT` for a longer payload.
///
/// # Safety
/// `ws` is a live socket; `payload` has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_ping(
    ws: *const luanet_ws,
    payload: *const u8,
    len: usize,
) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        let payload = unsafe { bytes_arg(payload, len, "payload") }?;
        let payload = crate::ws::sendable_ping_payload(payload)
            .map_err(|rule| fail(LUANET_ERR_ARGUMENT, rule))?;
        socket.ping(payload).map(|()| LUANET_OK).map_err(refused)
    })
}

/// Bytes that `luanet_ws_send_*` and `luanet_ws_ping` accepted and the
/// socket has not taken yet, framing included, as the browser's
/// `bufferedAmount`; 0 once everything is written (and for NULL).
///
/// # Safety
/// `ws` is NULL or a live socket.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_buffered_amount(ws: *const luanet_ws) -> u64 {
    guard_value(0, || match unsafe { socket(ws) } {
        Ok(socket) => socket.buffered_amount() as u64,
        Err(_) => 0,
    })
}

/// The round trip of the last answered ping in ms, or -1 before any (or
/// for NULL).
///
/// # Safety
/// `ws` is NULL or a live socket.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_latency_ms(ws: *const luanet_ws) -> f64 {
    guard_value(-1.0, || match unsafe { socket(ws) } {
        Ok(socket) => socket.latency().map_or(-1.0, |t| t.as_secs_f64() * 1000.0),
        Err(_) => -1.0,
    })
}

/// Who ended a connection (`luanet_ws_close_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum luanet_closed_by {
    /// The peer sent the first close frame.
    LUANET_CLOSED_BY_PEER = 1,
    /// This side did (`luanet_ws_close`, or `luanet_ws_free`).
    LUANET_CLOSED_BY_LOCAL = 2,
    /// The library failed the connection, or it dropped.
    LUANET_CLOSED_BY_ERROR = 3,
}

/// How the connection ended, once it has: `LUANET_OK`, with the close code
/// and reason of the first close frame and who sent it. When the library
/// failed the connection, the code is the one it sent (1009 for a message
/// too big, 1002 for a protocol error), or 1006 when the connection dropped
/// with no close frame. The reason (UTF-8, not NUL-terminated) stays valid
/// until the socket is freed. `LUANET_EMPTY` while the socket is open or
/// closing.
///
/// # Safety
/// `ws` is a live socket; the out-pointers point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_close_info(
    ws: *const luanet_ws,
    code: *mut u16,
    reason: *mut *const c_char,
    reason_len: *mut usize,
    by: *mut luanet_closed_by,
) -> luanet_result {
    guard(|| {
        let socket = unsafe { socket(ws) }?;
        if code.is_null() || reason.is_null() || reason_len.is_null() || by.is_null() {
            return Err(fail(LUANET_ERR_ARGUMENT, "an out-parameter is NULL"));
        }
        let Some(info) = socket.close_info() else { return Ok(LUANET_EMPTY) };
        let who = match info.by {
            ClosedBy::Peer => luanet_closed_by::LUANET_CLOSED_BY_PEER,
            ClosedBy::Local => luanet_closed_by::LUANET_CLOSED_BY_LOCAL,
            ClosedBy::Error => luanet_closed_by::LUANET_CLOSED_BY_ERROR,
        };
        // SAFETY: checked non-NULL above; the reason lives in the socket.
        unsafe {
            code.write(info.code);
            reason.write(info.reason.as_ptr().cast());
            reason_len.write(info.reason.len());
            by.write(who);
        }
        Ok(LUANET_OK)
    })
}

/// Frees a socket, starting its closing handshake (code 1000) if it is
/// still open, without waiting. NULL is ignored.
///
/// # Safety
/// `ws` is NULL or a socket from `luanet_ws_connect`, not yet freed, and no
/// other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn luanet_ws_free(ws: *mut luanet_ws) {
    if !ws.is_null() {
        // SAFETY: made by Box::into_raw in `luanet_ws_connect`, freed once.
        guard_value((), || drop(unsafe { Box::from_raw(ws) }));
    }
}

/// The message bytes (text is UTF-8, not NUL-terminated); their count goes
/// to `*len` when `len` is not NULL. Borrowed: valid until the message is
/// freed. NULL (and 0) for NULL.
///
/// # Safety
/// `message` is NULL or a live message; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn luanet_message_data(
    message: *const luanet_message,
    len: *mut usize,
) -> *const u8 {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live message, and NULL or a
        // writable `len`.
        unsafe { bytes_out(message.as_ref().map(|m| &m.data[..]), len) }
    })
}

/// True for a text message, false for binary (and for NULL).
///
/// # Safety
/// `message` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn luanet_message_is_text(message: *const luanet_message) -> bool {
    // SAFETY: the caller passes NULL or a live message.
    guard_value(false, || unsafe { message.as_ref() }.is_some_and(|m| m.is_text))
}

/// Frees a message; NULL is ignored.
///
/// # Safety
/// `message` is NULL or a message from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn luanet_message_free(message: *mut luanet_message) {
    if !message.is_null() {
        // SAFETY: made by Box::into_raw in `deliver`, freed once.
        guard_value((), || drop(unsafe { Box::from_raw(message) }));
    }
}
