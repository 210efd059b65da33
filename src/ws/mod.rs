//! The WebSocket engine, on tungstenite: connect (on the caller's thread),
//! then one shared I/O thread moves frames for every socket.
//!
//! Threads never touch Lua: the I/O thread fills an [`Inbox`] per socket,
//! and the script's thread takes complete messages out of it. A script that
//! polls often reads its socket itself, on its own thread (see
//! `engine::read_inline`): no hand-off between threads per message.

mod connect;
pub(crate) mod engine;
mod error;
mod handshake;
mod inbox;
mod options;

use std::sync::Arc;
use std::time::Duration;

pub use connect::OpenError as ConnectError;
pub(crate) use engine::hold_for_fork;
pub use handshake::{check_upgrade_header, Refusal, Upgrade};
pub use inbox::{Inbox, Polled};
pub use options::{
    byte_bound, ping_interval, pong_timeout, ConnectOptions, Limits, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_SEND_BUFFER_BYTES, DEFAULT_PING_INTERVAL,
    DEFAULT_PONG_TIMEOUT, MAX_BOUND,
};
/// Messages up to this size are copied out of tungstenite's read buffer
/// wherever they may be kept: a kept view would keep the whole buffer.
pub const DETACH_LIMIT: usize = 64 << 10;
/// How long closing waits for the peer to answer the close frame.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// What sending on a closed socket says, whoever asks.
pub const CLOSED: &str = "the WebSocket is closed";
/// What sending says when the output waiting for the socket is at
/// `max_send_buffer_bytes`: nothing of the message was sent.
pub const SEND_BUFFER_FULL: &str = "send buffer full";
/// Why a socket inherited through `fork()` reads as closed.
pub const INHERITED: &str =
    "the WebSocket was opened before fork(): it belongs to the parent process";

/// The close codes a client may send (RFC 6455 section 7.4): 1000-1003,
/// 1007-1014 and 3000-4999. Anything else, 1004-1006 and 1015 included,
/// is refused; nothing wraps (66536 is not 1000).
pub fn sendable_close_code(code: i64) -> Result<u16, &'static str> {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(code as u16),
        _ => Err("close code must be 1000-1003, 1007-1014 or 3000-4999"),
    }
}

/// The longest close reason (RFC 6455 section 5.5: a control frame's
/// payload is at most 125 bytes, two of them the code).
pub const MAX_CLOSE_REASON: usize = 123;

/// A close reason a client may send: UTF-8, at most [`MAX_CLOSE_REASON`]
/// bytes.
pub fn sendable_close_reason(reason: &[u8]) -> Result<&str, &'static str> {
    let text = std::str::from_utf8(reason).map_err(|_| "close reason must be UTF-8")?;
    match text.len() <= MAX_CLOSE_REASON {
        true => Ok(text),
        false => Err("close reason must be at most 123 bytes"),
    }
}

/// The longest ping payload (RFC 6455 section 5.5: a control frame's
/// payload is at most 125 bytes).
pub const MAX_PING_PAYLOAD: usize = 125;

/// A ping payload a client may send.
pub fn sendable_ping_payload(payload: &[u8]) -> Result<&[u8], &'static str> {
    match payload.len() <= MAX_PING_PAYLOAD {
        true => Ok(payload),
        false => Err("ping payload must be at most 125 bytes"),
    }
}

/// Why a message (or ping) was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// The socket is closed, closing or failed.
    Closed,
    /// The output waiting for the socket is at `max_send_buffer_bytes`:
    /// nothing of the message was sent, and the socket stays open.
    Full,
}

/// A refused send: its kind and what to tell the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Closed or full.
    pub kind: SendErrorKind,
    /// [`CLOSED`], [`SEND_BUFFER_FULL`], or why the connection failed.
    pub message: String,
}

impl SendError {
    /// The socket is closed, for `message`'s reason.
    pub fn closed(message: impl Into<String>) -> SendError {
        SendError { kind: SendErrorKind::Closed, message: message.into() }
    }
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The peer sent the first close frame.
    Peer,
    /// This side did (`close`, or the socket was collected).
    Local,
    /// The library failed the connection, or it dropped.
    Error,
}

impl ClosedBy {
    /// `"peer"`, `"local"` or `"error"`.
    pub fn name(self) -> &'static str {
        match self {
            ClosedBy::Peer => "peer",
            ClosedBy::Local => "local",
            ClosedBy::Error => "error",
        }
    }
}

/// How a connection ended: the close code and reason of the first close
/// frame, and who sent it. When the library failed the connection, the code
/// it sent (1009 for a message too big, 1002 for a protocol error), or 1006
/// when the connection dropped with no close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code.
    pub code: u16,
    /// The close reason (UTF-8, at most 123 bytes).
    pub reason: String,
    /// Who sent it.
    pub by: ClosedBy,
}

/// An outgoing message.
#[derive(Debug)]
pub enum Outgoing {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// A client WebSocket. Dropping it starts the closing handshake without
/// waiting for it to finish.
pub struct Socket {
    id: engine::SocketId,
    wire: engine::Wire,
    inbox: Arc<Inbox>,
    /// The fork generation it was opened in (see `crate::lifetime`): in a
    /// child, an inherited socket is closed, and its locks are never taken.
    generation: u64,
    /// The subprotocol the server chose.
    protocol: Option<String>,
}

impl Socket {
    /// Connects to a `ws://` or `wss://` URL; `budget` bounds resolve,
    /// connect, TLS and the upgrade together.
    pub fn connect(url: &str, budget: Option<Duration>) -> Result<Socket, String> {
        let options = ConnectOptions { timeout: budget, ..ConnectOptions::default() };
        Socket::connect_with(url, &options).map_err(|e| e.message)
    }

