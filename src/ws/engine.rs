//! The I/O thread: one thread moves frames for every open socket and runs
//! every non-blocking HTTP request ([`crate::http::transfers`]), waiting on
//! epoll (mio) for all of them at once, with one timer for what is due
//! next (closing handshakes, keepalive pings and pong deadlines, libcurl's
//! timer, request budgets). Sockets' deadlines sit in one heap, so a turn
//! costs what its events cost, not what the number of sockets does.
//!
//! Bounds: past its inbox bound a socket is not read (TCP then holds the
//! peer back) until the script has read half of it (see [`Inbox`]); its
//! keepalive is suspended meanwhile, since no pong can be seen. Output
//! past `max_send_buffer_bytes` is refused by tungstenite, whole.
//!
//! Lifetime rules:
//! - The thread starts with the first socket or request and exits once no
//!   socket and no request is left (after [`REQUEST_LINGER`], so that the
//!   next burst of requests finds its connections open), so an idle
//!   process has no luanet thread.
//! - The thread only ever runs library code, which stays mapped for the
//!   life of the process (see `crate::lifetime`), so a host may `lua_close`
//!   and `dlclose` with sockets still closing.
//! - Scripts read what it produced from each socket's [`Inbox`], and send
//!   by writing to the socket themselves (see [`Wire`]); registering and
//!   closing go through commands. No Lua value ever gets here.
//! - A script polling its socket reads it itself ([`read_inline`]): on input
//!   for a socket polled since the thread last looked, the thread only marks
//!   it readable and looks again [`POLLER_GRACE`] later, reading it then if
//!   the script has stopped polling.
//!
//! Locks: a script's thread holds a socket's wire while it writes (framing
//! and masking a large message takes a while) or reads inline. The I/O
//! thread never waits for a wire: it only ever `try_lock`s one, and a
//! socket whose wire is taken gets its turn again [`BUSY_RETRY`] later
//! (reads, the close frame, output, release). Lock order: wire, then the
//! inbox's locks (`Inbox` takes its own, briefly); `ENGINE` is never held
//! with a wire. A script marks output as waiting (`output_waiting`) before
//! it writes and clears the mark only once everything went out, so the
//! I/O thread, reading the mark without the wire, never misses output left
//! by a write that hit a full socket while a writable event came.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Error, Message, WebSocket};

use super::{
    error, CloseInfo, ClosedBy, Inbox, Limits, Outgoing, Polled, SendError, SendErrorKind,
    CLOSE_TIMEOUT, DETACH_LIMIT, SEND_BUFFER_FULL,
};
use crate::http::transfers::{Transfers, SOCKET_TOKEN};
use crate::http::tunnel::Tunnel;
use crate::http::{FetchId, Job};

/// Identifies a socket to the I/O thread (its mio token).
pub(super) type SocketId = usize;

/// One connection, shared by the I/O thread and the script's thread.
///
/// The script's thread writes to it directly, without waking the I/O
/// thread: a send never waits for more than one read burst. Writes never
/// block; what the socket cannot take yet stays in tungstenite's buffer and
/// the I/O thread flushes it when the socket becomes writable.
///
/// Either thread reads it (see [`read_inline`]). The I/O thread delivers
/// what it read to the inbox before it lets go of the lock, so a reader that
/// holds the lock and finds the inbox empty knows nothing read is in flight.
pub(super) type Wire = Arc<Mutex<WireState>>;

pub(super) struct WireState {
    /// `None` once the I/O thread has released the connection.
    websocket: Option<WebSocket<Tunnel>>,
    /// What a read on the script's thread got that only the I/O thread
    /// handles (a close, an error); it takes it on its next turn.
    handed_over: Option<tungstenite::Result<Message>>,
}

/// Locks a wire, whatever a panicking holder left. For scripts' threads.
pub(super) fn lock(wire: &Wire) -> MutexGuard<'_, WireState> {
    wire.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The wire if nobody holds it: how the I/O thread takes one.
fn try_lock(wire: &Wire) -> Option<MutexGuard<'_, WireState>> {
    match wire.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

