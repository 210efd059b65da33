//! The wake-up descriptor (`luanet_wakeup_fd`): an eventfd that becomes
//! readable when any request or socket has news, and stays readable until
//! the host reads it. A host with its own event loop waits on it instead
//! of polling its handles every frame.
//!
//! Until a host asks for it, nothing is written: news costs no system call.
//! A forked child does not write to its parent's descriptor: it gets one of
//! its own when it asks.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

/// The descriptor, or -1 until a host asked for it.
static FD: AtomicI32 = AtomicI32::new(-1);
/// The fork generation (`crate::lifetime`) that made `FD`.
static MADE_IN: AtomicU64 = AtomicU64::new(0);
static CREATING: Mutex<()> = Mutex::new(());

/// The descriptor if this process made it.
fn ours() -> Option<RawFd> {
    let fd = FD.load(Ordering::Acquire);
    (fd >= 0 && MADE_IN.load(Ordering::Relaxed) == crate::lifetime::generation()).then_some(fd)
}

/// The descriptor, made on the first call; the same one for the life of
/// the process.
pub fn fd() -> std::io::Result<RawFd> {
    crate::lifetime::watch_fork();
    let _creating = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(fd) = ours() {
        return Ok(fd);
    }
    // SAFETY: no pointer arguments; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    MADE_IN.store(crate::lifetime::generation(), Ordering::Relaxed);
    FD.store(fd, Ordering::Release);
    Ok(fd)
}

/// Something happened that a host may want to look at.
pub fn notify() {
    let Some(fd) = ours() else { return };
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to our own eventfd. A full
    // counter (EAGAIN) is still readable, which is all a host needs.
    unsafe { libc::write(fd, std::ptr::addr_of!(one).cast(), size_of::<u64>()) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn news_makes_the_descriptor_readable_until_drained() {
        let fd = super::fd().unwrap();
        assert_eq!(super::fd().unwrap(), fd);
        let readable = || {
            let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one pollfd, zero timeout.
            unsafe { libc::poll(&mut poll, 1, 0) == 1 }
        };
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64.
        unsafe { libc::read(fd, std::ptr::addr_of_mut!(count).cast(), 8) };
        assert!(!readable());
        super::notify();
        super::notify();
        assert!(readable());
        assert!(readable(), "stays readable until drained");
        // SAFETY: as above.
        let n = unsafe { libc::read(fd, std::ptr::addr_of_mut!(count).cast(), 8) };
        assert_eq!((n, count), (8, 2));
        assert!(!readable());
    }
}
