//! Non-blocking requests: a [`Fetch`] is a request handed to the I/O
//! thread, which performs it with libcurl's multi interface (see
//! [`super::transfers`]) while the script's thread polls for the outcome.
//!
//! What the two threads share is a [`Shared`]:
//! - the outcome, set once (`OnceLock`): by the I/O thread when the request
//!   ends, or by the script's thread when it cancels first. Polling a
//!   pending request is one atomic load: no system call, no lock;
//! - progress counters (atomics), written by the I/O thread;
//! - with `stream`, the body bytes not yet read, under a mutex that either
//!   side holds only to append or to take them.
//!
//! Lock order: `stream`, then `sleepers`. The I/O thread never waits for a
//! script: it holds each lock only for a copy.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::error::{ErrorKind, RequestError};
use super::request::Reply;
use super::RequestOptions;

/// Body bytes a streaming request buffers for a script that does not read:
/// past this the transfer pauses until it reads.
pub const STREAM_BOUND: usize = 1 << 20;
/// Connections to one host, by default: browsers' figure, which servers
/// expect of one client.
pub const DEFAULT_MAX_HOST_CONNECTIONS: usize = 6;
/// Connections in all, by default: many hosts at browser concurrency, well
/// inside a default open-file limit of 1,024.
pub const DEFAULT_MAX_TOTAL_CONNECTIONS: usize = 256;
/// The most either cap may be set to.
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// The caps for requests started from now on (see [`configure`]).
static MAX_HOST: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_HOST_CONNECTIONS);
static MAX_TOTAL: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_TOTAL_CONNECTIONS);

/// The connection caps: per host and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections to one host (scheme, host and port).
    pub max_host_connections: usize,
    /// Connections in all.
    pub max_total_connections: usize,
}

/// The caps in effect.
pub fn limits() -> Limits {
    Limits {
        max_host_connections: MAX_HOST.load(Ordering::Relaxed),
        max_total_connections: MAX_TOTAL.load(Ordering::Relaxed),
    }
}

/// Sets the caps for requests started after the call, process-wide (every
/// Lua state shares the I/O thread). `None` keeps a cap as it is.
pub fn configure(host: Option<usize>, total: Option<usize>) -> Result<Limits, String> {
    for (name, value) in [("max_host_connections", host), ("max_total_connections", total)] {
        if let Some(value) = value {
            if value == 0 || value > MAX_CONNECTIONS {
                return Err(format!("{name} must be between 1 and {MAX_CONNECTIONS}"));
            }
        }
    }
    if let Some(host) = host {
        MAX_HOST.store(host, Ordering::Relaxed);
    }
    if let Some(total) = total {
        MAX_TOTAL.store(total, Ordering::Relaxed);
    }
    Ok(limits())
}

/// What `stream` adds to a request's rules: the body goes to the script,
/// so not to an output file.
pub fn check_stream(options: &RequestOptions, stream: bool) -> Result<(), &'static str> {
    match stream && options.output.is_some() {
        true => Err("stream and output cannot be combined"),
        false => Ok(()),
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not finished.
    Pending,
    /// A response arrived (any status).
    Done,
    /// It failed: the outcome says why.
    Failed,
    /// The script cancelled it.
    Cancelled,
}

impl State {
    /// `"pending"`, `"done"`, `"failed"` or `"cancelled"`.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }
}

/// Bytes so far and in all (`None`: not announced), both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Body bytes received, as they came off the wire (before decoding).
    pub received: u64,
    /// The announced `Content-Length`.
    pub receive_total: Option<u64>,
    /// Body bytes sent.
    pub sent: u64,
    /// The size of the body to send.
    pub send_total: Option<u64>,
}

/// What a streaming request's `read` finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<B = Vec<u8>> {
    /// The body bytes that arrived since the last read (or how many were
    /// copied out).
    Bytes(B),
    /// Nothing new yet.
    Empty,
    /// The body has ended, or the request failed or was cancelled.
    End,
}

/// Identifies a request to the I/O thread.
pub(crate) type FetchId = u64;

/// `u64::MAX` in a total: not announced.
const UNKNOWN: u64 = u64::MAX;

