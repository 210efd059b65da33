//! `net.fetch{...}` and the `net_request` object it returns: a userdata
//! that owns one [`Fetch`], polled by the script; `net.configure{...}`.
//!
//! Nothing calls into Lua from the I/O thread: the script pulls outcomes.
//! As for `net_ws`, every method checks `self` and its arguments before it
//! borrows the request, and a collected request answers as cancelled.

use std::ffi::{c_int, CStr};
use std::time::Duration;

use super::args::{self, Callee};
use super::boundary::{lua_function, Failure, Kind, Lua, Tagged, REQUEST_METATABLE};
use super::request::{option_key, push_outcome, read_options, unknown_option};
use crate::http::{self, Chunk, Fetch, State};

/// The registry name of the metatable, and what `getmetatable(req)` gives.
pub(crate) const METATABLE: &CStr = c"net_request";

/// Marks a `net_request` userdata (see `ws.rs`).
const MAGIC: u64 = u64::from_be_bytes(*b"luanetrq");

#[repr(C)]
struct Userdata {
    magic: u64,
    /// `None` once `__gc` has run.
    fetch: Option<Fetch>,
}

// SAFETY: `#[repr(C)]` with the tag first; only `fetch` makes one.
unsafe impl Tagged for Userdata {
    const TAG: u64 = MAGIC;
}

lua_function!(
    /// `req = net.fetch(options)`
    net_fetch => fetch
);
lua_function!(
    /// `limits = net.configure{ max_host_connections = N, max_total_connections = M }`
    net_configure => configure
);
lua_function!(poll_method => poll);
lua_function!(wait_method => wait);
lua_function!(cancel_method => cancel);
lua_function!(progress_method => progress);
lua_function!(state_method => state);
lua_function!(read_method => read);
lua_function!(gc_metamethod => gc);
lua_function!(tostring_metamethod => tostring);

/// Methods of `net_request`, reached through `__index`.
pub(crate) const METHODS: &[(&CStr, super::boundary::lua_CFunction)] = &[
    (c"poll", poll_method),
    (c"wait", wait_method),
    (c"cancel", cancel_method),
    (c"progress", progress_method),
    (c"state", state_method),
    (c"read", read_method),
];

/// Metamethods of `net_request` other than `__index`.
pub(crate) const METAMETHODS: &[(&CStr, super::boundary::lua_CFunction)] =
    &[(c"__gc", gc_metamethod), (c"__tostring", tostring_metamethod)];

const FETCH: &str = "net.fetch";

fn fetch(lua: &mut Lua) -> Result<c_int, Failure> {
    if lua.kind(1) != Kind::Table {
        return Err(Callee::function(FETCH).type_error(lua, 1, "table"));
    }
    lua.reserve(8)?;
    let (options, stream) = read_options(lua, 1, FETCH, true)?;
    // The userdata first: a memory error then leaves no request running.
    lua.push_copy(REQUEST_METATABLE);
    lua.protected(1, 1, |raw| {
        let userdata = raw.new_userdata(size_of::<Userdata>()).cast::<Userdata>();
        // SAFETY: fresh memory of the right size, aligned for any type.
        unsafe { userdata.write(Userdata { magic: MAGIC, fetch: None }) };
        raw.push_copy(1);
        raw.set_metatable(-2);
        1
    })?;
    let Some(userdata) = userdata_at(lua, -1) else {
        return Err(Failure::Message(format!("{FETCH}: the net_request metatable was changed")));
    };
    match Fetch::start(options, stream) {
        Ok(fetch) => userdata.fetch = Some(fetch),
        // Only when the I/O thread cannot start: a failure of the system,
        // raised like a memory error.
        Err(e) => return Err(Failure::Message(format!("{FETCH}: {}", e.message))),
    }
    Ok(1)
}

/// The `net_request` userdata at `index`, if that is one.
#[allow(clippy::mut_from_ref)] // Lua owns it; see `this` for the borrow rule.
fn userdata_at(lua: &Lua, index: c_int) -> Option<&mut Userdata> {
    lua.tagged(index, REQUEST_METATABLE)
}

/// The request behind `self`: `None` once collected. The borrow lasts
/// until the next call that can run Lua code.
fn this<'l>(lua: &'l Lua, callee: &Callee) -> Result<Option<&'l Fetch>, Failure> {
    match userdata_at(lua, 1) {
        Some(userdata) => Ok(userdata.fetch.as_ref()),
        None => Err(callee.type_error(lua, 1, "net_request")),
    }
}

/// What a collected request answers.
fn push_collected(lua: &mut Lua) -> Result<c_int, Failure> {
    push_outcome(lua, &Err(http::RequestError::new(http::ErrorKind::Aborted, "cancelled")))
}

/// `nil` while pending; then what `net.request` returns, every time.
fn poll(lua: &mut Lua) -> Result<c_int, Failure> {
    let Some(fetch) = this(lua, &Callee::method("poll"))? else { return push_collected(lua) };
    if fetch.poll().is_none() {
        lua.push_nil();
        return Ok(1);
    }
    // Its own handle on the outcome: building the table may run a
    // finalizer that collects `self` by hand.
    let finished = fetch.finished().expect("finished above");
    push_outcome(lua, finished.outcome())
}

