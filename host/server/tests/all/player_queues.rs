//! A player's queue on Redis across baseapps, as processes: a baseapp killed while its
//! player's queue is full is replaced and the queue is finished elsewhere, every message
//! applied once; whispers to an offline player stop at the queue's cap and all arrive at
//! login.

use crate::Client;
use crate::cluster::{SETTLE, baseapp_with, host_args, login, warren};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warren_bus::{Address, Bus};
use warren_test_guests as guests;
use warren_testkit::{Process, RedisServer};

/// Reads everything `c` is sent, as a client does (one that stops reading is dropped
/// once its socket is full: bad_clients.rs), until the task is aborted.
fn reading(mut c: Client) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    tokio::spawn(async move { while let Some(Ok(_)) = c.ws.next().await {} })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseapp_killed_mid_load_is_replaced_and_no_player_message_is_lost_or_doubled() {
    let redis = RedisServer::start();
    let bus = Bus::redis_with_groups(&redis.url, 16).await.unwrap();
    bus.publish_module("baseapp", guests::read(guests::SCRIPT_BASEAPP)).await.unwrap();
    bus.publish_module("battle", guests::read(guests::SCRIPT_BATTLE)).await.unwrap();
    // Bob's results push him 4000 frames, twice what a player's send quota lets through
    // at once (a burst of 2000, then 1000 a second): those past the burst wait in his
    // queue for the rate, and are not lost to it either.
    let config = crate::baseapp_config();
    let (mut a, addr_a) = baseapp_with(&redis.url, 16, "base-a", 1_500, config);
    let (bob_first, bob) = login(addr_a, "bob").await;
    let _bob_first = reading(bob_first);
    let start_gold = crate::stored(&bus, bob, "gold").await;
    // Won battles, each paying 20 gold, sent while base-a handles them; it is killed
    // once it has paid 50, before they are all sent.
    let results = 2_000u64;
    let sender = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for room in 0..results {
                bus.send(crate::won_battle(room, bob)).await.unwrap();
            }
        })
    };
    let started = Instant::now();
    while crate::stored(&bus, bob, "gold").await < start_gold + 20 * 50 {
        assert!(started.elapsed() < SETTLE, "base-a never got going; its log:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.signal("KILL");
    a.wait(SETTLE);
    assert!(crate::stored(&bus, bob, "gold").await < start_gold + 20 * results, "killed mid-load, not after it");
    sender.await.unwrap();

    // Bob logs in on another baseapp once base-a's lease on him expires; it finishes the
    // queue, including what base-a had taken but not committed.
    let (b, addr_b) = baseapp_with(&redis.url, 16, "base-b", 1_500, config);
    let (bob_again, again) = login(addr_b, "bob").await;
    assert_eq!(again, bob);
    let bob_again = reading(bob_again);
    let target = start_gold + 20 * results;
    let started = Instant::now();
    loop {
        let now = crate::stored(&bus, bob, "gold").await;
        assert!(now <= target, "gold {now} beyond {target}: a result was applied twice");
        if now == target {
            break;
        }
        assert!(started.elapsed() < SETTLE, "gold stuck at {now} of {target}; base-b's log:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bob leaves; once his session let go of him, nothing but frames for his client is
    // left in his queue — and, if the session ended before reaching it, the kick base-b's
    // login sent to base-a's dead session, which any later session acknowledges unread —
    // and the gold is still exact.
    bob_again.abort();
    let started = Instant::now();
    while bus.lease_holder(&Address::Player(bob)).await.unwrap().is_some() {
        assert!(started.elapsed() < SETTLE, "bob's session never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let q = Address::Player(bob);
    let mut left = bus.read_pending(&q).await.unwrap();
    left.extend(bus.read(&q, 10_000, Duration::ZERO).await.unwrap());
    assert!(
        left.iter().all(|d| d.envelope.kind == "$frame" || d.envelope.kind == "$kick"),
        "unhandled: {:?}",
        left.iter().map(|d| &d.envelope.kind).collect::<Vec<_>>()
    );
    assert_eq!(crate::stored(&bus, bob, "gold").await, target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whispers_to_an_offline_player_stop_at_the_queue_cap_on_redis_and_all_arrive_at_login() {
    let redis = RedisServer::start();
    let groups = 16;
    let bus = Bus::redis_with_groups(&redis.url, groups).await.unwrap();
    bus.publish_module("baseapp", guests::read(guests::SCRIPT_BASEAPP)).await.unwrap();
    bus.publish_module("battle", guests::read(guests::SCRIPT_BATTLE)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("capped.toml");
    std::fs::write(&config, format!("[limits]\nmax_queue_len = 5\n{}", crate::TEST_LIMITS)).unwrap();
    let mut args = vec!["baseapp".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(["--config".to_owned(), config.display().to_string()]);
    args.extend(host_args(&redis.url, groups, "capped", 2_000));
    let mut p = Process::start("capped", warren(), &args);
    let addr = p.listening_address(SETTLE);

    let (mut ann, _) = login(addr, "ann").await;
    let (bob, bob_id) = login(addr, "bob").await;
    drop(bob);
    let started = Instant::now();
    while bus.lease_holder(&Address::Player(bob_id)).await.unwrap().is_some() {
        assert!(started.elapsed() < SETTLE, "bob's session never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The answer to a whisper, past the frames of the login.
    async fn answer(c: &mut Client) -> Value {
        loop {
            let frame = c.recv().await;
            if frame["type"] == "whisper.sent" || frame["type"] == "error" {
                return frame;
            }
        }
    }
    for i in 0..7 {
        ann.send(json!({"type": "whisper", "to": bob_id, "text": format!("w{i}")})).await;
        let answer = answer(&mut ann).await;
        if i < 5 {
            assert_eq!(answer["type"], "whisper.sent", "whisper {i}: {answer}");
        } else {
            assert_eq!(answer["type"], "error", "whisper {i}: {answer}");
            let reason = answer["reason"].as_str().unwrap();
            assert_eq!(
                reason,
                format!("player {bob_id} has 5 messages waiting, the most its queue takes: try again later")
            );
        }
    }
    assert_eq!(bus.backlogs(&[Address::Player(bob_id)]).await.unwrap(), vec![5], "Redis counts what waits");

    // Bob reads exactly the five, in order; then his queue takes whispers again.
    let (mut bob, _) = login(addr, "bob").await;
    for i in 0..5 {
        assert_eq!(bob.recv_type("whisper").await["text"], format!("w{i}"));
    }
    ann.send(json!({"type": "whisper", "to": bob_id, "text": "again"})).await;
    assert_eq!(answer(&mut ann).await["type"], "whisper.sent");
    assert_eq!(bob.recv_type("whisper").await["text"], "again", "nothing past the five was kept");
    let started = Instant::now();
    while bus.backlogs(&[Address::Player(bob_id)]).await.unwrap() != vec![0] {
        assert!(started.elapsed() < SETTLE, "bob's queue never emptied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
