//! Regenerates `include/luanet.h` from the C API with the pinned cbindgen.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // The name hosts that link the library record: the Lua module is
    // installed as net.so, the Lua-free C library as libluanet.so.
    let soname =
        if std::env::var_os("CARGO_FEATURE_LUA").is_some() { "net.so" } else { "libluanet.so" };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let header = root.join("include").join("luanet.h");
    match cbindgen::Builder::new().with_crate(&root).with_config(config).generate() {
        // write_to_file leaves the file untouched when it is already current.
        Ok(bindings) => {
            bindings.write_to_file(header);
        }
        Err(e) => panic!("cbindgen could not generate include/luanet.h: {e}"),
    }
}
