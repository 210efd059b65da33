//! The I/O thread: one thread moves frames for every open socket, waiting
//! on epoll (mio) for all of them at once.
//!
//! Lifetime rules:
//! - The thread starts with the first socket and exits once no socket is
//!   left, so an idle process has no luanet thread.
//! - The thread only ever runs library code, which stays mapped for the
//!   life of the process (see `crate::lifetime`), so a host may `lua_close`
//!   and `dlclose` with sockets still closing.
//! - Scripts read what it produced from each socket's [`Inbox`], and send
//!   by writing to the socket themselves (see [`Wire`]); registering and
//!   closing go through commands. No Lua value ever gets here.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Error, Message, WebSocket};

use super::{error, Inbox, Outgoing, CLOSE_TIMEOUT, MAX_MESSAGE_SIZE};
use crate::http::tunnel::Tunnel;

/// Identifies a socket to the I/O thread (its mio token).
pub(super) type SocketId = usize;

/// One connection, shared by the I/O thread (which reads it) and the
/// script's thread (which writes to it directly, without waking the I/O
/// thread: a send never waits for more than one read burst). Writes never
/// block; what the socket cannot take yet stays in tungstenite's buffer and
/// the I/O thread flushes it when the socket becomes writable. `None` once
/// the I/O thread has released the connection.
pub(super) type Wire = Arc<Mutex<Option<WebSocket<Tunnel>>>>;

/// Locks a wire, whatever a panicking holder left.
pub(super) fn lock(wire: &Wire) -> MutexGuard<'_, Option<WebSocket<Tunnel>>> {
    wire.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const WAKE: Token = Token(0);
/// Messages read from one socket before the others get a turn.
const READ_BURST: usize = 256;

enum Command {
    Register(SocketId, Wire, Arc<Inbox>),
    Close(SocketId, u16),
}

/// How scripts reach the running I/O thread.
struct Handle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    /// Set while a wake-up is pending, so a burst of commands (closes at
    /// `lua_close`) costs one.
    woken: Arc<AtomicBool>,
}

/// `None` while no I/O thread runs. The thread clears it, under this lock,
/// when it decides to exit, so no command is ever sent to a thread that
/// will not read it.
static ENGINE: Mutex<Option<Handle>> = Mutex::new(None);
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn engine() -> MutexGuard<'static, Option<Handle>> {
    ENGINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands a connected socket to the I/O thread, starting it if needed.
pub(super) fn register(
    websocket: WebSocket<Tunnel>,
    inbox: Arc<Inbox>,
) -> Result<(SocketId, Wire), String> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let wire: Wire = Arc::new(Mutex::new(Some(websocket)));
    let mut engine = engine();
    if engine.is_none() {
        *engine = Some(start().map_err(|e| format!("could not start the I/O thread: {e}"))?);
    }
    let handle = engine.as_ref().expect("started above");
    submit(handle, Command::Register(id, Arc::clone(&wire), inbox));
    Ok((id, wire))
}

/// Writes a message from the script's thread. Err when the connection is
/// gone or failed (the I/O thread then reports why on the inbox).
pub(super) fn send(wire: &Wire, message: Outgoing) -> Result<(), String> {
    let message = match message {
        Outgoing::Text(text) => Message::text(text),
        Outgoing::Binary(data) => Message::binary(data),
    };
    let mut guard = lock(wire);
    let websocket = guard.as_mut().ok_or("the WebSocket is closed")?;
    match websocket.write(message).and_then(|()| websocket.flush()) {
        Ok(()) => Ok(()),
        Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        Err(Error::ConnectionClosed | Error::AlreadyClosed | Error::Protocol(_)) => {
            Err("the WebSocket is closed".to_owned())
        }
        Err(e) => Err(error::describe(&e)),
    }
}

/// Starts the closing handshake of a socket.
pub(super) fn close(id: SocketId, code: u16) {
    if let Some(handle) = engine().as_ref() {
        submit(handle, Command::Close(id, code));
    }
}

/// Queues a command and wakes the thread. The receiver lives as long as
/// `ENGINE` holds this handle, so the send cannot fail.
fn submit(handle: &Handle, command: Command) {
    let _ = handle.commands.send(command);
    if !handle.woken.swap(true, Ordering::AcqRel) {
        let _ = handle.waker.wake();
    }
}

