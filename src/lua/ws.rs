//! `ws_connect` and the `net_ws` object: a userdata that owns one
//! [`Socket`], with the contract's methods and `__gc` / `__tostring`.
//!
//! Every method first checks `self` and converts its arguments (which may
//! run Lua code: a collection, finalizers), and only then borrows the
//! socket, so nothing a script does in between can free it under the
//! borrow. A collected socket (reached again through a finalizer) answers
//! as a closed one.

use std::ffi::{c_int, CStr};

use super::args::{self, Callee, Text};
use super::boundary::{lua_function, Failure, Kind, Lua, Tagged, WS_METATABLE};
use super::request::{
    bad, flag, milliseconds, number, option_key, path, proxy, push_outcome, read_headers,
    unknown_option, wrong_type, Opt,
};
use crate::http::{self, Reply};
use crate::ws::{CloseInfo, ClosedBy, ConnectOptions, Outgoing, Polled, Socket, CLOSED};

/// The registry name of the metatable, as the contract names it; also
/// what `getmetatable(ws)` returns (`__metatable`).
pub(crate) const METATABLE: &CStr = c"net_ws";

/// Marks a `net_ws` userdata, so that another userdata given our metatable
/// (through `debug.setmetatable`) is not taken for one.
const MAGIC: u64 = u64::from_be_bytes(*b"luanetws");

/// What the userdata holds; `socket` is `None` once `__gc` has run.
#[repr(C)]
struct Userdata {
    magic: u64,
    socket: Option<Socket>,
}

// SAFETY: `#[repr(C)]` with the tag first; only `connect` makes one.
unsafe impl Tagged for Userdata {
    const TAG: u64 = MAGIC;
}

lua_function!(
    /// `ws = ws_connect(url, timeout_ms?)` or `nil, message`
    ws_connect => connect
);
lua_function!(send_text_method => send_text);
lua_function!(send_binary_method => send_binary);
lua_function!(send_json_method => send_json);
lua_function!(recv_method => recv);
lua_function!(poll_method => poll);
lua_function!(is_open_method => is_open);
lua_function!(close_method => close);
lua_function!(error_method => error);
lua_function!(close_info_method => close_info);
lua_function!(ping_method => ping);
lua_function!(latency_method => latency);
lua_function!(protocol_method => protocol);
lua_function!(buffered_amount_method => buffered_amount);
lua_function!(gc_metamethod => gc);
lua_function!(tostring_metamethod => tostring);

/// Methods of `net_ws`, reached through `__index`.
pub(crate) const METHODS: &[(&CStr, super::boundary::lua_CFunction)] = &[
    (c"send_text", send_text_method),
    (c"send_binary", send_binary_method),
    (c"send_json", send_json_method),
    (c"recv", recv_method),
    (c"poll", poll_method),
    (c"is_open", is_open_method),
    (c"close", close_method),
    (c"error", error_method),
    (c"close_info", close_info_method),
    (c"ping", ping_method),
    (c"latency", latency_method),
    (c"protocol", protocol_method),
    (c"buffered_amount", buffered_amount_method),
];

/// Metamethods of `net_ws` other than `__index`.
pub(crate) const METAMETHODS: &[(&CStr, super::boundary::lua_CFunction)] =
    &[(c"__gc", gc_metamethod), (c"__tostring", tostring_metamethod)];

fn connect(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::function("ws_connect");
    let url = args::utf8(lua, 1, NAME)?;
    let options = match lua.kind(2) {
        Kind::Table => read_connect_options(lua, 2)?,
        _ => ConnectOptions { timeout: args::timeout(lua, 2, NAME)?, ..ConnectOptions::default() },
    };
    let socket = match Socket::connect_with(url.str(lua), &options) {
        Ok(socket) => socket,
        Err(e) => {
            lua.push_nil();
            lua.push_bytes(e.message.as_bytes())?;
            let Some(refusal) = e.refusal else { return Ok(2) };
            // The server's answer, as `net.request` gives one.
            let reply = Reply {
                status: u32::from(refusal.status),
                headers: refusal.headers,
                body: refusal.body,
                url: url.str(lua).to_owned(),
                ..Reply::default()
            };
            push_outcome(lua, &Ok(reply))?;
            return Ok(3);
        }
    };
    // The userdata starts empty: if making it fails, `socket` is dropped
    // here (which closes it) and the memory error goes on.
    lua.push_copy(WS_METATABLE);
    lua.protected(1, 1, |raw| {
        let userdata = raw.new_userdata(size_of::<Userdata>()).cast::<Userdata>();
        // SAFETY: fresh memory of the right size, aligned for any type.
        unsafe { userdata.write(Userdata { magic: MAGIC, socket: None }) };
        raw.push_copy(1);
        raw.set_metatable(-2);
        1
    })?;
    match userdata_at(lua, -1) {
        Some(userdata) => userdata.socket = Some(socket),
        None => {
            return Err(Failure::Message("ws_connect: the net_ws metatable was changed".into()))
        }
    }
    Ok(1)
}

