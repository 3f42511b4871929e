//! The few raw Unix calls the fleet needs and std lacks: forwarding signals to
//! the agent child, and waiting for an unrelated process to exit without
//! polling (Linux `pidfd_open` + `poll`).

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The agent child's pid, or 0 before it starts. Read by the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The last terminating signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    // Only async-signal-safe calls here: atomics and kill(2).
    RECEIVED.store(sig, Ordering::SeqCst);
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill(2) takes integers, touches no memory of ours and is
        // async-signal-safe, so it may run inside this handler.
        unsafe {
            libc::kill(child, sig);
        }
    }
}

/// Catches SIGHUP, SIGTERM and SIGINT: each is passed on to the child set
/// with [`set_child`] and remembered, so the wrapper outlives the agent long
/// enough to save its work and record the end.
pub(crate) fn forward_terminating_signals() {
    for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
        // SAFETY: an all-zero sigaction is a valid "no flags, empty mask"
        // value; sigemptyset and sigaction get pointers to this live local;
        // the handler is an `extern "C" fn(c_int)` that makes only
        // async-signal-safe calls (atomics and kill).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Names the child signals go to; a signal that came before it started is
/// delivered now.
pub(crate) fn set_child(pid: u32) {
    CHILD.store(pid as i32, Ordering::SeqCst);
    let pending = RECEIVED.load(Ordering::SeqCst);
    if pending != 0 {
        // SAFETY: kill(2) takes integers and touches no memory of ours.
        unsafe {
            libc::kill(pid as i32, pending);
        }
    }
}

/// The terminating signal received so far, if any.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Sends `sig` to `pid`; false when there is no such process.
pub(crate) fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) takes integers and touches no memory of ours.
    pid > 0 && unsafe { libc::kill(pid as i32, sig) } == 0
}

pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// Waits until process `pid` has exited, for at most `timeout`; true when it
/// has. Blocks in `poll` on a pidfd, so no cycles are spent waiting.
pub(crate) fn wait_exit(pid: u32, timeout: Duration) -> bool {
    if !super::alive(pid) {
        return true;
    }
    // SAFETY: pidfd_open takes a pid and flags (integers) and returns a new
    // descriptor or -1; it reads and writes no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
    if fd < 0 {
        // No pidfd (kernel < 5.3) or the process is gone: fall back to a
        // coarse bounded wait rather than failing the kill.
        let deadline = Instant::now() + timeout;
        while super::alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        return !super::alive(pid);
    }
    let deadline = Instant::now() + timeout;
    let exited = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pfd` is a live local pollfd and the count is 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            break true;
        }
        if n == 0 {
            break false;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break !super::alive(pid);
        }
    };
    // SAFETY: `fd` is the pidfd opened above, owned here, closed once.
    unsafe {
        libc::close(fd);
    }
    // A zombie (exited, not yet reaped by its parent) counts as exited.
    exited || !super::alive(pid)
}