/// The state the script's thread and the I/O thread share for one request.
pub(crate) struct Shared {
    pub(crate) id: FetchId,
    outcome: OnceLock<Ended>,
    received: AtomicU64,
    receive_total: AtomicU64,
    sent: AtomicU64,
    send_total: AtomicU64,
    /// With `stream`: the body bytes not read yet.
    stream: Option<Mutex<Streamed>>,
    /// Threads in `wait`; the I/O thread takes the lock only when there are.
    waiting: AtomicUsize,
    sleepers: Mutex<()>,
    woken: Condvar,
}

/// How a request ended: its outcome, and whether that came from a cancel.
struct Ended {
    result: Result<Reply, RequestError>,
    cancelled: bool,
}

#[derive(Default)]
struct Streamed {
    bytes: Vec<u8>,
    /// The transfer is paused until the script reads.
    paused: bool,
}

/// What a stream push asks of the transfer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Taken,
    /// The buffer is full: pause until the script reads.
    Pause,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn new(id: FetchId, stream: bool) -> Shared {
        Shared {
            id,
            outcome: OnceLock::new(),
            received: AtomicU64::new(0),
            receive_total: AtomicU64::new(UNKNOWN),
            sent: AtomicU64::new(0),
            send_total: AtomicU64::new(UNKNOWN),
            stream: stream.then(|| Mutex::new(Streamed::default())),
            waiting: AtomicUsize::new(0),
            sleepers: Mutex::new(()),
            woken: Condvar::new(),
        }
    }

    pub(crate) fn is_streaming(&self) -> bool {
        self.stream.is_some()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.outcome.get().is_some()
    }

    /// Sets the outcome unless one is set; true when this one was.
    pub(crate) fn finish(&self, result: Result<Reply, RequestError>) -> bool {
        self.end(Ended { result, cancelled: false })
    }

    fn end(&self, ended: Ended) -> bool {
        let set = self.outcome.set(ended).is_ok();
        if set {
            crate::wakeup::notify();
        }
        // Pairs with the fence in `wait`: either the waiter sees the
        // outcome, or this sees the waiter.
        fence(Ordering::SeqCst);
        if set && self.waiting.load(Ordering::SeqCst) > 0 {
            // Under the lock: a waiter between its check and its sleep
            // cannot miss this.
            let _sleepers = lock(&self.sleepers);
            self.woken.notify_all();
        }
        set
    }

    /// On the I/O thread: body bytes of a streaming request.
    pub(crate) fn push(&self, data: &[u8]) -> Pushed {
        let Some(stream) = &self.stream else { return Pushed::Taken };
        let mut stream = lock(stream);
        if stream.bytes.len() >= STREAM_BOUND {
            stream.paused = true;
            return Pushed::Pause;
        }
        stream.bytes.extend_from_slice(data);
        drop(stream);
        crate::wakeup::notify();
        Pushed::Taken
    }

    pub(crate) fn progress(&self) -> Progress {
        let total = |t: &AtomicU64| Some(t.load(Ordering::Relaxed)).filter(|&t| t != UNKNOWN);
        Progress {
            received: self.received.load(Ordering::Relaxed),
            receive_total: total(&self.receive_total),
            sent: self.sent.load(Ordering::Relaxed),
            send_total: total(&self.send_total),
        }
    }

    /// On the I/O thread: libcurl's counters (`0` totals: not announced).
    pub(crate) fn set_progress(&self, progress: Progress) {
        let total = |t: Option<u64>| t.unwrap_or(UNKNOWN);
        self.received.store(progress.received, Ordering::Relaxed);
        self.receive_total.store(total(progress.receive_total), Ordering::Relaxed);
        self.sent.store(progress.sent, Ordering::Relaxed);
        self.send_total.store(total(progress.send_total), Ordering::Relaxed);
    }
}

/// A request running on the I/O thread, seen from the thread that started
/// it. Dropping it cancels the request.
pub struct Fetch {
    shared: Arc<Shared>,
    /// The fork generation it was started in: in a forked child the I/O
    /// thread that runs it does not exist.
    generation: u64,
}

/// A finished request's outcome, alive on its own (the request may be
/// dropped meanwhile).
pub struct Finished(Arc<Shared>);

impl Finished {
    /// The outcome, set once and never changed.
    pub fn outcome(&self) -> &Result<Reply, RequestError> {
        match self.0.outcome.get() {
            Some(ended) => &ended.result,
            None => inherited(),
        }
    }
}