const WAKE: Token = Token(0);
/// Messages read from one socket before the others get a turn.
const READ_BURST: usize = 256;
/// How long input waits for a script that is polling its socket to read it
/// itself before the I/O thread does.
const POLLER_GRACE: Duration = Duration::from_millis(4);
/// The longest input is left to a polling script. A script working through
/// a backlog reads nothing new meanwhile; past this, pings still get their
/// answer and closes are still seen.
const POLLER_MAX_WAIT: Duration = Duration::from_millis(100);
/// Control frames (pings, pongs) one inline read skips at most.
const INLINE_CONTROL_FRAMES: usize = 16;
/// How soon a socket whose wire a script held gets its turn again.
const BUSY_RETRY: Duration = Duration::from_millis(1);
/// How long the thread stays, its HTTP connections open, once the last
/// request ended and no socket is left.
pub(crate) const REQUEST_LINGER: Duration = Duration::from_secs(2);

enum Command {
    Register(SocketId, Wire, Arc<Inbox>, std::os::fd::RawFd, Limits),
    Close(SocketId, u16, String),
    /// A read on the script's thread handed something over, or the script
    /// read its inbox down from its bound.
    Pump(SocketId),
    Fetch(Box<Job>),
    CancelFetch(FetchId),
    /// A streaming request's script read its buffer: go on receiving.
    ResumeFetch(FetchId),
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

/// `ENGINE` held across `fork()` (see `crate::lifetime`).
pub(crate) fn hold_for_fork() -> Box<dyn crate::lifetime::HeldAcrossFork> {
    Box::new(EngineHeld(engine()))
}

struct EngineHeld(MutexGuard<'static, Option<Handle>>);

impl crate::lifetime::HeldAcrossFork for EngineHeld {
    /// The I/O thread is the parent's: forget the way to it, so the next
    /// socket starts one of this process's own.
    fn forget_in_child(mut self: Box<Self>) {
        std::mem::forget(self.0.take());
    }
}

/// Hands a connected socket to the I/O thread, starting it if needed.
pub(super) fn register(
    websocket: WebSocket<Tunnel>,
    inbox: Arc<Inbox>,
    limits: Limits,
) -> Result<(SocketId, Wire), String> {
    crate::lifetime::watch_fork();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let fd = websocket.get_ref().fd();
    let wire: Wire =
        Arc::new(Mutex::new(WireState { websocket: Some(websocket), handed_over: None }));
    let mut engine = engine();
    if engine.is_none() {
        *engine = Some(start().map_err(|e| format!("could not start the I/O thread: {e}"))?);
    }
    let handle = engine.as_ref().expect("started above");
    submit(handle, Command::Register(id, Arc::clone(&wire), inbox, fd, limits));
    Ok((id, wire))
}

/// Writes a message from the script's thread. Err when the connection is
/// gone or failed (the I/O thread then reports why on the inbox).
pub(super) fn send(wire: &Wire, inbox: &Inbox, message: Outgoing) -> Result<(), SendError> {
    let message = match message {
        Outgoing::Text(text) => Message::text(text),
        Outgoing::Binary(data) => Message::binary(data),
    };
    write(wire, inbox, message)
}

/// Sends a ping from the script's thread, as [`send`] sends a message; its
/// pong gives the latency.
pub(super) fn ping(wire: &Wire, inbox: &Inbox, payload: Vec<u8>) -> Result<(), SendError> {
    write(wire, inbox, Message::Ping(payload.into()))
}

/// Lets the I/O thread read a socket again whose script read its inbox
/// down from the bound.
pub(super) fn resume(id: SocketId) {
    to_running(Command::Pump(id));
}

/// The bytes a client frame with `payload` bytes takes on the wire: the
/// header, its extended length and the mask (RFC 6455 section 5.2).
fn frame_len(payload: usize) -> usize {
    let extended = match payload {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + extended + 4 + payload
}

/// Writes `message` under the wire lock; what the socket cannot take stays
/// in tungstenite's buffer for the I/O thread. A message finding
/// `max_send_buffer_bytes` or more waiting is refused whole (checked
/// between messages, as the inbox bound: one larger message still goes
/// when less waits); pings, a few bytes each, always go.
fn write(wire: &Wire, inbox: &Inbox, message: Message) -> Result<(), SendError> {
    let mut guard = lock(wire);
    let websocket = guard.websocket.as_mut().ok_or_else(|| SendError::closed(super::CLOSED))?;
    if !message.is_ping() && inbox.buffered_amount() >= inbox.max_send_buffer_bytes() {
        return Err(SendError { kind: SendErrorKind::Full, message: SEND_BUFFER_FULL.to_owned() });
    }
    // Marked before the write: the I/O thread reads the mark without the
    // wire, and must never see "nothing waits" while a write may block.
    inbox.set_output_waiting(true);
    // Before the write: its pong may be read before the write returns.
    if message.is_ping() {
        inbox.ping_sent();
    }
    // Counted before the write, which lowers it by what the socket takes.
    let framed = frame_len(message.len());
    inbox.add_unsent(framed);
    let written = websocket.write(message).and_then(|()| websocket.flush());
    inbox.set_output_waiting(would_block(&written));
    if !matches!(&written, Ok(()) | Err(Error::Io(_))) {
        // Refused (closing, closed): nothing of it was written.
        inbox.remove_unsent(framed);
    }
    match written {
        Ok(()) => Ok(()),
        Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        Err(Error::ConnectionClosed | Error::AlreadyClosed | Error::Protocol(_)) => {
            Err(SendError::closed(super::CLOSED))
        }
        Err(e) => Err(SendError::closed(error::describe(&e))),
    }
}

/// Hands a request to the I/O thread, starting it if needed.
pub(crate) fn fetch(job: Job) -> Result<(), String> {
    crate::lifetime::watch_fork();
    let mut engine = engine();
    if engine.is_none() {
        *engine = Some(start().map_err(|e| format!("could not start the I/O thread: {e}"))?);
    }
    submit(engine.as_ref().expect("started above"), Command::Fetch(Box::new(job)));
    Ok(())
}

/// Drops a request the script cancelled.
pub(crate) fn cancel_fetch(id: FetchId) {
    to_running(Command::CancelFetch(id));
}

/// Lets a paused streaming request go on.
pub(crate) fn resume_fetch(id: FetchId) {
    to_running(Command::ResumeFetch(id));
}

/// Starts the closing handshake of a socket.
pub(super) fn close(id: SocketId, code: u16, reason: String) {
    to_running(Command::Close(id, code, reason));
}

/// Hands `command` to the I/O thread if one runs: with none, there is no
/// socket or request for it to act on.
fn to_running(command: Command) {
    if let Some(handle) = engine().as_ref() {
        submit(handle, command);
    }
}

/// True when tungstenite kept output the socket could not take yet.
fn would_block<T>(result: &tungstenite::Result<T>) -> bool {
    matches!(result, Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock)
}

/// Reads the next message on the caller's thread, for a script that polls
/// an empty inbox while input is waiting: the message goes straight to the
/// caller, without a hand-off between threads. Never blocks: when the I/O
/// thread holds the wire it is reading, and delivers to the inbox.
pub(super) fn read_inline(id: SocketId, wire: &Wire, inbox: &Inbox) -> Polled {
    let Ok(mut guard) = wire.try_lock() else { return Polled::Empty };
    // Under the lock nothing the I/O thread read is still on its way.
    match inbox.poll() {
        Polled::Empty => {}
        found => return found,
    }
    let state = &mut *guard;
    let Some(websocket) = state.websocket.as_mut() else { return Polled::Empty };
    if state.handed_over.is_some() {
        return Polled::Empty;
    }
    for _ in 0..INLINE_CONTROL_FRAMES {
        inbox.clear_readable();
        let outcome = websocket.read();
        let message = match outcome {
            Ok(Message::Text(text)) => Polled::Message(text.into(), true),
            Ok(Message::Binary(data)) => Polled::Message(data, false),
            Ok(Message::Pong(_)) => {
                inbox.pong_received();
                continue;
            }
            Ok(Message::Ping(_) | Message::Frame(_)) => {
                // tungstenite queued the answer to a ping.
                inbox.set_output_waiting(true);
                inbox.set_output_waiting(would_block(&websocket.flush()));
                continue;
            }
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Polled::Empty,
            other => {
                // The I/O thread ends the connection; the inbox's release
                // then wakes whoever waits.
                state.handed_over = Some(other);
                drop(guard);
                to_running(Command::Pump(id));
                return Polled::Empty;
            }
        };
        // More may sit in tungstenite's buffer, where epoll cannot see it.
        inbox.mark_maybe_more();
        return message;
    }
    inbox.mark_readable();
    Polled::Empty
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
    /// Sockets whose turn was skipped because a script held the wire.
    busy: HashSet<SocketId>,
    /// Sockets whose output could not be written because a script held
    /// the wire.
    busy_output: HashSet<SocketId>,
    /// Sockets with input left for their polling script: when the I/O
    /// thread looks again, and since when the input waits.
    deferred: HashMap<SocketId, (Instant, Instant)>,
    /// The HTTP requests, from the first one until [`REQUEST_LINGER`] after
    /// the last.
    transfers: Option<Transfers>,
    /// When the last request ended, while none is in flight.
    requests_idle_since: Option<Instant>,
    /// Sockets' next deadlines (see [`Connection::scheduled`]); an entry
    /// that is no longer its socket's is skipped.
    timers: BinaryHeap<Reverse<(Instant, SocketId)>>,
    /// Sockets this turn worked on: the ones that may have ended, or have
    /// a new deadline.
    touched: Vec<SocketId>,
}

impl IoThread {
    fn new(poll: Poll, commands: Receiver<Command>, woken: Arc<AtomicBool>) -> IoThread {
        IoThread {
            poll,
            commands,
            woken,
            connections: HashMap::new(),
            unfinished: HashSet::new(),
            busy: HashSet::new(),
            busy_output: HashSet::new(),
            deferred: HashMap::new(),
            transfers: None,
            requests_idle_since: None,
            timers: BinaryHeap::new(),
            touched: Vec::new(),
        }
    }

    /// When the idle request engine goes, its connections closed.
    fn linger_deadline(&self) -> Option<Instant> {
        self.requests_idle_since.map(|since| since + REQUEST_LINGER)
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.unfinished.is_empty() {
                let retry = (!self.busy.is_empty() || !self.busy_output.is_empty())
                    .then(|| Instant::now() + BUSY_RETRY);
                let requests = self.transfers.as_ref().and_then(Transfers::deadline);
                let sockets = self.timers.peek().map(|&Reverse((deadline, _))| deadline);
                sockets
                    .into_iter()
                    .chain(self.deferred.values().map(|&(deadline, _)| deadline))
                    .chain(retry)
                    .chain(requests)
                    .chain(self.linger_deadline())
                    .min()
                    .map(|deadline| deadline.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    self.fail_all(&format!("I/O thread failed: {e}"));
                }
            }
            let mut input: Vec<SocketId> = self.unfinished.drain().collect();
            let retried: Vec<SocketId> = self.busy.drain().collect();
            let retried_output: Vec<SocketId> = self.busy_output.drain().collect();
            for id in retried_output {
                self.flush_waiting(id);
            }
            let mut commands = false;
            let mut request_events = Vec::new();
            for event in events.iter() {
                match event.token() {
                    WAKE => commands = true,
                    Token(token) if token & SOCKET_TOKEN != 0 => request_events.push((
                        token,
                        event.is_readable() || event.is_read_closed(),
                        event.is_writable() || event.is_write_closed(),
                        event.is_error(),
                    )),
                    Token(id)
                        if event.is_readable() || event.is_read_closed() || event.is_error() =>
                    {
                        input.push(id)
                    }
                    // Only writable: write what waits.
                    Token(id) => self.flush_waiting(id),
                }
            }
            let mut ready: Vec<SocketId> =
                input.into_iter().filter(|&id| self.read_now(id)).collect();
            ready.extend(retried);
            ready.extend(self.deferred_due());
            if commands {
                self.woken.store(false, Ordering::Release);
                while let Ok(command) = self.commands.try_recv() {
                    self.apply(command);
                }
            }
            for id in ready {
                self.pump(id);
            }
            self.run_timers();
            self.release_finished();
            self.run_requests(request_events);
            if self.connections.is_empty() && self.transfers.is_none() && self.try_exit() {
                return;
            }
        }
    }

    /// Hands libcurl its socket events and what is due, and drops the
    /// request engine once it has been idle for [`REQUEST_LINGER`].
    fn run_requests(&mut self, events: Vec<(usize, bool, bool, bool)>) {
        let Some(transfers) = self.transfers.as_mut() else { return };
        for (token, readable, writable, error) in events {
            transfers.on_socket(token, readable, writable, error);
        }
        transfers.on_time();
        if !transfers.is_idle() {
            self.requests_idle_since = None;
            return;
        }
        let since = *self.requests_idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= REQUEST_LINGER {
            self.transfers = None;
            self.requests_idle_since = None;
        }
    }

    /// On input for `id`: true when the I/O thread should read it now, false
    /// when its script is polling and gets a moment to read it itself.
    /// Waiting output is written at once either way.
    fn read_now(&mut self, id: SocketId) -> bool {
        let Some(connection) = self.connections.get_mut(&id) else { return false };
        connection.inbox.mark_readable();
        if !connection.script_polling() {
            return true;
        }
        self.flush_waiting(id);
        let now = Instant::now();
        self.deferred.entry(id).or_insert((now + POLLER_GRACE, now));
        false
    }

    /// Deferred sockets whose script stopped polling with input still
    /// waiting; the others wait another moment or leave the list.
    fn deferred_due(&mut self) -> Vec<SocketId> {
        let now = Instant::now();
        let mut due = Vec::new();
        let connections = &mut self.connections;
        self.deferred.retain(|id, (deadline, since)| {
            if *deadline > now {
                return true;
            }
            let Some(connection) = connections.get_mut(id) else { return false };
            let left_long = now.duration_since(*since) >= POLLER_MAX_WAIT;
            let leave = match connection.input_waiting() {
                Some(false) => return false,
                // The script holds the wire: it is reading, or sending.
                None => !left_long,
                Some(true) => !left_long && connection.script_polling(),
            };
            if leave {
                *deadline = now + POLLER_GRACE;
                return true;
            }
            due.push(*id);
            false
        });
        due
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Register(id, wire, inbox, fd, limits) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) =
                    self.poll.registry().register(&mut SourceFd(&fd), Token(id), interest)
                {
                    inbox.release(Some(format!("could not watch the socket: {e}")), DROPPED);
                    return;
                }
                let connection = Connection {
                    wire,
                    fd,
                    inbox,
                    closing_deadline: None,
                    close_frame: None,
                    sent: None,
                    failed_with_frame: false,
                    local_first: false,
                    peer_frame: None,
                    peer_closed: false,
                    ended: None,
                    polls_seen: 0,
                    next_ping: limits.ping_interval.map(|interval| Instant::now() + interval),
                    pong_due: None,
                    pong_suspended: false,
                    reading_paused: false,
                    scheduled: None,
                    limits,
                };
                self.connections.insert(id, connection);
                // Frames may have arrived with the upgrade answer, already
                // buffered where epoll cannot see them.
                self.pump(id);
            }
            Command::Close(id, code, reason) => {
                if let Some(connection) = self.connections.get_mut(&id) {
                    if connection.start_close(code, reason) == Turn::Busy {
                        self.busy.insert(id);
                    } else {
                        // A socket paused at its inbox bound gets no new
                        // input event: read it now, for the peer's answer.
                        self.unfinished.insert(id);
                    }
                    self.touched.push(id);
                }
            }
            Command::Pump(id) => self.pump(id),
            Command::Fetch(job) => {
                if self.transfers.is_none() {
                    match Transfers::new(self.poll.registry()) {
                        Ok(transfers) => self.transfers = Some(transfers),
                        Err(e) => {
                            job.shared.finish(Err(crate::http::RequestError::new(
                                crate::http::ErrorKind::Io,
                                format!("cannot start the request engine: {e}"),
                            )));
                            return;
                        }
                    }
                }
                self.requests_idle_since = None;
                self.transfers.as_mut().expect("made above").add(*job);
            }
            Command::CancelFetch(id) => {
                if let Some(transfers) = self.transfers.as_mut() {
                    transfers.cancel(id);
                }
            }
            Command::ResumeFetch(id) => {
                if let Some(transfers) = self.transfers.as_mut() {
                    transfers.resume(id);
                }
            }
        }
    }

    fn pump(&mut self, id: SocketId) {
        if let Some(connection) = self.connections.get_mut(&id) {
            self.touched.push(id);
            match connection.pump() {
                Turn::Done => {}
                Turn::Unfinished => {
                    self.unfinished.insert(id);
                }
                Turn::Busy => {
                    self.busy.insert(id);
                }
            }
        }
    }

    /// Writes what tungstenite holds for the socket, if anything.
    fn flush_waiting(&mut self, id: SocketId) {
        if let Some(connection) = self.connections.get_mut(&id) {
            self.touched.push(id);
            if connection.flush_waiting() == Turn::Busy {
                self.busy_output.insert(id);
            }
        }
    }

    /// Runs the sockets' deadlines that are due: keepalive pings, pong
    /// deadlines, closing handshakes that took too long.
    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((deadline, id))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(connection) = self.connections.get_mut(&id) else { continue };
            if connection.scheduled != Some(deadline) {
                continue;
            }
            connection.scheduled = None;
            connection.on_time(now);
            self.touched.push(id);
        }
    }

    /// Puts a socket's next deadline in the heap, unless an entry as early
    /// is there already.
    fn schedule(&mut self, id: SocketId) {
        let Some(connection) = self.connections.get_mut(&id) else { return };
        let Some(due) = connection.next_due() else { return };
        if connection.scheduled.is_some_and(|scheduled| scheduled <= due) {
            return;
        }
        connection.scheduled = Some(due);
        self.timers.push(Reverse((due, id)));
    }

    /// Drops the connections of this turn that ended, or whose peer never
    /// answered a close; schedules the others' next deadlines.
    fn release_finished(&mut self) {
        let now = Instant::now();
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for id in touched.drain(..) {
            let Some(connection) = self.connections.get(&id) else { continue };
            if connection.ended.is_none() && connection.closing_deadline.is_none_or(|d| d > now) {
                self.schedule(id);
                continue;
            }
            // Closes the socket (libcurl handle) before telling the script.
            let Some(websocket) = try_lock(&connection.wire).map(|mut wire| wire.websocket.take())
            else {
                self.busy.insert(id);
                continue;
            };
            let connection = self.connections.remove(&id).expect("found above");
            self.unfinished.remove(&id);
            self.busy.remove(&id);
            self.busy_output.remove(&id);
            self.deferred.remove(&id);
            let _ = self.poll.registry().deregister(&mut SourceFd(&connection.fd));
            drop(websocket);
            let info = connection.close_info();
            connection.inbox.release(connection.ended.flatten(), info);
        }
        // Nothing above touches a socket: keep the allocation.
        self.touched = touched;
    }

    fn fail_all(&mut self, message: &str) {
        for (id, connection) in self.connections.iter_mut() {
            connection.ended.get_or_insert(Some(message.to_owned()));
            self.touched.push(*id);
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
        if applied || !self.connections.is_empty() || self.transfers.is_some() {
            return false;
        }
        *engine = None;
        true
    }
}

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
    /// What the messages count toward the inbox bound, copied or not.
    payload: usize,
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
        self.payload += super::inbox::queued_cost(data.len());
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

