//! The C API (`include/luanet.h`): the same core for C and C++ hosts.

use std::ffi::c_char;

/// The library version as a NUL-terminated string, e.g. `"0.1.0"`.
///
/// Thread-safe. The string is static: never free it.
#[no_mangle]
pub extern "C" fn luanet_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
