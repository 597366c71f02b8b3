//! The allocator of every program built on Warren's hosts — the `warren` binary, its
//! benches and tests — and its giving memory back to the system.
//!
//! mimalloc: the hot paths make many small, short-lived buffers. It hands freed memory
//! back to the system only after a delay (a second), and only when some later allocation
//! looks: a host that goes quiet after a burst (a module compiled, a big upload refused, a
//! load that passed) would keep that memory for as long as it stays quiet.
//! [`give_back_every`] looks on a timer.

use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often a long-running host hands freed memory back ([`give_back_every`]).
pub const GIVE_BACK_EVERY: Duration = Duration::from_secs(1);

/// Starts a thread that, every `period`, hands the memory freed over a second ago back to
/// the system ([`give_back`]). Its cost is a few microseconds a period.
pub fn give_back_every(period: Duration) {
    let started = std::thread::Builder::new().name("give-back".into()).spawn(move || {
        loop {
            std::thread::sleep(period);
            give_back();
        }
    });
    if let Err(e) = started {
        tracing::warn!(error = %e, "no thread to give memory back; freed memory goes back only as the host allocates");
    }
}

/// Hands the memory freed over a second ago back to the system: what the allocator's
/// arenas (the process's) hold free. A thread's own heap keeps a few free pages of its own
/// until that thread allocates again.
pub fn give_back() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
