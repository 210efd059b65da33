//! The one place that knows Lua versions differ. mlua-sys already gives every
//! ABI the 5.4-style C API (its compat layer fills in `lua_tonumberx` and
//! friends on 5.1/LuaJIT); what is left is here.

pub(super) use mlua_sys::*;
use std::ffi::c_int;

/// Pushes `trampoline` without allocating, so that the protected call
/// itself cannot raise. From 5.2 on a C function without upvalues is a
/// plain value. On 5.1 and LuaJIT pushing one makes a closure, so each
/// luanet closure carries it as the upvalue at `upvalue`; false (nothing
/// pushed) when that upvalue is not the trampoline any more.
///
/// # Safety
/// `L` is a valid state with room for one more slot, inside a luanet
/// closure.
#[allow(unused_variables)]
pub(super) unsafe fn push_trampoline(
    L: *mut lua_State,
    upvalue: c_int,
    trampoline: lua_CFunction,
) -> bool {
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    unsafe {
        lua_pushvalue(L, upvalue);
        let found = lua_tocfunction(L, -1);
        if found.is_none_or(|f| f as usize != trampoline as usize) {
            lua_pop(L, 1);
            return false;
        }
        true
    }
    #[cfg(not(any(feature = "lua51", feature = "luajit")))]
    unsafe {
        lua_pushcfunction(L, trampoline);
        true
    }
}
