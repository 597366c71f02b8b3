//! A module is assumed hostile: what it can do to other players, to the host's memory and
//! to its own queue is bounded (docs/limits.md). Each case drives the test guest through
//! `warren dev` as a client would, and checks the host's exact answer.

use crate::{Client, Dev};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use warren::config::LimitsConfig;
use warren_bus::{Address, Bus, Outbound};
use warren_test_guests::{PLAYER_V1, SCRIPT_BATTLE};

/// How long a condition polled for may take before the test fails.
const UNTIL: Duration = Duration::from_secs(30);

/// Polls `f` until it gives a value; fails the test after [`UNTIL`].
async fn until<T, F: Future<Output = Option<T>>>(what: &str, f: impl FnMut() -> F) -> T {
    until_or(|| what.to_owned(), f).await
}

/// [`until`], saying what was last seen when it fails.
async fn until_or<T, F: Future<Output = Option<T>>>(what: impl Fn() -> String, mut f: impl FnMut() -> F) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < UNTIL, "{}: not within {UNTIL:?}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The reason of an error frame.
fn reason(frame: &Value) -> String {
    assert_eq!(frame["type"], "error", "an error frame: {frame}");
    frame["reason"].as_str().expect("a reason").to_owned()
}

/// Logs in and returns the client (past its hello) and its player id.
async fn player(dev: &Dev, name: &str) -> (Client, u64) {
    let (mut c, welcome) = dev.login(name).await;
    assert_eq!(c.recv().await["type"], "hello");
    (c, welcome["player"].as_u64().expect("an id"))
}

/// A count round trip: the count, and how long the answer took.
async fn count(c: &mut Client) -> (u64, Duration) {
    let asked = Instant::now();
    c.send(json!({"type": "count"})).await;
    let frame = c.recv_type("count").await;
    (frame["count"].as_u64().expect("a count"), asked.elapsed())
}

