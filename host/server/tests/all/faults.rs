//! The message center failing under a host, on the embedded bus with faults injected: a
//! bus error is never a refusal and never acknowledges a message.

use crate::{Dev, embedded};
use serde_json::json;
use std::time::Duration;
use warren_bus::{Address, Bus, Op, Outbound};
use warren_test_guests::{SCRIPT_BASEAPP, SCRIPT_BATTLE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_battle_result_whose_state_load_fails_once_is_retried_and_paid_once() {
    let bus = Bus::embedded_with_groups(16);
    let dev = Dev::start_on(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus.clone()).await;
    let (mut c, welcome) = dev.login("gus").await;
    c.recv_type("profile").await;
    let player = welcome["player"].as_u64().unwrap();
    let before = crate::stored(&bus, player, "gold").await;

    // A commit that fails leaves the session without its cached state: the next message
    // must load it, and that load fails once. (A keyed frame commits its record even when
    // it changes nothing; an unkeyed look at the profile would not go to the bus at all.)
    embedded(&bus).fail_next(Op::Commit, 1);
    c.send(json!({"type": "profile", "req": "look-1"})).await;
    assert!(c.recv_type("error").await["reason"].as_str().unwrap().contains("not saved"));
    embedded(&bus).fail_next(Op::LoadState, 1);

    bus.send(crate::won_battle(7, player)).await.unwrap();
    let reward = c.recv_type("battle.reward").await;
    assert_eq!((reward["room"].as_u64(), reward["won"].as_bool()), (Some(7), Some(true)), "{reward}");
    assert_eq!(c.recv_type("profile").await["gold"].as_u64(), Some(before + 20));
    assert_eq!(crate::stored(&bus, player, "gold").await, before + 20, "paid once");

    // Nothing of it is left anywhere: not pending, not set aside.
    let q = Address::Player(player);
    let pending = bus.read_pending(&q).await.unwrap();
    assert!(pending.iter().all(|d| d.envelope.kind == "$frame"), "{pending:?}");
    assert!(bus.dead_letters(&q).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_message_whose_commit_and_read_fail_is_applied_once() {
    let bus = Bus::embedded_with_groups(16);
    let dev = Dev::start_on(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus.clone()).await;
    let (mut c, welcome) = dev.login("hal").await;
    c.recv_type("profile").await;
    let player = welcome["player"].as_u64().unwrap();
    let guild = 99;
    let group = Address::GuildGroup(warren_bus::group_of(guild, bus.groups()));
    let applied = || async {
        let state = bus.load_state(&group).await.unwrap();
        state.get(&format!("{guild}/applied")).map(|v| serde_json::from_slice::<u64>(v).unwrap()).unwrap_or(0)
    };

    // The guild's commit fails, then its next reads: the message stays pending and is
    // applied once the bus answers again.
    embedded(&bus).fail_next(Op::Commit, 1);
    embedded(&bus).fail_next(Op::ReadPending, 2);
    let info = Outbound {
        to: Address::Guild(guild),
        sender: Some(Address::Player(player)),
        kind: "guild.info".into(),
        body: b"{}".to_vec(),
        hops: 0,
    };
    bus.send(info).await.unwrap();
    let refused = c.recv_type("guild.event").await;
    assert_eq!(refused["event"], "refused", "there is no guild 99: {refused}");
    assert_eq!(applied().await, 1);
    // Given time to go wrong, it does not apply again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(applied().await, 1);
    assert!(bus.read_pending(&group).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_changes_nothing_is_answered_without_a_trip_to_the_bus() {
    let bus = Bus::embedded_with_groups(16);
    let dev = Dev::start_on(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus.clone()).await;
    let (mut c, welcome) = dev.login("ida").await;
    c.recv_type("profile").await;
    let player = welcome["player"].as_u64().unwrap();
    let gold = crate::stored(&bus, player, "gold").await;

    // The next commit fails: a look at the profile does not meet it (it commits nothing),
    // the buy after it does.
    embedded(&bus).fail_next(Op::Commit, 1);
    c.send(json!({"type": "profile"})).await;
    assert_eq!(c.recv().await["type"], "profile", "answered, nothing to save");
    c.send(json!({"type": "shop.buy", "item": "potion", "count": 1})).await;
    let refused = c.recv().await;
    assert_eq!((refused["type"].as_str(), refused["reason"].as_str()), (Some("error"), Some("not saved, try again")));
    assert_eq!(crate::stored(&bus, player, "gold").await, gold, "nothing was charged");
    c.send(json!({"type": "shop.buy", "item": "potion", "count": 1})).await;
    c.recv_type("profile").await;
    assert_eq!(crate::stored(&bus, player, "gold").await, gold - 10, "the buy again, charged once");
}
