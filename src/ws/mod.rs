//! The WebSocket engine, on tungstenite: connect (on the caller's thread),
//! then one shared I/O thread moves frames for every socket.
//!
//! Threads never touch Lua: the I/O thread fills an [`Inbox`] per socket,
//! and the script's thread takes complete messages out of it. A script that
//! polls often reads its socket itself, on its own thread (see
//! `engine::read_inline`): no hand-off between threads per message.

mod connect;
mod engine;
mod error;
mod inbox;

use std::sync::Arc;
use std::time::Duration;

pub use inbox::{Inbox, Polled};

/// Largest incoming message accepted; a larger one fails the connection
/// with close code 1009 (message too big).
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Messages up to this size are copied out of tungstenite's read buffer
/// wherever they may be kept: a kept view would keep the whole buffer.
pub const DETACH_LIMIT: usize = 64 << 10;
/// How long closing waits for the peer to answer the close frame.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
}

impl Socket {
    /// Connects to a `ws://` or `wss://` URL; `budget` bounds resolve,
    /// connect, TLS and the upgrade together.
    pub fn connect(url: &str, budget: Option<Duration>) -> Result<Socket, String> {
        let websocket = connect::open(url, budget)?;
        let inbox = Arc::new(Inbox::default());
        let (id, wire) = engine::register(websocket, Arc::clone(&inbox))?;
        Ok(Socket { id, wire, inbox })
    }

    /// Writes a message (what the socket cannot take at once is sent by the
    /// I/O thread, in order). Fails when the socket is closed or closing.
    pub fn send(&self, message: Outgoing) -> Result<(), String> {
        if !self.inbox.is_open() {
            return Err("the WebSocket is closed".to_owned());
        }
        engine::send(&self.wire, &self.inbox, message)
    }

    /// The next message, without waiting.
    pub fn poll(&self) -> Polled {
        self.inbox.note_poll();
        match self.inbox.poll() {
            Polled::Empty if self.inbox.readable() => {
                engine::read_inline(self.id, &self.wire, &self.inbox)
            }
            found => found,
        }
    }

    /// The next message, waiting up to `timeout` (forever when `None`).
    pub fn recv(&self, timeout: Option<Duration>) -> Polled {
        self.inbox.recv(timeout, || self.poll())
    }

    /// Whether the socket is open: not closed, closing or failed.
    pub fn is_open(&self) -> bool {
        self.inbox.is_open()
    }

    /// Why the socket closed, once it has; `None` while open or after a
    /// clean close.
    pub fn close_error(&self) -> Option<String> {
        self.inbox.close_error()
    }

    /// Sends a close frame with `code`, waits (about [`CLOSE_TIMEOUT`] at
    /// most) for the peer's answer, and releases the connection. Calling it
    /// again does nothing more.
    pub fn close(&self, code: u16) {
        if self.inbox.begin_close() {
            engine::close(self.id, code);
        }
        self.inbox.wait_closed(CLOSE_TIMEOUT + Duration::from_millis(500));
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.inbox.begin_close() {
            engine::close(self.id, 1000);
        }
    }
}
