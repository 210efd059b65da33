//! What the I/O thread and the script's thread share for one socket: the
//! queue of complete incoming messages and the socket's phase.
//!
//! `poll` on an empty, open socket reads two atomics and returns: no lock,
//! no system call, since scripts call it every frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tungstenite::Bytes;

const OPEN: u8 = 0;
/// The script asked to close; the I/O thread is finishing the handshake.
const CLOSING: u8 = 1;
/// The connection is released.
const CLOSED: u8 = 2;

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
#[derive(Default)]
pub struct Inbox {
    phase: AtomicU8,
    queued: AtomicUsize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    messages: VecDeque<(Bytes, bool)>,
    released: bool,
    error: Option<String>,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let mut state = self.lock();
        self.take(&mut state)
    }

    /// The next message, waiting up to `timeout` (forever when `None`).
    pub fn recv(&self, timeout: Option<Duration>) -> Polled {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.lock();
        loop {
            match self.take(&mut state) {
                Polled::Empty => {}
                found => return found,
            }
            state = match deadline {
                None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Polled::Empty;
                    }
                    self.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }

    fn take(&self, state: &mut State) -> Polled {
        if let Some((data, is_text)) = state.messages.pop_front() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            Polled::Message(data, is_text)
        } else if self.is_open() {
            Polled::Empty
        } else {
            Polled::Closed
        }
    }

    /// Marks the socket closing; true for the caller that did it first.
    pub fn begin_close(&self) -> bool {
        self.phase.compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Waits until the I/O thread has released the connection, at most
    /// `timeout`.
    pub fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !state.released {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Why the connection ended, if it was not a clean close.
    pub fn close_error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// I/O thread: queues complete messages.
    pub(super) fn deliver(&self, batch: Vec<(Bytes, bool)>) {
        let count = batch.len();
        let mut state = self.lock();
        state.messages.extend(batch);
        self.queued.fetch_add(count, Ordering::AcqRel);
        drop(state);
        self.changed.notify_all();
    }

    /// I/O thread: the connection is gone; messages already queued stay.
    pub(super) fn release(&self, error: Option<String>) {
        let mut state = self.lock();
        state.released = true;
        if state.error.is_none() {
            state.error = error;
        }
        self.phase.store(CLOSED, Ordering::Release);
        drop(state);
        self.changed.notify_all();
    }
}
