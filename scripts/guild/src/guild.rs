//! A guild's data: one value under the state key [`KEY`], plus the rules for names.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_guest::prelude::*;

/// The state key of the guild.
pub const KEY: &str = "guild";

/// The most members a guild may have.
pub const MAX_MEMBERS: usize = 50;

/// The shortest guild name, in characters.
pub const NAME_MIN_CHARS: usize = 3;

/// The longest guild name, in characters.
pub const NAME_MAX_CHARS: usize = 24;

/// The longest member display name, in characters.
pub const MEMBER_NAME_MAX_CHARS: usize = 32;

/// One member of a guild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The player.
    pub id: PlayerId,
    /// The player's display name when they joined.
    pub name: String,
    /// When they joined (the host's clock, `env::now_ms`).
    pub joined_ms: u64,
}

/// A guild, as kept in state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guild {
    /// The guild's name.
    pub name: String,
    /// The leader, always one of `members`.
    pub leader: PlayerId,
    /// When the guild was created.
    pub created_ms: u64,
    /// The members in the order they joined (the founder first).
    pub members: Vec<Member>,
}

impl Guild {
    /// The guild in state, or `None` if it does not exist (never created, or disbanded).
    pub fn load() -> Outcome<Option<Guild>> {
        state::get(KEY)
    }

    /// Writes the guild to state.
    pub fn save(&self) {
        state::set(KEY, self);
    }

    /// The member `player`, if they are one.
    pub fn member(&self, player: PlayerId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == player)
    }

    /// Whether `player` is a member.
    pub fn is_member(&self, player: PlayerId) -> bool {
        self.member(player).is_some()
    }

    /// The members' ids, in join order.
    pub fn member_ids(&self) -> Vec<PlayerId> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// The member who has been in the guild longest: the earliest `joined_ms`, and on a
    /// tie the one who joined first.
    pub fn longest_standing(&self) -> Option<&Member> {
        // `min_by_key` returns the first of equal minima, and `members` is in join order.
        self.members.iter().min_by_key(|m| m.joined_ms)
    }

    /// The guild as members and clients see it: name, leader, creation time, members.
    pub fn view(&self) -> Value {
        json!({
            "name": self.name,
            "leader": self.leader,
            "created_ms": self.created_ms,
            "members": self.members,
        })
    }
}

/// Checks a guild name: trimmed, [`NAME_MIN_CHARS`] to [`NAME_MAX_CHARS`] characters, no
/// control characters. Returns the trimmed name, or the reason it is refused.
pub fn guild_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let chars = name.chars().count();
    if !(NAME_MIN_CHARS..=NAME_MAX_CHARS).contains(&chars) {
        return Err(format!("a guild name must be {NAME_MIN_CHARS} to {NAME_MAX_CHARS} characters, not {chars}"));
    }
    if name.chars().any(char::is_control) {
        return Err("a guild name must not contain control characters".to_owned());
    }
    Ok(name.to_owned())
}

/// Checks a member's display name: trimmed, at most [`MEMBER_NAME_MAX_CHARS`] characters;
/// an empty one becomes `player-<id>`. Returns the name, or the reason it is refused.
pub fn member_name(player: PlayerId, name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(format!("player-{player}"));
    }
    let chars = name.chars().count();
    if chars > MEMBER_NAME_MAX_CHARS {
        return Err(format!("a player name must be at most {MEMBER_NAME_MAX_CHARS} characters, not {chars}"));
    }
    if name.chars().any(char::is_control) {
        return Err("a player name must not contain control characters".to_owned());
    }
    Ok(name.to_owned())
}
