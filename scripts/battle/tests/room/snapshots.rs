//! Snapshots: moving a running battle to another module.

use crate::*;
use warren_guest::Room;
use warren_script_battle::snapshot::VERSION;

#[test]
fn a_snapshot_is_the_versioned_room() {
    let h = practice();
    let snap: Value = serde_json::from_slice(&h.room().snapshot()).unwrap();
    assert_eq!(snap["version"], VERSION);
    assert_eq!(snap["room"], ROOM);
    assert_eq!(snap["fighters"].as_array().unwrap().len(), 2);
}

#[test]
fn migrating_mid_battle_keeps_the_exact_state() {
    let mut h = practice();
    for _ in 0..10 {
        send(&mut h, 1, act("attack"));
        tick(&mut h);
    }
    send(&mut h, 1, act("defend"));
    let before = h.room().clone();
    h.migrate().unwrap();
    assert_eq!(h.room(), &before);
    // The queued input survives the swap and is played next tick.
    tick(&mut h);
    assert_eq!(fighter(&h, 1).last, Some(warren_script_battle::fighter::Action::Defend));
}

#[test]
fn a_migrated_battle_plays_on_exactly_as_if_never_moved() {
    let mut stayed = room(json!({"players": [1]}), 99);
    let mut moved = room(json!({"players": [1]}), 99);
    for _ in 0..8 {
        send(&mut stayed, 1, act("attack"));
        send(&mut moved, 1, act("attack"));
        tick(&mut stayed);
        tick(&mut moved);
    }
    moved.migrate().unwrap();
    let a = run_to_end(&mut stayed, Some(1), 600);
    let b = run_to_end(&mut moved, Some(1), 600);
    assert_eq!(a, b);
}

/// What the first version of this module wrote, 12 ticks into a practice battle: no
/// version, no teams, the heal cooldown counted in ticks left, no tick cap in the room.
fn version_1_snapshot() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "room": ROOM,
        "practice": true,
        "ticks": 12,
        "end": null,
        "fighters": [
            {"id": 1, "bot": false, "hp": 70, "max_hp": 100, "attack": 12, "defense": 4,
             "heal_cooldown": 5, "queued": {"action": "attack", "target": null}, "last": "heal"},
            {"id": 0, "bot": true, "hp": 40, "max_hp": 80, "attack": 10, "defense": 3,
             "heal_cooldown": 0, "queued": null, "last": "attack"},
        ],
    }))
    .unwrap()
}

#[test]
fn a_version_1_snapshot_is_upgraded() {
    let mut room = Battle::restore(&version_1_snapshot()).unwrap();
    assert_eq!(room.version, VERSION);
    assert_eq!(room.max_ticks, 600);
    assert_eq!((room.fighters[0].team, room.fighters[1].team), (0, 1));
    assert_eq!((room.fighters[0].heal_ready_at, room.fighters[1].heal_ready_at), (17, 12));
    assert_eq!(room.fighters[0].heal_in(room.ticks), 5);
    assert_eq!(room.fighters[0].hp, 70);
    // And it plays on.
    let (status, effects) = tick_arranged(&mut room, 1);
    assert_eq!(status, RoomStatus::Running);
    assert_eq!(effects.pushes[0].1["tick"], 12);
    assert!(room.fighters[1].hp < 40 || room.fighters[1].last == Some(warren_script_battle::fighter::Action::Heal));
    // A restored room snapshots in the current version.
    let again: Value = serde_json::from_slice(&room.snapshot()).unwrap();
    assert_eq!(again["version"], VERSION);
}

#[test]
fn a_room_taken_over_from_version_1_plays_to_its_end_within_the_caps() {
    // As a battleapp takes the room over after a module swap: restored under the host's
    // caps, told the tick count stored beside the snapshot, then played on.
    let mut h = Harness::from_snapshot(&version_1_snapshot()).unwrap();
    assert_eq!((h.room().version, h.room().ticks), (VERSION, 12));
    h.set_next_tick(12);
    // The attack player 1 had queued before the swap is played first.
    assert_eq!(tick(&mut h).pushes[0].1["tick"], 12);
    let run = run_to_end(&mut h, Some(1), 600);
    let end = run.room.end.expect("the battle ended");
    assert_eq!(end.winner, Some(1), "70 hit points attacking 40 win");
    // Its snapshot now is of this version, and moves again.
    assert_eq!(serde_json::from_slice::<Value>(&h.room().snapshot()).unwrap()["version"], VERSION);
    h.migrate().unwrap();
}

#[test]
fn newer_or_broken_snapshots_are_refused() {
    let mut snap: Value = serde_json::from_slice(&practice().room().snapshot()).unwrap();
    snap["version"] = json!(VERSION + 1);
    let err = Battle::restore(&serde_json::to_vec(&snap).unwrap()).unwrap_err();
    assert_eq!(
        err.0,
        format!("cannot restore: snapshot version {} is newer than this module's {VERSION}", VERSION + 1)
    );
    assert!(Battle::restore(b"not json").unwrap_err().0.starts_with("cannot restore: "));
    let err = Battle::restore(br#"{"version": 2, "room": 1}"#).unwrap_err();
    assert!(err.0.starts_with("cannot restore: missing field"), "{err}");
}
