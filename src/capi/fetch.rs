//! Non-blocking requests for C: `luanet_fetch` and its handle, the
//! connection caps (`luanet_configure`) and the wake-up descriptor
//! (`luanet_wakeup_fd`). The rules are the core's, as for `net.fetch`.

use std::ffi::c_int;

use super::boundary::luanet_result::{
    self, LUANET_CLOSED, LUANET_EMPTY, LUANET_ERR_ARGUMENT, LUANET_ERR_NETWORK, LUANET_OK,
    LUANET_TIMEOUT,
};
use super::boundary::{fail, fail_request, guard, out_arg, timeout_arg};
use super::http::luanet_response;
use super::request::luanet_request;
use crate::http::{self, Chunk, Fetch, Finished, State};

/// A request running on the library's I/O thread (the function that
/// starts one is `luanet_fetch`). Opaque; made by `luanet_fetch`, freed (and cancelled if still running) with
/// `luanet_fetch_free`. Any thread may use it.
pub struct luanet_fetch_handle {
    fetch: Fetch,
}

/// Bytes so far, both ways; a total is -1 when it was not announced.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct luanet_progress {
    /// Body bytes received, as they came off the wire (before decoding).
    pub received: u64,
    /// The announced `Content-Length`, or -1.
    pub receive_total: i64,
    /// Body bytes sent.
    pub sent: u64,
    /// The size of the body to send, or -1.
    pub send_total: i64,
}

fn with_fetch(
    handle: *const luanet_fetch_handle,
    body: impl FnOnce(&Fetch) -> Result<luanet_result, luanet_result>,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        match unsafe { handle.as_ref() } {
            Some(handle) => body(&handle.fetch),
            None => Err(fail(LUANET_ERR_ARGUMENT, "fetch is NULL")),
        }
    })
}

/// Starts `request` on the I/O thread and returns at once: `LUANET_OK`
/// and `*out` (the caller owns it: `luanet_fetch_free`). The request is
/// copied: it may be changed or freed right after. `LUANET_ERR_ARGUMENT`
/// for NULL pointers or inconsistent options.
///
/// # Safety
/// `request` is a live request; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch(
    request: *const luanet_request,
    out: *mut *mut luanet_fetch_handle,
) -> luanet_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live request.
        let Some(request) = (unsafe { request.as_ref() }) else {
            return Err(fail(LUANET_ERR_ARGUMENT, "request is NULL"));
        };
        out_arg(out)?;
        let (options, stream) = request.for_fetch()?;
        let fetch = Fetch::start(options, stream).map_err(|e| fail_request(&e))?;
        // SAFETY: checked non-NULL by out_arg.
        unsafe { out.write(Box::into_raw(Box::new(luanet_fetch_handle { fetch }))) };
        Ok(LUANET_OK)
    })
}

/// The outcome as `luanet_request_perform` gives it: `LUANET_OK` and a new
/// `*out` each call (the caller owns it: `luanet_response_free`), or
/// `LUANET_ERR_NETWORK` with the message and kind in `luanet_last_error()`
/// and `luanet_last_error_kind()` (`LUANET_ERROR_ABORTED` once cancelled).
fn deliver(finished: Option<Finished>, out: *mut *mut luanet_response) -> luanet_result {
    let Some(finished) = finished else { return LUANET_EMPTY };
    match finished.outcome() {
        Ok(reply) => {
            let response = luanet_response::from_reply(reply.clone());
            // SAFETY: the callers checked `out` with out_arg.
            unsafe { out.write(Box::into_raw(Box::new(response))) };
            LUANET_OK
        }
        Err(e) => fail_request(e),
    }
}

/// The outcome without waiting: `LUANET_EMPTY` while the request runs;
/// then, every time, `LUANET_OK` and a response, or `LUANET_ERR_NETWORK`.
/// While pending it makes no system call and takes no lock: meant to be
/// called every frame.
///
/// # Safety
/// `fetch` is a live handle; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch_poll(
    fetch: *const luanet_fetch_handle,
    out: *mut *mut luanet_response,
) -> luanet_result {
    with_fetch(fetch, |fetch| {
        out_arg(out)?;
        Ok(deliver(fetch.finished(), out))
    })
}

/// As `luanet_fetch_poll`, waiting at most `timeout_ms` (0: no limit):
/// `LUANET_TIMEOUT` when it is still running then.
///
/// # Safety
/// `fetch` is a live handle; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch_wait(
    fetch: *const luanet_fetch_handle,
    timeout_ms: u32,
    out: *mut *mut luanet_response,
) -> luanet_result {
    with_fetch(fetch, |fetch| {
        out_arg(out)?;
        fetch.wait(timeout_arg(timeout_ms));
        Ok(match deliver(fetch.finished(), out) {
            LUANET_EMPTY => LUANET_TIMEOUT,
            result => result,
        })
    })
}

/// Stops the request unless it has finished; its outcome is then
/// `LUANET_ERR_NETWORK` with kind `LUANET_ERROR_ABORTED` ("cancelled").
///
/// # Safety
/// `fetch` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch_cancel(fetch: *const luanet_fetch_handle) -> luanet_result {
    with_fetch(fetch, |fetch| {
        fetch.cancel();
        Ok(LUANET_OK)
    })
}

