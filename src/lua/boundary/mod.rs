//! The boundary between Lua and Rust, and the only code that calls the Lua
//! C API.
//!
//! # The rule
//!
//! No Lua error ever passes through a Rust frame that owns a value. A Lua
//! error is a `longjmp` on PUC Lua (undefined behaviour over Rust frames
//! with destructors) and a foreign exception on LuaJIT (which aborts the
//! process when `catch_unwind` sees it). So every C API call that can raise
//! (anything that allocates, reaches a metamethod or calls Lua) runs in one
//! of two places:
//!
//! - a **protected section**: a `Copy` closure over [`Raw`] run by
//!   `lua_pcall` on a trampoline ([`Lua::protected`]). Its frames own
//!   nothing (the closure is `Copy`, so it has no destructor), and the
//!   error stops at the `lua_pcall`. The caller gets [`Failure::Raised`]
//!   with the error object on the stack, and the entry point re-raises it
//!   once every Rust value of the call is dropped;
//! - a **raw frame** of an entry point ([`open`], [`enter`]'s last step),
//!   which owns nothing and cannot panic.
//!
//! Code that owns Rust values (every function body) sees only [`Lua`]. Its
//! `&self` methods cannot raise. Its `&mut self` methods are protected
//! sections. A borrow taken through `&self` (say, a socket inside a
//! userdata) therefore ends before any call that can run Lua code (which
//! could collect that userdata), and the compiler checks it.
//!
//! No `catch_unwind` ever runs around a call that can raise: it sits in
//! [`enter`] around the body, which only reaches raising calls through
//! protected sections. Protected sections must not panic (a panic cannot
//! pass `lua_pcall`'s C frames): they only call [`Raw`] methods.
//!
//! Stack space: a C function starts with `LUA_MINSTACK` (20) free slots.
//! Bodies push at most a handful outside protected sections; a section that
//! pushes more reserves them itself ([`Raw::reserve`]).

mod compat;

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use compat::*;

pub(crate) use mlua_sys::{lua_CFunction, lua_State};

/// Why a body stopped: the Lua error its entry point raises.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A protected section raised; its error object is on the stack top.
    Raised,
    /// Raise this message.
    Message(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Message(message)
    }
}

/// What a Lua-facing function does: returns how many results it pushed.
pub(crate) type Body = fn(&mut Lua) -> Result<c_int, Failure>;

/// The kind of a Lua value, as `lua_type` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    None,
    Nil,
    Boolean,
    LightUserdata,
    Number,
    String,
    Table,
    Function,
    Userdata,
    Thread,
}

fn kind_of(code: c_int) -> Kind {
    match code {
        LUA_TNIL => Kind::Nil,
        LUA_TBOOLEAN => Kind::Boolean,
        LUA_TLIGHTUSERDATA => Kind::LightUserdata,
        LUA_TNUMBER => Kind::Number,
        LUA_TSTRING => Kind::String,
        LUA_TTABLE => Kind::Table,
        LUA_TFUNCTION => Kind::Function,
        LUA_TUSERDATA => Kind::Userdata,
        LUA_TTHREAD => Kind::Thread,
        _ => Kind::None,
    }
}

impl Kind {
    /// The name Lua's own messages use (`"no value"` for an absent one).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::None => "no value",
            Kind::Nil => "nil",
            Kind::Boolean => "boolean",
            Kind::LightUserdata | Kind::Userdata => "userdata",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Table => "table",
            Kind::Function => "function",
            Kind::Thread => "thread",
        }
    }
}

/// The stack index of upvalue `n` of the running C function.
pub(crate) const fn upvalue(n: c_int) -> c_int {
    lua_upvalueindex(n)
}

