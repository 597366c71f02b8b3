//! Hostile modules against innocent players, through `warren dev` (in this process, on the
//! embedded bus) and its WebSocket, as clients see it.
//!
//! **Fair CPU.** Innocent players each ask for a call of ~3 ms of work, one at a time with
//! 20 ms between; hostile players ask back to back for calls of ~28 ms (just under the
//! 50 ms deadline). The innocent players' round-trip p99 and failure rate are measured
//! three ways: alone (the reference), beside the hostile ones with Warren's sandbox, and
//! beside them with the sandbox's bound on running calls lifted (how Warren ran before).
//!
//! **Storms.** A module whose every message sends one more to its own player (a chain), and
//! one whose every message sends four (a fan-out): how many links run before the hop
//! limit stops the chain, and how long the fan-out lasts and how long its queue grows.
//!
//! `cargo bench -p warren --bench sandbox`; ends with `name=value` lines.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use warren::config::{DevConfig, LimitsConfig, NetConfig};
use warren_bus::{Address, Bus};

/// Hostile and innocent players.
const HOSTILE: usize = 16;
const INNOCENT: usize = 8;
/// How long each fairness run measures.
const MEASURE: Duration = Duration::from_secs(8);
/// The work asked for, ms.
const HOSTILE_MS: f64 = 28.0;
const INNOCENT_MS: f64 = 3.0;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Dev {
    addr: SocketAddr,
    bus: Bus,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn dev(limits: LimitsConfig) -> Dev {
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, from) in [
        ("baseapp.wasm", warren_test_guests::PLAYER_V1),
        ("battle.wasm", warren_test_guests::SCRIPT_BATTLE),
        ("guild.wasm", warren_test_guests::SCRIPT_GUILD),
    ] {
        std::fs::copy(from, dir.path().join(file)).expect("copy module");
    }
    let config = DevConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        modules: dir.path().to_owned(),
        limits,
        // Players in closed loops send hundreds of frames a second: the pace a host holds a
        // bad client to (docs/limits.md, *Clients*) is raised out of the way.
        net: NetConfig { frames_per_s: 1_000_000, frames_burst: 1_000_000, ..NetConfig::default() },
        name_login: true,
        ..DevConfig::default()
    };
    let bus = Bus::embedded_with_groups(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = warren::roles::dev::start_on(config, bus.clone(), async {
        let _ = stopped.await;
    })
    .await
    .expect("warren dev starts");
    Dev { addr: server.addr, bus, _dir: dir, _stop: stop }
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await.expect("open").expect("a frame") {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// A logged-in client and its player id.
async fn login(addr: SocketAddr, name: &str) -> (Ws, u64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("connect");
    ws.send(Message::text(json!({"type": "login", "name": name}).to_string())).await.unwrap();
    let welcome = recv(&mut ws).await;
    let id = welcome["player"].as_u64().expect("welcome");
    recv(&mut ws).await; // hello
    (ws, id)
}

/// One call of `iters` rounds of work: its round trip, and whether it succeeded.
async fn spin(ws: &mut Ws, iters: u64) -> (Duration, bool) {
    let asked = Instant::now();
    ws.send(Message::text(json!({"type": "spin", "iters": iters}).to_string())).await.unwrap();
    let answer = recv(ws).await;
    (asked.elapsed(), answer["type"] == "spun")
}

/// Rounds of work per ms, measured on a quiet server.
async fn calibrate(addr: SocketAddr) -> f64 {
    let (mut ws, _) = login(addr, "calibrate").await;
    let mut best = Duration::MAX;
    for _ in 0..5 {
        best = best.min(spin(&mut ws, 5_000_000).await.0);
    }
    5_000_000.0 / (best.as_secs_f64() * 1000.0)
}

struct Fairness {
    p50_ms: f64,
    p99_ms: f64,
    fail_pct: f64,
    hostile_calls: u64,
}

/// Innocent players' round trips with `hostile` hostile players running meanwhile.
async fn fairness(limits: LimitsConfig, hostile: usize, per_ms: f64) -> Fairness {
    let d = dev(limits).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut bad = Vec::new();
    for h in 0..hostile {
        let (mut ws, _) = login(d.addr, &format!("hostile{h}")).await;
        let stop = stop.clone();
        bad.push(tokio::spawn(async move {
            let mut calls = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                spin(&mut ws, (HOSTILE_MS * per_ms) as u64).await;
                calls += 1;
            }
            calls
        }));
    }
    let mut good = Vec::new();
    for i in 0..INNOCENT {
        let (mut ws, _) = login(d.addr, &format!("innocent{i}")).await;
        good.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut failed = 0u64;
            let started = Instant::now();
            while started.elapsed() < MEASURE {
                let (took, ok) = spin(&mut ws, (INNOCENT_MS * per_ms) as u64).await;
                times.push(took);
                failed += u64::from(!ok);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (times, failed)
        }));
    }
    let mut times = Vec::new();
    let mut failed = 0;
    for g in good {
        let (t, f) = g.await.unwrap();
        times.extend(t);
        failed += f;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut hostile_calls = 0;
    for b in bad {
        hostile_calls += b.await.unwrap();
    }
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    Fairness {
        p50_ms: at(0.5).as_secs_f64() * 1000.0,
        p99_ms: at(0.99).as_secs_f64() * 1000.0,
        fail_pct: failed as f64 * 100.0 / times.len() as f64,
        hostile_calls,
    }
}

