//! What every exported C function goes through: a panic boundary (a panic
//! becomes [`luanet_result::LUANET_ERR_PANIC`], never an unwind into C) and
//! the per-thread message of the last failure.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr, CString};

use crate::http::{ErrorKind, RequestError};

/// The outcome of a C API call.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum luanet_result {
    /// Success; out-parameters were written.
    LUANET_OK = 0,
    /// `luanet_ws_poll`: no message yet, the socket is open;
    /// `luanet_fetch_poll`: the request is still running;
    /// `luanet_fetch_read`: no new body bytes yet.
    LUANET_EMPTY = 1,
    /// `luanet_ws_recv`, `luanet_fetch_wait`: nothing came within the timeout.
    LUANET_TIMEOUT = 2,
    /// The WebSocket is closed (and, for receiving, every message was taken);
    /// `luanet_fetch_read`: the body has ended.
    LUANET_CLOSED = 3,
    /// A NULL pointer, a string that is not UTF-8, or a value out of range.
    LUANET_ERR_ARGUMENT = 4,
    /// The network or the peer failed: refused, timed out, TLS, protocol.
    LUANET_ERR_NETWORK = 5,
    /// A bug in luanet was caught at the boundary.
    LUANET_ERR_PANIC = 6,
    /// `luanet_ws_send_*`, `luanet_ws_ping`: the output waiting for the
    /// socket is at its `max_send_buffer_bytes`; nothing of the message was
    /// sent, and the socket stays open.
    LUANET_FULL = 7,
}

/// What kind of failure a request met, as `net.request` names them.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum luanet_error_kind {
    /// The last failure was not a request's (or nothing failed yet).
    LUANET_ERROR_NONE = 0,
    /// The host name did not resolve.
    LUANET_ERROR_RESOLVE = 1,
    /// The connection was refused or the host unreachable.
    LUANET_ERROR_CONNECT = 2,
    /// The TLS handshake or the certificate failed.
    LUANET_ERROR_TLS = 3,
    /// A budget ran out.
    LUANET_ERROR_TIMEOUT = 4,
    /// The proxy failed.
    LUANET_ERROR_PROXY = 5,
    /// A malformed or incomplete response.
    LUANET_ERROR_PROTOCOL = 6,
    /// Too many redirects, or a forbidden one.
    LUANET_ERROR_REDIRECT = 7,
    /// The body passed the limit of `luanet_request_set_max_body_bytes`.
    LUANET_ERROR_TOO_LARGE = 8,
    /// Writing the output file failed.
    LUANET_ERROR_IO = 9,
    /// The request was cancelled.
    LUANET_ERROR_ABORTED = 10,
}

impl From<ErrorKind> for luanet_error_kind {
    fn from(kind: ErrorKind) -> luanet_error_kind {
        use luanet_error_kind::*;
        match kind {
            ErrorKind::Resolve => LUANET_ERROR_RESOLVE,
            ErrorKind::Connect => LUANET_ERROR_CONNECT,
            ErrorKind::Tls => LUANET_ERROR_TLS,
            ErrorKind::Timeout => LUANET_ERROR_TIMEOUT,
            ErrorKind::Proxy => LUANET_ERROR_PROXY,
            ErrorKind::Protocol => LUANET_ERROR_PROTOCOL,
            ErrorKind::Redirect => LUANET_ERROR_REDIRECT,
            ErrorKind::TooLarge => LUANET_ERROR_TOO_LARGE,
            ErrorKind::Io => LUANET_ERROR_IO,
            ErrorKind::Aborted => LUANET_ERROR_ABORTED,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_KIND: Cell<Option<ErrorKind>> = const { Cell::new(None) };
}

/// Records `message` as this thread's last failure and returns `result`.
pub(crate) fn fail(result: luanet_result, message: impl Into<Vec<u8>>) -> luanet_result {
    record(None, message.into());
    result
}

/// Records a request's failure, kind included: `LUANET_ERR_NETWORK`.
pub(crate) fn fail_request(error: &RequestError) -> luanet_result {
    record(Some(error.kind), error.message.clone().into_bytes());
    luanet_result::LUANET_ERR_NETWORK
}

fn record(kind: Option<ErrorKind>, mut bytes: Vec<u8>) {
    bytes.retain(|&b| b != 0);
    let text = CString::new(bytes).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
    LAST_KIND.with(|last| last.set(kind));
}

/// The kind of the last failure on this thread, when it was a request's
/// (`luanet_request_perform`); `LUANET_ERROR_NONE` otherwise.
#[no_mangle]
pub extern "C" fn luanet_last_error_kind() -> luanet_error_kind {
    guard_value(luanet_error_kind::LUANET_ERROR_NONE, || {
        LAST_KIND.with(Cell::get).map_or(luanet_error_kind::LUANET_ERROR_NONE, Into::into)
    })
}

/// The name of an error kind, as `net.request` returns it: `"resolve"`,
/// `"too_large"`, ...; `"none"` for `LUANET_ERROR_NONE`. Static: never
/// free it.
#[no_mangle]
pub extern "C" fn luanet_error_kind_name(kind: luanet_error_kind) -> *const c_char {
    guard_value(c"none".as_ptr(), || {
        let name = ErrorKind::ALL.iter().find(|k| luanet_error_kind::from(**k) == kind);
        match name {
            // Kind names are static ASCII without NUL; one C copy each.
            Some(kind) => kind_name_c(*kind).as_ptr(),
            None => c"none".as_ptr(),
        }
    })
}

/// The NUL-terminated twin of [`ErrorKind::name`].
fn kind_name_c(kind: ErrorKind) -> &'static CStr {
    static NAMES: std::sync::LazyLock<Vec<(ErrorKind, CString)>> = std::sync::LazyLock::new(|| {
        ErrorKind::ALL.iter().map(|k| (*k, CString::new(k.name()).expect("no NUL"))).collect()
    });
    NAMES.iter().find(|(k, _)| *k == kind).map(|(_, name)| name.as_c_str()).unwrap_or(c"none")
}

/// Runs `body` inside the panic boundary; `Err` carries a result already
/// recorded with [`fail`].
pub(crate) fn guard(body: impl FnOnce() -> Result<luanet_result, luanet_result>) -> luanet_result {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(result) | Err(result)) => result,
        Err(_) => fail(luanet_result::LUANET_ERR_PANIC, "luanet internal error (panic)"),
    }
}

