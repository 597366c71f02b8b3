use super::{Caps, GroupHarness, Harness, PlayerHarness, Role, RoomHarness, StateQuota, restore_each_snapshot_in};
use crate::{Address, Group, Message, Outcome, Player, PlayerId, Reject, Room, RoomStatus, log, msg, state};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A string whose JSON form is `bytes` bytes long (the quotes included).
fn json_of_len(bytes: usize) -> String {
    "x".repeat(bytes - 2)
}

/// Runs `f` as a handler that returns `Ok`.
fn step(h: &mut Harness, f: impl FnOnce()) -> Outcome {
    h.call(|| {
        f();
        Ok(())
    })
    .map(drop)
}

/// The error of a call that was expected to break a cap.
fn broke<T: std::fmt::Debug>(result: Outcome<T>) -> String {
    result.expect_err("the call broke a cap").0
}

#[test]
fn the_random_sequence_is_the_hosts() {
    // The host's `random` is SplitMix64 over the message's seed; these are its first
    // two numbers for seed 5 (host/runtime/tests/all/calls.rs checks the same).
    let mut h = Harness::new();
    h.set_seed(5);
    let ((a, b), _) = h.call(|| Ok((crate::env::random(), crate::env::random()))).unwrap();
    assert_eq!((a, b), (7134611160154358618, 13877614986023876344));
}

#[test]
fn the_default_caps_are_the_hosts() {
    // host/runtime/src/limits.rs, `Limits::default()` and `StateQuota::default()`.
    let caps = Caps::default();
    assert_eq!((caps.max_emits, caps.max_emit_bytes), (1024, 1_048_576));
    assert_eq!((caps.max_frame_bytes, caps.max_message_bytes), (65_536, 65_536));
    assert_eq!((caps.max_log_bytes, caps.max_reason_bytes), (4096, 1024));
    assert_eq!((caps.max_key_bytes, caps.max_value_bytes, caps.max_state_keys), (128, 262_144, 1024));
    let q = caps.state_bytes;
    assert_eq!([q.baseapp, q.battle, q.guild, q.team, q.matchmaker], [1 << 20, 1 << 20, 4 << 20, 1 << 20, 4 << 20]);
}

#[test]
fn a_call_emits_at_most_1024_items_a_state_set_counting_two() {
    let mut h = Harness::new();
    step(&mut h, || {
        (0..512).for_each(|i| state::set(&format!("k{i}"), &i));
    })
    .unwrap();
    let err = broke(step(&mut h, || {
        (0..512).for_each(|i| state::set(&format!("k{i}"), &0));
        log::info("one too many");
    }));
    assert_eq!(
        err,
        "(emit) a log line brought this call to 1025 items, over the cap of 1024 in one call (`max_emits`: a \
         send, reply, push, log line or state removal is one item, a state set two: its key and its value)"
    );
    assert_eq!(h.state::<u32>("k511"), Some(511), "nothing of the failed call was kept");
    let err = broke(step(&mut h, || {
        (0..1025).for_each(|i| state::remove(&format!("k{i}")));
    }));
    assert!(err.starts_with("(emit) a state key brought this call to 1025 items"), "{err}");
}

#[test]
fn a_call_emits_at_most_a_mebibyte_its_refusal_reason_included() {
    let frame = json_of_len(65_536);
    let mut h = Harness::new();
    let (_, effects) = h
        .call(|| {
            (0..16).for_each(|_| msg::reply(&frame));
            Ok(())
        })
        .unwrap();
    assert_eq!(effects.replies.len(), 16, "16 frames of 64 KiB are exactly the cap");
    let err = broke(step(&mut h, || {
        (0..16).for_each(|_| msg::reply(&frame));
        log::info("x");
    }));
    assert_eq!(
        err,
        "(emit) a log line brought this call to 1048577 bytes, over the cap of 1048576 in one call \
         (`max_emit_bytes`: all its items together, its refusal reason included)"
    );
    let err = broke(h.call(|| -> Outcome {
        (0..16).for_each(|_| msg::reply(&frame));
        Err(Reject::new("no"))
    }));
    assert_eq!(
        err,
        "(emit) the refusal reason brought this call to 1048578 bytes, over the cap of 1048576 in one call \
         (`max_emit_bytes`: all its items together, its refusal reason included)"
    );
}

