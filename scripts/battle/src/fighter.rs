//! A fighter in a battle room — a player or the practice bot — and the actions it takes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_guest::{Outcome, PlayerId, Reject};

/// The practice bot's id. Player ids are never 0.
pub const BOT_ID: PlayerId = 0;

/// Hit points, attack and defense a fighter starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Hit points when unhurt.
    pub hp: u32,
    /// Damage dealt before the target's defense.
    pub attack: u32,
    /// Damage taken off each hit received.
    pub defense: u32,
}

/// A player's stats.
pub const PLAYER_STATS: Stats = Stats { hp: 100, attack: 12, defense: 4 };

/// The bot's stats, facing `humans` players (it grows with them).
pub fn bot_stats(humans: usize) -> Stats {
    let humans = u32::try_from(humans).unwrap_or(u32::MAX).max(1);
    Stats { hp: 80 * humans, attack: 10 + 2 * (humans - 1), defense: 3 }
}

/// What a fighter does in one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Hits one opponent.
    Attack,
    /// Halves the damage of every hit taken this tick.
    Defend,
    /// Restores some hit points; then waits out a cooldown.
    Heal,
}

impl Action {
    /// Parses an action's name, with a readable reason for an unknown one.
    pub fn parse(name: &str) -> Outcome<Action> {
        match name {
            "attack" => Ok(Action::Attack),
            "defend" => Ok(Action::Defend),
            "heal" => Ok(Action::Heal),
            other => Err(Reject::new(format!("unknown action `{other}`: use attack, defend or heal"))),
        }
    }

    /// The action's name in frames.
    pub fn name(self) -> &'static str {
        match self {
            Action::Attack => "attack",
            Action::Defend => "defend",
            Action::Heal => "heal",
        }
    }
}

/// An action chosen for the next tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// What to do.
    pub action: Action,
    /// Whom to attack; `None` lets the room pick the weakest opponent.
    pub target: Option<PlayerId>,
}

/// One fighter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fighter {
    /// The player's id, or [`BOT_ID`].
    pub id: PlayerId,
    /// Whether the room plays this fighter (it gets no client frames).
    pub bot: bool,
    /// Fighters of the same team do not fight each other; the last team standing wins.
    pub team: u32,
    /// Current hit points; 0 is down, for the rest of the battle.
    pub hp: u32,
    /// Hit points when unhurt.
    pub max_hp: u32,
    /// Damage dealt before the target's defense.
    pub attack: u32,
    /// Damage taken off each hit received.
    pub defense: u32,
    /// The first tick (counted from the room's start) at which it may heal again.
    pub heal_ready_at: u64,
    /// The action chosen for the next tick, if any; one per tick.
    pub queued: Option<Command>,
    /// What it did in the last tick, shown to clients.
    pub last: Option<Action>,
}

impl Fighter {
    /// A fresh fighter.
    pub fn new(id: PlayerId, bot: bool, team: u32, stats: Stats) -> Self {
        Fighter {
            id,
            bot,
            team,
            hp: stats.hp,
            max_hp: stats.hp,
            attack: stats.attack,
            defense: stats.defense,
            heal_ready_at: 0,
            queued: None,
            last: None,
        }
    }

    /// Whether it is still in the fight.
    pub fn alive(&self) -> bool {
        self.hp > 0
    }

    /// Ticks until it may heal, at room tick `now` (0 when it may).
    pub fn heal_in(&self, now: u64) -> u64 {
        self.heal_ready_at.saturating_sub(now)
    }

    /// The fighter as `battle.start` and `battle.state` frames show it, at room tick `now`.
    pub fn view(&self, now: u64) -> Value {
        json!({
            "id": self.id,
            "bot": self.bot,
            "team": self.team,
            "hp": self.hp,
            "max_hp": self.max_hp,
            "attack": self.attack,
            "defense": self.defense,
            "heal_in": self.heal_in(now),
            "last": self.last.map(Action::name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_by_name() {
        for action in [Action::Attack, Action::Defend, Action::Heal] {
            assert_eq!(Action::parse(action.name()), Ok(action));
        }
        assert_eq!(Action::parse("dance"), Err(Reject::new("unknown action `dance`: use attack, defend or heal")));
    }

    #[test]
    fn the_bot_grows_with_the_players() {
        assert_eq!(bot_stats(1), Stats { hp: 80, attack: 10, defense: 3 });
        assert_eq!(bot_stats(3), Stats { hp: 240, attack: 14, defense: 3 });
        assert_eq!(bot_stats(0), bot_stats(1));
    }
}
