//! Battleapps as processes against a real redis-server: rooms placed by baseapps, clients
//! on the battleapps' sockets with tickets, a battleapp killed mid-battle.

use crate::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use warren_bus::{Address, Bus};
use warren_test_guests as guests;
use warren_testkit::{Process, RedisCluster, RedisServer};

const SETTLE: Duration = Duration::from_secs(60);

fn warren() -> &'static str {
    env!("CARGO_BIN_EXE_warren")
}

/// Starts a host process of `role` on a free port and returns it with its address.
fn host(role: &str, url: &str, name: &str, extra: &[&str]) -> (Process, SocketAddr) {
    let mut args: Vec<String> =
        [role, "--listen", "127.0.0.1:0", "--redis", url, "--name", name, "--lease-ttl-ms", "1500"]
            .map(String::from)
            .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    if role == "baseapp" {
        args.extend(["--config".to_owned(), crate::baseapp_config().to_owned()]);
    }
    let mut p = Process::start(name, warren(), &args);
    let addr = p.listening_address(SETTLE);
    (p, addr)
}

/// Joins `room` at `url` with `ticket`, unless the room is no longer there (it ended).
async fn try_join(url: &str, room: u64, ticket: &str) -> Option<Client> {
    let mut b = Client::connect_url(url).await;
    b.send(json!({"type": "battle.join", "room": room, "ticket": ticket})).await;
    let joined = b.recv().await;
    if joined["type"] == "error" && joined["reason"].as_str().is_some_and(|r| r.contains("is not on this server")) {
        return None;
    }
    assert_eq!(joined["type"], "battle.joined", "{joined}");
    Some(b)
}