/// A connection that ended with no close frame.
const DROPPED: CloseInfo = CloseInfo { code: 1006, reason: String::new(), by: ClosedBy::Error };

/// How a turn of the I/O thread on one socket went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Done,
    /// Input is left: another turn is due at once.
    Unfinished,
    /// A script holds the wire: another turn is due soon.
    Busy,
}

struct Connection {
    wire: Wire,
    fd: std::os::fd::RawFd,
    inbox: Arc<Inbox>,
    /// Set once the closing handshake started (our close, or the answer to
    /// the peer's): past it, the connection is released whether or not the
    /// handshake finished.
    closing_deadline: Option<Instant>,
    /// Our close frame, until it was handed to tungstenite.
    close_frame: Option<(u16, String)>,
    /// The close frame we handed to tungstenite.
    sent: Option<(u16, String)>,
    /// `sent` is the library failing the connection (1009, 1002).
    failed_with_frame: bool,
    /// Ours was the first close frame.
    local_first: bool,
    /// The peer's close frame (1005 when it had no code).
    peer_frame: Option<(u16, String)>,
    /// The peer closed; tungstenite queued the answer, and the connection
    /// ends once it is written.
    peer_closed: bool,
    /// `Some(error)` once the connection is over (`Some(None)`: cleanly).
    ended: Option<Option<String>>,
    /// The script's poll count when the I/O thread last looked.
    polls_seen: u64,
    /// Bounds and keepalive.
    limits: Limits,
    /// When the next keepalive ping goes out.
    next_ping: Option<Instant>,
    /// When the connection fails unless a pong arrived, and the pong count
    /// as the ping went out.
    pong_due: Option<(Instant, u64)>,
    /// A pong was awaited as reading paused: the deadline starts again
    /// when it resumes.
    pong_suspended: bool,
    /// Reading is paused at the inbox bound (as this side last saw it).
    reading_paused: bool,
    /// The deadline this connection has in the timer heap.
    scheduled: Option<Instant>,
}