/// The outcome of a request seen in a forked child. The child touches
/// nothing the request shares with its parent's I/O thread: a lock or a
/// slot that thread held at the fork would stay held forever.
fn inherited() -> &'static Result<Reply, RequestError> {
    static INHERITED: OnceLock<Result<Reply, RequestError>> = OnceLock::new();
    INHERITED.get_or_init(|| {
        Err(RequestError::new(
            ErrorKind::Aborted,
            "the request was started before fork() and does not run in this process",
        ))
    })
}

/// What the I/O thread gets for a new request.
pub(crate) struct Job {
    pub(crate) options: RequestOptions,
    pub(crate) shared: Arc<Shared>,
    pub(crate) started: Instant,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The cancelled request's outcome.
fn cancelled() -> RequestError {
    RequestError::new(ErrorKind::Aborted, "cancelled")
}

impl Fetch {
    /// Hands `options` to the I/O thread, starting it if needed. With
    /// `stream`, the body is read piece by piece with [`Fetch::read`] and
    /// the reply's body is empty.
    pub fn start(options: RequestOptions, stream: bool) -> Result<Fetch, RequestError> {
        let started = Instant::now();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared::new(id, stream));
        let job = Job { options, shared: Arc::clone(&shared), started };
        crate::ws::engine::fetch(job).map_err(|e| RequestError::new(ErrorKind::Io, e))?;
        Ok(Fetch { shared, generation: crate::lifetime::generation() })
    }

    /// Whether this process is a forked child of the one that started it.
    fn inherited(&self) -> bool {
        self.generation != crate::lifetime::generation()
    }

    /// The outcome, once there is one. One atomic load while pending.
    pub fn poll(&self) -> Option<&Result<Reply, RequestError>> {
        if self.inherited() {
            return Some(inherited());
        }
        self.shared.outcome.get().map(|ended| &ended.result)
    }

    /// The outcome as a value of its own, once there is one.
    pub fn finished(&self) -> Option<Finished> {
        self.poll().map(|_| Finished(Arc::clone(&self.shared)))
    }