    /// As [`Socket::connect`], with every option; a refused upgrade comes
    /// with the server's answer.
    pub fn connect_with(url: &str, options: &ConnectOptions) -> Result<Socket, ConnectError> {
        let (mut websocket, protocol) = connect::open(url, options)?;
        let inbox = Arc::new(Inbox::new(&options.limits));
        websocket.get_mut().count_unsent(inbox.unsent_counter());
        let generation = crate::lifetime::generation();
        let (id, wire) = engine::register(websocket, Arc::clone(&inbox), options.limits)?;
        Ok(Socket { id, wire, inbox, generation, protocol })
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Inherited through `fork()`: the parent's, untouchable here.
    fn inherited(&self) -> bool {
        self.generation != crate::lifetime::generation()
    }

    /// Writes a message (what the socket cannot take at once is sent by the
    /// I/O thread, in order). Fails when the socket is closed or closing.
    pub fn send(&self, message: Outgoing) -> Result<(), SendError> {
        if self.inherited() {
            return Err(SendError::closed(INHERITED));
        }
        if !self.inbox.is_open() {
            return Err(SendError::closed(CLOSED));
        }
        engine::send(&self.wire, &self.inbox, message)
    }

    /// The next message, without waiting.
    pub fn poll(&self) -> Polled {
        if self.inherited() {
            return Polled::Closed;
        }
        self.inbox.note_poll();
        let polled = match self.inbox.poll() {
            Polled::Empty if self.inbox.readable() => {
                engine::read_inline(self.id, &self.wire, &self.inbox)
            }
            found => found,
        };
        if matches!(polled, Polled::Message(..)) && self.inbox.resume_due() {
            engine::resume(self.id);
        }
        polled
    }

    /// Bytes that `send` and `ping` accepted and the socket has not taken
    /// yet, framing included (see [`Inbox::buffered_amount`]).
    pub fn buffered_amount(&self) -> usize {
        if self.inherited() {
            return 0;
        }
        self.inbox.buffered_amount()
    }

    /// The next message, waiting up to `timeout` (forever when `None`).
    pub fn recv(&self, timeout: Option<Duration>) -> Polled {
        if self.inherited() {
            return Polled::Closed;
        }
        self.inbox.recv(timeout, || self.poll())
    }

    /// Sends a ping with `payload` (checked by [`sendable_ping_payload`]);
    /// its pong sets [`Socket::latency`]. Fails when the socket is closed.
    pub fn ping(&self, payload: &[u8]) -> Result<(), SendError> {
        if self.inherited() {
            return Err(SendError::closed(INHERITED));
        }
        if !self.inbox.is_open() {
            return Err(SendError::closed(CLOSED));
        }
        engine::ping(&self.wire, &self.inbox, payload.to_vec())
    }

    /// The round trip of the last answered ping; `None` before any.
    pub fn latency(&self) -> Option<Duration> {
        if self.inherited() {
            return None;
        }
        self.inbox.latency()
    }

    /// Whether the socket is open: not closed, closing or failed.
    pub fn is_open(&self) -> bool {
        !self.inherited() && self.inbox.is_open()
    }

    /// Why the socket closed, once it has; `None` while open or after a
    /// clean close.
    pub fn close_error(&self) -> Option<String> {
        if self.inherited() {
            return Some(INHERITED.to_owned());
        }
        self.inbox.close_error()
    }

    /// How the connection ended, once it has; `None` while open or closing.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        if self.inherited() {
            static INHERITED_CLOSE: CloseInfo =
                CloseInfo { code: 1006, reason: String::new(), by: ClosedBy::Error };
            return Some(&INHERITED_CLOSE);
        }
        self.inbox.close_info()
    }

    /// Sends a close frame with `code` and `reason` (checked by
    /// [`sendable_close_code`] and [`sendable_close_reason`]), waits (about
    /// [`CLOSE_TIMEOUT`] at most) for the peer's answer, and releases the
    /// connection. Calling it again does nothing more.
    pub fn close(&self, code: u16, reason: &str) {
        if self.inherited() {
            return;
        }
        if self.inbox.begin_close() {
            engine::close(self.id, code, reason.to_owned());
        }
        self.inbox.wait_closed(CLOSE_TIMEOUT + Duration::from_millis(500));
    }
}

impl Drop for Socket {
    /// An inherited socket is left as it is: the parent's I/O thread, which
    /// owns it, does not exist here, so nothing ever writes to it or frees
    /// it (its connection stays the parent's).
    fn drop(&mut self) {
        if self.inherited() {
            // Never the last owner of the parent's connection.
            std::mem::forget(Arc::clone(&self.wire));
            return;
        }
        if self.inbox.begin_close() {
            engine::close(self.id, 1000, String::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_payloads() {
        assert!(sendable_ping_payload(&[0; 125]).is_ok());
        assert_eq!(sendable_ping_payload(&[0; 126]), Err("ping payload must be at most 125 bytes"));
    }

    #[test]
    fn close_reasons() {
        assert_eq!(sendable_close_reason(b""), Ok(""));
        assert_eq!(sendable_close_reason("é".repeat(61).as_bytes()).map(str::len), Ok(122));
        assert!(sendable_close_reason(&[b'x'; 123]).is_ok());
        assert_eq!(
            sendable_close_reason(&[b'x'; 124]),
            Err("close reason must be at most 123 bytes")
        );
        assert_eq!(sendable_close_reason(b"\xff"), Err("close reason must be UTF-8"));
    }

    #[test]
    fn close_codes() {
        for code in [1000, 1003, 1007, 1014, 3000, 4999] {
            assert_eq!(sendable_close_code(code), Ok(code as u16));
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 66536, -1, i64::MAX] {
            assert!(sendable_close_code(code).is_err(), "{code}");
        }
    }
}