/// The stored `count` of a player (each link of a storm counts one).
async fn links(bus: &Bus, player: u64) -> u64 {
    let state = bus.load_state(&Address::Player(player)).await.unwrap();
    state.get("count").map_or(0, |v| serde_json::from_slice(v).unwrap())
}

/// A storm of `fanout`: the links handled, how long until its queue was empty, and the
/// longest the queue got.
async fn storm(fanout: u32) -> (u64, Duration, u64) {
    let d = dev(LimitsConfig::default()).await;
    let (mut ws, id) = login(d.addr, "stormy").await;
    let queue = [Address::Player(id)];
    ws.send(Message::text(json!({"type": "chain", "fanout": fanout}).to_string())).await.unwrap();
    let started = Instant::now();
    let mut longest = 0;
    loop {
        let waiting = d.bus.backlogs(&queue).await.unwrap()[0];
        longest = longest.max(waiting);
        if waiting == 0 && started.elapsed() > Duration::from_millis(50) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the storm never stopped");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (links(&d.bus, id).await, started.elapsed(), longest)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let per_ms = calibrate(dev(LimitsConfig::default()).await.addr).await;
        println!("calibrated: {per_ms:.0} rounds of work per ms");
        let sandboxed = LimitsConfig::default();
        let unbounded = LimitsConfig { max_running_calls: 10_000, ..LimitsConfig::default() };
        let alone = fairness(sandboxed.clone(), 0, per_ms).await;
        let fair = fairness(sandboxed, HOSTILE, per_ms).await;
        let before = fairness(unbounded, HOSTILE, per_ms).await;
        println!("{INNOCENT} innocent players (~{INNOCENT_MS} ms calls), {HOSTILE} hostile (~{HOSTILE_MS} ms calls)");
        println!("{:<34} {:>8} {:>8} {:>7} {:>14}", "", "p50 ms", "p99 ms", "fail %", "hostile calls");
        for (name, f) in [("alone", &alone), ("with hostile, sandbox", &fair), ("with hostile, calls unbounded", &before)] {
            println!("{name:<34} {:>8.2} {:>8.2} {:>7.2} {:>14}", f.p50_ms, f.p99_ms, f.fail_pct, f.hostile_calls);
        }
        let (chain, chain_took, _) = storm(1).await;
        let (fan, fan_took, fan_longest) = storm(4).await;
        println!("chain storm: {chain} links in {chain_took:?}; fan-out storm: {fan} links in {fan_took:?}, queue at most {fan_longest}");
        println!("innocent_call_p99_ms={:.2}", fair.p99_ms);
        println!("innocent_fail_pct={:.2}", fair.fail_pct);
        println!("innocent_call_p99_alone_ms={:.2}", alone.p99_ms);
        println!("innocent_p99_vs_alone_ratio={:.2}", fair.p99_ms / alone.p99_ms);
        println!("innocent_call_p99_unbounded_ms={:.2}", before.p99_ms);
        println!("innocent_fail_pct_unbounded={:.2}", before.fail_pct);
        println!("storm_hops_before_stop={chain}");
        println!("fanout_storm_links={fan}");
        println!("fanout_storm_ms={}", fan_took.as_millis());
        println!("fanout_storm_longest_queue={fan_longest}");
    });
}