#[test]
fn a_frame_is_at_most_64_kib() {
    let mut h = Harness::new();
    step(&mut h, || {
        msg::reply(&json_of_len(65_536));
        msg::push(7, &json_of_len(65_536));
    })
    .unwrap();
    let err = broke(step(&mut h, || {
        msg::reply(&json_of_len(70_000));
    }));
    assert_eq!(err, "(emit) a reply of 70000 bytes, over the cap of 65536 on one frame (`max_frame_bytes`)");
    let err = broke(step(&mut h, || {
        msg::push(7, &json_of_len(65_537));
    }));
    assert_eq!(
        err,
        "(emit) a push of 65537 bytes (to player 7), over the cap of 65536 on one frame (`max_frame_bytes`)"
    );
}

#[test]
fn a_sent_message_is_at_most_64_kib_kind_and_body() {
    let mut h = Harness::new();
    step(&mut h, || {
        msg::send(Address::Guild(3), "big", &json_of_len(65_533));
    })
    .unwrap();
    let err = broke(step(&mut h, || {
        msg::send(Address::Guild(3), "big", &json_of_len(65_534));
    }));
    assert_eq!(
        err,
        "(emit) a message of 65537 bytes (kind `big`), over the cap of 65536 on one sent message, kind and body \
         (`max_message_bytes`)"
    );
}

#[test]
fn a_log_line_is_at_most_4_kib() {
    let mut h = Harness::new();
    step(&mut h, || {
        log::info(&"l".repeat(4096));
    })
    .unwrap();
    let err = broke(step(&mut h, || {
        log::warn(&"l".repeat(4097));
    }));
    assert_eq!(err, "(emit) a log line of 4097 bytes, over the cap of 4096 on one log line (`max_log_bytes`)");
}

#[test]
fn a_refusal_reason_is_at_most_1_kib() {
    let mut h = Harness::new();
    let reason = "r".repeat(1024);
    assert_eq!(broke(h.call(|| -> Outcome { Err(Reject::new(reason.clone())) })), reason);
    let err = broke(h.call(|| -> Outcome { Err(Reject::new("r".repeat(1025))) }));
    assert_eq!(
        err,
        format!(
            "(emit) a refusal reason of 1025 bytes (\"{}…\"), over the cap of 1024 on one refusal reason \
             (`max_reason_bytes`)",
            "r".repeat(40)
        )
    );
}

#[test]
fn a_state_key_is_at_most_128_bytes_set_or_removed() {
    let mut h = Harness::new();
    step(&mut h, || {
        state::set(&"k".repeat(128), &1);
    })
    .unwrap();
    let expected = format!(
        "(emit) a state key of 129 bytes (`{}…`), over the cap of 128 on one state key (`max_key_bytes`)",
        "k".repeat(40)
    );
    let err = broke(step(&mut h, || {
        state::set(&"k".repeat(129), &1);
    }));
    assert_eq!(err, expected);
    let err = broke(step(&mut h, || {
        state::remove(&"k".repeat(129));
    }));
    assert_eq!(err, expected);
}

#[test]
fn a_state_value_is_at_most_256_kib() {
    let mut h = Harness::new();
    step(&mut h, || {
        state::set_raw("bag", &[b'1'; 262_144]);
    })
    .unwrap();
    let err = broke(step(&mut h, || {
        state::set_raw("bag", &[b'1'; 262_145]);
    }));
    assert_eq!(
        err,
        "(emit) a state value of 262145 bytes (key `bag`), over the cap of 262144 on one state value \
         (`max_value_bytes`)"
    );
}