/// `ws_connect`'s option table (at `table`). Read raw, as `net.request`
/// reads its table; `proxy`, `verify` and `ca_file` as it reads them.
fn read_connect_options(lua: &mut Lua, table: c_int) -> Result<ConnectOptions, Failure> {
    const FUNCTION: &str = "ws_connect";
    lua.reserve(8)?;
    let mut options = ConnectOptions::default();
    let limits = &mut options.limits;
    lua.push_nil();
    while lua.next(table) {
        let name = option_key(lua, FUNCTION)?;
        let Some(&name) = CONNECT_KEYS.iter().find(|k| k.as_bytes() == name) else {
            return Err(unknown_option(FUNCTION, name));
        };
        let key = Opt::new(FUNCTION, name);
        match name {
            "timeout_ms" => options.timeout = milliseconds(lua, key)?,
            "headers" => {
                options.upgrade.headers = read_headers(lua, key)?;
                for (name, _) in &options.upgrade.headers {
                    crate::ws::check_upgrade_header(name).map_err(|e| bad(key, e))?;
                }
            }
            "protocols" => options.upgrade.protocols = read_protocols(lua, key)?,
            "ping_interval_ms" => {
                limits.ping_interval =
                    crate::ws::ping_interval(number(lua, key)?).map_err(|e| bad(key, e))?
            }
            "pong_timeout_ms" => {
                limits.pong_timeout =
                    crate::ws::pong_timeout(number(lua, key)?).map_err(|e| bad(key, e))?
            }
            "max_message_bytes" => limits.max_message_bytes = byte_bound(lua, key)?,
            "max_queued_bytes" => limits.max_queued_bytes = byte_bound(lua, key)?,
            "max_send_buffer_bytes" => limits.max_send_buffer_bytes = byte_bound(lua, key)?,
            "proxy" => options.proxy = proxy(lua, key)?,
            "verify" => options.verify = flag(lua, key)?,
            "ca_file" => options.ca_file = Some(path(lua, key)?),
            _ => unreachable!("every key in CONNECT_KEYS is handled"),
        }
        lua.pop(1);
    }
    Ok(options)
}

/// The keys of `ws_connect`'s option table.
const CONNECT_KEYS: &[&str] = &[
    "timeout_ms",
    "headers",
    "protocols",
    "ping_interval_ms",
    "pong_timeout_ms",
    "max_message_bytes",
    "max_queued_bytes",
    "max_send_buffer_bytes",
    "proxy",
    "verify",
    "ca_file",
];

/// A byte bound on top, under the core's rule.
fn byte_bound(lua: &Lua, key: Opt) -> Result<usize, Failure> {
    let n = number(lua, key)?;
    // Anything not a whole number in range becomes 0, which the rule refuses.
    let whole = n.fract() == 0.0 && n >= 1.0 && n < 2f64.powi(63);
    crate::ws::byte_bound(if whole { n as u64 } else { 0 }).map_err(|e| bad(key, e))
}

/// `protocols`: an array of subprotocol names, in order of preference.
fn read_protocols(lua: &Lua, key: Opt) -> Result<Vec<String>, Failure> {
    if lua.kind(-1) != Kind::Table {
        return Err(wrong_type(lua, key, "table"));
    }
    let list = lua.absolute(-1);
    let mut protocols = Vec::new();
    for i in 1.. {
        lua.push_raw_index(list, i);
        match lua.kind(-1) {
            Kind::Nil => {
                lua.pop(1);
                break;
            }
            Kind::String => {
                let name = http::check_subprotocol(lua.string(-1).unwrap_or_default())
                    .map_err(|e| bad(key, e))?;
                if protocols.contains(&name) {
                    return Err(bad(key, format!("'{name}' is offered twice")));
                }
                protocols.push(name);
            }
            other => {
                return Err(bad(key, format!("entry {i}: string expected, got {}", other.name())))
            }
        }
        lua.pop(1);
    }
    Ok(protocols)
}

/// The subprotocol the server chose, or `nil`.
fn protocol(lua: &mut Lua) -> Result<c_int, Failure> {
    match this(lua, &Callee::method("protocol"))?.and_then(Socket::protocol) {
        Some(name) => {
            let name = name.to_owned();
            lua.push_bytes(name.as_bytes())?
        }
        None => lua.push_nil(),
    }
    Ok(1)
}

