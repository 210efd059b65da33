//! The lifetime rules of the library.
//!
//! Once loaded, its code stays mapped until the process exits. Lua 5.2+
//! `dlclose`s C modules in `lua_close`, and hosts unload plugins. Work that
//! can outlive a call (libcurl's resolver threads, the WebSocket I/O
//! thread, pooled connections) must never find its code unmapped, so the
//! first entry into the library pins it with `RTLD_NODELETE`. A later
//! `dlopen` of the same file reuses the pinned copy and its state.
//!
//! After `fork()` the child starts afresh. It has no I/O thread, and the
//! connections it inherited belong to the parent: it must never write to
//! them (a close frame or a TLS close_notify would end the parent's). So
//! the engines' shared state is locked across the fork (lock order: the
//! WebSocket engine, then the HTTP pool), and in the child each engine
//! forgets what it had, without closing anything, and the fork
//! [`generation`] moves on: a socket from an earlier generation reads as
//! closed and is dropped without a word to its peer.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Incremented in the child of every `fork()`.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Which side of the forks this process is: objects made under another
/// generation were inherited from a parent.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Installs the `fork()` handlers once; every engine calls it before it
/// first keeps state.
pub fn watch_fork() {
    static WATCH: Once = Once::new();
    WATCH.call_once(|| {
        // SAFETY: three handlers that never unwind (see below).
        unsafe { libc::pthread_atfork(Some(before_fork), Some(in_parent), Some(in_child)) };
    });
}

/// A lock an engine holds across `fork()`: released in the parent when
/// dropped; in the child, [`HeldAcrossFork::forget_in_child`] first forgets
/// what the engine had (the parent's), then releases it.
pub trait HeldAcrossFork {
    /// Forgets the parent's state without closing anything, and unlocks.
    fn forget_in_child(self: Box<Self>);
}

thread_local! {
    /// What the forking thread holds between the handlers, in lock order.
    static HELD: RefCell<Vec<Box<dyn HeldAcrossFork>>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn before_fork() {
    let engine = crate::ws::hold_for_fork();
    let pool = crate::http::hold_for_fork();
    let _ = HELD.try_with(|held| held.borrow_mut().extend([engine, pool]));
}

extern "C" fn in_parent() {
    let _ = HELD.try_with(|held| {
        while let Some(lock) = held.borrow_mut().pop() {
            drop(lock);
        }
    });
}

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    let _ = HELD.try_with(|held| {
        while let Some(lock) = held.borrow_mut().pop() {
            lock.forget_in_child();
        }
    });
}

/// Pins the shared object holding this function; harmless when the library
/// is linked statically or the pin was already taken.
pub fn pin_library() {
    static PIN: Once = Once::new();
    PIN.call_once(|| {
        // SAFETY: dladdr only reads the loader's tables; dlopen with
        // RTLD_NOLOAD never maps anything new, it only adds a reference to
        // the already-loaded object and marks it undeletable.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let addr = pin_library as *const libc::c_void;
            if libc::dladdr(addr, &mut info) != 0 && !info.dli_fname.is_null() {
                libc::dlopen(
                    info.dli_fname,
                    libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
                );
            }
        }
    });
}