/// As `poll`, waiting at most `timeout_ms` (none: as long as it takes;
/// 0: not at all); `nil, nil` when the time ran out.
fn wait(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("wait");
    this(lua, NAME)?;
    let timeout = match lua.number(2) {
        Some(ms) if ms == 0.0 && lua.kind(2) == Kind::Number => Some(Duration::ZERO),
        _ => args::timeout(lua, 2, NAME)?,
    };
    let Some(fetch) = this(lua, NAME)? else { return push_collected(lua) };
    if fetch.wait(timeout).is_none() {
        lua.push_nil();
        lua.push_nil();
        return Ok(2);
    }
    let finished = fetch.finished().expect("finished above");
    push_outcome(lua, finished.outcome())
}

fn cancel(lua: &mut Lua) -> Result<c_int, Failure> {
    if let Some(fetch) = this(lua, &Callee::method("cancel"))? {
        fetch.cancel();
    }
    Ok(0)
}

/// `received, total_or_nil, sent, total_or_nil`, in bytes.
fn progress(lua: &mut Lua) -> Result<c_int, Failure> {
    let progress = this(lua, &Callee::method("progress"))?.map(Fetch::progress).unwrap_or_default();
    lua.reserve(4)?;
    lua.protected(0, 4, |raw| {
        for (count, total) in
            [(progress.received, progress.receive_total), (progress.sent, progress.send_total)]
        {
            raw.push_integer(i64::try_from(count).unwrap_or(i64::MAX));
            match total {
                Some(total) => raw.push_integer(i64::try_from(total).unwrap_or(i64::MAX)),
                None => raw.push_nil(),
            }
        }
        4
    })?;
    Ok(4)
}

fn state_of(lua: &Lua, callee: &Callee) -> Result<State, Failure> {
    Ok(this(lua, callee)?.map_or(State::Cancelled, Fetch::state))
}

fn state(lua: &mut Lua) -> Result<c_int, Failure> {
    let state = state_of(lua, &Callee::method("state"))?;
    lua.push_bytes(state.name().as_bytes())?;
    Ok(1)
}

/// With `stream = true`: the body bytes since the last read, `""` when
/// nothing new, `nil` once the body has ended (or the request failed).
fn read(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("read");
    let Some(fetch) = this(lua, NAME)? else {
        lua.push_nil();
        return Ok(1);
    };
    match fetch.read() {
        None => {
            Err(Failure::Message("read: the request was not started with stream = true".to_owned()))
        }
        Some(Chunk::Bytes(bytes)) => {
            lua.push_bytes(&bytes)?;
            Ok(1)
        }
        Some(Chunk::Empty) => {
            lua.push_bytes(b"")?;
            Ok(1)
        }
        Some(Chunk::End) => {
            lua.push_nil();
            Ok(1)
        }
    }
}

fn gc(lua: &mut Lua) -> Result<c_int, Failure> {
    if let Some(userdata) = userdata_at(lua, 1) {
        // Dropping cancels; taking makes a second __gc harmless.
        drop(userdata.fetch.take());
    }
    Ok(0)
}

/// `request(pending)`, `request(done)` and so on.
fn tostring(lua: &mut Lua) -> Result<c_int, Failure> {
    let state = state_of(lua, &Callee::method("__tostring"))?;
    lua.push_bytes(format!("request({})", state.name()).as_bytes())?;
    Ok(1)
}

/// The caps as a table, after setting those given.
fn configure(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &str = "net.configure";
    const KEYS: [&str; 2] = ["max_host_connections", "max_total_connections"];
    let mut values = [None, None];
    match lua.kind(1) {
        Kind::Table => {
            lua.reserve(4)?;
            lua.push_nil();
            while lua.next(1) {
                let key = option_key(lua, NAME)?;
                let Some(slot) = KEYS.iter().position(|name| name.as_bytes() == key) else {
                    return Err(unknown_option(NAME, key));
                };
                let n = lua.number(-1).filter(|_| lua.kind(-1) == Kind::Number);
                let Some(n) = n.filter(|n| n.fract() == 0.0 && *n >= 1.0) else {
                    return Err(Failure::Message(format!(
                        "bad option '{}' to '{NAME}' (a whole number of at least 1 expected)",
                        KEYS[slot]
                    )));
                };
                values[slot] = Some(n.min(usize::MAX as f64) as usize);
                lua.pop(1);
            }
        }
        _ if lua.is_none_or_nil(1) => {}
        _ => return Err(Callee::function(NAME).type_error(lua, 1, "table")),
    }
    let limits = http::configure(values[0], values[1])
        .map_err(|problem| Failure::Message(format!("bad options to '{NAME}' ({problem})")))?;
    lua.protected(0, 1, |raw| {
        raw.create_table(0, 2);
        raw.push_integer(limits.max_host_connections as i64);
        raw.set_field(-2, c"max_host_connections");
        raw.push_integer(limits.max_total_connections as i64);
        raw.set_field(-2, c"max_total_connections");
        1
    })?;
    Ok(1)
}