/// The `net_ws` userdata at `index`, if that is one.
#[allow(clippy::mut_from_ref)] // Lua owns it; see `this` for the borrow rule.
fn userdata_at(lua: &Lua, index: c_int) -> Option<&mut Userdata> {
    lua.tagged(index, WS_METATABLE)
}

/// The socket behind `self` (stack index 1): `None` once collected. The
/// borrow lasts until the next call that can run Lua code, which needs
/// `&mut Lua`.
fn this<'l>(lua: &'l Lua, callee: &Callee) -> Result<Option<&'l Socket>, Failure> {
    match userdata_at(lua, 1) {
        Some(userdata) => Ok(userdata.socket.as_ref()),
        None => Err(callee.type_error(lua, 1, "net_ws")),
    }
}

/// `true`, or `false, message`.
fn push_sent(lua: &mut Lua, sent: Result<(), String>) -> Result<c_int, Failure> {
    match sent {
        Ok(()) => {
            lua.push_boolean(true);
            Ok(1)
        }
        Err(message) => {
            lua.push_boolean(false);
            lua.push_bytes(message.as_bytes())?;
            Ok(2)
        }
    }
}

fn text(bytes: &[u8]) -> Result<Outgoing, String> {
    std::str::from_utf8(bytes)
        .map(|s| Outgoing::Text(s.to_owned()))
        .map_err(|_| "text message is not valid UTF-8 (use send_binary for bytes)".to_owned())
}

/// Sends what `make` builds from the string at `slot`, unless the socket
/// was collected.
fn send_from(
    lua: &mut Lua,
    callee: &Callee,
    slot: Text,
    make: fn(&[u8]) -> Result<Outgoing, String>,
) -> Result<c_int, Failure> {
    let sent = match this(lua, callee)? {
        Some(socket) => {
            make(slot.bytes(lua)).and_then(|message| socket.send(message).map_err(|e| e.message))
        }
        None => Err(CLOSED.to_owned()),
    };
    push_sent(lua, sent)
}

fn send_text(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("send_text");
    this(lua, NAME)?;
    let message = args::string(lua, 2, NAME)?;
    send_from(lua, NAME, message, text)
}

fn send_binary(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("send_binary");
    this(lua, NAME)?;
    let data = args::string(lua, 2, NAME)?;
    send_from(lua, NAME, data, |data| Ok(Outgoing::Binary(data.to_vec())))
}

/// A string goes as is; a table goes through the global `json_encode`,
/// whose absence or failure raises, as the contract says. The encoder runs
/// before the socket is looked at: it may close, collect or use it.
fn send_json(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("send_json");
    this(lua, NAME)?;
    let encoded = match lua.kind(2) {
        Kind::String => args::string(lua, 2, NAME)?,
        Kind::Table => call_json_encode(lua)?,
        _ => return Err(NAME.type_error(lua, 2, "string or table")),
    };
    send_from(lua, NAME, encoded, text)
}

/// Calls the global `json_encode` on argument 2 and leaves its string on
/// the stack for the rest of the call.
fn call_json_encode(lua: &mut Lua) -> Result<Text, Failure> {
    lua.protected(0, 1, |raw| {
        raw.get_global(c"json_encode");
        1
    })?;
    if lua.kind(-1) != Kind::Function {
        let got = lua.kind(-1).name();
        return Err(Failure::Message(format!(
            "send_json: the global 'json_encode' is not a function (got {got})"
        )));
    }
    lua.push_copy(2);
    let called = lua.protected(2, 1, |raw| {
        raw.call(1, 1);
        1
    });
    if called.is_err() {
        let reason = lua.display(-1);
        return Err(Failure::Message(format!("send_json: json_encode failed: {reason}")));
    }
    if lua.kind(-1) != Kind::String {
        let got = lua.kind(-1).name();
        return Err(Failure::Message(format!(
            "send_json: json_encode returned {got}, expected a string"
        )));
    }
    Ok(Text::at(lua.top()))
}

/// `msg, is_text`; `nil, nil` when nothing came (yet); `nil, false` when
/// closed and drained.
fn push_polled(lua: &mut Lua, polled: Polled) -> Result<c_int, Failure> {
    match polled {
        Polled::Message(data, is_text) => {
            let data = &data[..];
            lua.protected(0, 2, |raw| {
                raw.push_bytes(data);
                raw.push_boolean(is_text);
                2
            })?;
        }
        Polled::Empty => {
            lua.push_nil();
            lua.push_nil();
        }
        Polled::Closed => {
            lua.push_nil();
            lua.push_boolean(false);
        }
    }
    Ok(2)
}