    /// Waits for the outcome, at most `timeout` (`None`: as long as it
    /// takes). `None` when the time ran out first. A streaming request
    /// ends only once its body has been read.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<&Result<Reply, RequestError>> {
        if let Some(outcome) = self.poll() {
            return Some(outcome);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let shared = &*self.shared;
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut sleepers = lock(&shared.sleepers);
        while shared.outcome.get().is_none() {
            sleepers = match deadline {
                None => shared.woken.wait(sleepers).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    shared.woken.wait_timeout(sleepers, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
        drop(sleepers);
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        self.poll()
    }

    /// Stops the request unless it has finished: its outcome becomes
    /// "cancelled" (kind aborted) at once, and the I/O thread drops the
    /// transfer (libcurl closes or keeps its connection).
    pub fn cancel(&self) {
        if self.inherited() || self.shared.is_finished() {
            return;
        }
        if self.shared.end(Ended { result: Err(cancelled()), cancelled: true }) {
            crate::ws::engine::cancel_fetch(self.shared.id);
        }
    }

    /// Where the request stands.
    pub fn state(&self) -> State {
        if self.inherited() {
            return State::Failed;
        }
        match self.shared.outcome.get() {
            None => State::Pending,
            Some(Ended { cancelled: true, .. }) => State::Cancelled,
            Some(Ended { result: Ok(_), .. }) => State::Done,
            Some(Ended { result: Err(_), .. }) => State::Failed,
        }
    }

    /// Bytes so far, both ways.
    pub fn progress(&self) -> Progress {
        self.shared.progress()
    }

    /// With `stream`: the body bytes that arrived since the last read.
    /// `None` for a request started without `stream`.
    pub fn read(&self) -> Option<Chunk> {
        let stream = self.shared.stream.as_ref()?;
        if self.inherited() {
            return Some(Chunk::End);
        }
        // Looked at first: every byte was pushed before the outcome was
        // set, so an outcome seen now means nothing more comes.
        let ended = self.shared.is_finished();
        let mut stream = lock(stream);
        if !stream.bytes.is_empty() {
            let bytes = std::mem::take(&mut stream.bytes);
            if std::mem::take(&mut stream.paused) {
                crate::ws::engine::resume_fetch(self.shared.id);
            }
            return Some(Chunk::Bytes(bytes));
        }
        Some(if ended { Chunk::End } else { Chunk::Empty })
    }
}

impl Fetch {
    /// As [`Fetch::read`], into `buf`: `Bytes` holds the count copied, and
    /// what did not fit stays for the next read.
    pub fn read_into(&self, buf: &mut [u8]) -> Option<Chunk<usize>> {
        let stream = self.shared.stream.as_ref()?;
        if self.inherited() {
            return Some(Chunk::End);
        }
        let ended = self.shared.is_finished(); // first, as in `read`
        let mut stream = lock(stream);
        if !stream.bytes.is_empty() && !buf.is_empty() {
            let n = buf.len().min(stream.bytes.len());
            buf[..n].copy_from_slice(&stream.bytes[..n]);
            stream.bytes.drain(..n);
            if stream.paused && stream.bytes.len() < STREAM_BOUND {
                stream.paused = false;
                crate::ws::engine::resume_fetch(self.shared.id);
            }
            return Some(Chunk::Bytes(n));
        }
        Some(if stream.bytes.is_empty() && ended { Chunk::End } else { Chunk::Empty })
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fetch({}, {})", self.shared.id, self.state().name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request that is not handed to the I/O thread (cancelling it sends
    /// nothing: no engine runs in unit tests).
    fn detached(stream: bool) -> Fetch {
        Fetch {
            shared: Arc::new(Shared::new(0, stream)),
            generation: crate::lifetime::generation(),
        }
    }

    #[test]
    fn waiters_and_a_cancel_racing_the_end_all_see_one_outcome() {
        for round in 0..200 {
            let fetch = Arc::new(detached(false));
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    let fetch = Arc::clone(&fetch);
                    std::thread::spawn(move || {
                        let outcome: *const _ = fetch.wait(None).expect("no timeout");
                        (outcome as usize, fetch.state())
                    })
                })
                .collect();
            let canceller = {
                let fetch = Arc::clone(&fetch);
                std::thread::spawn(move || fetch.cancel())
            };
            let reply = Reply { status: 200 + round % 2, ..Reply::default() };
            let ended_first = fetch.shared.finish(Ok(reply));
            canceller.join().unwrap();
            let seen: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
            let outcome: *const _ = fetch.poll().unwrap();
            let state = if ended_first { State::Done } else { State::Cancelled };
            for (address, waiter_state) in seen {
                assert_eq!(
                    address, outcome as usize,
                    "round {round}: one outcome for every waiter"
                );
                assert_eq!(waiter_state, state, "round {round}");
            }
            assert_eq!(fetch.state(), state);
        }
    }

    #[test]
    fn a_timed_wait_gives_up_and_a_stream_reads_in_order() {
        let fetch = detached(true);
        let started = Instant::now();
        assert!(fetch.wait(Some(Duration::from_millis(30))).is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(fetch.read(), Some(Chunk::Empty));
        assert_eq!(fetch.shared.push(b"abc"), Pushed::Taken);
        assert_eq!(fetch.shared.push(b"def"), Pushed::Taken);
        let mut two = [0u8; 2];
        assert_eq!(fetch.read_into(&mut two), Some(Chunk::Bytes(2)));
        assert_eq!(&two, b"ab");
        assert_eq!(fetch.read(), Some(Chunk::Bytes(b"cdef".to_vec())));
        fetch.shared.finish(Ok(Reply::default()));
        assert_eq!(fetch.read(), Some(Chunk::End));
        assert_eq!(detached(false).read(), None);
    }

    #[test]
    fn caps_are_checked_and_kept() {
        assert!(configure(Some(0), None).is_err());
        assert!(configure(None, Some(MAX_CONNECTIONS + 1)).is_err());
        let before = limits();
        assert_eq!(configure(None, None).unwrap(), before);
    }

    #[test]
    fn a_stream_pauses_past_its_bound_and_the_outcome_is_set_once() {
        let shared = Shared::new(1, true);
        let piece = vec![7u8; 64 << 10];
        let mut pushed = 0;
        while shared.push(&piece) == Pushed::Taken {
            pushed += piece.len();
        }
        assert_eq!(pushed, STREAM_BOUND);
        assert!(lock(shared.stream.as_ref().unwrap()).paused);
        assert!(shared.finish(Err(cancelled())));
        assert!(!shared.finish(Ok(Reply::default())));
        let outcome = &shared.outcome.get().unwrap().result;
        assert!(matches!(outcome, Err(e) if e.kind == ErrorKind::Aborted));
        assert_eq!(Shared::new(2, false).push(b"x"), Pushed::Taken);
    }
}