/// Sets keys `keys` to values of 256 KiB in one call.
fn set_quarters(h: &mut Harness, keys: &[&str]) -> Outcome {
    step(h, || keys.iter().for_each(|k| state::set_raw(k, &[b'1'; 262_144])))
}

#[test]
fn the_state_quota_is_the_roles_and_refuses_only_growth() {
    let mut player = Harness::new();
    set_quarters(&mut player, &["a", "b"]).unwrap();
    let err = broke(set_quarters(&mut player, &["c", "d"]));
    assert_eq!(
        err,
        "(quota) this call grows the player's state from 524290 to 1048580 bytes, keys and values, over its \
         quota of 1048576 (`state_kib.baseapp`)"
    );
    assert_eq!(player.keys(), ["a", "b"], "nothing of the failed call was kept");
    // A guild's quota is 4 MiB, a team's 1 MiB.
    let mut guild = Harness::for_role(Role::Guild);
    set_quarters(&mut guild, &["a", "b"]).unwrap();
    set_quarters(&mut guild, &["c", "d"]).unwrap();
    let mut team = Harness::for_role(Role::Team);
    set_quarters(&mut team, &["a", "b"]).unwrap();
    assert!(broke(set_quarters(&mut team, &["c", "d"])).starts_with("(quota) this call grows the team's state"));
    // Over a quota (a lowered one), a call may shrink the state but not grow it.
    player.set_caps(Caps { state_bytes: StateQuota { baseapp: 1000, ..StateQuota::default() }, ..Caps::default() });
    assert!(broke(step(&mut player, || state::set("e", &1))).starts_with("(quota) this call grows"));
    step(&mut player, || state::remove("a")).unwrap();
    step(&mut player, || state::set("b", &1)).unwrap();
    assert_eq!(player.keys(), ["b"]);
}

#[test]
fn the_state_holds_at_most_1024_keys_and_refuses_only_growth() {
    let mut h = Harness::new();
    (0..1024).for_each(|i| h.set_state(&format!("k{i:04}"), &i));
    let err = broke(step(&mut h, || state::set("one more", &1)));
    assert_eq!(
        err,
        "(quota) this call grows the player's state from 1024 to 1025 keys, over the cap of 1024 \
         (`max_state_keys`)"
    );
    step(&mut h, || state::set("k0000", &"changed")).unwrap();
    (1024..1030).for_each(|i| h.set_state(&format!("k{i:04}"), &i));
    step(&mut h, || state::remove("k0000")).unwrap();
    assert_eq!(h.keys().len(), 1029);
}

#[test]
fn kinds_starting_with_a_dollar_are_the_hosts() {
    let mut h = Harness::new();
    let err = broke(step(&mut h, || msg::send(Address::Player(7), "$kick", &json!({}))));
    assert_eq!(err, "(reserved) sent a message of kind `$kick`: kinds starting with `$` are the host's own");
}

#[test]
fn a_broken_cap_stops_the_handler_and_keeps_nothing() {
    let mut h = Harness::new();
    h.set_state("gold", &5);
    let mut went_on = false;
    let err = broke(h.call(|| -> Outcome {
        state::set("gold", &1_000_000);
        msg::reply(&json_of_len(70_000));
        went_on = true;
        Err(Reject::new("a refusal comes after the cap it broke"))
    }));
    assert!(err.starts_with("(emit) a reply of 70000 bytes"), "{err}");
    assert!(!went_on, "the handler stopped where it broke the cap, as it traps live");
    assert_eq!(h.state::<u32>("gold"), Some(5));
    // The harness is ready for the next call; the guest's own panics stay panics.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = h.call(|| -> Outcome { panic!("the guest's own panic") });
    }));
    assert!(panicked.is_err());
    step(&mut h, || state::set("gold", &6)).unwrap();
    assert_eq!(h.state::<u32>("gold"), Some(6));
}