/// Upvalues every luanet closure carries (see [`Raw::push_function`]).
const UPVALUES: c_int = 3;
/// Upvalue 1: the `net_ws` metatable, how methods recognise their `self`.
pub(crate) const WS_METATABLE: c_int = upvalue(1);
/// Upvalue 2: the trampoline of protected sections, for the ABIs where
/// pushing a C function allocates.
const TRAMPOLINE: c_int = upvalue(2);
/// Upvalue 3: the `net_request` metatable.
pub(crate) const REQUEST_METATABLE: c_int = upvalue(3);

/// Where the values a luanet closure carries are on the stack while the
/// module is built.
#[derive(Clone, Copy)]
pub(crate) struct Upvalues {
    pub(crate) ws_metatable: c_int,
    pub(crate) trampoline: c_int,
    pub(crate) request_metatable: c_int,
}

/// A userdata luanet makes, told from others by its tag.
///
/// # Safety
/// The type is `#[repr(C)]`, its first field is a `u64` that is always
/// `TAG`, and no other type has the same tag.
pub(crate) unsafe trait Tagged: Sized {
    const TAG: u64;
}

/// The Lua state as a function body sees it: calls that cannot raise take
/// `&self`; calls that can raise take `&mut self` and run protected.
pub(crate) struct Lua {
    state: *mut lua_State,
}

/// Runs `body` for the C function Lua called with `L`: a panic or an
/// `Err` becomes a Lua error, raised after every Rust value of the call is
/// dropped.
///
/// # Safety
/// `L` is the state Lua called the C function with, and that function is a
/// luanet closure (made by [`Raw::push_function`]).
pub(crate) unsafe fn enter(L: *mut lua_State, body: Body) -> c_int {
    match run(L, body) {
        // LuaJIT's x64 interpreter reads the full 64-bit register of a C
        // function's `int` result; black_box forces a clean 32-bit value.
        Exit::Return(results) => std::hint::black_box(results),
        // The raw frame: nothing here owns a value.
        Exit::RaiseTop => unsafe { lua_error(L) },
        Exit::RaiseStatic(message) => unsafe {
            lua_pushstring(L, message.as_ptr());
            lua_error(L)
        },
    }
}

/// How [`enter`] leaves: only `Copy` data survives [`run`].
#[derive(Clone, Copy)]
enum Exit {
    Return(c_int),
    RaiseTop,
    RaiseStatic(&'static CStr),
}

#[inline(never)]
fn run(L: *mut lua_State, body: Body) -> Exit {
    let mut lua = Lua { state: L };
    let message = match catch_unwind(AssertUnwindSafe(|| body(&mut lua))) {
        Ok(Ok(results)) => return Exit::Return(results),
        Ok(Err(Failure::Raised)) => return Exit::RaiseTop,
        Ok(Err(Failure::Message(message))) => message,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            format!("luanet internal error: {what}")
        }
    };
    let bytes = message.as_bytes();
    match lua.protected(0, 1, |raw| {
        raw.push_bytes(bytes);
        1
    }) {
        // Pushed, or the push failed and its error (memory) is on top.
        Ok(()) | Err(Failure::Raised) => Exit::RaiseTop,
        Err(Failure::Message(_)) => Exit::RaiseStatic(c"luanet: cannot raise an error here"),
    }
}

/// Runs the raw `build` for `luaopen_net`. The frame owns nothing, so
/// what `build` raises (out of memory, a `_G` whose `__newindex` raises)
/// goes straight to the caller, a clean Lua error.
///
/// # Safety
/// `L` is the state Lua called `luaopen_net` with.
pub(crate) unsafe fn open(L: *mut lua_State, build: fn(Raw) -> c_int) -> c_int {
    build(Raw { state: L })
}

/// A section's work, as the trampoline finds it.
#[derive(Clone, Copy)]
struct Job {
    run: unsafe fn(Raw, *const c_void) -> c_int,
    section: *const c_void,
}

thread_local! {
    /// The job of the protected call being made on this thread. Handed
    /// over here rather than on the Lua stack, so a script that gets hold
    /// of the trampoline (through `debug`) and calls it finds no job.
    static JOB: Cell<Option<Job>> = const { Cell::new(None) };
}

