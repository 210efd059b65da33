//! The one lifetime rule of the library: once loaded, its code stays mapped
//! until the process exits.
//!
//! Lua 5.2+ `dlclose`s C modules in `lua_close`, and hosts unload plugins.
//! Work that can outlive a call (libcurl's resolver threads, the WebSocket
//! I/O thread, pooled connections) must never find its code unmapped, so the
//! first entry into the library pins it with `RTLD_NODELETE`. A later
//! `dlopen` of the same file reuses the pinned copy and its state.

use std::sync::Once;

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
