//! Warren's battle script: a room where players — or one player and a practice bot —
//! fight on a fixed tick.
//!
//! - [`fighter`]: fighters, their stats and actions.
//! - [`combat`]: what a tick does — the bot's choice, damage, defend, heal.
//! - [`snapshot`]: snapshot versions, so a module swap mid-battle keeps the fight.
//!
//! Players send `battle.input` frames; each queues one action for the next tick. Each
//! tick plays the queued actions, pushes `battle.state` to every player, and when one
//! team is left standing (or the tick cap is reached) pushes `battle.end`, sends each
//! player a `battle.result` message for the baseapp to pay rewards, and finishes.

pub mod combat;
pub mod fighter;
pub mod snapshot;

use crate::combat::Event;
use crate::fighter::{Action, BOT_ID, Command, Fighter, PLAYER_STATS, bot_stats};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use warren_guest::prelude::*;

/// The most ticks a battle lasts; then the team with more hit points wins.
pub const MAX_TICKS: u64 = 600;

/// The most players in one room.
pub const MAX_PLAYERS: usize = 10;

/// The message kind that tells each player's baseapp how the battle went.
pub const RESULT_KIND: &str = "battle.result";

/// How `create` is told who fights.
#[derive(Debug, Clone, Deserialize)]
pub struct Setup {
    /// The players, in order; each fights alone unless this is practice.
    pub players: Vec<PlayerId>,
    /// Practice: the players form one team against the bot. Implied for one player.
    #[serde(default)]
    pub practice: bool,
    /// A tick cap below [`MAX_TICKS`], for short modes.
    #[serde(default)]
    pub max_ticks: Option<u64>,
}

/// A client's input frame.
#[derive(Debug, Clone, Deserialize)]
struct Input {
    #[serde(rename = "type")]
    kind: String,
    action: String,
    #[serde(default)]
    target: Option<PlayerId>,
}

/// Why a battle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// One team (or none) is left standing.
    Knockout,
    /// The tick cap was reached; the team with more hit points won.
    Time,
}

/// How a battle ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BattleEnd {
    /// The best fighter of the winning team (most hit points left); `None` for a draw.
    pub winner: Option<PlayerId>,
    /// Every member of the winning team, down or not; empty for a draw.
    pub winners: Vec<PlayerId>,
    /// Why it ended.
    pub reason: EndReason,
}

/// A battle room. It lives in guest memory; [`Room::snapshot`] is its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battle {
    /// Snapshot format version ([`snapshot::VERSION`]), for restoring into newer modules.
    pub version: u32,
    /// The room's id.
    pub room: u64,
    /// Whether players fight the bot together (smaller rewards).
    pub practice: bool,
    /// Everyone in the fight, players in setup order, then the bot.
    pub fighters: Vec<Fighter>,
    /// Ticks played so far; cooldowns count in these.
    pub ticks: u64,
    /// Ticks after which the battle ends on hit points.
    pub max_ticks: u64,
    /// Set when the battle is over.
    pub end: Option<BattleEnd>,
}

impl Battle {
    fn humans(&self) -> impl Iterator<Item = &Fighter> {
        self.fighters.iter().filter(|f| !f.bot)
    }

    /// Pushes `frame` to every player in the room.
    fn push_all(&self, frame: &Value) {
        msg::push_each(self.humans().map(|f| f.id), frame);
    }

    fn views(&self) -> Vec<Value> {
        self.fighters.iter().map(|f| f.view(self.ticks)).collect()
    }

    /// Whether the battle is over after the tick just played, and how.
    fn judge(&self) -> Option<BattleEnd> {
        let standing: BTreeSet<u32> = self.fighters.iter().filter(|f| f.alive()).map(|f| f.team).collect();
        let (team, reason) = if standing.len() <= 1 {
            (standing.first().copied(), EndReason::Knockout)
        } else if self.ticks >= self.max_ticks {
            let mut hp: BTreeMap<u32, u64> = BTreeMap::new();
            for f in &self.fighters {
                *hp.entry(f.team).or_default() += u64::from(f.hp);
            }
            let best = hp.values().copied().max().unwrap_or(0);
            let leaders: Vec<u32> = hp.iter().filter(|(_, h)| **h == best).map(|(t, _)| *t).collect();
            (if leaders.len() == 1 { Some(leaders[0]) } else { None }, EndReason::Time)
        } else {
            return None;
        };
        let members: Vec<&Fighter> = self.fighters.iter().filter(|f| Some(f.team) == team).collect();
        let winner = members.iter().max_by_key(|f| (f.hp, std::cmp::Reverse(f.id))).map(|f| f.id);
        Some(BattleEnd { winner, winners: members.iter().map(|f| f.id).collect(), reason })
    }