/// Runs the [`Job`] of the protected call that called it.
unsafe extern "C-unwind" fn trampoline(L: *mut lua_State) -> c_int {
    // try_with: no panic here, inside lua_pcall, even during thread exit.
    match JOB.try_with(Cell::take).ok().flatten() {
        Some(job) => unsafe { (job.run)(Raw { state: L }, job.section) },
        None => 0,
    }
}

/// Runs the section `F` stored at `section`.
unsafe fn run_section<F: Fn(Raw) -> c_int + Copy>(raw: Raw, section: *const c_void) -> c_int {
    let section = unsafe { &*section.cast::<F>() };
    section(raw)
}

impl Lua {
    /// Runs `section` under a protected call. It receives the `nargs`
    /// values on top of the stack (which it consumes) and leaves exactly
    /// `nresults` values there. On a Lua error the stack holds the error
    /// object instead, and the result is [`Failure::Raised`].
    ///
    /// The section runs in a C function of its own: stack indices and
    /// upvalues are its own, so what it needs from the caller's stack comes
    /// as arguments (index 1 is the first).
    ///
    /// The section is `Copy`: it borrows what it needs and owns nothing, so
    /// a Lua error leaving it skips no destructor. It must not panic.
    pub(crate) fn protected<F: Fn(Raw) -> c_int + Copy>(
        &mut self,
        nargs: c_int,
        nresults: c_int,
        section: F,
    ) -> Result<(), Failure> {
        let job = Job { run: run_section::<F>, section: std::ptr::addr_of!(section).cast() };
        let L = self.state;
        unsafe {
            if !push_trampoline(L, TRAMPOLINE, trampoline) {
                return Err(Failure::Message(
                    "luanet: a luanet function's upvalues were changed".to_owned(),
                ));
            }
            if nargs > 0 {
                lua_insert(L, -(nargs + 1));
            }
            if JOB.try_with(|slot| slot.set(Some(job))).is_err() {
                lua_pop(L, nargs + 1);
                return Err(Failure::Message("luanet: called while its thread exits".to_owned()));
            }
            let status = lua_pcall(L, nargs, nresults, 0);
            // Cleared even when the call failed before the trampoline ran.
            let _ = JOB.try_with(|slot| slot.set(None));
            match status {
                LUA_OK => Ok(()),
                _ => Err(Failure::Raised),
            }
        }
    }

