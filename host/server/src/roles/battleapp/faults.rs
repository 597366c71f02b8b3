//! A room's failing ticks: counted, and logged once per fault rather than once per tick,
//! until the room gives up.

use warren_runtime::CallError;

/// Ticks in a row a room may fail before it is closed.
const MAX_FAILED_TICKS: u32 = 20;

/// The faults of a room's ticks since its last good one.
#[derive(Debug, Default)]
pub struct TickFaults {
    /// Ticks failed in a row.
    failures: u32,
    /// The last fault, while ticks keep failing: a repeat of it is logged at debug level,
    /// so a room that keeps failing logs its fault once.
    last: Option<String>,
}

impl TickFaults {
    /// A tick went through.
    pub fn cleared(&mut self) {
        *self = TickFaults::default();
    }

    /// Counts tick `tick` of `room` (on `module`) failing with `e`, logging it unless it
    /// is the fault logged last; `true` when the room must close (it failed
    /// [`MAX_FAILED_TICKS`] times in a row).
    pub fn failed(&mut self, room: u64, module: &str, tick: u64, e: &CallError) -> bool {
        self.failures += 1;
        let fault = e.to_string();
        if self.last.as_deref() == Some(fault.as_str()) {
            tracing::debug!(room, tick, failures = self.failures, "tick failed again the same way");
        } else {
            tracing::warn!(
                role = "battle",
                module = %module,
                handler = "tick",
                room,
                tick,
                cause = e.cause(),
                error = %fault,
                "room tick failed; the room tries the tick again"
            );
            self.last = Some(fault);
        }
        if self.failures < MAX_FAILED_TICKS {
            return false;
        }
        tracing::error!(
            role = "battle",
            module = %module,
            room,
            tick,
            failures = self.failures,
            error = %e,
            "room closed: its tick failed {} times in a row",
            self.failures
        );
        true
    }
}
