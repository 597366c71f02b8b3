//! The caps a call runs under, and how they count what a handler emits.

use crate::PlayerId;
use std::collections::BTreeMap;

/// The caps every call runs under, as the host's `[limits]` config section sets them
/// (docs/limits.md). [`Caps::default`] is the host's defaults; a test of a script whose
/// hosts are configured otherwise sets the same values here, so its calls fail where they
/// would fail live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Items one call may emit — a send, reply, push, log line or state removal is one, a
    /// state set two (its key and its value). Config key `max_emits`.
    pub max_emits: usize,
    /// Bytes one call may emit, all its items together, its refusal reason included.
    /// Config key `max_emit_bytes`.
    pub max_emit_bytes: usize,
    /// Bytes of one reply or push frame. Config key `max_frame_bytes`.
    pub max_frame_bytes: usize,
    /// Bytes of one sent message, its kind and body together. Config key
    /// `max_message_bytes`.
    pub max_message_bytes: usize,
    /// Bytes of one log line. Config key `max_log_bytes`.
    pub max_log_bytes: usize,
    /// Bytes of a handler's refusal reason (its `Err`), which is sent to the client.
    /// Config key `max_reason_bytes`.
    pub max_reason_bytes: usize,
    /// Bytes of one state key. Config key `max_key_bytes`.
    pub max_key_bytes: usize,
    /// Bytes of one state value. Config key `max_value_bytes`.
    pub max_value_bytes: usize,
    /// Keys one entity's state may hold. Config key `max_state_keys`.
    pub max_state_keys: usize,
    /// Bytes one entity's state may hold, keys and values, per role (a room: its
    /// snapshot). Config keys `state_kib.<role>`, which count KiB; these count bytes.
    pub state_bytes: StateQuota,
}

impl Default for Caps {
    /// The host's defaults (`Limits::default()` in host/runtime/src/limits.rs).
    fn default() -> Self {
        Caps {
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
        }
    }
}

/// The most bytes one entity's state may hold, keys and values, per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuota {
    /// A player's state. Config key `state_kib.baseapp` (1024 KiB by default).
    pub baseapp: usize,
    /// A battle room's snapshot. Config key `state_kib.battle` (1024 KiB by default).
    pub battle: usize,
    /// A guild's state. Config key `state_kib.guild` (4096 KiB by default).
    pub guild: usize,
    /// A team's state. Config key `state_kib.team` (1024 KiB by default).
    pub team: usize,
    /// A matchmaking queue's state. Config key `state_kib.matchmaker` (4096 KiB by
    /// default).
    pub matchmaker: usize,
}

impl Default for StateQuota {
    /// The host's defaults (`StateQuota::default()` in host/runtime/src/limits.rs).
    fn default() -> Self {
        StateQuota { baseapp: 1 << 20, battle: 1 << 20, guild: 4 << 20, team: 1 << 20, matchmaker: 4 << 20 }
    }
}

impl StateQuota {
    /// The quota of an entity of `role`.
    pub fn of(&self, role: Role) -> usize {
        match role {
            Role::Baseapp => self.baseapp,
            Role::Battle => self.battle,
            Role::Guild => self.guild,
            Role::Team => self.team,
            Role::Matchmaker => self.matchmaker,
        }
    }
}

/// The role whose host runs a harness's entity: it decides the entity's state quota, and
/// names the entity in the errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A player, run by a baseapp.
    Baseapp,
    /// A battle room, run by a battleapp.
    Battle,
    /// A guild.
    Guild,
    /// A team.
    Team,
    /// A matchmaking queue.
    Matchmaker,
}

impl Role {
    /// The entity's state, as an error names it.
    pub(super) fn state_of(self) -> &'static str {
        match self {
            Role::Baseapp => "the player's state",
            Role::Battle => "the room's state",
            Role::Guild => "the guild's state",
            Role::Team => "the team's state",
            Role::Matchmaker => "the matchmaking queue's state",
        }
    }

    /// The config key of the role's state quota.
    pub(super) fn quota_key(self) -> &'static str {
        match self {
            Role::Baseapp => "state_kib.baseapp",
            Role::Battle => "state_kib.battle",
            Role::Guild => "state_kib.guild",
            Role::Team => "state_kib.team",
            Role::Matchmaker => "state_kib.matchmaker",
        }
    }
}

/// A cap broken in the middle of a call: the text the test reads. Carried out of the
/// handler by unwinding, so the handler stops where it broke the cap, as it traps live.
pub(super) struct Breach(pub(super) String);

/// One item a handler hands the host, as the caps count it.
pub(super) enum Item<'a> {
    /// A frame for the calling client.
    Reply,
    /// A frame for a player's client.
    Push(PlayerId),
    /// A message of this kind to another entity.
    Message(&'a str),
    /// A log line.
    Log,
    /// A state key, set or removed.
    Key(&'a str),
    /// A state value, under this key.
    Value(&'a str),
}

impl Item<'_> {
    /// What the item is, in an error.
    pub(super) fn noun(&self) -> &'static str {
        match self {
            Item::Reply => "a reply",
            Item::Push(_) => "a push",
            Item::Message(_) => "a message",
            Item::Log => "a log line",
            Item::Key(_) => "a state key",
            Item::Value(_) => "a state value",
        }
    }

    /// Which one it was, in an error: enough to find it in the handler.
    fn detail(&self) -> String {
        match self {
            Item::Reply | Item::Log => String::new(),
            Item::Push(player) => format!(" (to player {player})"),
            Item::Message(kind) => format!(" (kind `{}`)", preview(kind)),
            Item::Key(key) => format!(" (`{}`)", preview(key)),
            Item::Value(key) => format!(" (key `{}`)", preview(key)),
        }
    }

    /// The item's own cap, what the cap is on, and its config key.
    pub(super) fn cap(&self, caps: &Caps) -> (usize, &'static str, &'static str) {
        match self {
            Item::Reply | Item::Push(_) => (caps.max_frame_bytes, "one frame", "max_frame_bytes"),
            Item::Message(_) => (caps.max_message_bytes, "one sent message, kind and body", "max_message_bytes"),
            Item::Log => (caps.max_log_bytes, "one log line", "max_log_bytes"),
            Item::Key(_) => (caps.max_key_bytes, "one state key", "max_key_bytes"),
            Item::Value(_) => (caps.max_value_bytes, "one state value", "max_value_bytes"),
        }
    }
}

/// The start of a long text, for an error that quotes it.
pub(super) fn preview(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.len() <= SHOWN {
        return text.to_owned();
    }
    format!("{}…", &text[..text.floor_char_boundary(SHOWN)])
}

/// The error of an item over its own cap.
pub(super) fn over_item_cap(item: &Item<'_>, bytes: usize, caps: &Caps) -> Breach {
    let (cap, one, key) = item.cap(caps);
    Breach(format!(
        "(emit) {} of {bytes} bytes{}, over the cap of {cap} on {one} (`{key}`)",
        item.noun(),
        item.detail()
    ))
}

/// What `max_emits` counts, for its error.
pub(super) const COUNTED_ITEMS: &str = "a send, reply, push, log line or state removal is one item, a state set two: its key and \
                             its value";

/// Bytes and keys of an entity's state, as its quota counts them.
pub(super) fn state_size(state: &BTreeMap<String, Vec<u8>>) -> (usize, usize) {
    (state.iter().map(|(k, v)| k.len() + v.len()).sum(), state.len())
}