impl Connection {
    /// Sends our close frame if one waits, reads what arrived and writes
    /// what is pending.
    fn pump(&mut self) -> Turn {
        if self.ended.is_some() {
            return Turn::Done;
        }
        let wire = Arc::clone(&self.wire);
        let Some(mut guard) = try_lock(&wire) else { return Turn::Busy };
        let state = &mut *guard;
        let Some(websocket) = state.websocket.as_mut() else { return Turn::Done };
        self.send_close_frame(websocket);
        if self.peer_closed || self.ended.is_some() {
            // Only the answer to the peer's close is left to write.
            self.flush(websocket);
            return Turn::Done;
        }
        let mut handed_over = state.handed_over.take();
        // Once closing, the peer's close frame is read whatever waits.
        let bounded = self.closing_deadline.is_none();
        let paused = bounded && self.inbox.is_paused();
        if self.reading_paused && !paused {
            self.resume_keepalive();
        }
        if paused && handed_over.is_none() {
            self.flush(websocket);
            return Turn::Done;
        }
        let queued = self.inbox.queued_bytes();
        let bound = self.inbox.max_queued_bytes();
        let mut batch = Burst::default();
        let mut drained = false;
        let mut full = false;
        self.inbox.clear_readable();
        while batch.len() < READ_BURST {
            if bounded && handed_over.is_none() && queued + batch.payload >= bound {
                full = true;
                break;
            }
            match handed_over.take().unwrap_or_else(|| websocket.read()) {
                Ok(Message::Text(text)) => batch.push(text.into(), true),
                Ok(Message::Binary(data)) => batch.push(data, false),
                Ok(Message::Close(frame)) => {
                    let frame = frame
                        .map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string()));
                    self.peer_frame.get_or_insert(frame);
                    // Either the answer to our close frame, or the peer's
                    // close, whose answer tungstenite has queued. Once that
                    // answer is written the closing handshake is complete:
                    // release then rather than wait for the peer to hang up
                    // (over TLS it may wait for us first). Behind a full
                    // send buffer that takes until the output drains (at
                    // most CLOSE_TIMEOUT).
                    self.peer_closed = true;
                    self.closing_deadline.get_or_insert_with(|| Instant::now() + CLOSE_TIMEOUT);
                    drained = true;
                    break;
                }
                Ok(Message::Pong(_)) => self.inbox.pong_received(),
                Ok(_) => {} // ping (answered by tungstenite), raw frame
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
        if !drained {
            self.inbox.mark_readable();
        }
        self.flush(websocket);
        if full && self.inbox.try_pause() {
            // The script's read down to half the bound resumes it.
            self.suspend_keepalive();
            return Turn::Done;
        }
        if drained {
            Turn::Done
        } else {
            Turn::Unfinished
        }
    }

