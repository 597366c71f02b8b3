//! Battle rooms: state in guest memory, transactional by checkpoint and journal, moved
//! to a new module by snapshot and restore.

use crate::{env, json, load};
use warren_runtime::{Battle, CallError, RoleModule, Room, RoomStatus};
use warren_test_guests::{ROOM_BAD_RESTORE, ROOM_V1, ROOM_V2};

fn last_frame(effects: &warren_runtime::Effects) -> serde_json::Value {
    json(&effects.pushes.last().expect("the room pushes a frame each tick").1)
}

#[test]
fn a_room_ticks_and_keeps_its_state_in_the_guest() {
    let role = RoleModule::new(load::<Battle>(ROOM_V1));
    let (mut room, _) = Room::create(role, 5, b"{}", env(1)).expect("create");
    room.input(1, b"go", env(2)).unwrap();
    let (status, fx) = room.tick(0, env(3)).unwrap();
    assert_eq!(status, RoomStatus::Running);
    let frame = last_frame(&fx);
    assert_eq!(frame["room"], 5);
    assert_eq!(frame["ticks"], 1);
    assert_eq!(frame["inputs"], 1);
}

#[test]
fn a_faulting_input_leaves_the_room_as_it_was() {
    let role = RoleModule::new(load::<Battle>(ROOM_V1));
    let (mut room, _) = Room::create(role, 1, b"{}", env(1)).unwrap();
    room.tick(0, env(2)).unwrap();
    room.input(1, b"ok", env(3)).unwrap();
    assert!(matches!(room.input(2, b"trap", env(4)), Err(CallError::Trap(_))));
    assert!(matches!(room.input(3, b"reject", env(5)), Err(CallError::Rejected(_))));
    let (_, fx) = room.tick(1, env(6)).unwrap();
    let frame = last_frame(&fx);
    assert_eq!(frame["ticks"], 2, "ticks before the fault survive");
    assert_eq!(frame["inputs"], 1, "the good input survives, the failed ones are gone");
}

#[test]
fn a_swap_moves_the_room_and_a_failed_restore_keeps_the_old_module() {
    let v1 = load::<Battle>(ROOM_V1);
    let v2 = load::<Battle>(ROOM_V2);
    let role = RoleModule::new(v1.clone());
    let (mut room, _) = Room::create(role.clone(), 9, b"{}", env(1)).unwrap();
    room.input(1, b"a", env(2)).unwrap();
    room.tick(0, env(3)).unwrap();
    assert_eq!(room.module_digest(), v1.digest());

    role.swap(v2.clone());
    let (_, fx) = room.tick(1, env(4)).unwrap();
    let frame = last_frame(&fx);
    assert_eq!(frame["version"], 2, "the tick after the swap runs the new module");
    assert_eq!(frame["restored_by"], 2);
    assert_eq!(frame["ticks"], 2, "the room carried its state across");
    assert_eq!(frame["inputs"], 1);
    assert_eq!(room.module_digest(), v2.digest());

    role.swap(load::<Battle>(ROOM_BAD_RESTORE));
    let (_, fx) = room.tick(2, env(5)).unwrap();
    assert_eq!(room.module_digest(), v2.digest(), "a room the new module cannot restore stays put");
    assert_eq!(last_frame(&fx)["ticks"], 3);
    let why = room.pinned().expect("a pinned room says why");
    assert!(why.contains("cannot restore it"), "{why}");
}

#[test]
fn a_module_is_checked_against_a_rooms_snapshot_before_any_room_moves() {
    let role = RoleModule::new(load::<Battle>(ROOM_V1));
    let (mut room, _) = Room::create(role, 4, b"{}", env(1)).unwrap();
    room.tick(0, env(2)).unwrap();
    let snap = room.checkpoint().unwrap().to_vec();
    Room::check_restore(load::<Battle>(ROOM_V2), &snap).expect("v2 restores v1's rooms");
    let refused = Room::check_restore(load::<Battle>(ROOM_BAD_RESTORE), &snap).unwrap_err();
    assert_eq!(refused, CallError::Rejected("this build cannot restore rooms".into()));
    assert_eq!(room.pinned(), None, "checking moves nothing");
}

#[test]
fn a_room_restored_from_its_checkpoint_plays_the_same_ticks_from_the_same_inputs() {
    let role = RoleModule::new(load::<Battle>(warren_test_guests::SCRIPT_BATTLE));
    let setup = br#"{"players": [7], "practice": true}"#;
    let (mut room, _) = Room::create(role.clone(), 3, setup, env(11)).unwrap();
    for t in 0..3 {
        room.tick(t, env(100 + t)).unwrap();
    }
    let checkpoint = room.checkpoint().unwrap().to_vec();
    // What happens after the checkpoint: an input, then ticks, each with its own seed.
    let play = |room: &mut Room| -> Vec<Vec<u8>> {
        room.input(7, br#"{"type": "battle.input", "action": "attack", "target": 0}"#, env(55)).unwrap();
        (3..8).flat_map(|t| room.tick(t, env(100 + t)).unwrap().1.pushes).map(|(_, frame)| frame).collect()
    };
    let first = play(&mut room);
    let mut restored = Room::restore(role, 3, &checkpoint).unwrap();
    assert_eq!(play(&mut restored), first, "the same frames, byte for byte");
    let (after, again) = (room.checkpoint().unwrap().to_vec(), restored.checkpoint().unwrap().to_vec());
    assert_eq!(after, again, "and the same state");
}

#[test]
fn a_fault_after_ticks_since_the_checkpoint_rebuilds_the_room_with_those_ticks() {
    let role = RoleModule::new(load::<Battle>(ROOM_V1));
    let (mut room, _) = Room::create(role, 9, b"{}", env(1)).unwrap();
    for t in 0..4 {
        room.tick(t, env(10 + t)).unwrap();
    }
    room.input(1, b"ok", env(20)).unwrap();
    // A trap throws the instance away: the rebuilt one has the four ticks and the input,
    // replayed from the journal, though no snapshot was taken since the room was made.
    assert!(matches!(room.input(2, b"trap", env(21)), Err(CallError::Trap(_))));
    let (_, fx) = room.tick(4, env(14)).unwrap();
    let frame = last_frame(&fx);
    assert_eq!((frame["ticks"].as_u64(), frame["inputs"].as_u64()), (Some(5), Some(1)), "{frame}");
}