/// Joins `room` on the battle socket at `url` with `ticket`.
async fn join(url: &str, room: u64, ticket: &str) -> Client {
    let mut b = Client::connect_url(url).await;
    b.send(json!({"type": "battle.join", "room": room, "ticket": ticket})).await;
    let joined = b.recv().await;
    assert_eq!(joined["type"], "battle.joined", "{joined}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_battleapp_killed_mid_battle_is_replaced_and_the_battle_ends_once_with_the_same_ticks() {
    let redis = RedisServer::start();
    fail_over(&redis.url, "KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_battleapp_stopped_mid_battle_on_a_redis_cluster_hands_its_room_over_with_the_same_ticks() {
    let cluster = RedisCluster::start();
    fail_over(&cluster.url, "TERM").await;
}

/// Plays a practice battle through the session only (no battle socket) to its reward.
async fn play_through_session(mut c: Client) -> Value {
    c.send(json!({"type": "battle.start"})).await;
    c.recv_type("battle.started").await;
    loop {
        let frame = c.recv().await;
        match frame["type"].as_str() {
            Some("battle.state") => c.send(json!({"type": "battle.input", "action": "attack", "target": 0})).await,
            Some("battle.reward") => return frame,
            _ => {}
        }
    }
}

/// A cluster of two baseapps, two battleapps and a guild host on `url`: kim plays a
/// practice battle on a battle socket, and lee one through his session; kim's battleapp
/// gets `signal` mid-battle.
async fn fail_over(url: &str, signal: &str) {
    let bus = Bus::redis(url).await.unwrap();
    for (role, path) in
        [("baseapp", guests::SCRIPT_BASEAPP), ("battle", guests::SCRIPT_BATTLE), ("guild", guests::SCRIPT_GUILD)]
    {
        bus.publish_module(role, guests::read(path)).await.unwrap();
    }
    let battle_flags = ["--tick-hz", "10", "--checkpoint-ticks", "5"];
    let (mut a, addr_a) = host("battleapp", url, "battle-a", &battle_flags);
    let (mut b, addr_b) = host("battleapp", url, "battle-b", &battle_flags);
    let (_base1, base_addr) = host("baseapp", url, "base-1", &[]);
    let (_base2, base2_addr) = host("baseapp", url, "base-2", &[]);
    let mut g = Process::start("guild-1", warren(), &["guild", "--redis", url, "--name", "guild-1"].map(String::from));
    g.wait_for_line("serving", SETTLE);

    let mut c = Client::connect_as(base_addr, "kim").await;
    c.send(json!({"type": "login"})).await;
    let me = c.recv_type("welcome").await["player"].as_u64().unwrap();
    c.recv_type("profile").await;
    let xp_before = crate::stored(&bus, me, "xp").await;
    // Both battleapps report before the room is placed.
    let started = Instant::now();
    while bus.reports("battleapp").await.unwrap().len() < 2 {
        assert!(started.elapsed() < SETTLE, "the battleapps never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lee = Client::connect_as(base2_addr, "lee").await;
    lee.send(json!({"type": "login"})).await;
    lee.recv_type("welcome").await;
    let lee_battle = tokio::spawn(play_through_session(lee));
    c.send(json!({"type": "battle.start"})).await;
    let placed = c.recv_type("battle.started").await;
    let room = placed["room"].as_u64().unwrap();
    let url = placed["url"].as_str().unwrap().to_owned();
    let (first, other_addr) = if url.contains(&addr_a.to_string()) { (&mut a, addr_b) } else { (&mut b, addr_a) };
    let mut s = join(&url, room, placed["ticket"].as_str().unwrap()).await;

    // Play: defend every tick (a long battle), then stop sending so the room plays ticks
    // with no input, which a new owner must play again exactly.
    let mut seen: BTreeMap<u64, Value> = BTreeMap::new();
    while seen.len() < 12 {
        let frame = s.recv_type("battle.state").await;
        if seen.len() < 8 {
            s.send(json!({"type": "battle.input", "action": "defend"})).await;
        }
        seen.insert(frame["tick"].as_u64().unwrap(), frame);
    }
    first.signal(signal);
    let status = first.wait(SETTLE);
    assert!(signal == "KILL" || status.success(), "a stopped battleapp exits cleanly; its log:\n{}", first.log());
    let last_seen = *seen.keys().last().unwrap();

    // The other battleapp takes the room over and the baseapp session says where.
    let moved = c.recv_type("battle.moved").await;
    assert_eq!(moved["room"].as_u64(), Some(room));
    let new_url = moved["url"].as_str().unwrap();
    assert!(new_url.contains(&other_addr.to_string()), "{moved}");
    // The room may have ended while it had no owner (its clock runs on, and a slow
    // machine makes the gap long): then it is no longer anywhere to join, and its end
    // comes through the session.
    let mut s2 = try_join(new_url, room, moved["ticket"].as_str().unwrap()).await;
    // The new owner never shows a tick with other content than the players saw: a tick
    // already seen comes again the same or not at all. Its frames come on the new battle
    // socket, or through the session until the client has joined (the battle may even
    // have ended while the room had no owner: its clock runs on).
    let check = |frame: &Value| {
        let tick = frame["tick"].as_u64().unwrap();
        match seen.get(&tick) {
            Some(before) => assert_eq!(before, frame, "tick {tick} shown again differently"),
            None => assert!(tick > last_seen, "tick {tick} of the old owner's never shown"),
        }
    };
    let started = Instant::now();
    let (mut end, mut reward) = (None, None);
    while end.is_none() || reward.is_none() {
        assert!(started.elapsed() < SETTLE, "the battle never ended: {end:?} {reward:?}");
        for on_battle_socket in [true, false] {
            let client = match (on_battle_socket, s2.as_mut()) {
                (true, Some(s2)) => s2,
                (true, None) => continue,
                (false, _) => &mut c,
            };
            let Some(frame) = client.try_recv(Duration::from_millis(50)).await else { continue };
            match frame["type"].as_str() {
                Some("battle.state") => {
                    check(&frame);
                    if let Some(s2) = s2.as_mut() {
                        s2.send(json!({"type": "battle.input", "action": "attack", "target": 0})).await;
                    }
                }
                Some("battle.end") => end = Some(frame),
                Some("battle.reward") => {
                    assert!(reward.is_none(), "a second reward: {frame}");
                    reward = Some(frame);
                }
                _ => {}
            }
        }
    }
    let (end, reward) = (end.unwrap(), reward.unwrap());
    assert_eq!(end["room"].as_u64(), Some(room));

    // One result, one reward.
    assert_eq!(reward["room"].as_u64(), Some(room));
    let gained = reward["xp"].as_u64().unwrap();
    let started = Instant::now();
    while crate::stored(&bus, me, "xp").await < xp_before + gained {
        assert!(started.elapsed() < SETTLE, "the reward was never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(crate::stored(&bus, me, "xp").await, xp_before + gained, "the reward was applied once");
    let lee_reward = tokio::time::timeout(SETTLE, lee_battle).await.expect("lee's battle ends").unwrap();
    assert!(lee_reward["xp"].as_u64().unwrap() > 0, "{lee_reward}");
    let started = Instant::now();
    while !bus.registered("battle").await.unwrap().is_empty() {
        assert!(started.elapsed() < SETTLE, "finished rooms stay in the registry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The frames test rooms pushed to player 1 so far (read from its queue), by room, in order.
async fn room_frames(bus: &Bus, into: &mut BTreeMap<u64, Vec<Value>>) {
    let q = Address::Player(1);
    for d in bus.read(&q, 10_000, Duration::from_millis(100)).await.unwrap() {
        let frame: Value = serde_json::from_slice(&d.envelope.body).unwrap();
        into.entry(frame["room"].as_u64().unwrap()).or_default().push(frame);
        bus.commit(warren_bus::Commit::ack_only(q.clone(), d.id)).await.unwrap();
    }
}

/// Rooms on each battleapp, from `/modules`: room → module digest.
async fn rooms_on(addr: SocketAddr) -> BTreeMap<u64, String> {
    let modules = crate::http_get_json(addr, "/modules").await;
    modules["rooms"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, digest)| (id.parse().unwrap(), digest.as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_battle_module_published_mid_battle_moves_every_room_on_both_battleapps_and_a_bad_one_moves_none() {
    let redis = RedisServer::start();
    let bus = Bus::redis(&redis.url).await.unwrap();
    bus.publish_module("battle", guests::read(guests::ROOM_V1)).await.unwrap();
    let flags = ["--tick-hz", "20", "--checkpoint-ticks", "10"];
    let (mut a, addr_a) = host("battleapp", &redis.url, "battle-a", &flags);
    let (mut b, addr_b) = host("battleapp", &redis.url, "battle-b", &flags);
    let started = Instant::now();
    while bus.reports("battleapp").await.unwrap().len() < 2 {
        assert!(started.elapsed() < SETTLE, "the battleapps never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ten rooms, then ten more once the reports show where the first went: the second
    // ten go to the other battleapp.
    let keys = warren::mechanics::auth::tokens::Keys::new(warren_testkit::TEST_AUTH_KEY.as_bytes()).unwrap();
    for batch in 0..2 {
        for _ in 0..10 {
            warren::roles::battleapp::place_room(&bus, &keys, 1, b"{}".to_vec()).await.unwrap();
        }
        let started = Instant::now();
        loop {
            let placed: usize = rooms_on(addr_a).await.len() + rooms_on(addr_b).await.len();
            let reported: usize = bus
                .reports("battleapp")
                .await
                .unwrap()
                .iter()
                .map(|(_, r)| serde_json::from_slice::<Value>(r).unwrap()["rooms"].as_u64().unwrap() as usize)
                .sum();
            if placed == 10 * (batch + 1) && reported == placed {
                break;
            }
            assert!(started.elapsed() < SETTLE, "rooms not running: {placed} placed, {reported} reported");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (on_a, on_b) = (rooms_on(addr_a).await, rooms_on(addr_b).await);
    assert!(!on_a.is_empty() && !on_b.is_empty(), "rooms on both battleapps: {on_a:?} {on_b:?}");
    let v1 = warren_runtime::digest(&guests::read(guests::ROOM_V1));
    let v2 = warren_runtime::digest(&guests::read(guests::ROOM_V2));

    // Every room ticks on v1; then v2 is published while they tick.
    let mut frames: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let until = |frames: &BTreeMap<u64, Vec<Value>>, version: u64| {
        frames.len() == 20 && frames.values().all(|f| f.last().is_some_and(|l| l["version"] == version))
    };
    let started = Instant::now();
    while !until(&frames, 1) {
        assert!(started.elapsed() < SETTLE, "not every room ticks: {}", frames.len());
        room_frames(&bus, &mut frames).await;
    }
    let counts = [on_a.len(), on_b.len()];
    let all_on = |rooms: &BTreeMap<u64, String>, digest: &str| {
        counts.contains(&rooms.len()) && rooms.values().all(|d| d == digest)
    };
    assert!(all_on(&rooms_on(addr_a).await, &v1) && all_on(&rooms_on(addr_b).await, &v1));
    bus.publish_module("battle", guests::read(guests::ROOM_V2)).await.unwrap();
    let started = Instant::now();
    while !until(&frames, 2) {
        assert!(started.elapsed() < SETTLE, "not every room moved to v2");
        room_frames(&bus, &mut frames).await;
    }
    // No room lost a tick or its state: its count goes on by one across the move, and it
    // says it was restored by v2.
    for (room, seen) in &frames {
        for pair in seen.windows(2) {
            assert_eq!(pair[1]["ticks"].as_u64(), pair[0]["ticks"].as_u64().map(|t| t + 1), "room {room}: {pair:?}");
        }
        assert_eq!(seen.last().unwrap()["restored_by"], 2, "room {room}");
    }
    assert!(all_on(&rooms_on(addr_a).await, &v2) && all_on(&rooms_on(addr_b).await, &v2));
    assert!(frames.values().all(|f| f[0]["version"] == 1), "each room was seen on v1 first");

    // A module that cannot restore the running rooms is refused by `warren publish` (as by
    // any deploy), naming the rooms, before any host sees it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::ROOM_BAD_RESTORE, dir.path().join("battle.wasm")).unwrap();
    let refused = format!("{:#}", warren::tools::admin::publish(&bus, dir.path()).await.unwrap_err());
    assert!(refused.contains("battle module refused: it cannot take over 20 of the 20 battle rooms"), "{refused}");
    assert!(refused.contains("rejected: this build cannot restore rooms; room "), "{refused}");
    assert_eq!(bus.current_module("battle").await.unwrap(), Some(v2.clone()), "nothing published");

    // Published past that check, it is adopted for new rooms, and every running room stays
    // on v2, says so in the log and on /modules, and ticks on.
    let bad = warren_runtime::digest(&guests::read(guests::ROOM_BAD_RESTORE));
    bus.publish_module("battle", guests::read(guests::ROOM_BAD_RESTORE)).await.unwrap();
    let started = Instant::now();
    for (p, addr) in [(&mut a, addr_a), (&mut b, addr_b)] {
        while crate::http_get_json(addr, "/modules").await["serving"]["battle"] != bad.as_str()
            || p.log().matches("room kept its module").count() < 10
        {
            assert!(started.elapsed() < SETTLE, "the bad module was never tried; log:\n{}", p.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(all_on(&rooms_on(addr).await, &v2), "every room stays on v2");
        // Each room notes its pin at its next tick.
        let running = rooms_on(addr).await.len();
        let modules = loop {
            let modules = crate::http_get_json(addr, "/modules").await;
            if modules["pinned"].as_object().unwrap().len() == running {
                break modules;
            }
            assert!(started.elapsed() < SETTLE, "rooms not shown as pinned: {modules}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(modules["rooms_by_module"], json!({ v2.as_str(): running }), "{modules}");
        let pinned = modules["pinned"].as_object().unwrap();
        assert!(pinned.values().all(|why| why.as_str().unwrap().contains("cannot restore it")), "{modules}");
    }
    let seen: Vec<usize> = frames.values().map(Vec::len).collect();
    let started = Instant::now();
    loop {
        room_frames(&bus, &mut frames).await;
        if frames.values().zip(&seen).all(|(f, n)| f.len() > n + 2) {
            break;
        }
        assert!(started.elapsed() < SETTLE, "rooms stopped ticking");
    }
    assert_eq!(bus.registered("battle").await.unwrap().len(), 20, "no room lost");
}