/// A player who replies with what it is sent.
struct Echo;
impl Player for Echo {
    fn on_login(_: PlayerId, _: &str) -> Outcome {
        Ok(())
    }
    fn on_client(_: PlayerId, frame: &[u8]) -> Outcome {
        msg::reply(&crate::decode_frame::<serde_json::Value>(frame)?);
        Ok(())
    }
}

/// A guild or team that keeps the body of each message under its kind.
struct Keeper;
impl Group for Keeper {
    fn on_message(_: u64, msg: Message) -> Outcome {
        state::set_raw(&msg.kind, &msg.body);
        Ok(())
    }
}

#[test]
fn a_test_sets_the_caps_its_hosts_run_under() {
    let small = Caps { max_frame_bytes: 10, ..Caps::default() };
    let mut h = Harness::with_caps(small);
    assert_eq!((h.caps(), h.role()), (&small, Role::Baseapp));
    step(&mut h, || msg::reply(&json_of_len(10))).unwrap();
    assert_eq!(
        broke(step(&mut h, || msg::reply(&json_of_len(11)))),
        "(emit) a reply of 11 bytes, over the cap of 10 on one frame (`max_frame_bytes`)"
    );

    let mut p = PlayerHarness::<Echo>::new(7);
    p.client(json!(json_of_len(11))).unwrap();
    p.set_caps(small);
    assert!(broke(p.client(json!(json_of_len(11)))).starts_with("(emit) a reply of 11 bytes"));

    let quotas = Caps { state_bytes: StateQuota { guild: 200, team: 100, ..StateQuota::default() }, ..small };
    let mut guild = GroupHarness::<Keeper>::new(1);
    let mut team = GroupHarness::<Keeper>::team(1);
    guild.set_caps(quotas);
    team.set_caps(quotas);
    guild.message(None, "notes", json!(json_of_len(150))).unwrap();
    assert_eq!(
        broke(team.message(None, "notes", json!(json_of_len(150)))),
        "(quota) this call grows the team's state from 0 to 155 bytes, keys and values, over its quota of 100 \
         (`state_kib.team`)"
    );
}

/// A room that piles up the strings its setup and inputs ask for: as big as a test
/// needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pile {
    /// The room's id.
    id: u64,
    /// One string per input, of the length it asked for.
    items: Vec<String>,
}

impl Room for Pile {
    fn create(id: u64, setup: &[u8]) -> Outcome<Self> {
        Ok(Pile { id, items: vec!["s".repeat(crate::decode_frame(setup)?)] })
    }
    fn input(&mut self, _: PlayerId, input: &[u8]) -> Outcome {
        self.items.push("i".repeat(crate::decode_frame(input)?));
        Ok(())
    }
    fn tick(&mut self, tick: u64) -> Outcome<RoomStatus> {
        msg::push(1, &json!({"tick": tick, "items": self.items.len()}));
        Ok(RoomStatus::Running)
    }
    fn restore(snapshot: &[u8]) -> Outcome<Self> {
        assert!(snapshot != b"panic", "a snapshot that breaks restore");
        serde_json::from_slice(snapshot).map_err(|e| Reject::new(format!("cannot restore: {e}")))
    }
}

/// The snapshot of a pile of one string of `len` bytes.
fn pile_snapshot(len: usize) -> Vec<u8> {
    serde_json::to_vec(&Pile { id: 7, items: vec!["p".repeat(len)] }).unwrap()
}