/// Runs `body`, which cannot fail, inside the panic boundary; `fallback`
/// after a panic.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A readable message about the last call on this thread that did not
/// return `LUANET_OK`, e.g. `"connection refused (127.0.0.1:9)"`.
///
/// Borrowed: valid until the next luanet call on the same thread. Never
/// NULL (empty when nothing failed yet).
#[no_mangle]
pub extern "C" fn luanet_last_error() -> *const c_char {
    guard_value(c"".as_ptr(), || LAST_ERROR.with(|last| last.borrow().as_ptr()))
}

/// The name of a result code, e.g. `"LUANET_ERR_NETWORK"`. Static: never
/// free it.
#[no_mangle]
pub extern "C" fn luanet_result_name(result: luanet_result) -> *const c_char {
    let name: &CStr = match result {
        luanet_result::LUANET_OK => c"LUANET_OK",
        luanet_result::LUANET_EMPTY => c"LUANET_EMPTY",
        luanet_result::LUANET_TIMEOUT => c"LUANET_TIMEOUT",
        luanet_result::LUANET_CLOSED => c"LUANET_CLOSED",
        luanet_result::LUANET_ERR_ARGUMENT => c"LUANET_ERR_ARGUMENT",
        luanet_result::LUANET_ERR_NETWORK => c"LUANET_ERR_NETWORK",
        luanet_result::LUANET_ERR_PANIC => c"LUANET_ERR_PANIC",
        luanet_result::LUANET_FULL => c"LUANET_FULL",
    };
    name.as_ptr()
}

/// Borrows a NUL-terminated UTF-8 argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, luanet_result> {
    if ptr.is_null() {
        return Err(fail(luanet_result::LUANET_ERR_ARGUMENT, format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL; the caller promises NUL termination.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| fail(luanet_result::LUANET_ERR_ARGUMENT, format!("{what} is not valid UTF-8")))
}

/// Borrows `len` bytes; NULL is allowed when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes valid for the call.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], luanet_result> {
    match (ptr.is_null(), len) {
        (true, 0) => Ok(&[]),
        (true, _) => Err(fail(luanet_result::LUANET_ERR_ARGUMENT, format!("{what} is NULL"))),
        // SAFETY: the caller promises `len` readable bytes.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, len) }),
    }
}

/// Lends `bytes` to C: their address, with their count written to `*len`
/// when `len` is not NULL; NULL and 0 for `None`.
///
/// # Safety
/// `len` is NULL or writable.
pub(crate) unsafe fn bytes_out(bytes: Option<&[u8]>, len: *mut usize) -> *const u8 {
    let (ptr, n) = bytes.map_or((std::ptr::null(), 0), |b| (b.as_ptr(), b.len()));
    if !len.is_null() {
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { len.write(n) };
    }
    ptr
}

/// Checks an out-parameter before any work is done.
pub(crate) fn out_arg<T>(out: *mut *mut T) -> Result<(), luanet_result> {
    if out.is_null() {
        Err(fail(luanet_result::LUANET_ERR_ARGUMENT, "the out-parameter is NULL"))
    } else {
        Ok(())
    }
}

/// A timeout in milliseconds under the one rule of [`crate::timeout`]: 0
/// means the default, more than `MAX_MS` no limit.
pub(crate) fn timeout_arg(ms: u32) -> Option<std::time::Duration> {
    crate::timeout::from_millis(f64::from(ms)).unwrap_or(None)
}
