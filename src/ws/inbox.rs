//! What the I/O thread and the script's thread share for one socket: the
//! queue of complete incoming messages, the socket's phase, and the marks
//! that say who reads and writes it (input waiting, polls, output waiting).
//!
//! `poll` on an empty, open socket with no input waiting reads a few
//! atomics and returns: no lock, no system call, since scripts call it
//! every frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tungstenite::Bytes;

const OPEN: u8 = 0;
/// The script asked to close; the I/O thread is finishing the handshake.
const CLOSING: u8 = 1;
/// The connection is released.
const CLOSED: u8 = 2;

/// How long `recv` keeps checking before it sleeps. An answer from a peer
/// on the same host often comes sooner, and waking a sleeping thread costs
/// tens of microseconds (more under a hypervisor).
const SPIN: Duration = Duration::from_micros(50);

/// Spinning only helps when another core can deliver meanwhile.
fn can_spin() -> bool {
    static MULTICORE: LazyLock<bool> =
        LazyLock::new(|| std::thread::available_parallelism().is_ok_and(|cores| cores.get() > 1));
    *MULTICORE
}

/// Asks the CPU to start loading the next message (its first 2 KiB) while
/// the script handles this one: it was written on the I/O thread's core, and
/// copying it into a Lua string otherwise waits on every cache line.
fn prefetch(data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..data.len().min(2048)).step_by(64) {
        // SAFETY: a hint on an address inside `data`; it never faults.
        unsafe {
            std::arch::x86_64::_mm_prefetch(
                data.as_ptr().add(offset).cast(),
                std::arch::x86_64::_MM_HINT_T0,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// What a queued message costs beyond its payload (its queue entry and a
/// share of its burst), counted toward the inbox bound so that a flood of
/// tiny or empty messages is bounded too.
const PER_MESSAGE: usize = 48;

/// What a queued message of `payload` bytes counts toward the inbox bound.
pub(super) fn queued_cost(payload: usize) -> usize {
    payload.saturating_add(PER_MESSAGE)
}

/// What `poll` and `recv` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled {
    /// A complete message and whether it is text.
    Message(Bytes, bool),
    /// Nothing yet; the socket is open.
    Empty,
    /// The socket is closed and every message has been taken.
    Closed,
}

/// Incoming messages and the phase of one socket.
///
/// Two queues keep the threads off each other's lock: the I/O thread
/// appends its read bursts, whole, to `shared.arrived`; the reader takes
/// from `taken`, and only when `taken` runs dry swaps in every burst that
/// arrived, in one step. A burst is queued as it was read (one entry), so
/// delivering costs no copy of its messages however long the queue grows.
///
/// The inbox bound: past `max_queued_bytes` of unread messages the I/O
/// thread sets `paused` and stops reading the socket; the reader that brings
/// them down to half the bound clears it and has reading resumed. Both
/// sides write one of (`queued_bytes`, `paused`) and then read the other,
/// all `SeqCst`, so at least one of them sees the other's change: reading
/// never stays paused under an emptied inbox.
#[derive(Default)]
pub struct Inbox {
    phase: AtomicU8,
    /// Messages in both queues; read without a lock by `poll`.
    queued: AtomicUsize,
    /// What they count toward the bound: payload plus [`PER_MESSAGE`] each.
    queued_bytes: AtomicUsize,
    /// The inbox bound.
    max_queued_bytes: usize,
    /// The output bound.
    max_send_buffer_bytes: usize,
    /// The I/O thread stopped reading: the inbox reached its bound.
    paused: AtomicBool,
    /// Pongs received, for the keepalive.
    pongs: AtomicU64,
    /// Bytes `send` handed to tungstenite that the socket has not taken
    /// yet (lowered by the tunnel as it writes).
    unsent: Arc<AtomicUsize>,
    /// Input may be waiting unread (in the socket or tungstenite's buffer).
    readable: AtomicBool,
    /// How often the script polled; the I/O thread leaves input to a script
    /// that is polling.
    polls: AtomicU64,
    /// tungstenite holds output the socket could not take yet; the I/O
    /// thread writes it when the socket becomes writable.
    output_waiting: AtomicBool,
    /// When the unanswered ping went out ([`since_start`] nanoseconds; 0:
    /// none is waiting for its pong).
    ping_sent: AtomicU64,
    /// The round trip of the last answered ping, in nanoseconds plus one
    /// (0: none answered yet).
    latency: AtomicU64,
    taken: Mutex<Taken>,
    /// How the connection ended: set once, as it is released.
    close_info: OnceLock<super::CloseInfo>,
    shared: Mutex<Shared>,
    changed: Condvar,
}

/// A burst of messages, as the I/O thread read them.
pub(super) type Burst = Vec<(Bytes, bool)>;

/// The reader's side: the burst being read, and the ones after it.
#[derive(Default)]
struct Taken {
    current: std::vec::IntoIter<(Bytes, bool)>,
    bursts: VecDeque<Burst>,
}

impl Taken {
    fn next(&mut self) -> Option<(Bytes, bool)> {
        loop {
            if let Some(message) = self.current.next() {
                return Some(message);
            }
            self.current = self.bursts.pop_front()?.into_iter();
        }
    }

    /// The message after the one just taken, if it is at hand.
    fn peek(&self) -> Option<&(Bytes, bool)> {
        self.current.as_slice().first()
    }
}

#[derive(Default)]
struct Shared {
    arrived: VecDeque<Burst>,
    released: bool,
    error: Option<String>,
    /// Threads waiting on `changed`: no wake-up system call without one.
    waiters: usize,
}

/// Nanoseconds since the first call, at least 1: a clock in one atomic.
fn since_start() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    (START.elapsed().as_nanos() as u64).max(1)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inbox {
    /// An empty inbox for a socket with `limits`.
    pub fn new(limits: &super::Limits) -> Inbox {
        Inbox {
            max_queued_bytes: limits.max_queued_bytes,
            max_send_buffer_bytes: limits.max_send_buffer_bytes,
            ..Inbox::default()
        }
    }

    /// What the tunnel lowers as it writes (see [`Inbox::buffered_amount`]).
    pub(super) fn unsent_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.unsent)
    }

    /// A message of `bytes` (framing included) goes to tungstenite.
    pub(super) fn add_unsent(&self, bytes: usize) {
        let unsent = self.unsent.load(Ordering::Relaxed);
        self.unsent.store(unsent.saturating_add(bytes), Ordering::Release);
    }

    /// tungstenite refused a message of `bytes` whole.
    pub(super) fn remove_unsent(&self, bytes: usize) {
        let unsent = self.unsent.load(Ordering::Relaxed);
        self.unsent.store(unsent.saturating_sub(bytes), Ordering::Release);
    }

    /// The output bound: past it `send` refuses a message.
    pub(super) fn max_send_buffer_bytes(&self) -> usize {
        self.max_send_buffer_bytes
    }

    /// Bytes of sent messages (and pings) the socket has not taken yet.
    /// Control frames tungstenite writes on its own (pongs, the close)
    /// lower it too, so behind a backlog it may read a little low; once
    /// everything is written it is 0.
    pub fn buffered_amount(&self) -> usize {
        self.unsent.load(Ordering::Acquire)
    }

    /// What the unread messages count toward the bound ([`queued_cost`]).
    pub(super) fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::SeqCst)
    }

    pub(super) fn max_queued_bytes(&self) -> usize {
        self.max_queued_bytes
    }

    /// I/O thread, with the inbox at its bound: pauses reading, unless the
    /// reader brought the inbox under the bound meanwhile. True: paused.
    pub(super) fn try_pause(&self) -> bool {
        self.paused.store(true, Ordering::SeqCst);
        if self.queued_bytes.load(Ordering::SeqCst) < self.max_queued_bytes {
            self.paused.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Reader, after taking a message: true when reading was paused and
    /// the inbox is now down to half its bound, once (the caller then has
    /// the I/O thread read again).
    pub(super) fn resume_due(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
            && self.queued_bytes.load(Ordering::SeqCst) <= self.max_queued_bytes / 2
            && self.paused.swap(false, Ordering::SeqCst)
    }

    /// Pongs received so far.
    pub(super) fn pongs(&self) -> u64 {
        self.pongs.load(Ordering::Acquire)
    }

    /// True until the script closes the socket or the connection ends.
    pub fn is_open(&self) -> bool {
        self.phase.load(Ordering::Acquire) == OPEN
    }

    /// The next message without waiting.
    pub fn poll(&self) -> Polled {
        if self.queued.load(Ordering::Acquire) == 0 && self.is_open() {
            return Polled::Empty;
        }
        let mut taken = lock(&self.taken);
        let found = match taken.next() {
            None => {
                std::mem::swap(&mut taken.bursts, &mut lock(&self.shared).arrived);
                taken.next()
            }
            found => found,
        };
        match found {
            Some((data, is_text)) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                self.queued_bytes.fetch_sub(queued_cost(data.len()), Ordering::SeqCst);
                if let Some((next, _)) = taken.peek() {
                    prefetch(next);
                }
                Polled::Message(data, is_text)
            }
            None if self.is_open() => Polled::Empty,
            None => Polled::Closed,
        }
    }

    /// A ping is going out now; its pong gives the latency.
    /// While an earlier ping waits, its mark stays: the first pong answers
    /// the first ping (a keepalive ping must not shorten a script's).
    pub(super) fn ping_sent(&self) {
        let _ =
            self.ping_sent.compare_exchange(0, since_start(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// A pong arrived: the answer to the waiting ping, if there is one.
    pub(super) fn pong_received(&self) {
        self.pongs.fetch_add(1, Ordering::AcqRel);
        let sent = self.ping_sent.swap(0, Ordering::AcqRel);
        if sent != 0 {
            let round_trip = since_start().saturating_sub(sent);
            self.latency.store(round_trip + 1, Ordering::Release);
        }
    }

    /// The round trip of the last answered ping.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos - 1)),
        }
    }

    /// Input may be waiting that nobody has read yet.
    pub(super) fn readable(&self) -> bool {
        self.readable.load(Ordering::SeqCst)
    }

    /// Before a read that may reach the socket: input arriving after it
    /// marks the socket readable again.
    pub(super) fn clear_readable(&self) {
        self.readable.store(false, Ordering::SeqCst);
    }

    pub(super) fn mark_readable(&self) {
        self.readable.store(true, Ordering::SeqCst);
    }

    /// After a read that returned a message: more may sit in tungstenite's
    /// buffer. Set under the wire lock, which the I/O thread takes before it
    /// looks, so no fence.
    pub(super) fn mark_maybe_more(&self) {
        self.readable.store(true, Ordering::Release);
    }

    pub(super) fn output_waiting(&self) -> bool {
        self.output_waiting.load(Ordering::SeqCst)
    }

    /// Set after every write to the socket, under the wire lock.
    pub(super) fn set_output_waiting(&self, waiting: bool) {
        self.output_waiting.store(waiting, Ordering::SeqCst);
    }

    /// Counts a poll by the script. Only a sign of life for the I/O thread:
    /// a count lost between two threads polling one socket does not matter.
    pub(super) fn note_poll(&self) {
        let polls = self.polls.load(Ordering::Relaxed);
        self.polls.store(polls.wrapping_add(1), Ordering::Relaxed);
    }

    pub(super) fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Whether a `recv` sleeps waiting for the I/O thread.
    pub(super) fn has_sleepers(&self) -> bool {
        lock(&self.shared).waiters > 0
    }

    /// The next message from `poll`, waiting up to `timeout` (forever when
    /// `None`). Checks again and again for `SPIN` before it sleeps.
    pub fn recv(&self, timeout: Option<Duration>, poll: impl Fn() -> Polled) -> Polled {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let spin_until = can_spin().then(|| deadline.map_or(start + SPIN, |d| d.min(start + SPIN)));
        loop {
            match poll() {
                Polled::Empty => {}
                found => return found,
            }
            if spin_until.is_some_and(|until| Instant::now() < until) {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
                continue;
            }
            let shared = lock(&self.shared);
            // Checked under the lock that `deliver` and `release` take, so
            // no wake-up is missed between the poll above and the wait. The
            // I/O thread marks input readable before it looks for sleepers:
            // unmarked input finds this one asleep, and reads it for it.
            if shared.arrived.is_empty() && !shared.released && self.is_open() {
                if self.readable() {
                    // Input another thread is reading right now: let it.
                    drop(shared);
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Polled::Empty;
                    }
                    std::thread::yield_now();
                    continue;
                }
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left.is_some_and(|left| left.is_zero()) {
                    return Polled::Empty;
                }
                self.wait(shared, left);
            }
        }
    }

    /// Waits on `changed` once, at most `timeout`.
    fn wait(&self, mut shared: MutexGuard<'_, Shared>, timeout: Option<Duration>) {
        shared.waiters += 1;
        let mut shared = match timeout {
            None => self.changed.wait(shared).unwrap_or_else(|p| p.into_inner()),
            Some(t) => self.changed.wait_timeout(shared, t).unwrap_or_else(|p| p.into_inner()).0,
        };
        shared.waiters -= 1;
    }

    /// Marks the socket closing; true for the caller that did it first.
    pub fn begin_close(&self) -> bool {
        self.phase.compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Waits until the I/O thread has released the connection, at most
    /// `timeout`.
    pub fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let shared = lock(&self.shared);
            let left = deadline.saturating_duration_since(Instant::now());
            if shared.released || left.is_zero() {
                return;
            }
            self.wait(shared, Some(left));
        }
    }

    /// Why the connection ended, if it was not a clean close.
    pub fn close_error(&self) -> Option<String> {
        lock(&self.shared).error.clone()
    }

    /// How the connection ended, once it is released.
    pub fn close_info(&self) -> Option<&super::CloseInfo> {
        self.close_info.get()
    }

    /// I/O thread: queues complete messages.
    pub(super) fn deliver(&self, batch: Burst) {
        let count = batch.len();
        let bytes = batch.iter().map(|(data, _)| queued_cost(data.len())).sum();
        let mut shared = lock(&self.shared);
        shared.arrived.push_back(batch);
        self.queued_bytes.fetch_add(bytes, Ordering::SeqCst);
        self.queued.fetch_add(count, Ordering::AcqRel);
        let waiting = shared.waiters > 0;
        drop(shared);
        if waiting {
            self.changed.notify_all();
        }
        crate::wakeup::notify();
    }

    /// I/O thread: the connection is gone; messages already queued stay.
    pub(super) fn release(&self, error: Option<String>, info: super::CloseInfo) {
        let _ = self.close_info.set(info);
        // The connection is gone, and what waited unwritten with it.
        self.unsent.store(0, Ordering::Release);
        let mut shared = lock(&self.shared);
        shared.released = true;
        if shared.error.is_none() {
            shared.error = error;
        }
        self.phase.store(CLOSED, Ordering::Release);
        drop(shared);
        self.changed.notify_all();
        crate::wakeup::notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::Limits;
    use std::sync::mpsc;

    /// The pause protocol under contention: a producer that delivers while
    /// under the bound and otherwise pauses until told to resume, and a
    /// reader that takes messages and resumes it when due. Reading never
    /// stays paused under an emptied inbox (the run would hang), and every
    /// message arrives once, in order.
    #[test]
    fn pausing_never_strands_the_reader() {
        const MESSAGES: u32 = 200_000;
        let limits = Limits { max_queued_bytes: 64, ..Limits::default() };
        let inbox = Arc::new(Inbox::new(&limits));
        let (resume, resumed) = mpsc::channel::<()>();
        let producer = {
            let inbox = Arc::clone(&inbox);
            std::thread::spawn(move || {
                let mut next = 0u32;
                while next < MESSAGES {
                    if inbox.queued_bytes() >= inbox.max_queued_bytes() && inbox.try_pause() {
                        resumed.recv_timeout(Duration::from_secs(10)).expect("resumed in time");
                        continue;
                    }
                    let burst = (next..MESSAGES.min(next + 3))
                        .map(|i| (Bytes::from(i.to_le_bytes().to_vec()), false))
                        .collect();
                    next = MESSAGES.min(next + 3);
                    inbox.deliver(burst);
                }
            })
        };
        let mut expected = 0u32;
        while expected < MESSAGES {
            match inbox.poll() {
                Polled::Message(data, _) => {
                    assert_eq!(data.as_ref(), expected.to_le_bytes(), "in order");
                    expected += 1;
                    if inbox.resume_due() {
                        let _ = resume.send(());
                    }
                }
                Polled::Empty => std::thread::yield_now(),
                Polled::Closed => unreachable!("never released"),
            }
        }
        producer.join().expect("the producer finished");
        assert_eq!(inbox.queued_bytes(), 0);
    }
}
