//! Keep-alive across calls: finished handles go back to a shared pool with
//! their open connections, and the next request takes the most recently used
//! one. A handle is only ever used by one thread at a time, which is what
//! makes the reuse safe for hosts that run Lua states on several threads.

use std::sync::Mutex;

use curl::easy::Easy2;

use super::Collector;

/// Idle handles kept; each holds libcurl's small per-handle connection cache.
const MAX_IDLE_HANDLES: usize = 16;

static IDLE: Mutex<Vec<Easy2<Collector>>> = Mutex::new(Vec::new());

/// A handle ready for a new request: options cleared, connections kept.
pub(super) fn take() -> Easy2<Collector> {
    let pooled = IDLE.lock().unwrap_or_else(|p| p.into_inner()).pop();
    match pooled {
        Some(mut easy) => {
            // Resets options only; live connections, DNS and TLS session
            // caches stay.
            easy.reset();
            easy
        }
        None => Easy2::new(Collector::default()),
    }
}

/// Returns a handle (and its connections) for reuse.
pub(super) fn give_back(mut easy: Easy2<Collector>) {
    easy.get_mut().body = Vec::new();
    let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
    if idle.len() < MAX_IDLE_HANDLES {
        idle.push(easy);
    }
}