fn start() -> std::io::Result<Handle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let woken = Arc::new(AtomicBool::new(false));
    let (commands, inbound) = mpsc::channel();
    let thread_woken = Arc::clone(&woken);
    std::thread::Builder::new()
        .name("luanet-io".to_owned())
        .spawn(move || IoThread::new(poll, inbound, thread_woken).run())?;
    Ok(Handle { commands, waker, woken })
}

struct IoThread {
    poll: Poll,
    commands: Receiver<Command>,
    woken: Arc<AtomicBool>,
    connections: HashMap<SocketId, Connection>,
    /// Sockets whose last turn ended before their input was drained.
    unfinished: HashSet<SocketId>,
}

impl IoThread {
    fn new(poll: Poll, commands: Receiver<Command>, woken: Arc<AtomicBool>) -> IoThread {
        IoThread { poll, commands, woken, connections: HashMap::new(), unfinished: HashSet::new() }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.unfinished.is_empty() {
                self.connections
                    .values()
                    .filter_map(|c| c.closing_deadline)
                    .min()
                    .map(|deadline| deadline.saturating_duration_since(Instant::now()))
            } else {
                Some(std::time::Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    self.fail_all(&format!("I/O thread failed: {e}"));
                }
            }
            let mut ready: Vec<SocketId> = self.unfinished.drain().collect();
            let mut commands = false;
            for event in events.iter() {
                match event.token() {
                    WAKE => commands = true,
                    Token(id) => ready.push(id),
                }
            }
            if commands {
                self.woken.store(false, Ordering::Release);
                while let Ok(command) = self.commands.try_recv() {
                    self.apply(command);
                }
            }
            for id in ready {
                self.pump(id);
            }
            self.release_finished();
            if self.connections.is_empty() && self.try_exit() {
                return;
            }
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Register(id, wire, inbox) => {
                let Some(fd) = lock(&wire).as_ref().map(|ws| ws.get_ref().fd()) else {
                    return;
                };
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) =
                    self.poll.registry().register(&mut SourceFd(&fd), Token(id), interest)
                {
                    inbox.release(Some(format!("could not watch the socket: {e}")));
                    return;
                }
                let connection =
                    Connection { wire, fd, inbox, closing_deadline: None, ended: None };
                self.connections.insert(id, connection);
                // Frames may have arrived with the upgrade answer, already
                // buffered where epoll cannot see them.
                self.pump(id);
            }
            Command::Close(id, code) => {
                if let Some(connection) = self.connections.get_mut(&id) {
                    connection.start_close(code);
                }
            }
        }
    }

    fn pump(&mut self, id: SocketId) {
        if let Some(connection) = self.connections.get_mut(&id) {
            if !connection.pump() {
                self.unfinished.insert(id);
            }
        }
    }

    /// Drops connections that ended or whose peer never answered a close.
    fn release_finished(&mut self) {
        let now = Instant::now();
        let finished: Vec<SocketId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.ended.is_some() || c.closing_deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in finished {
            if let Some(connection) = self.connections.remove(&id) {
                self.unfinished.remove(&id);
                let _ = self.poll.registry().deregister(&mut SourceFd(&connection.fd));
                let error = connection.ended.flatten();
                // Closes the socket (libcurl handle) before telling the script.
                drop(lock(&connection.wire).take());
                connection.inbox.release(error);
            }
        }
    }

    fn fail_all(&mut self, message: &str) {
        for connection in self.connections.values_mut() {
            connection.ended.get_or_insert(Some(message.to_owned()));
        }
    }

    /// Exits when no socket is left and no command is waiting.
    fn try_exit(&mut self) -> bool {
        let mut engine = engine();
        let mut applied = false;
        while let Ok(command) = self.commands.try_recv() {
            self.apply(command);
            applied = true;
        }
        if applied || !self.connections.is_empty() {
            return false;
        }
        *engine = None;
        true
    }
}

/// Messages up to this size are copied out of tungstenite's read buffer.
const DETACH_LIMIT: usize = 64 << 10;

/// The messages of one read burst, on their way to the inbox.
///
/// A message straight from tungstenite is a view into its read buffer, and
/// while any view lives the buffer cannot be reused: with messages waiting
/// in the inbox, each read got only the buffer's leftover tail (about
/// 2 KiB), fifty times the system calls. So small messages are copied into
/// one buffer per burst (one allocation, and one free on the reader's
/// thread, per burst rather than per message); large ones keep their own.
#[derive(Default)]
struct Burst {
    bytes: Vec<u8>,
    messages: Vec<(Piece, bool)>,
}

