//! `failing_alloc script.lua`: c_tests/failing_alloc.c (a host whose
//! allocator refuses allocations) on Lua 5.5; build.rs compiles it.

use std::ffi::{c_char, c_int, CString};

// Links Lua 5.5 (the C host calls it; net.so finds it exported).
use mlua_sys as _;

extern "C" {
    fn failing_alloc_main(argc: c_int, argv: *const *const c_char) -> c_int;
}

fn main() {
    let args: Vec<CString> =
        std::env::args().map(|a| CString::new(a).expect("no NUL in arguments")).collect();
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    // SAFETY: argv holds argc valid C strings that outlive the call.
    let status = unsafe { failing_alloc_main(argv.len() as c_int, argv.as_ptr()) };
    std::process::exit(status);
}
