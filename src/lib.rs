//! luanet: HTTP(S) and WebSocket networking for any Lua host.
//!
//! One Rust core ([`http`], [`ws`], [`tls`], [`endpoint`]) under two thin
//! adapters: the Lua module `net` (`lua`, entry point `luaopen_net`, built
//! with a Lua ABI feature) and the C API ([`capi`], header
//! `include/luanet.h`, always built).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(all(
    feature = "lua",
    not(any(
        feature = "lua55",
        feature = "lua54",
        feature = "lua53",
        feature = "lua52",
        feature = "lua51",
        feature = "luajit"
    ))
))]
compile_error!(
    "the Lua module needs one Lua ABI: --features lua54 | lua55 | lua53 | lua52 | lua51 | luajit"
);

#[cfg(any(
    all(
        feature = "lua55",
        any(
            feature = "lua54",
            feature = "lua53",
            feature = "lua52",
            feature = "lua51",
            feature = "luajit"
        )
    ),
    all(
        feature = "lua54",
        any(feature = "lua53", feature = "lua52", feature = "lua51", feature = "luajit")
    ),
    all(feature = "lua53", any(feature = "lua52", feature = "lua51", feature = "luajit")),
    all(feature = "lua52", any(feature = "lua51", feature = "luajit")),
    all(feature = "lua51", feature = "luajit"),
))]
compile_error!(
    "exactly one Lua ABI feature may be enabled; to pick another, build with --no-default-features --features <abi>"
);

pub mod capi;
pub mod endpoint;
pub mod http;
pub mod lifetime;
#[cfg(feature = "lua")]
pub mod lua;
pub mod timeout;
pub mod tls;
pub mod wakeup;
pub mod ws;

/// The library version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `User-Agent` of every HTTP request and WebSocket handshake.
pub const USER_AGENT: &str = concat!("luanet/", env!("CARGO_PKG_VERSION"));