    /// Checks an input from `player` against the room; returns the fighter's index.
    fn check_input(&self, player: PlayerId, action: Action, target: Option<PlayerId>) -> Outcome<usize> {
        if self.end.is_some() {
            return Err(Reject::new("the battle is over"));
        }
        let index = self
            .fighters
            .iter()
            .position(|f| f.id == player && !f.bot)
            .ok_or_else(|| Reject::new("you are not in this battle"))?;
        let me = &self.fighters[index];
        if !me.alive() {
            return Err(Reject::new("you are down"));
        }
        if me.queued.is_some() {
            return Err(Reject::new("you already chose an action for this tick"));
        }
        match (action, target) {
            (Action::Heal, _) if me.heal_in(self.ticks) > 0 => {
                let wait = me.heal_in(self.ticks);
                Err(Reject::new(format!("heal is ready in {wait} tick{}", if wait == 1 { "" } else { "s" })))
            }
            (Action::Heal, _) if me.hp == me.max_hp => Err(Reject::new("you are at full health")),
            (Action::Attack, Some(t)) if t == player => Err(Reject::new("you cannot attack yourself")),
            (Action::Attack, Some(t)) => match self.fighters.iter().find(|f| f.id == t) {
                None => Err(Reject::new(format!("no fighter {t} in this battle"))),
                Some(f) if f.team == me.team => Err(Reject::new(format!("fighter {t} is on your side"))),
                Some(f) if !f.alive() => Err(Reject::new(format!("fighter {t} is already down"))),
                Some(_) => Ok(index),
            },
            _ => Ok(index),
        }
    }
}

impl Room for Battle {
    fn create(room: u64, setup: &[u8]) -> Outcome<Self> {
        let setup: Setup = serde_json::from_slice(setup).map_err(|e| Reject::new(format!("bad setup: {e}")))?;
        if setup.players.is_empty() {
            return Err(Reject::new("a battle needs at least one player"));
        }
        if setup.players.len() > MAX_PLAYERS {
            return Err(Reject::new(format!("at most {MAX_PLAYERS} players fit in a battle")));
        }
        for (i, id) in setup.players.iter().enumerate() {
            if *id == BOT_ID {
                return Err(Reject::new(format!("player id {BOT_ID} is the bot's")));
            }
            if setup.players[..i].contains(id) {
                return Err(Reject::new(format!("player {id} is listed twice")));
            }
        }
        let max_ticks = match setup.max_ticks {
            None => MAX_TICKS,
            Some(t) if (1..=MAX_TICKS).contains(&t) => t,
            Some(t) => {
                return Err(Reject::new(format!("max_ticks {t} is not from 1 to {MAX_TICKS}")));
            }
        };
        let practice = setup.practice || setup.players.len() == 1;
        let mut fighters: Vec<Fighter> = (0..)
            .zip(&setup.players)
            .map(|(i, id)| Fighter::new(*id, false, if practice { 0 } else { i }, PLAYER_STATS))
            .collect();
        if practice {
            fighters.push(Fighter::new(BOT_ID, true, 1, bot_stats(setup.players.len())));
        }
        let battle = Battle { version: snapshot::VERSION, room, practice, fighters, ticks: 0, max_ticks, end: None };
        battle.push_all(&json!({
            "type": "battle.start",
            "room": room,
            "practice": practice,
            "max_ticks": max_ticks,
            "fighters": battle.views(),
        }));
        log::info(&format!("battle {room}: {} players, practice {practice}", setup.players.len()));
        Ok(battle)
    }

    fn input(&mut self, player: PlayerId, input: &[u8]) -> Outcome {
        let input: Input = decode_frame(input)?;
        if input.kind != "battle.input" {
            return Err(Reject::new(format!("unknown frame type `{}`: send battle.input", input.kind)));
        }
        let action = Action::parse(&input.action)?;
        let target = if action == Action::Attack { input.target } else { None };
        let index = self.check_input(player, action, target)?;
        self.fighters[index].queued = Some(Command { action, target });
        Ok(())
    }

    fn tick(&mut self, tick: u64) -> Outcome<RoomStatus> {
        if self.end.is_some() {
            return Ok(RoomStatus::Finished);
        }
        let now = self.ticks;
        for i in 0..self.fighters.len() {
            let f = &self.fighters[i];
            if f.bot && f.alive() && f.queued.is_none() {
                let choice = combat::bot_choice(f, &self.fighters, now);
                self.fighters[i].queued = Some(choice);
            }
        }
        let events: Vec<Event> = combat::resolve(&mut self.fighters, now);
        self.ticks += 1;
        self.push_all(&json!({
            "type": "battle.state",
            "room": self.room,
            "tick": tick,
            "fighters": self.views(),
            "events": events,
        }));
        let Some(end) = self.judge() else {
            return Ok(RoomStatus::Running);
        };
        self.push_all(&json!({
            "type": "battle.end",
            "room": self.room,
            "tick": tick,
            "winner": end.winner,
            "winners": end.winners,
            "reason": end.reason,
        }));
        let result = json!({
            "room": self.room,
            "winner": end.winner,
            "winners": end.winners,
            "practice": self.practice,
        });
        for f in self.humans() {
            msg::send(Address::Player(f.id), RESULT_KIND, &result);
        }
        log::info(&format!("battle {}: over after {} ticks, winner {:?}", self.room, self.ticks, end.winner));
        self.end = Some(end);
        Ok(RoomStatus::Finished)
    }

    fn restore(snapshot: &[u8]) -> Outcome<Self> {
        let value: Value = serde_json::from_slice(snapshot).map_err(|e| Reject::new(format!("cannot restore: {e}")))?;
        let value = snapshot::upgrade(value)?;
        serde_json::from_value(value).map_err(|e| Reject::new(format!("cannot restore: {e}")))
    }
}

warren_guest::export_room!(Battle);