    /// Pushes a string (raw bytes, NUL bytes included).
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.protected(0, 1, |raw| {
            raw.push_bytes(bytes);
            1
        })
    }

    /// Converts the number at `index` into a string in place (as
    /// `luaL_checklstring` does); a string stays as it is.
    pub(crate) fn convert_to_string(&mut self, index: c_int) -> Result<(), Failure> {
        if self.kind(index) != Kind::Number {
            return Ok(());
        }
        let index = self.absolute(index);
        self.push_copy(index);
        self.protected(1, 1, |raw| {
            raw.convert_to_string(1);
            1
        })?;
        self.replace(index);
        Ok(())
    }

    /// The value at `index` as `tostring` shows it, for messages. A
    /// `__tostring` that raises or yields gives the value's type instead.
    pub(crate) fn display(&mut self, index: c_int) -> String {
        let kind = self.kind(index);
        self.push_copy(index);
        let shown = self.protected(1, 1, |raw| {
            raw.to_display(1);
            1
        });
        let text = match (shown, self.string(-1)) {
            (Ok(()), Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            _ => format!("(a {} value)", kind.name()),
        };
        self.pop(1);
        text
    }

    /// Reserves `n` more stack slots for the body. The section grows the
    /// stack (which may raise); `lua_checkstack` then finds the room there
    /// and only claims it for this frame, allocating nothing.
    pub(crate) fn reserve(&mut self, n: c_int) -> Result<(), Failure> {
        self.protected(0, 0, move |raw| {
            raw.reserve(n);
            0
        })?;
        if unsafe { lua_checkstack(self.state, n) } == 0 {
            return Err(Failure::Message("luanet: Lua stack overflow".to_owned()));
        }
        Ok(())
    }

    pub(crate) fn kind(&self, index: c_int) -> Kind {
        kind_of(unsafe { lua_type(self.state, index) })
    }

    pub(crate) fn is_none_or_nil(&self, index: c_int) -> bool {
        matches!(self.kind(index), Kind::None | Kind::Nil)
    }

    pub(crate) fn top(&self) -> c_int {
        unsafe { lua_gettop(self.state) }
    }

    pub(crate) fn absolute(&self, index: c_int) -> c_int {
        unsafe { lua_absindex(self.state, index) }
    }

    /// The bytes of the string at `index`, borrowed while it stays there;
    /// `None` for any other value (numbers are not converted).
    pub(crate) fn string(&self, index: c_int) -> Option<&[u8]> {
        if self.kind(index) != Kind::String {
            return None;
        }
        let mut len = 0usize;
        // SAFETY: a string: lua_tolstring neither allocates nor raises, and
        // Lua keeps the bytes alive while the value is on the stack.
        unsafe {
            let ptr = lua_tolstring(self.state, index, &mut len);
            Some(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
        }
    }

    /// The number at `index`, numeric strings converted (as
    /// `luaL_checknumber`); `None` for anything else.
    pub(crate) fn number(&self, index: c_int) -> Option<f64> {
        let mut is_number = 0;
        let value = unsafe { lua_tonumberx(self.state, index, &mut is_number) };
        (is_number != 0).then_some(value)
    }

    /// The integer at `index` when it is a number with an integer value
    /// (an integer subtype on 5.3+).
    pub(crate) fn integer(&self, index: c_int) -> Option<i64> {
        let integral =
            self.kind(index) == Kind::Number && unsafe { lua_isinteger(self.state, index) } != 0;
        integral.then(|| unsafe { lua_tointeger(self.state, index) } as i64)
    }

    pub(crate) fn boolean(&self, index: c_int) -> bool {
        unsafe { lua_toboolean(self.state, index) != 0 }
    }

    /// The address of a light or full userdata (NULL otherwise).
    pub(crate) fn userdata(&self, index: c_int) -> *mut c_void {
        unsafe { lua_touserdata(self.state, index) }
    }

    /// The size of the full userdata at `index`.
    pub(crate) fn userdata_size(&self, index: c_int) -> usize {
        unsafe { lua_rawlen(self.state, index) }
    }

    /// An identity for tables and other reference values.
    pub(crate) fn identity(&self, index: c_int) -> *const c_void {
        unsafe { lua_topointer(self.state, index) }
    }

    /// Whether the value at `index` has exactly the metatable at `other`.
    pub(crate) fn has_metatable(&self, index: c_int, other: c_int) -> bool {
        unsafe {
            if lua_getmetatable(self.state, index) == 0 {
                return false;
            }
            let same = lua_rawequal(self.state, -1, other) != 0;
            lua_pop(self.state, 1);
            same
        }
    }

    /// The `T` at `index`, if that is one: a full userdata of `T`'s size,
    /// with the metatable at `metatable` and `T`'s tag. Another userdata
    /// given our metatable (through `debug.setmetatable`) is not taken for
    /// one. Lua owns it: the borrow must end before Lua code can run.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn tagged<T: Tagged>(&self, index: c_int, metatable: c_int) -> Option<&mut T> {
        let ours = self.kind(index) == Kind::Userdata
            && self.has_metatable(index, metatable)
            && self.userdata_size(index) == size_of::<T>();
        if !ours {
            return None;
        }
        let pointer = self.userdata(index);
        // SAFETY: a full userdata of `T`'s size, aligned for any type; its
        // first 8 bytes are read as the tag before the whole is taken as a
        // `T`, which only `T`'s maker writes with that tag (`Tagged`).
        let tag = unsafe { pointer.cast::<u64>().read() };
        (tag == T::TAG).then(|| unsafe { &mut *pointer.cast::<T>() })
    }

    pub(crate) fn push_nil(&self) {
        unsafe { lua_pushnil(self.state) }
    }

    pub(crate) fn push_boolean(&self, value: bool) {
        unsafe { lua_pushboolean(self.state, c_int::from(value)) }
    }

    pub(crate) fn pop(&self, n: c_int) {
        unsafe { lua_pop(self.state, n) }
    }

    /// Pushes a copy of the value at `index`.
    pub(crate) fn push_copy(&self, index: c_int) {
        unsafe { lua_pushvalue(self.state, index) }
    }

    /// Moves the value on top into `index`.
    pub(crate) fn replace(&self, index: c_int) {
        unsafe { lua_replace(self.state, index) }
    }

    /// Pushes the key and value after the key on top of the stack in the
    /// table at `table`, or pops the key and returns false at the end.
    /// Cannot raise: the key always comes from the previous call, and the
    /// walk runs no Lua code and allocates nothing, so the table cannot
    /// change under it.
    pub(crate) fn next(&self, table: c_int) -> bool {
        unsafe { lua_next(self.state, table) != 0 }
    }

    /// Pushes `t[i]` of the table at `table`, without metamethods.
    pub(crate) fn push_raw_index(&self, table: c_int, i: i64) {
        unsafe { lua_rawgeti(self.state, table, i as lua_Integer) };
    }
}

