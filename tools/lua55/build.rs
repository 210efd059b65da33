//! Exports the Lua C API from the executable so that C modules loaded with
//! `require` (luanet's net.so) find their `lua_*` symbols in it.
fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic");
}