    /// The earliest of this connection's deadlines.
    fn next_due(&self) -> Option<Instant> {
        if self.ended.is_some() {
            return None;
        }
        [self.closing_deadline, self.next_ping, self.pong_due.map(|(due, _)| due)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Keepalive, when its time comes: fails the connection whose last
    /// ping got no pong in time, and sends the next ping.
    fn on_time(&mut self, now: Instant) {
        if self.ended.is_some() || self.closing_deadline.is_some() || self.reading_paused {
            return;
        }
        if let Some((due, pongs)) = self.pong_due {
            if self.inbox.pongs() != pongs {
                self.pong_due = None;
            } else if due <= now {
                let waited = self.limits.pong_timeout.unwrap_or_default().as_millis();
                self.ended = Some(Some(format!("no pong within {waited} ms")));
                return;
            }
        }
        if self.next_ping.is_none_or(|at| at > now) {
            return;
        }
        let wire = Arc::clone(&self.wire);
        let Some(mut guard) = try_lock(&wire) else {
            // A script is writing: the ping goes right after.
            self.next_ping = Some(now + BUSY_RETRY);
            return;
        };
        let Some(websocket) = guard.websocket.as_mut() else { return };
        self.next_ping = self.limits.ping_interval.map(|interval| now + interval);
        let pongs = self.inbox.pongs();
        self.inbox.set_output_waiting(true);
        self.inbox.ping_sent();
        match websocket.write(Message::Ping(Bytes::new())) {
            Ok(()) => {}
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                self.end(websocket, e);
                return;
            }
        }
        // The first unanswered ping sets the deadline.
        if self.pong_due.is_none() {
            self.pong_due = self.limits.pong_timeout.map(|timeout| (now + timeout, pongs));
        }
        self.flush(websocket);
    }

    /// Reading paused: no pong can be seen, so none is waited for.
    fn suspend_keepalive(&mut self) {
        self.reading_paused = true;
        self.pong_suspended |= self.pong_due.take().is_some();
        self.next_ping = None;
    }

    /// Reading resumed: the keepalive starts again from now.
    fn resume_keepalive(&mut self) {
        let now = Instant::now();
        self.reading_paused = false;
        self.next_ping = self.limits.ping_interval.map(|interval| now + interval);
        if std::mem::take(&mut self.pong_suspended) {
            self.pong_due =
                self.limits.pong_timeout.map(|timeout| (now + timeout, self.inbox.pongs()));
        }
    }

    /// Whether the script polled this socket since the I/O thread last
    /// asked and will read it itself: it is open (a closing socket is read
    /// at once) and no `recv` sleeps on it.
    fn script_polling(&mut self) -> bool {
        let polls = self.inbox.polls();
        let polling =
            polls != self.polls_seen && self.inbox.is_open() && !self.inbox.has_sleepers();
        self.polls_seen = polls;
        polling
    }

    /// Whether input may be waiting; `None` while the script holds the wire.
    /// Asked under the wire lock: a script in the middle of a read has
    /// cleared the mark and may set it again.
    fn input_waiting(&self) -> Option<bool> {
        let _reading_done = try_lock(&self.wire)?;
        Some(self.inbox.readable())
    }

    /// Writes what tungstenite holds for the socket, if anything. Scripts
    /// set the mark before they write, so "nothing waits" is never read
    /// while a write of theirs may still block.
    fn flush_waiting(&mut self) -> Turn {
        if !self.inbox.output_waiting() && !self.peer_closed {
            return Turn::Done;
        }
        let wire = Arc::clone(&self.wire);
        let Some(mut guard) = try_lock(&wire) else { return Turn::Busy };
        if let Some(websocket) = guard.websocket.as_mut() {
            self.flush(websocket);
        }
        Turn::Done
    }

    /// Starts the closing handshake with `code` and `reason`; the frame goes
    /// out now, or on the next turn when a script holds the wire.
    fn start_close(&mut self, code: u16, reason: String) -> Turn {
        if self.closing_deadline.is_some() || self.ended.is_some() {
            return Turn::Done;
        }
        self.closing_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
        self.close_frame = Some((code, reason));
        let wire = Arc::clone(&self.wire);
        let Some(mut guard) = try_lock(&wire) else { return Turn::Busy };
        if let Some(websocket) = guard.websocket.as_mut() {
            self.send_close_frame(websocket);
        }
        Turn::Done
    }

    fn send_close_frame(&mut self, websocket: &mut WebSocket<Tunnel>) {
        let Some((code, reason)) = self.close_frame.take() else { return };
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.as_str().into() };
        if self.sent.is_none() {
            self.local_first = self.peer_frame.is_none();
            self.sent = Some((code, reason));
        }
        match websocket.close(Some(frame)) {
            Ok(()) => self.flush(websocket),
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                self.inbox.set_output_waiting(true)
            }
            Err(e) => self.end(websocket, e),
        }
    }

    fn flush(&mut self, websocket: &mut WebSocket<Tunnel>) {
        let flushed = websocket.flush();
        self.inbox.set_output_waiting(would_block(&flushed));
        match flushed {
            // The answer to the peer's close is out: the handshake is done.
            Ok(()) if self.peer_closed => {
                self.ended.get_or_insert(None);
            }
            Ok(()) => {}
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            // Once the peer closed, tungstenite reports its own state.
            Err(Error::ConnectionClosed | Error::AlreadyClosed) if self.peer_closed => {
                self.ended.get_or_insert(None);
            }
            Err(e) => self.end(websocket, e),
        }
    }

    /// Sends the close frame of a connection the library fails, when the
    /// protocol still allows one.
    fn fail_with_frame(&mut self, websocket: &mut WebSocket<Tunnel>, code: u16, reason: &str) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        if websocket.close(Some(frame)).is_ok() {
            let _ = websocket.flush();
            self.sent = Some((code, reason.to_owned()));
            self.failed_with_frame = true;
        }
    }

    /// How the connection ended, as it is released.
    fn close_info(&self) -> CloseInfo {
        let info = |(code, reason): &(u16, String), by| CloseInfo {
            code: *code,
            reason: reason.clone(),
            by,
        };
        match (&self.ended, &self.sent, &self.peer_frame) {
            (Some(Some(_)), Some(sent), _) if self.failed_with_frame => info(sent, ClosedBy::Error),
            (Some(Some(_)), _, _) => DROPPED,
            (_, Some(sent), _) if self.local_first => info(sent, ClosedBy::Local),
            (_, _, Some(peer)) => info(peer, ClosedBy::Peer),
            _ => DROPPED,
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
                self.fail_with_frame(websocket, 1009, "message too big");
                Some(super::options::too_big(self.limits.max_message_bytes))
            }
            // A peer that sends its close and hangs up before reading ours.
            Error::Protocol(_) if self.closing_deadline.is_some() => None,
            Error::Protocol(other) => {
                self.fail_with_frame(websocket, 1002, "");
                Some(error::describe(&Error::Protocol(other)))
            }
            other => Some(error::describe(&other)),
        });
    }
}