/// The Lua state inside a protected section or a raw frame: every call may
/// raise. Only this module makes one.
#[derive(Clone, Copy)]
pub(crate) struct Raw {
    state: *mut lua_State,
}

impl Raw {
    pub(crate) fn push_nil(self) {
        unsafe { lua_pushnil(self.state) }
    }

    pub(crate) fn push_bytes(self, bytes: &[u8]) {
        unsafe { lua_pushlstring(self.state, bytes.as_ptr().cast(), bytes.len()) };
    }

    pub(crate) fn push_boolean(self, value: bool) {
        unsafe { lua_pushboolean(self.state, c_int::from(value)) }
    }

    pub(crate) fn push_integer(self, value: i64) {
        unsafe { lua_pushinteger(self.state, value as lua_Integer) }
    }

    pub(crate) fn push_number(self, value: f64) {
        unsafe { lua_pushnumber(self.state, value) }
    }

    pub(crate) fn push_light_userdata(self, pointer: *mut c_void) {
        unsafe { lua_pushlightuserdata(self.state, pointer) }
    }

    pub(crate) fn push_copy(self, index: c_int) {
        unsafe { lua_pushvalue(self.state, index) }
    }

    /// Pushes `function` as a luanet closure: upvalue 1 is the `net_ws`
    /// metatable, upvalue 2 the trampoline, upvalue 3 the `net_request`
    /// metatable (from [`Raw::new_metatable`] and [`Raw::push_trampoline`]).
    pub(crate) fn push_function(self, function: lua_CFunction, upvalues: Upvalues) {
        unsafe {
            lua_pushvalue(self.state, upvalues.ws_metatable);
            lua_pushvalue(self.state, upvalues.trampoline);
            lua_pushvalue(self.state, upvalues.request_metatable);
            lua_pushcclosure(self.state, function, UPVALUES);
        }
    }

    /// Pushes the trampoline of protected sections, for
    /// [`Raw::push_function`].
    pub(crate) fn push_trampoline(self) {
        unsafe { lua_pushcfunction(self.state, trampoline) }
    }

    pub(crate) fn create_table(self, array: usize, records: usize) {
        let clamp = |n: usize| n.min(c_int::MAX as usize) as c_int;
        unsafe { lua_createtable(self.state, clamp(array), clamp(records)) }
    }

