//! Battleapps as processes against a real redis-server: rooms placed by baseapps, clients
//! on the battleapps' sockets with tickets, a battleapp killed mid-battle.

use crate::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use warren_bus::{Address, Bus};
use warren_test_guests as guests;
use warren_testkit::{Process, RedisServer};

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
    let mut p = Process::start(name, warren(), &args);
    let line = p.wait_for_line("listening on", SETTLE);
    let addr = line.rsplit(' ').next().and_then(|a| a.parse().ok()).expect("an address at the end");
    (p, addr)
}

/// Joins `room` on the battle socket at `url` with `ticket`.
async fn join(url: &str, room: u64, ticket: &str) -> Client {
    let mut b = Client::connect_url(url).await;
    b.send(json!({"type": "battle.join", "room": room, "ticket": ticket})).await;
    let joined = b.recv().await;
    assert_eq!(joined["type"], "battle.joined", "{joined}");
    b
}

/// The player's stored xp.
async fn xp(bus: &Bus, player: u64) -> u64 {
    let state = bus.load_state(&Address::Player(player)).await.unwrap();
    let profile: Value = serde_json::from_slice(state.get("profile").expect("a profile")).unwrap();
    profile["xp"].as_u64().expect("xp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_battleapp_killed_mid_battle_is_replaced_and_the_battle_ends_once_with_the_same_ticks() {
    let redis = RedisServer::start();
    let bus = Bus::redis(&redis.url).await.unwrap();
    for (role, path) in [("baseapp", guests::SCRIPT_BASEAPP), ("battle", guests::SCRIPT_BATTLE)] {
        bus.publish_module(role, guests::read(path)).await.unwrap();
    }
    let battle_flags = ["--tick-hz", "10", "--checkpoint-ticks", "5"];
    let (mut a, addr_a) = host("battleapp", &redis.url, "battle-a", &battle_flags);
    let (mut b, addr_b) = host("battleapp", &redis.url, "battle-b", &battle_flags);
    let (_base, base_addr) = host("baseapp", &redis.url, "base-1", &[]);

    let mut c = Client::connect(base_addr).await;
    c.send(json!({"type": "login", "name": "kim"})).await;
    let me = c.recv_type("welcome").await["player"].as_u64().unwrap();
    c.recv_type("profile").await;
    let xp_before = xp(&bus, me).await;
    // Both battleapps report before the room is placed.
    let started = Instant::now();
    while bus.reports("battleapp").await.unwrap().len() < 2 {
        assert!(started.elapsed() < SETTLE, "the battleapps never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    first.signal("KILL");
    first.wait(SETTLE);
    let last_seen = *seen.keys().last().unwrap();

    // The other battleapp takes the room over and the baseapp session says where.
    let moved = c.recv_type("battle.moved").await;
    assert_eq!(moved["room"].as_u64(), Some(room));
    let new_url = moved["url"].as_str().unwrap();
    assert!(new_url.contains(&other_addr.to_string()), "{moved}");
    let mut s2 = join(new_url, room, moved["ticket"].as_str().unwrap()).await;
    let mut replayed = 0;
    let end = loop {
        let frame = s2.recv().await;
        match frame["type"].as_str() {
            Some("battle.state") => {
                let tick = frame["tick"].as_u64().unwrap();
                if let Some(before) = seen.get(&tick) {
                    assert_eq!(before, &frame, "tick {tick} played again differently");
                    replayed += 1;
                } else {
                    assert!(tick > last_seen, "tick {tick} skipped before the move");
                }
                s2.send(json!({"type": "battle.input", "action": "attack", "target": 0})).await;
            }
            Some("battle.end") => break frame,
            _ => {}
        }
    };
    assert!(replayed > 0, "the ticks after the last input were played again, the same");
    assert_eq!(end["room"].as_u64(), Some(room));

    // One result, one reward.
    let reward = c.recv_type("battle.reward").await;
    assert_eq!(reward["room"].as_u64(), Some(room));
    let gained = reward["xp"].as_u64().unwrap();
    let started = Instant::now();
    while xp(&bus, me).await < xp_before + gained {
        assert!(started.elapsed() < SETTLE, "the reward was never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(xp(&bus, me).await, xp_before + gained, "the reward was applied once");
    assert!(bus.registered("battle").await.unwrap().is_empty(), "the finished room left the registry");
}
