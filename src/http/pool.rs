//! Keep-alive across calls: finished handles go back to a shared pool with
//! their open connections, and the next request takes the most recently used
//! one. A handle is only ever used by one thread at a time, which is what
//! makes the reuse safe for hosts that run Lua states on several threads.

use std::sync::{Mutex, MutexGuard};

use curl::easy::Easy2;

use super::{new_handle, Collector};

/// Idle handles kept; each holds libcurl's small per-handle connection cache.
const MAX_IDLE_HANDLES: usize = 16;

static IDLE: Mutex<Vec<Easy2<Collector>>> = Mutex::new(Vec::new());

/// The most recently used idle handle, or a new one. Either is set up for
/// a GET; the request sets only what is its own.
pub(super) fn take() -> Result<Easy2<Collector>, curl::Error> {
    crate::lifetime::watch_fork();
    let pooled = IDLE.lock().unwrap_or_else(|p| p.into_inner()).pop();
    match pooled {
        Some(easy) => Ok(easy),
        None => new_handle(),
    }
}

pub(super) fn give_back(easy: Easy2<Collector>) {
    if easy.get_ref().broken {
        return;
    }
    let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
    if idle.len() < MAX_IDLE_HANDLES {
        idle.push(easy);
    }
}

/// The pool held across `fork()` (see `crate::lifetime`).
pub(crate) fn hold_for_fork() -> Box<dyn crate::lifetime::HeldAcrossFork> {
    Box::new(PoolHeld(IDLE.lock().unwrap_or_else(|p| p.into_inner())))
}

struct PoolHeld(MutexGuard<'static, Vec<Easy2<Collector>>>);

impl crate::lifetime::HeldAcrossFork for PoolHeld {
    /// The pooled connections are the parent's: forget them unclosed.
    fn forget_in_child(mut self: Box<Self>) {
        std::mem::forget(std::mem::take(&mut *self.0));
    }
}