    /// `t[name] = v` for the table at `table` and the value on top (popped).
    pub(crate) fn set_field(self, table: c_int, name: &CStr) {
        unsafe { lua_setfield(self.state, table, name.as_ptr()) }
    }

    /// `t[i] = v` without metamethods, `v` on top (popped).
    pub(crate) fn raw_set_index(self, table: c_int, i: i64) {
        unsafe { lua_rawseti(self.state, table, i as lua_Integer) }
    }

    /// `t[k] = v` without metamethods, `k` and `v` on top (popped).
    pub(crate) fn raw_set(self, table: c_int) {
        unsafe { lua_rawset(self.state, table) }
    }

    /// Pushes the global `name` and returns its kind.
    pub(crate) fn get_global(self, name: &CStr) -> Kind {
        kind_of(unsafe { lua_getglobal(self.state, name.as_ptr()) })
    }

    /// Pushes `t[name]` of the table at `table`.
    pub(crate) fn get_field(self, table: c_int, name: &CStr) {
        unsafe { lua_getfield(self.state, table, name.as_ptr()) };
    }

    /// Sets the global `name` to the value on top (popped).
    pub(crate) fn set_global(self, name: &CStr) {
        unsafe { lua_setglobal(self.state, name.as_ptr()) }
    }

    /// Pushes the metatable registered as `name`, creating it when new;
    /// true when it was created.
    pub(crate) fn new_metatable(self, name: &CStr) -> bool {
        unsafe { luaL_newmetatable(self.state, name.as_ptr()) != 0 }
    }

    /// Pushes a new full userdata of `size` bytes and returns its address.
    pub(crate) fn new_userdata(self, size: usize) -> *mut c_void {
        unsafe { lua_newuserdata(self.state, size) }
    }

    /// Sets the metatable of the value at `index` to the table on top
    /// (popped).
    pub(crate) fn set_metatable(self, index: c_int) {
        unsafe { lua_setmetatable(self.state, index) };
    }

    /// Calls the function below its `nargs` arguments on top.
    pub(crate) fn call(self, nargs: c_int, nresults: c_int) {
        unsafe { lua_call(self.state, nargs, nresults) }
    }

    /// `luaL_tolstring`: pushes the value as `tostring` shows it.
    pub(crate) fn to_display(self, index: c_int) {
        unsafe { luaL_tolstring(self.state, index, std::ptr::null_mut()) };
    }

    /// Converts the number at `index` into a string, in place.
    pub(crate) fn convert_to_string(self, index: c_int) {
        unsafe { lua_tolstring(self.state, index, std::ptr::null_mut()) };
    }

    /// Makes room for `n` more values, or raises. Lua's own message for a
    /// failed growth says "stack overflow" even when memory ran out, which
    /// is the likely cause with a few hundred slots.
    pub(crate) fn reserve(self, n: c_int) {
        unsafe {
            if lua_checkstack(self.state, n) == 0 {
                lua_pushstring(self.state, c"not enough memory (or Lua stack space)".as_ptr());
                lua_error(self.state);
            }
        }
    }

    pub(crate) fn pop(self, n: c_int) {
        unsafe { lua_pop(self.state, n) }
    }

    pub(crate) fn top(self) -> c_int {
        unsafe { lua_gettop(self.state) }
    }
}

/// Declares `extern "C-unwind" fn $name(L)` that runs `$body` through
/// [`enter`].
macro_rules! lua_function {
    ($(#[$doc:meta])* $name:ident => $body:path) => {
        $(#[$doc])*
        pub(crate) unsafe extern "C-unwind" fn $name(
            L: *mut $crate::lua::boundary::lua_State,
        ) -> ::std::ffi::c_int {
            // SAFETY: Lua calls its C functions with a valid state; this
            // one is registered as a luanet closure.
            unsafe { $crate::lua::boundary::enter(L, $body) }
        }
    };
}
pub(crate) use lua_function;
