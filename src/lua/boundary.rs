//! The boundary every Lua-facing function crosses: no panic unwinds into
//! Lua, and a Lua error is raised only after every Rust value of the call has
//! been dropped (`lua_error` longjmps over Rust frames).

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::compat::{lua_State, lua_error, push_bytes};

/// The body of a Lua function: returns how many results it pushed, or the
/// message of the Lua error to raise.
pub(crate) type LuaBody = unsafe fn(*mut lua_State) -> Result<c_int, String>;

/// Runs `body`, turning an `Err` or a panic into a Lua error.
///
/// # Safety
/// `L` is the state Lua called the C function with.
pub(crate) unsafe fn protect(L: *mut lua_State, body: LuaBody) -> c_int {
    let message = match catch_unwind(AssertUnwindSafe(|| unsafe { body(L) })) {
        // LuaJIT's x64 interpreter reads the full 64-bit register of a C
        // function's `int` result. The count lives in a wider enum here, so
        // without a separate 32-bit load the upper half is garbage and
        // LuaJIT crashes returning the results. black_box forces the load.
        Ok(Ok(results)) => return std::hint::black_box(results),
        Ok(Err(message)) => message,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            format!("luanet internal error: {what}")
        }
    };
    unsafe { push_bytes(L, message.as_bytes()) };
    drop(message);
    unsafe { lua_error(L) }
}

/// Declares `extern "C-unwind" fn $name(L)` that runs `$body` inside
/// [`protect`].
macro_rules! lua_function {
    ($(#[$doc:meta])* $name:ident => $body:path) => {
        $(#[$doc])*
        pub(crate) unsafe extern "C-unwind" fn $name(
            L: *mut $crate::lua::compat::lua_State,
        ) -> ::std::ffi::c_int {
            // SAFETY: Lua calls C functions with a valid state.
            unsafe { $crate::lua::boundary::protect(L, $body) }
        }
    };
}
pub(crate) use lua_function;