fn recv(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("recv");
    this(lua, NAME)?;
    let timeout = args::timeout(lua, 2, NAME)?;
    let polled = this(lua, NAME)?.map_or(Polled::Closed, |socket| socket.recv(timeout));
    push_polled(lua, polled)
}

fn poll(lua: &mut Lua) -> Result<c_int, Failure> {
    let polled = this(lua, &Callee::method("poll"))?.map_or(Polled::Closed, Socket::poll);
    push_polled(lua, polled)
}

fn is_open(lua: &mut Lua) -> Result<c_int, Failure> {
    let open = this(lua, &Callee::method("is_open"))?.is_some_and(Socket::is_open);
    lua.push_boolean(open);
    Ok(1)
}

fn error(lua: &mut Lua) -> Result<c_int, Failure> {
    match this(lua, &Callee::method("error"))?.and_then(Socket::close_error) {
        Some(message) => lua.push_bytes(message.as_bytes())?,
        None => lua.push_nil(),
    }
    Ok(1)
}

fn close(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("close");
    this(lua, NAME)?;
    let code = args::close_code(lua, 2, NAME)?;
    let reason = args::close_reason(lua, 3, NAME)?;
    if let Some(socket) = this(lua, NAME)? {
        socket.close(code, &reason);
    }
    Ok(0)
}

/// `true`, or `false, message` once closed. The payload (default empty) is
/// at most 125 bytes.
fn ping(lua: &mut Lua) -> Result<c_int, Failure> {
    const NAME: &Callee = &Callee::method("ping");
    this(lua, NAME)?;
    let payload: &[u8] = match lua.is_none_or_nil(2) {
        true => b"",
        false => args::string(lua, 2, NAME)?.bytes(lua),
    };
    let payload = crate::ws::sendable_ping_payload(payload)
        .map_err(|rule| NAME.bad_argument(2, rule))?
        .to_vec();
    let sent = match this(lua, NAME)? {
        Some(socket) => socket.ping(&payload).map_err(|e| e.message),
        None => Err(CLOSED.to_owned()),
    };
    push_sent(lua, sent)
}

/// Bytes that `send_*` and `ping` accepted and the socket has not taken
/// yet, as in the browser API; 0 once closed.
fn buffered_amount(lua: &mut Lua) -> Result<c_int, Failure> {
    let bytes = this(lua, &Callee::method("buffered_amount"))?.map_or(0, Socket::buffered_amount);
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    lua.protected(0, 1, |raw| {
        raw.push_integer(bytes);
        1
    })?;
    Ok(1)
}

/// The round trip of the last answered ping in ms, or `nil` before any.
fn latency(lua: &mut Lua) -> Result<c_int, Failure> {
    match this(lua, &Callee::method("latency"))?.and_then(Socket::latency) {
        Some(round_trip) => {
            let ms = round_trip.as_secs_f64() * 1000.0;
            lua.protected(0, 1, |raw| {
                raw.push_number(ms);
                1
            })?;
        }
        None => lua.push_nil(),
    }
    Ok(1)
}

/// `code, reason, by` once closed; `nil` while open or closing. A
/// collected socket reads as dropped (1006, by "error").
fn close_info(lua: &mut Lua) -> Result<c_int, Failure> {
    const DROPPED: CloseInfo = CloseInfo { code: 1006, reason: String::new(), by: ClosedBy::Error };
    let info = match this(lua, &Callee::method("close_info"))? {
        Some(socket) => socket.close_info().cloned(),
        None => Some(DROPPED),
    };
    let Some(info) = info else {
        lua.push_nil();
        return Ok(1);
    };
    let (reason, by) = (info.reason.as_bytes(), info.by.name().as_bytes());
    lua.protected(0, 3, |raw| {
        raw.push_integer(i64::from(info.code));
        raw.push_bytes(reason);
        raw.push_bytes(by);
        3
    })?;
    Ok(3)
}

fn gc(lua: &mut Lua) -> Result<c_int, Failure> {
    if let Some(userdata) = userdata_at(lua, 1) {
        // Taking the socket makes a second __gc (after resurrection, or
        // called by hand) harmless; dropping starts the close.
        drop(userdata.socket.take());
    }
    Ok(0)
}

/// `websocket(open)` or `websocket(closed)`; a collected socket is closed.
fn tostring(lua: &mut Lua) -> Result<c_int, Failure> {
    let open = this(lua, &Callee::method("__tostring"))?.is_some_and(Socket::is_open);
    let text: &[u8] = if open { b"websocket(open)" } else { b"websocket(closed)" };
    lua.push_bytes(text)?;
    Ok(1)
}