/// The test guest's `count` in a player's stored state.
async fn stored_count(bus: &Bus, player: u64) -> u64 {
    let state = bus.load_state(&Address::Player(player)).await.expect("state");
    state.get("count").map_or(0, |v| serde_json::from_slice(v).expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_cannot_send_the_hosts_messages_nor_end_another_players_session() {
    let bus = Bus::embedded_with_groups(16);
    let dev = Dev::start_on(PLAYER_V1, SCRIPT_BATTLE, bus.clone()).await;
    let (mut ann, ann_id) = player(&dev, "ann").await;
    let (mut bob, bob_id) = player(&dev, "bob").await;

    // Every kind the host interprets, and any other `$` kind, is refused at `send`.
    for kind in ["$kick", "$frame", "$create", "$input", "$whatever"] {
        ann.send(json!({"type": "send", "to": bob_id, "kind": kind})).await;
        let refused = reason(&ann.recv().await);
        assert_eq!(refused, "the server could not handle that (reserved)", "{kind}");
    }
    // A kick naming bob's session exactly, but sent as from ann — what a forged kick
    // would look like had one got past the runtime — ends nothing: it is set aside.
    let (_, token) = bus.lease_holder(&Address::Player(bob_id)).await.unwrap().expect("bob's lease");
    let forged = Outbound {
        to: Address::Player(bob_id),
        sender: Some(Address::Player(ann_id)),
        kind: "$kick".into(),
        body: token.to_string().into_bytes(),
        hops: 0,
    };
    bus.send(forged).await.unwrap();
    let dead = until("the forged kick set aside", || async {
        let dead = bus.dead_letters(&Address::Player(bob_id)).await.unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("only a host ends a session"), "{}", dead[0].error);
    // Bob is still playing, and saw none of it.
    assert_eq!(count(&mut bob).await.0, 1, "bob's first frame is answered, nothing came before it");
    assert_eq!(stored_count(&bus, bob_id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_a_guest_hands_the_host_is_bounded() {
    let bus = Bus::embedded_with_groups(16);
    // The caps on bytes are what this test is about: a deadline long enough that a guest
    // building 16 MiB on a busy machine (process tests beside it) meets its cap first.
    let limits = LimitsConfig { deadline_ms: 2000, ..LimitsConfig::default() };
    let dev = Dev::start_limited(PLAYER_V1, SCRIPT_BATTLE, bus.clone(), limits.clone()).await;
    let (mut ann, ann_id) = player(&dev, "ann").await;
    // A 16 MiB refusal reason, a log line over its cap, a push over the frame cap, a
    // state value over its cap: each fails its call with `(emit)`, with a short frame.
    let asks = [
        json!({"type": "refuse", "bytes": 16 << 20}),
        json!({"type": "log", "bytes": limits.max_log_bytes + 1}),
        json!({"type": "push", "to": ann_id, "bytes": limits.max_frame_bytes}),
        json!({"type": "store", "key": "big", "bytes": limits.max_value_bytes}),
    ];
    for ask in asks {
        ann.send(ask.clone()).await;
        let frame = ann.recv().await;
        assert_eq!(reason(&frame), "the server could not handle that (emit)", "{ask}");
    }
    // A state filled to its quota refuses more, with `(quota)`; nothing of it is stored.
    // Each store is followed by a count: an error before the count's answer is the store's.
    let value = limits.max_value_bytes - 2;
    let mut stored = 0;
    let mut counted = 0;
    loop {
        ann.send(json!({"type": "store", "key": format!("v{stored}"), "bytes": value})).await;
        ann.send(json!({"type": "count"})).await;
        let frame = ann.recv().await;
        counted += 1;
        if frame["type"] == "count" {
            stored += 1;
            assert!(stored < 10, "the state quota never held");
            continue;
        }
        assert_eq!(reason(&frame), "the server could not handle that (quota)");
        assert_eq!(ann.recv().await["count"], counted);
        break;
    }
    let state = bus.load_state(&Address::Player(ann_id)).await.unwrap();
    let size: usize = state.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(size <= limits.state_kib.baseapp << 10, "{size} bytes stored");
    assert_eq!(state.keys().filter(|k| k.starts_with('v')).count(), stored);
    assert_eq!(stored, 3, "three values of 256 KiB and their keys fit in 1 MiB, a fourth does not");
    assert_eq!(count(&mut ann).await.0, counted + 1, "the player goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_a_full_queue_fails_the_sender_and_the_queue_keeps_exactly_its_cap() {
    let bus = Bus::embedded_with_groups(16);
    let limits = LimitsConfig { max_queue_len: 20, ..LimitsConfig::default() };
    let dev = Dev::start_limited(PLAYER_V1, SCRIPT_BATTLE, bus.clone(), limits).await;
    let (mut ann, _) = player(&dev, "ann").await;
    let (bob, bob_id) = player(&dev, "bob").await;
    drop(bob);
    until("bob's session over", || async {
        bus.lease_holder(&Address::Player(bob_id)).await.unwrap().is_none().then_some(())
    })
    .await;

    for i in 0..25 {
        ann.send(json!({"type": "send", "to": bob_id})).await;
        let frame = ann.recv().await;
        if i < 20 {
            assert_eq!(frame["type"], "sent", "send {i}: {frame}");
        } else {
            let refused = reason(&frame);
            assert_eq!(
                refused,
                format!("player {bob_id} has 20 messages waiting, the most its queue takes: try again later")
            );
        }
    }
    assert_eq!(bus.backlogs(&[Address::Player(bob_id)]).await.unwrap(), vec![20]);

    // Bob gets exactly the twenty; then his queue takes messages again.
    let (mut bob, _) = dev.login("bob").await;
    for n in 1..=20 {
        assert_eq!(bob.recv_type("got").await["count"], n);
    }
    ann.send(json!({"type": "send", "to": bob_id})).await;
    assert_eq!(ann.recv().await["type"], "sent");
    assert_eq!(bob.recv_type("got").await["count"], 21, "nothing beyond the twenty was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_faster_than_its_rate_is_refused() {
    let bus = Bus::embedded_with_groups(16);
    let limits = LimitsConfig { sends_per_s: 1, sends_burst: 10, ..LimitsConfig::default() };
    let dev = Dev::start_limited(PLAYER_V1, SCRIPT_BATTLE, bus.clone(), limits).await;
    let (mut ann, _) = player(&dev, "ann").await;
    let (_bob, bob_id) = player(&dev, "bob").await;
    // Eleven sends pipelined: the burst takes ten, the eleventh comes well before the
    // bucket refills (one a second).
    for _ in 0..11 {
        ann.send(json!({"type": "send", "to": bob_id})).await;
    }
    let mut answers = Vec::new();
    for _ in 0..11 {
        answers.push(ann.recv().await);
    }
    assert!(answers[..10].iter().all(|a| a["type"] == "sent"), "{answers:?}");
    assert_eq!(reason(&answers[10]), "sending too fast: at most 1 messages a second (bursts of 10)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_feeding_chain_of_messages_stops_at_the_hop_limit() {
    let bus = Bus::embedded_with_groups(16);
    let limits = LimitsConfig { max_hops: 16, ..LimitsConfig::default() };
    let dev = Dev::start_limited(PLAYER_V1, SCRIPT_BATTLE, bus.clone(), limits).await;
    let (mut ann, ann_id) = player(&dev, "ann").await;
    ann.send(json!({"type": "chain", "fanout": 1})).await;
    let dead = until("the chain's last link set aside", || async {
        let dead = bus.dead_letters(&Address::Player(ann_id)).await.unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.hops, 16);
    assert!(dead[0].error.contains("message chain too long"), "{}", dead[0].error);
    assert_eq!(stored_count(&bus, ann_id).await, 16, "exactly the links under the limit were handled");
    assert_eq!(bus.backlogs(&[Address::Player(ann_id)]).await.unwrap(), vec![0], "the storm is over");
    assert_eq!(count(&mut ann).await.0, 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_storm_stays_within_its_queue_stops_by_itself_and_never_starves_a_socket() {
    let bus = Bus::embedded_with_groups(16);
    let cap = 100;
    let limits = LimitsConfig { max_hops: 20, max_queue_len: cap, ..LimitsConfig::default() };
    let dev = Dev::start_limited(PLAYER_V1, SCRIPT_BATTLE, bus.clone(), limits).await;
    let (mut ann, ann_id) = player(&dev, "ann").await;
    let (mut bob, _) = player(&dev, "bob").await;
    // The queue's length, sampled all along.
    let longest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (bus, longest) = (bus.clone(), longest.clone());
        tokio::spawn(async move {
            loop {
                let waiting = bus.backlogs(&[Address::Player(ann_id)]).await.unwrap()[0];
                longest.fetch_max(waiting, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    ann.send(json!({"type": "chain", "fanout": 4})).await;

    // While the storm runs, both players are answered promptly — the stormed one too,
    // though its queue is never empty — and the queue never holds more than its cap.
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    loop {
        for c in [&mut ann, &mut bob] {
            slowest = slowest.max(count(c).await.1);
        }
        let waiting = bus.backlogs(&[Address::Player(ann_id)]).await.unwrap()[0];
        if waiting == 0 && longest.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        assert!(started.elapsed() < UNTIL, "the storm did not stop: {waiting} waiting");
    }
    sampler.abort();
    let longest = longest.load(std::sync::atomic::Ordering::Relaxed);
    assert!(longest <= cap, "the queue held {longest}, over its cap of {cap}");
    assert!(longest >= cap / 2, "the storm did fill the queue: {longest}");
    assert!(slowest < Duration::from_secs(2), "a client waited {slowest:?} during the storm");
    // What the storm did is bounded by the send quota: a burst of 2000 messages, then
    // 1000 a second, four to a link (each link counts once in the player's state).
    let links = stored_count(&bus, ann_id).await;
    let bound = (2_000 + 1_000 * started.elapsed().as_secs() + 1_000) / 4;
    assert!(links <= bound + 2, "{links} links handled, over the send quota's {bound}");
    // Any message of a chain too deep was set aside, no more than the queue held.
    let dead = bus.dead_letters(&Address::Player(ann_id)).await.unwrap();
    assert!(dead.len() as u64 <= cap, "{} dead letters", dead.len());
    assert!(dead.iter().all(|d| d.envelope.hops == 20 && d.error.contains("message chain too long")));
}

/// A process's resident memory, MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process's status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib / 1024
}

/// Polls `/modules` until `check` accepts it.
async fn modules_until(addr: std::net::SocketAddr, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    until(what, || async {
        let modules = crate::http_get_json(addr, "/modules").await;
        check(&modules).then_some(modules)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_comes_back_after_leaking_and_refused_modules_are_gone() {
    let dir = crate::modules_with(PLAYER_V1);
    let (dev, addr) = crate::dev_process(dir.path());
    let pid = dev.pid();
    let mut c = Client::connect(addr).await;
    c.send(json!({"type": "login", "name": "leaky"})).await;
    assert_eq!(c.recv().await["type"], "welcome");
    c.recv().await;
    assert_eq!(count(&mut c).await.0, 1);
    let baseline = rss_mib(pid);

    // A module that leaks: its instance keeps 48 MiB, 12 a call (each call well within
    // its 50 ms deadline on a busy machine: the pages are touched as they are kept).
    for kept in [12, 24, 36, 48] {
        c.send(json!({"type": "hoard", "mib": 12})).await;
        let hoarded = c.recv().await;
        assert_eq!(hoarded["mib"], kept, "{hoarded}");
    }
    let leaked = rss_mib(pid);
    assert!(leaked >= baseline + 40, "the leak shows: {baseline} → {leaked} MiB");

    // Refused modules: one whose init refuses, one over the size cap (a wasm header and
    // 20 MiB of nothing). Neither keeps anything.
    let baseapp = dir.path().join("baseapp.wasm");
    crate::replace_file(&baseapp, warren_test_guests::PLAYER_BAD_INIT);
    modules_until(addr, "the bad init refused", |m| {
        m["refused"]["baseapp"].as_str().is_some_and(|r| r.contains("init refused"))
    })
    .await;
    let mut big = b"\0asm\x0d\0\x01\0".to_vec();
    big.resize(20 << 20, 0);
    let partial = dir.path().join("baseapp.partial");
    std::fs::write(&partial, &big).expect("write");
    std::fs::rename(&partial, &baseapp).expect("rename");
    modules_until(addr, "the big module refused", |m| {
        m["refused"]["baseapp"].as_str().is_some_and(|r| r.contains("over the cap"))
    })
    .await;

    // The leaking module is replaced: its idle instance goes within a second or so, and
    // its memory with it.
    crate::replace_file(&baseapp, warren_test_guests::PLAYER_V2);
    let v2 = warren_runtime::digest(&warren_test_guests::read(warren_test_guests::PLAYER_V2));
    modules_until(addr, "v2 serving", |m| m["serving"]["baseapp"] == v2.as_str()).await;
    let seen = std::sync::atomic::AtomicU64::new(leaked);
    let back = until_or(
        || format!("the memory given back: {baseline} MiB before, {leaked} leaking, {} now", seen.load(Relaxed)),
        || async {
            let now = rss_mib(pid);
            seen.store(now, Relaxed);
            (now <= baseline + 16).then_some(now)
        },
    )
    .await;
    println!("RSS: {baseline} MiB, leaking {leaked} MiB, after the swap {back} MiB");
    let (n, _) = count(&mut c).await;
    assert_eq!(n, 2, "the player's state outlived every module");
}
