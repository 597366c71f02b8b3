//! The player's profile: name, level and experience, gold, hit points.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_guest::{Outcome, PlayerId, Reject, state};

/// The state key the profile is stored under.
pub const KEY: &str = "profile";

/// Gold a new player starts with.
pub const STARTING_GOLD: u64 = 100;

/// Hit points at level 1.
pub const BASE_HP: u32 = 100;

/// Hit points each level adds to the maximum.
pub const HP_PER_LEVEL: u32 = 10;

/// The highest level.
pub const MAX_LEVEL: u32 = 50;

/// A player's profile, created at the first login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The name the player first logged in with.
    pub name: String,
    /// Level, from 1 to [`MAX_LEVEL`].
    pub level: u32,
    /// Experience gathered towards the next level.
    pub xp: u64,
    /// Gold to spend in the shop and on pets.
    pub gold: u64,
    /// Current hit points.
    pub hp: u32,
    /// Hit points when fully healed; grows with the level.
    pub max_hp: u32,
    /// When the profile was created (host time, ms).
    pub created_ms: u64,
    /// When the player last logged in (host time, ms).
    pub last_login_ms: u64,
    /// How many times the player has logged in.
    pub logins: u64,
}

impl Profile {
    /// A level-1 profile for a new player.
    pub fn new(name: &str, now_ms: u64) -> Self {
        Profile {
            name: name.to_owned(),
            level: 1,
            xp: 0,
            gold: STARTING_GOLD,
            hp: BASE_HP,
            max_hp: BASE_HP,
            created_ms: now_ms,
            last_login_ms: now_ms,
            logins: 1,
        }
    }

    /// Reads the profile, or fails if the player never logged in.
    pub fn load() -> Outcome<Profile> {
        state::get(KEY)?.ok_or_else(|| Reject::new("no profile: log in first"))
    }

    /// Writes the profile back (committed with the handler).
    pub fn save(&self) {
        state::set(KEY, self);
    }

    /// Experience needed to go from this level to the next.
    pub fn xp_to_next(&self) -> u64 {
        u64::from(self.level) * 100
    }

    /// Adds experience, levelling up as often as it allows; returns the levels gained.
    /// A level-up raises the maximum hit points and heals fully.
    pub fn gain_xp(&mut self, xp: u64) -> u32 {
        if self.level >= MAX_LEVEL {
            return 0;
        }
        self.xp = self.xp.saturating_add(xp);
        let mut gained = 0;
        while self.level < MAX_LEVEL && self.xp >= self.xp_to_next() {
            self.xp -= self.xp_to_next();
            self.level += 1;
            self.max_hp += HP_PER_LEVEL;
            gained += 1;
        }
        if self.level == MAX_LEVEL {
            self.xp = 0;
        }
        if gained > 0 {
            self.hp = self.max_hp;
        }
        gained
    }

    /// Restores up to `hp` hit points; returns how many were restored.
    pub fn heal(&mut self, hp: u32) -> u32 {
        let healed = hp.min(self.max_hp.saturating_sub(self.hp));
        self.hp += healed;
        healed
    }

    /// Pays `cost` gold, or fails without paying if there is not enough.
    pub fn spend(&mut self, cost: u64) -> Outcome {
        if cost > self.gold {
            return Err(Reject::new(format!("not enough gold: need {cost}, have {}", self.gold)));
        }
        self.gold -= cost;
        Ok(())
    }

    /// The `profile` frame.
    pub fn view(&self, player: PlayerId) -> Value {
        json!({
            "type": "profile",
            "id": player,
            "name": self.name,
            "level": self.level,
            "xp": self.xp,
            "xp_to_next": self.xp_to_next(),
            "gold": self.gold,
            "hp": self.hp,
            "max_hp": self.max_hp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xp_levels_up_and_heals() {
        let mut p = Profile::new("ann", 0);
        p.hp = 10;
        assert_eq!(p.gain_xp(99), 0);
        assert_eq!((p.level, p.xp, p.hp), (1, 99, 10));
        // 99 + 251 = 350: 100 to reach level 2, 200 to reach level 3, 50 left over.
        assert_eq!(p.gain_xp(251), 2);
        assert_eq!((p.level, p.xp), (3, 50));
        assert_eq!((p.hp, p.max_hp), (120, 120));
    }

    #[test]
    fn level_is_capped() {
        let mut p = Profile::new("ann", 0);
        p.gain_xp(u64::MAX);
        assert_eq!((p.level, p.xp), (MAX_LEVEL, 0));
        assert_eq!(p.gain_xp(1000), 0);
        assert_eq!(p.xp, 0);
    }

    #[test]
    fn heal_is_capped_at_max() {
        let mut p = Profile::new("ann", 0);
        p.hp = 90;
        assert_eq!(p.heal(40), 10);
        assert_eq!(p.hp, 100);
        assert_eq!(p.heal(40), 0);
    }

    #[test]
    fn spend_refuses_overdraft() {
        let mut p = Profile::new("ann", 0);
        assert_eq!(p.spend(101), Err(Reject::new("not enough gold: need 101, have 100")));
        assert_eq!(p.gold, 100);
        p.spend(100).unwrap();
        assert_eq!(p.gold, 0);
    }
}
