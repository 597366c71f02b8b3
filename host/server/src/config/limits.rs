//! The `[limits]` section: the limits of handler calls and the quotas of entities
//! (docs/limits.md).

use serde::Deserialize;
use std::time::Duration;

/// The limits of handler calls and the quotas of entities (docs/limits.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Deadline of one call, in milliseconds.
    pub deadline_ms: u64,
    /// Memory cap of one instance, in MiB.
    pub memory_mib: usize,
    /// Most items (messages, frames, writes, log lines) one call may emit.
    pub max_emits: usize,
    /// Most bytes one call may emit.
    pub max_emit_bytes: usize,
    /// Largest reply or push frame.
    pub max_frame_bytes: usize,
    /// Largest message (kind and body).
    pub max_message_bytes: usize,
    /// Longest log line.
    pub max_log_bytes: usize,
    /// Longest refusal reason.
    pub max_reason_bytes: usize,
    /// Longest state key.
    pub max_key_bytes: usize,
    /// Largest state value.
    pub max_value_bytes: usize,
    /// Most keys in one entity's state.
    pub max_state_keys: usize,
    /// Largest module accepted, in MiB.
    pub max_module_mib: usize,
    /// Most bytes of one entity's state, per role, in KiB.
    pub state_kib: StateKib,
    /// Most messages waiting in a player's or a room's queue; a send to a full queue
    /// fails the sending call.
    pub max_queue_len: u64,
    /// Most messages waiting in a guild group's queue (shared by its guilds).
    pub max_group_queue_len: u64,
    /// Messages (sends and pushes) one entity may send per second, on average...
    pub sends_per_s: u32,
    /// ...and at once after a quiet spell.
    pub sends_burst: u32,
    /// Longest chain of messages caused by one another; a deeper one is a dead letter.
    pub max_hops: u32,
    /// Calls running at once in the process (0: one per core).
    pub max_running_calls: usize,
}

/// Per-role state quotas, in KiB.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateKib {
    /// A player.
    pub baseapp: usize,
    /// A battle room's snapshot.
    pub battle: usize,
    /// A guild.
    pub guild: usize,
    /// A team.
    pub team: usize,
    /// A matchmaking queue.
    pub matchmaker: usize,
}

impl Default for StateKib {
    fn default() -> Self {
        let q = warren_runtime::StateQuota::default();
        StateKib {
            baseapp: q.baseapp >> 10,
            battle: q.battle >> 10,
            guild: q.guild >> 10,
            team: q.team >> 10,
            matchmaker: q.matchmaker >> 10,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = warren_runtime::Limits::default();
        let q = crate::mechanics::quota::Quotas::default();
        LimitsConfig {
            deadline_ms: l.deadline.as_millis() as u64,
            memory_mib: l.memory_bytes >> 20,
            max_emits: l.max_emits,
            max_emit_bytes: l.max_emit_bytes,
            max_frame_bytes: l.max_frame_bytes,
            max_message_bytes: l.max_message_bytes,
            max_log_bytes: l.max_log_bytes,
            max_reason_bytes: l.max_reason_bytes,
            max_key_bytes: l.max_key_bytes,
            max_value_bytes: l.max_value_bytes,
            max_state_keys: l.max_state_keys,
            max_module_mib: l.max_module_bytes >> 20,
            state_kib: StateKib::default(),
            max_queue_len: q.max_queue_len,
            max_group_queue_len: q.max_group_queue_len,
            sends_per_s: q.sends_per_s,
            sends_burst: q.sends_burst,
            max_hops: q.max_hops,
            max_running_calls: 0,
        }
    }
}

impl LimitsConfig {
    /// The runtime's limits.
    pub fn to_limits(&self) -> warren_runtime::Limits {
        let k = &self.state_kib;
        warren_runtime::Limits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib << 20,
            max_emits: self.max_emits,
            max_emit_bytes: self.max_emit_bytes,
            max_frame_bytes: self.max_frame_bytes,
            max_message_bytes: self.max_message_bytes,
            max_log_bytes: self.max_log_bytes,
            max_reason_bytes: self.max_reason_bytes,
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
            max_state_keys: self.max_state_keys,
            state_bytes: warren_runtime::StateQuota {
                baseapp: k.baseapp << 10,
                battle: k.battle << 10,
                guild: k.guild << 10,
                team: k.team << 10,
                matchmaker: k.matchmaker << 10,
            },
            max_module_bytes: self.max_module_mib << 20,
        }
    }

    /// The host's quotas on entities' traffic.
    pub fn to_quotas(&self) -> crate::mechanics::quota::Quotas {
        crate::mechanics::quota::Quotas {
            max_queue_len: self.max_queue_len,
            max_group_queue_len: self.max_group_queue_len,
            sends_per_s: self.sends_per_s,
            sends_burst: self.sends_burst,
            max_hops: self.max_hops,
            max_running_calls: if self.max_running_calls == 0 {
                std::thread::available_parallelism().map(usize::from).unwrap_or(1)
            } else {
                self.max_running_calls
            },
            roles_off: Default::default(),
        }
    }
}

impl LimitsConfig {
    /// Checks the values, naming the key of the first one out of range.
    pub(super) fn check(&self) -> Result<(), String> {
        let l = self;
        if l.deadline_ms == 0 || l.deadline_ms > 10_000 {
            return Err(format!("limits.deadline_ms must be 1..=10000, not {}", l.deadline_ms));
        }
        if l.memory_mib == 0 || l.memory_mib > 4096 {
            return Err(format!("limits.memory_mib must be 1..=4096, not {}", l.memory_mib));
        }
        let positive = [
            ("max_emits", l.max_emits),
            ("max_emit_bytes", l.max_emit_bytes),
            ("max_frame_bytes", l.max_frame_bytes),
            ("max_message_bytes", l.max_message_bytes),
            ("max_log_bytes", l.max_log_bytes),
            ("max_reason_bytes", l.max_reason_bytes),
            ("max_key_bytes", l.max_key_bytes),
            ("max_value_bytes", l.max_value_bytes),
            ("max_state_keys", l.max_state_keys),
            ("max_module_mib", l.max_module_mib),
            ("state_kib.baseapp", l.state_kib.baseapp),
            ("state_kib.battle", l.state_kib.battle),
            ("state_kib.guild", l.state_kib.guild),
            ("state_kib.team", l.state_kib.team),
            ("state_kib.matchmaker", l.state_kib.matchmaker),
            ("max_queue_len", l.max_queue_len as usize),
            ("max_group_queue_len", l.max_group_queue_len as usize),
            ("sends_per_s", l.sends_per_s as usize),
            ("sends_burst", l.sends_burst as usize),
            ("max_hops", l.max_hops as usize),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("limits.{key} must be above 0"));
        }
        Ok(())
    }
}
