//! Exports the Lua C API from the executables so that C modules loaded with
//! `require` (luanet's net.so) find their `lua_*` symbols in them, and
//! builds c_tests/failing_alloc.c against this Lua 5.5 for the
//! `failing_alloc` executable, under ASan as the C tests are.
fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic");
    let source = "../../c_tests/failing_alloc.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-changed=../../c_tests/check.h");
    let include =
        std::env::var("DEP_LUA_INCLUDE").expect("mlua-sys (vendored) exports its include dir");
    let objects = cc::Build::new()
        .file(source)
        .include(include)
        .define("main", "failing_alloc_main")
        .flag("-fsanitize=address,undefined")
        .flag("-fno-sanitize-recover=all")
        .flag("-fno-omit-frame-pointer")
        .warnings_into_errors(true)
        // Linked into that executable only, not into the interpreter.
        .cargo_metadata(false)
        .compile_intermediates();
    for object in objects {
        println!("cargo:rustc-link-arg-bin=failing_alloc={}", object.display());
    }
    // rustc links with -nodefaultlibs: name the sanitizer runtimes, static
    // so that ASan comes first.
    for arg in [
        "-fsanitize=address,undefined",
        "-static-libasan",
        "-static-libubsan",
        "-l:libasan.a",
        "-l:libubsan.a",
    ] {
        println!("cargo:rustc-link-arg-bin=failing_alloc={arg}");
    }
}
