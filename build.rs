//! Regenerates `include/luanet.h` from the C API with the pinned cbindgen.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // C hosts that link the library record this name, whatever the file is
    // called on disk (the Lua module is the same file named net.so).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libluanet.so");
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
