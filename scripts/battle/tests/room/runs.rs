//! Whole battles: winners, the tick cap, determinism.

use crate::*;
use warren_guest::Address;
use warren_script_battle::{EndReason, MAX_TICKS};

fn end_frame(run: &Run, player: u64) -> Value {
    let last = run.ticks.last().expect("at least one tick");
    last.pushes.iter().find(|(p, f)| *p == player && f["type"] == "battle.end").expect("battle.end pushed").1.clone()
}

#[test]
fn a_practice_battle_ends_with_a_winner_within_the_cap() {
    let mut h = practice();
    let run = run_to_end(&mut h, Some(1), MAX_TICKS as usize);
    let end = run.room.end.clone().expect("the battle is over");
    assert_eq!(end.reason, EndReason::Knockout);
    // Attacking every tick beats the bot, which also defends and heals.
    assert_eq!(end.winner, Some(1));
    assert_eq!(end.winners, [1]);
    assert_eq!(fighter(&h, 0).hp, 0);
    let frame = end_frame(&run, 1);
    assert_eq!(
        frame,
        json!({
            "type": "battle.end",
            "room": ROOM,
            "tick": run.ticks.len() - 1,
            "winner": 1,
            "winners": [1],
            "reason": "knockout",
        })
    );
    // The last tick also shows the final state, before the end frame.
    let last = run.ticks.last().unwrap();
    assert_eq!(last.pushes[0].1["type"], "battle.state");
}

#[test]
fn the_result_goes_to_each_players_queue() {
    let mut h = practice();
    let run = run_to_end(&mut h, Some(1), MAX_TICKS as usize);
    let sends = &run.ticks.last().unwrap().sends;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].to, Address::Player(1));
    assert_eq!(sends[0].kind, "battle.result");
    assert_eq!(sends[0].body, json!({"room": ROOM, "winner": 1, "winners": [1], "practice": true}));
    assert!(run.ticks[..run.ticks.len() - 1].iter().all(|t| t.sends.is_empty()));
}

#[test]
fn a_player_who_does_nothing_loses_to_the_bot() {
    let mut h = practice();
    let run = run_to_end(&mut h, None, MAX_TICKS as usize);
    assert_eq!(end_frame(&run, 1)["winner"], 0);
    assert_eq!(run.ticks.last().unwrap().sends[0].body["winner"], 0);
}

#[test]
fn two_players_fight_to_the_end() {
    let mut h = duel();
    let mut ticks = 0;
    loop {
        send(&mut h, 1, act("attack"));
        if ticks % 3 == 0 {
            send(&mut h, 2, act("attack"));
        }
        ticks += 1;
        let (status, _) = h.tick().unwrap();
        if status == RoomStatus::Finished {
            break;
        }
    }
    let end = h.room().end.clone().unwrap();
    assert_eq!(end.winner, Some(1));
    assert!(ticks < 30, "{ticks}");
}

#[test]
fn at_the_cap_more_hp_wins() {
    let mut h = room(json!({"players": [1, 2], "max_ticks": 3}), 1);
    send(&mut h, 1, attack(2));
    tick(&mut h);
    tick(&mut h);
    let (status, effects) = h.tick().unwrap();
    assert_eq!(status, RoomStatus::Finished);
    let end = &effects.pushes.iter().find(|(_, f)| f["type"] == "battle.end").unwrap().1;
    assert_eq!((end["winner"].clone(), end["reason"].clone()), (json!(1), json!("time")));
    assert_eq!(h.room().ticks, 3);
}

#[test]
fn at_the_cap_equal_hp_is_a_draw() {
    let mut h = room(json!({"players": [1, 2], "max_ticks": 2}), 1);
    tick(&mut h);
    let (status, effects) = h.tick().unwrap();
    assert_eq!(status, RoomStatus::Finished);
    assert_eq!(effects.sends.len(), 2);
    for sent in &effects.sends {
        assert_eq!(sent.body, json!({"room": ROOM, "winner": null, "winners": [], "practice": false}));
    }
}

#[test]
fn a_stalling_battle_stops_at_600_ticks() {
    let mut h = duel();
    for _ in 0..MAX_TICKS - 1 {
        send(&mut h, 1, act("defend"));
        send(&mut h, 2, act("defend"));
        tick(&mut h);
    }
    let (status, _) = h.tick().unwrap();
    assert_eq!(status, RoomStatus::Finished);
    assert_eq!(h.room().end.as_ref().unwrap().reason, EndReason::Time);
}

#[test]
fn the_same_seed_plays_the_same_battle() {
    for seed in [1, 7, 12345] {
        let a = run_to_end(&mut room(json!({"players": [1]}), seed), Some(1), MAX_TICKS as usize);
        let b = run_to_end(&mut room(json!({"players": [1]}), seed), Some(1), MAX_TICKS as usize);
        assert_eq!(a, b, "seed {seed}");
    }
}

#[test]
fn other_seeds_play_other_battles() {
    let runs: Vec<Run> =
        (0..5).map(|seed| run_to_end(&mut room(json!({"players": [1]}), seed * 1000), None, 600)).collect();
    assert!(runs.windows(2).any(|w| w[0] != w[1]), "randomness changes nothing");
}
