//! The limits every call runs under, and the errors that say which one a call broke.

use crate::call::HostState;
use std::time::Duration;

/// The bounds of one call. A call that breaks one fails alone and commits nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one call may run (enforced by epoch interruption, to within one epoch tick).
    pub deadline: Duration,
    /// The most linear memory an instance may have, in bytes.
    pub memory_bytes: usize,
    /// The most items (messages, frames, state writes, log lines) one call may emit.
    pub max_emits: usize,
    /// The most bytes one call may emit, all items together.
    pub max_emit_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { deadline: Duration::from_millis(50), memory_bytes: 64 << 20, max_emits: 1024, max_emit_bytes: 1 << 20 }
    }
}

/// Which emit cap a call broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmitLimit {
    /// Too many items.
    #[error("emitted more than {0} items in one call")]
    Count(usize),
    /// Too many bytes.
    #[error("emitted more than {0} bytes in one call")]
    Bytes(usize),
}

/// Raised from the limiter when a guest asks for more memory than its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("asked for {desired} bytes of memory, over the cap of {cap}")]
pub struct MemoryCap {
    /// What the guest asked for.
    pub desired: usize,
    /// The cap.
    pub cap: usize,
}

/// The most table elements an instance may have (guests need a few hundred).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// The most core instances, memories and tables a store may hold. A Rust guest component
/// has a handful of each; the bounds keep a crafted one from multiplying its memory.
const MAX_CORE_INSTANCES: usize = 32;
const MAX_MEMORIES: usize = 4;
const MAX_TABLES: usize = 16;

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // The cap is for the whole instance: a component may hold several memories.
        let cap = self.limits.memory_bytes;
        let total = self.memory_bytes - current.min(self.memory_bytes) + desired;
        if total > cap {
            // An error (not `Ok(false)`) traps at once, so the call fails with a clear
            // cause instead of an allocator abort deep in the guest.
            return Err(wasmtime::Error::new(MemoryCap { desired: total, cap }));
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Why a call failed. Nothing of a failed call is committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The handler refused the message and said why (a normal, deterministic outcome:
    /// the message is answered, not retried).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The handler ran past its deadline.
    #[error("ran past its deadline of {0:?}")]
    Deadline(Duration),
    /// The handler asked for more memory than its cap.
    #[error("exceeded its memory cap: {0}")]
    Memory(MemoryCap),
    /// The handler emitted more than its caps allow.
    #[error("exceeded its emit cap: {0}")]
    Emit(EmitLimit),
    /// The guest trapped (a panic, an unreachable, an out-of-bounds access...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The module could not be instantiated for this call.
    #[error("could not instantiate the module: {0}")]
    Instantiate(String),
}

impl CallError {
    /// True for failures of the guest (traps, limits); false for a rejection, which is an
    /// answer.
    pub fn is_fault(&self) -> bool {
        !matches!(self, CallError::Rejected(_))
    }

    /// Names the cause in a word, for metrics and logs.
    pub fn cause(&self) -> &'static str {
        match self {
            CallError::Rejected(_) => "rejected",
            CallError::Deadline(_) => "deadline",
            CallError::Memory(_) => "memory",
            CallError::Emit(_) => "emit",
            CallError::Trap(_) => "trap",
            CallError::Instantiate(_) => "instantiate",
        }
    }

    /// Classifies an error raised out of a guest call.
    pub(crate) fn from_wasm(err: wasmtime::Error, limits: &Limits) -> Self {
        if let Some(cap) = err.downcast_ref::<MemoryCap>() {
            return CallError::Memory(*cap);
        }
        if let Some(emit) = err.downcast_ref::<EmitLimit>() {
            return CallError::Emit(*emit);
        }
        if let Some(trap) = err.downcast_ref::<wasmtime::Trap>()
            && *trap == wasmtime::Trap::Interrupt
        {
            return CallError::Deadline(limits.deadline);
        }
        CallError::Trap(format!("{err:#}"))
    }
}
