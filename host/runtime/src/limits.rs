//! The limits every call runs under, and the errors that say which one a call broke.

use crate::call::HostState;
use std::time::Duration;

/// The bounds of one call, of each thing a guest hands the host, and of an entity's stored
/// state. A call that breaks one fails alone and commits nothing. docs/limits.md lists
/// them all, with their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one call may run (enforced by epoch interruption, to within one epoch tick).
    pub deadline: Duration,
    /// The most linear memory an instance may have, in bytes.
    pub memory_bytes: usize,
    /// The most items (messages, frames, state writes, log lines) one call may emit.
    pub max_emits: usize,
    /// The most bytes one call may emit, all items together (its refusal reason included).
    pub max_emit_bytes: usize,
    /// The largest frame one reply or push may carry.
    pub max_frame_bytes: usize,
    /// The largest message one send may carry (kind and body).
    pub max_message_bytes: usize,
    /// The longest log line.
    pub max_log_bytes: usize,
    /// The longest refusal reason (a handler's `err`, sent to the client).
    pub max_reason_bytes: usize,
    /// The longest state key.
    pub max_key_bytes: usize,
    /// The largest state value (and a battle room's snapshot).
    pub max_value_bytes: usize,
    /// The most keys an entity's state may hold.
    pub max_state_keys: usize,
    /// The most bytes an entity's state may hold (keys and values), per role.
    pub state_bytes: StateQuota,
    /// The largest module accepted; a bigger one is refused before it is compiled.
    pub max_module_bytes: usize,
}

/// The most bytes one entity's stored state may hold, per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuota {
    /// A player (baseapp).
    pub baseapp: usize,
    /// A battle room: its snapshot.
    pub battle: usize,
    /// A guild.
    pub guild: usize,
    /// A team.
    pub team: usize,
    /// A matchmaking queue.
    pub matchmaker: usize,
}

impl Default for StateQuota {
    fn default() -> Self {
        StateQuota { baseapp: 1 << 20, battle: 1 << 20, guild: 4 << 20, team: 1 << 20, matchmaker: 4 << 20 }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(50),
            memory_bytes: 64 << 20,
            max_emits: 1024,
            max_emit_bytes: 1 << 20,
            max_frame_bytes: 64 << 10,
            max_message_bytes: 64 << 10,
            max_log_bytes: 4 << 10,
            max_reason_bytes: 1 << 10,
            max_key_bytes: 128,
            max_value_bytes: 256 << 10,
            max_state_keys: 1024,
            state_bytes: StateQuota::default(),
            max_module_bytes: 16 << 20,
        }
    }
}

/// Which emit cap a call broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitLimit {
    /// Too many items.
    #[error("emitted more than {0} items in one call")]
    Count(usize),
    /// Too many bytes.
    #[error("emitted more than {0} bytes in one call")]
    Bytes(usize),
    /// One item over its own cap.
    #[error("{what} of {bytes} bytes, over the cap of {cap}")]
    Item {
        /// What it was (`a reply`, `a state value`, ...).
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The cap.
        cap: usize,
    },
}

/// An entity's state over its quota at the end of a call that grew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Quota {
    /// Too many bytes.
    #[error("the entity's state would hold {bytes} bytes, over its quota of {cap}")]
    StateBytes {
        /// The size the call left.
        bytes: usize,
        /// The quota.
        cap: usize,
    },
    /// Too many keys.
    #[error("the entity's state would hold {keys} keys, over its quota of {cap}")]
    StateKeys {
        /// The keys the call left.
        keys: usize,
        /// The quota.
        cap: usize,
    },
}

/// A guest sent a message of a kind only the host may send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sent a message of kind `{0}`: kinds starting with `$` are the host's own")]
pub struct ReservedKind(pub String);

/// Whether `kind` is one of the host's own message kinds, which no guest may send.
pub fn is_reserved_kind(kind: &str) -> bool {
    kind.starts_with('$')
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
    /// The handler left its entity's state over quota.
    #[error("exceeded its quota: {0}")]
    Quota(Quota),
    /// The handler sent a message of a kind reserved to the host.
    #[error("{0}")]
    Reserved(ReservedKind),
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
            CallError::Quota(_) => "quota",
            CallError::Reserved(_) => "reserved",
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
            return CallError::Emit(emit.clone());
        }
        if let Some(reserved) = err.downcast_ref::<ReservedKind>() {
            return CallError::Reserved(reserved.clone());
        }
        if let Some(trap) = err.downcast_ref::<wasmtime::Trap>()
            && *trap == wasmtime::Trap::Interrupt
        {
            return CallError::Deadline(limits.deadline);
        }
        CallError::Trap(format!("{err:#}"))
    }
}