/// Writes the byte counts so far to `*out`.
///
/// # Safety
/// `fetch` is a live handle; `out` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch_progress(
    fetch: *const luanet_fetch_handle,
    out: *mut luanet_progress,
) -> luanet_result {
    with_fetch(fetch, |fetch| {
        if out.is_null() {
            return Err(fail(LUANET_ERR_ARGUMENT, "the out-parameter is NULL"));
        }
        let p = fetch.progress();
        let total = |t: Option<u64>| t.map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX));
        let progress = luanet_progress {
            received: p.received,
            receive_total: total(p.receive_total),
            sent: p.sent,
            send_total: total(p.send_total),
        };
        // SAFETY: checked non-NULL above.
        unsafe { out.write(progress) };
        Ok(LUANET_OK)
    })
}

/// For a request made with `luanet_request_set_stream(request, true)`:
/// copies up to `capacity` body bytes received since the last read into
/// `buffer` and writes the count to `*len`. `LUANET_OK` when bytes were
/// copied (what did not fit waits for the next read); `LUANET_EMPTY` when
/// nothing new arrived; `LUANET_CLOSED` once the body has ended or the
/// request failed (`luanet_fetch_poll` tells which). `LUANET_ERR_ARGUMENT`
/// for a request that does not stream, NULL pointers or a capacity of 0.
/// A transfer whose host does not read pauses once 1 MiB waits.
///
/// # Safety
/// `fetch` is a live handle; `buffer` has `capacity` writable bytes; `len`
/// points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch_read(
    fetch: *const luanet_fetch_handle,
    buffer: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> luanet_result {
    with_fetch(fetch, |fetch| {
        if len.is_null() || buffer.is_null() {
            return Err(fail(LUANET_ERR_ARGUMENT, "buffer or len is NULL"));
        }
        if capacity == 0 {
            return Err(fail(LUANET_ERR_ARGUMENT, "capacity is 0"));
        }
        // SAFETY: the caller's promise.
        let buf = unsafe { std::slice::from_raw_parts_mut(buffer, capacity) };
        let chunk = fetch.read_into(buf).ok_or_else(|| {
            fail(LUANET_ERR_ARGUMENT, "the request was not made with luanet_request_set_stream")
        })?;
        let (result, n) = match chunk {
            Chunk::Bytes(n) => (LUANET_OK, n),
            Chunk::Empty => (LUANET_EMPTY, 0),
            Chunk::End => (LUANET_CLOSED, 0),
        };
        // SAFETY: checked non-NULL above.
        unsafe { len.write(n) };
        Ok(result)
    })
}

/// Where the request stands: 0 pending, 1 done (a response arrived), 2
/// failed, 3 cancelled; -1 for NULL.
///
/// # Safety
/// `fetch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch_state(fetch: *const luanet_fetch_handle) -> c_int {
    super::boundary::guard_value(-1, || {
        // SAFETY: the caller passes NULL or a live handle.
        match unsafe { fetch.as_ref() }.map(|f| f.fetch.state()) {
            None => -1,
            Some(State::Pending) => 0,
            Some(State::Done) => 1,
            Some(State::Failed) => 2,
            Some(State::Cancelled) => 3,
        }
    })
}

/// Cancels the request if it still runs and frees the handle; NULL is
/// ignored. Responses taken from it stay valid.
///
/// # Safety
/// `fetch` is NULL or a live handle, not used again.
#[no_mangle]
pub unsafe extern "C" fn luanet_fetch_free(fetch: *mut luanet_fetch_handle) {
    super::boundary::guard_value((), || {
        if !fetch.is_null() {
            // SAFETY: made by `luanet_fetch`, freed once.
            drop(unsafe { Box::from_raw(fetch) });
        }
    })
}

/// Caps the connections of requests started after the call, process-wide:
/// per host (scheme, host and port) and in total. 0 keeps a cap as it is.
/// Defaults: 6 per host, 256 in total. `LUANET_ERR_ARGUMENT` past 1,048,576.
#[no_mangle]
pub extern "C" fn luanet_configure(
    max_host_connections: usize,
    max_total_connections: usize,
) -> luanet_result {
    guard(|| {
        let keep = |n: usize| (n > 0).then_some(n);
        http::configure(keep(max_host_connections), keep(max_total_connections))
            .map(|_| LUANET_OK)
            .map_err(|e| fail(LUANET_ERR_ARGUMENT, e))
    })
}

/// A descriptor that becomes readable when any request or WebSocket has
/// news (a request finished, streamed bytes arrived, a message or a close
/// came), and stays readable until the host reads it (8 bytes); the host
/// then polls its handles. The same descriptor every call (a forked child
/// gets its own), owned by the library: never close it. -1 when it cannot be made
/// (`luanet_last_error()` says why).
#[no_mangle]
pub extern "C" fn luanet_wakeup_fd() -> c_int {
    super::boundary::guard_value(-1, || match crate::wakeup::fd() {
        Ok(fd) => fd,
        Err(e) => {
            fail(LUANET_ERR_NETWORK, format!("cannot make the wake-up descriptor: {e}"));
            -1
        }
    })
}
