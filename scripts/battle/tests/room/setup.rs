//! Creating rooms.

use crate::*;
use warren_script_battle::fighter::BOT_ID;

#[test]
fn one_player_gets_the_bot() {
    let h = practice();
    let room = h.room();
    assert!(room.practice);
    assert_eq!(room.version, 2);
    let ids: Vec<(u64, bool, u32)> = room.fighters.iter().map(|f| (f.id, f.bot, f.team)).collect();
    assert_eq!(ids, [(1, false, 0), (BOT_ID, true, 1)]);
    assert_eq!((fighter(&h, 1).hp, fighter(&h, 0).hp), (100, 80));
}

#[test]
fn practice_puts_the_players_on_one_team_against_a_bigger_bot() {
    let h = room(json!({"players": [1, 2], "practice": true}), 1);
    let ids: Vec<(u64, u32)> = h.room().fighters.iter().map(|f| (f.id, f.team)).collect();
    assert_eq!(ids, [(1, 0), (2, 0), (0, 1)]);
    assert_eq!(fighter(&h, 0).max_hp, 160);
}

#[test]
fn without_practice_everyone_fights_alone() {
    let h = room(json!({"players": [4, 5, 6]}), 1);
    let teams: Vec<u32> = h.room().fighters.iter().map(|f| f.team).collect();
    assert_eq!(teams, [0, 1, 2]);
    assert!(!h.room().practice);
}

#[test]
fn create_pushes_the_start_to_every_player() {
    let mut h = Harness::new();
    let effects = h.create(ROOM, json!({"players": [1, 2]})).unwrap();
    assert_eq!(effects.pushes.len(), 2);
    assert_eq!(effects.pushes[0].0, 1);
    assert_eq!(effects.pushes[1].0, 2);
    assert_eq!(
        effects.pushes[0].1,
        json!({
            "type": "battle.start",
            "room": ROOM,
            "practice": false,
            "max_ticks": 600,
            "fighters": [
                {"id": 1, "bot": false, "team": 0, "hp": 100, "max_hp": 100, "attack": 12, "defense": 4, "heal_in": 0, "last": null},
                {"id": 2, "bot": false, "team": 1, "hp": 100, "max_hp": 100, "attack": 12, "defense": 4, "heal_in": 0, "last": null},
            ],
        })
    );
}

#[test]
fn bad_setups_are_refused() {
    let cases = [
        (json!({"players": []}), "a battle needs at least one player"),
        (json!({"players": [1, 2, 1]}), "player 1 is listed twice"),
        (json!({"players": [0]}), "player id 0 is the bot's"),
        (json!({"players": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}), "at most 10 players fit in a battle"),
        (json!({"players": [1], "max_ticks": 0}), "max_ticks 0 is not from 1 to 600"),
        (json!({"players": [1], "max_ticks": 601}), "max_ticks 601 is not from 1 to 600"),
    ];
    for (setup, reason) in cases {
        let mut h = Harness::new();
        assert_eq!(h.create(ROOM, setup.clone()).unwrap_err().0, reason, "{setup}");
    }
    let mut h = Harness::new();
    let reason = h.create(ROOM, json!({"practice": true})).unwrap_err().0;
    assert!(reason.starts_with("bad setup: missing field `players`"), "{reason}");
}
