//! The battle script driven through `RoomHarness`, as a battleapp would drive it: one
//! test binary, one module per concern.

mod combat;
mod inputs;
mod runs;
mod setup;
mod snapshots;

use serde_json::{Value, json};
use warren_guest::RoomStatus;
use warren_guest::testing::{Effects, RoomHarness};
use warren_script_battle::Battle;
use warren_script_battle::fighter::Fighter;

/// The room id used throughout.
pub const ROOM: u64 = 7;

/// A harness for the battle room.
pub type Harness = RoomHarness<Battle>;

/// A room made from `setup` with the harness's random seed set to `seed`.
pub fn room(setup: Value, seed: u64) -> Harness {
    let mut h = Harness::new();
    h.host.set_seed(seed);
    h.create(ROOM, setup).expect("setup is valid");
    h
}

/// Player 1 against the bot.
pub fn practice() -> Harness {
    room(json!({"players": [1]}), 1)
}

/// Player 1 against player 2.
pub fn duel() -> Harness {
    room(json!({"players": [1, 2]}), 1)
}

/// A `battle.input` frame.
pub fn act(action: &str) -> Value {
    json!({"type": "battle.input", "action": action})
}

/// An attack on `target`.
pub fn attack(target: u64) -> Value {
    json!({"type": "battle.input", "action": "attack", "target": target})
}

/// Sends `frame` from `player`, expecting it to be queued.
pub fn send(h: &mut Harness, player: u64, frame: Value) {
    if let Err(reject) = h.input(player, frame.clone()) {
        panic!("{frame} from {player} was rejected: {reject}");
    }
}

/// Sends `frame` from `player`, expects it to be refused with the room unchanged, and
/// returns the reason.
pub fn rejected(h: &mut Harness, player: u64, frame: Value) -> String {
    let before = h.room().clone();
    let reason = match h.input(player, frame.clone()) {
        Ok(_) => panic!("{frame} from {player} was accepted"),
        Err(reject) => reject.0,
    };
    assert_eq!(h.room(), &before, "a refused input changed the room");
    reason
}

/// Runs one tick, expecting the battle to go on.
pub fn tick(h: &mut Harness) -> Effects {
    let (status, effects) = h.tick().expect("ticks do not fail");
    assert_eq!(status, RoomStatus::Running, "the battle ended early: {effects:?}");
    effects
}

/// The fighter `id`.
pub fn fighter(h: &Harness, id: u64) -> &Fighter {
    h.room().fighters.iter().find(|f| f.id == id).expect("fighter is in the room")
}

/// The events of the `battle.state` frame pushed to `player`.
pub fn events(effects: &Effects, player: u64) -> Vec<Value> {
    let frame = effects
        .pushes
        .iter()
        .find(|(p, f)| *p == player && f["type"] == "battle.state")
        .map(|(_, f)| f)
        .expect("a battle.state frame was pushed");
    frame["events"].as_array().expect("events is a list").clone()
}

/// Everything one run of a battle emitted, tick by tick, and how it ended.
#[derive(Debug, PartialEq)]
pub struct Run {
    /// Each tick's effects, in order.
    pub ticks: Vec<Effects>,
    /// The room at the end.
    pub room: Battle,
}

/// Ticks until the battle finishes (at most `limit` ticks); player `attacker`, if any,
/// attacks in every tick.
pub fn run_to_end(h: &mut Harness, attacker: Option<u64>, limit: usize) -> Run {
    let mut ticks = Vec::new();
    for _ in 0..limit {
        if let Some(p) = attacker
            && fighter(h, p).hp > 0
        {
            send(h, p, act("attack"));
        }
        let (status, effects) = h.tick().expect("ticks do not fail");
        ticks.push(effects);
        if status == RoomStatus::Finished {
            return Run { ticks, room: h.room().clone() };
        }
    }
    panic!("no winner after {limit} ticks");
}

/// Runs one tick of `room` outside a `RoomHarness`, with random seed `seed`: for rooms
/// arranged by hand (a harness can only create rooms through `create`).
pub fn tick_arranged(room: &mut Battle, seed: u64) -> (RoomStatus, Effects) {
    use warren_guest::Room;
    let mut host = warren_guest::testing::Harness::new();
    host.set_seed(seed);
    host.call(|| room.tick(room.ticks)).expect("ticks do not fail")
}