#[test]
fn a_rooms_snapshot_is_held_to_the_battle_quota() {
    let mut h = RoomHarness::<Pile>::new();
    let err = broke(h.create(7, json!(1 << 20)));
    assert_eq!(
        err,
        "(quota) the new room's snapshot is 1048597 bytes, over its quota of 1048576 (`state_kib.battle`): live \
         the room is not created"
    );
    h.create(7, json!(10)).unwrap();
    let err = broke(h.input(1, json!(1 << 20)));
    assert_eq!(
        err,
        "(quota) after this call the room's snapshot is 1048610 bytes, over its quota of 1048576 \
         (`state_kib.battle`): live the call goes through, but the room can no longer be checkpointed: it \
         cannot move to a new module, be taken over by another battleapp, or store its result"
    );
    assert_eq!(h.room().items.len(), 1, "the room was rolled back");
    // A battleapp with a bigger quota takes it, but cannot hand it to one with less.
    h.set_caps(Caps { state_bytes: StateQuota { battle: 2 << 20, ..StateQuota::default() }, ..Caps::default() });
    h.input(1, json!(1 << 20)).unwrap();
    h.set_caps(Caps::default());
    let err = broke(h.migrate());
    assert!(err.starts_with("(quota) for the module swap, the room's snapshot is 1048610 bytes"), "{err}");
    assert!(err.ends_with("live the room stays on its old module"), "{err}");
    assert_eq!(h.room().items.len(), 2);
}

#[test]
fn a_room_is_restored_from_a_snapshot_of_an_earlier_module() {
    let mut h = RoomHarness::<Pile>::from_snapshot(br#"{"id": 7, "items": ["a", "b"]}"#).unwrap();
    assert_eq!(h.room(), &Pile { id: 7, items: vec!["a".into(), "b".into()] });
    h.set_next_tick(12);
    let (status, effects) = h.tick().unwrap();
    assert_eq!((status, &effects.pushes[0].1), (RoomStatus::Running, &json!({"tick": 12, "items": 2})));

    let err = RoomHarness::<Pile>::from_snapshot(b"not json").map(drop).unwrap_err();
    assert!(err.0.starts_with("cannot restore: "), "{err}");
    let err = RoomHarness::<Pile>::from_snapshot(&pile_snapshot(1 << 20)).map(drop).unwrap_err();
    assert_eq!(
        err.0,
        "(quota) the restored room's snapshot is 1048597 bytes, over its quota of 1048576 (`state_kib.battle`): \
         live the new module cannot checkpoint the room it took over"
    );
    // A refused restore keeps the room there was.
    assert!(h.restore(b"{}").is_err());
    assert_eq!(h.room().items.len(), 2);
}

#[test]
fn every_snapshot_of_a_folder_is_restored_or_named() {
    let dir = std::env::temp_dir().join(format!("warren-guest-snapshots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: [(&str, &[u8]); 6] = [
        ("a-small.snap", &pile_snapshot(3)),
        ("b-small.json", &pile_snapshot(5)),
        ("c-broken.json", b"{"),
        ("d-huge.snap", &pile_snapshot(1 << 20)),
        ("e-panics.snap", b"panic"),
        ("notes.txt", b"not a snapshot: skipped"),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let failed = restore_each_snapshot_in::<Pile>(&dir).unwrap_err();
    let named: Vec<_> =
        failed.iter().map(|(path, why)| (path.file_name().unwrap().to_str().unwrap(), &why.0[..])).collect();
    assert_eq!(named.len(), 3, "{named:?}");
    assert_eq!(named[0].0, "c-broken.json");
    assert!(named[0].1.starts_with("cannot restore: "), "{named:?}");
    assert_eq!(named[1].0, "d-huge.snap");
    assert!(named[1].1.starts_with("(quota) the restored room's snapshot"), "{named:?}");
    assert_eq!(named[2], ("e-panics.snap", "(trap) the room panicked while restoring: a snapshot that breaks restore"));
    for (name, _) in &files[2..5] {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    assert_eq!(restore_each_snapshot_in::<Pile>(&dir), Ok(2));
    std::fs::remove_dir_all(&dir).unwrap();
    let failed = restore_each_snapshot_in::<Pile>(&dir).unwrap_err();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, dir);
    assert!(failed[0].1.0.starts_with("cannot read the folder of snapshots: "), "{failed:?}");
}
