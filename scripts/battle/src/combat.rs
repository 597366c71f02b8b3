//! How a tick plays out: the bot's choice, damage, defending, healing.
//!
//! All randomness comes from [`env::random`], the host's per-message sequence, so a tick
//! replayed with the same seed plays out the same.

use crate::fighter::{Action, Command, Fighter};
use serde::Serialize;
use warren_guest::{PlayerId, env};

/// A heal restores this share of the fighter's maximum hit points, in percent.
pub const HEAL_PERCENT: u32 = 25;

/// Ticks from one heal to the next: a fighter that heals in room tick `t` may heal
/// again from tick `t + HEAL_COOLDOWN`.
pub const HEAL_COOLDOWN: u64 = 8;

/// Damage varies from this percentage of the base...
pub const SPREAD_MIN: u64 = 80;

/// ...to this one, inclusive.
pub const SPREAD_MAX: u64 = 120;

/// Below this share of its hit points (percent) the bot tries to heal.
pub const BOT_HEAL_BELOW: u32 = 40;

/// Something that happened in a tick, as `battle.state` frames list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// `actor` hit `target` for `damage`; `blocked` if the target defended.
    Attack {
        /// Who attacked.
        actor: PlayerId,
        /// Who was hit.
        target: PlayerId,
        /// Hit points taken.
        damage: u32,
        /// Whether defending halved it.
        blocked: bool,
    },
    /// `actor` defended.
    Defend {
        /// Who defended.
        actor: PlayerId,
    },
    /// `actor` healed `hp` hit points.
    Heal {
        /// Who healed.
        actor: PlayerId,
        /// Hit points restored.
        hp: u32,
    },
    /// `actor` went down.
    Down {
        /// Who is down.
        actor: PlayerId,
    },
}

/// The damage of one hit: attack minus defense (at least 1), scaled by `spread` percent,
/// halved if the target defends, never less than 1.
pub fn damage(attack: u32, defense: u32, defending: bool, spread: u64) -> u32 {
    let base = u64::from(attack.saturating_sub(defense).max(1));
    let hit = (base * spread / 100).max(1);
    let hit = if defending { (hit / 2).max(1) } else { hit };
    u32::try_from(hit).unwrap_or(u32::MAX)
}

/// A random damage spread in percent, from [`SPREAD_MIN`] to [`SPREAD_MAX`].
pub fn roll_spread() -> u64 {
    env::random_range(SPREAD_MIN, SPREAD_MAX + 1)
}

/// Hit points a heal restores to a fighter with `max_hp`.
pub fn heal_amount(max_hp: u32) -> u32 {
    (max_hp.saturating_mul(HEAL_PERCENT) / 100).max(1)
}

/// The living opponent (another team) with the fewest hit points, lowest id first.
pub fn weakest_opponent(me: &Fighter, fighters: &[Fighter]) -> Option<PlayerId> {
    fighters.iter().filter(|f| f.alive() && f.team != me.team).min_by_key(|f| (f.hp, f.id)).map(|f| f.id)
}

/// What the bot does this tick: heals when hurt (mostly), otherwise attacks the weakest
/// opponent three times in four and defends the fourth.
pub fn bot_choice(me: &Fighter, fighters: &[Fighter], now: u64) -> Command {
    let hurt = u64::from(me.hp) * 100 < u64::from(me.max_hp) * u64::from(BOT_HEAL_BELOW);
    if hurt && me.heal_in(now) == 0 && !env::random().is_multiple_of(4) {
        return Command { action: Action::Heal, target: None };
    }
    if env::random().is_multiple_of(4) {
        Command { action: Action::Defend, target: None }
    } else {
        Command { action: Action::Attack, target: weakest_opponent(me, fighters) }
    }
}

/// Plays one tick at room tick `now`: every living fighter's queued command (consumed),
/// defends first, then heals, then all attacks at once — a fighter downed this tick
/// still lands its own hit. Returns what happened, in order.
pub fn resolve(fighters: &mut [Fighter], now: u64) -> Vec<Event> {
    let commands: Vec<Option<Command>> = fighters.iter_mut().map(|f| f.queued.take().filter(|_| f.alive())).collect();
    let defending: Vec<bool> = commands.iter().map(|c| c.is_some_and(|c| c.action == Action::Defend)).collect();
    let mut events = Vec::new();

    for (fighter, command) in fighters.iter_mut().zip(&commands) {
        fighter.last = command.map(|c| c.action);
        match command.map(|c| c.action) {
            Some(Action::Defend) => events.push(Event::Defend { actor: fighter.id }),
            Some(Action::Heal) if fighter.heal_in(now) == 0 => {
                let hp = heal_amount(fighter.max_hp).min(fighter.max_hp - fighter.hp);
                fighter.hp += hp;
                fighter.heal_ready_at = now + HEAL_COOLDOWN;
                events.push(Event::Heal { actor: fighter.id, hp });
            }
            _ => {}
        }
    }

    let mut taken = vec![0u32; fighters.len()];
    for (i, command) in commands.iter().enumerate() {
        let Some(Command { action: Action::Attack, target }) = *command else {
            continue;
        };
        let attacker = &fighters[i];
        let target = target
            .and_then(|t| fighters.iter().position(|f| f.id == t && f.alive() && f.team != attacker.team))
            .or_else(|| weakest_opponent(attacker, fighters).and_then(|t| fighters.iter().position(|f| f.id == t)));
        let Some(t) = target else { continue };
        let hit = damage(attacker.attack, fighters[t].defense, defending[t], roll_spread());
        taken[t] = taken[t].saturating_add(hit);
        events.push(Event::Attack { actor: attacker.id, target: fighters[t].id, damage: hit, blocked: defending[t] });
    }

    for (fighter, hit) in fighters.iter_mut().zip(taken) {
        if hit > 0 && fighter.alive() {
            fighter.hp = fighter.hp.saturating_sub(hit);
            if !fighter.alive() {
                events.push(Event::Down { actor: fighter.id });
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_attack_minus_defense_with_spread() {
        assert_eq!(damage(12, 4, false, 100), 8);
        assert_eq!(damage(12, 4, false, 80), 6);
        assert_eq!(damage(12, 4, false, 120), 9);
    }

    #[test]
    fn defending_halves_damage() {
        assert_eq!(damage(12, 4, true, 100), 4);
        assert_eq!(damage(12, 4, true, 120), 4);
    }

    #[test]
    fn every_hit_does_at_least_one() {
        assert_eq!(damage(3, 50, false, 80), 1);
        assert_eq!(damage(3, 50, true, 80), 1);
        assert_eq!(damage(0, 0, true, 80), 1);
    }

    #[test]
    fn heal_is_a_share_of_max_hp() {
        assert_eq!(heal_amount(100), 25);
        assert_eq!(heal_amount(2), 1);
    }
}