/// Where a message of a burst is.
enum Piece {
    /// `start..end` of the burst's own buffer.
    Copied(usize, usize),
    /// A large message, kept whole.
    Whole(Bytes),
}

impl Burst {
    fn push(&mut self, data: Bytes, is_text: bool) {
        if data.len() <= DETACH_LIMIT {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(&data);
            self.messages.push((Piece::Copied(start, self.bytes.len()), is_text));
        } else {
            self.messages.push((Piece::Whole(data), is_text));
        }
    }

    fn len(&self) -> usize {
        self.messages.len()
    }

    fn into_messages(self) -> Vec<(Bytes, bool)> {
        let shared = Bytes::from(self.bytes);
        self.messages
            .into_iter()
            .map(|(piece, is_text)| match piece {
                Piece::Copied(start, end) => (shared.slice(start..end), is_text),
                Piece::Whole(data) => (data, is_text),
            })
            .collect()
    }
}

struct Connection {
    wire: Wire,
    fd: std::os::fd::RawFd,
    inbox: Arc<Inbox>,
    /// Set once a close frame was sent: past it, the connection is released
    /// whether or not the peer answered.
    closing_deadline: Option<Instant>,
    /// `Some(error)` once the connection is over (`Some(None)`: cleanly).
    ended: Option<Option<String>>,
}

impl Connection {
    /// Reads what arrived and writes what is pending. Returns false when it
    /// stopped before draining the input (another turn is due).
    fn pump(&mut self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        let wire = Arc::clone(&self.wire);
        let mut guard = lock(&wire);
        let Some(websocket) = guard.as_mut() else { return true };
        let mut batch = Burst::default();
        let mut drained = false;
        while batch.len() < READ_BURST {
            match websocket.read() {
                Ok(Message::Text(text)) => batch.push(text.into(), true),
                Ok(Message::Binary(data)) => batch.push(data, false),
                Ok(Message::Close(_)) => {
                    // Either the answer to our close frame, or the peer's
                    // close, whose answer tungstenite has queued. Once that
                    // answer is written the closing handshake is complete:
                    // release now rather than wait for the peer to hang up
                    // (over TLS it may wait for us first).
                    let _ = websocket.flush();
                    self.ended.get_or_insert(None);
                    drained = true;
                    break;
                }
                Ok(_) => {} // ping (answered by tungstenite), pong, raw frame
                Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) => {
                    self.end(websocket, e);
                    drained = true;
                    break;
                }
            }
        }
        if batch.len() > 0 {
            self.inbox.deliver(batch.into_messages());
        }
        self.flush(websocket);
        drained
    }

    fn start_close(&mut self, code: u16) {
        if self.closing_deadline.is_some() || self.ended.is_some() {
            return;
        }
        self.closing_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
        let wire = Arc::clone(&self.wire);
        let mut guard = lock(&wire);
        let Some(websocket) = guard.as_mut() else { return };
        let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
        match websocket.close(Some(frame)) {
            Ok(()) => self.flush(websocket),
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => self.end(websocket, e),
        }
    }

    fn flush(&mut self, websocket: &mut WebSocket<Tunnel>) {
        match websocket.flush() {
            Ok(()) => {}
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => self.end(websocket, e),
        }
    }

    fn end(&mut self, websocket: &mut WebSocket<Tunnel>, e: Error) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(match e {
            Error::ConnectionClosed | Error::AlreadyClosed => None,
            Error::Capacity(_) => {
                // Tell the peer why before hanging up (RFC 6455: 1009).
                let frame = CloseFrame { code: CloseCode::Size, reason: "message too big".into() };
                let _ = websocket.close(Some(frame));
                let _ = websocket.flush();
                Some(format!(
                    "an incoming message exceeded the {} MiB limit: connection closed (1009)",
                    MAX_MESSAGE_SIZE >> 20
                ))
            }
            // A peer that sends its close and hangs up before reading ours.
            Error::Protocol(_) if self.closing_deadline.is_some() => None,
            other => Some(error::describe(&other)),
        });
    }
}
