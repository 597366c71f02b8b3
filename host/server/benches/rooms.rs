//! Battle rooms on one battleapp pinned to one core: how many rooms of 10 players at 20 Hz
//! keep their tick p99 under 2 ms, and the memory a room takes.
//!
//! The battleapp is Warren's own (`Battleapp`, the shipped battle script, checkpoints
//! every 20 ticks) on a real `redis-server`; this process is pinned to core 0 with
//! `taskset`, Redis to core 1. Each room is a free-for-all of 10 players; every player has
//! a listener where a battle socket would be (its frames are counted, as a socket would
//! take them), and sends one input a second through the room's queue, as a client on the
//! battle socket does. A tick's time is its work: the tick, its frames handed to the
//! sockets, a checkpoint when one is due. Its lateness — from when it was due to when its
//! frames were out — is printed beside it: that adds the wait for tokio's timer (1 ms
//! steps) and for other rooms' ticks on the same core.
//!
//! Rooms are added in steps, each on a fresh battleapp and bus namespace: warm-up 2 s,
//! then 5 s measured. `cargo bench -p warren --bench rooms`; ends with `name=value` lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warren::mechanics::cluster::Host;
use warren::roles::battleapp::{Battleapp, place_room, room::INPUT};
use warren_bus::{Address, Bus, Outbound, RedisOptions};
use warren_runtime::{Battle, Limits, Runtime};
use warren_testkit::RedisServer;

/// Players in a room.
const PLAYERS: u64 = 10;
/// Ticks per second.
const TICK_HZ: u32 = 20;
/// The tick time a room count must keep at p99.
const P99_LIMIT_US: u64 = 2_000;
/// Room counts tried, in order; the sweep stops at the first that misses. `ROOM_STEPS`
/// (comma-separated counts) replaces them, to look at one count.
const STEPS: &[usize] = &[50, 100, 150, 200, 250, 500, 750, 1000, 1250, 1500, 2000];
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(5);

fn pin(pid: u32, core: u32) {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset must be installed (util-linux) to pin process {pid}");
}

fn redis_pid(url: &str) -> u32 {
    let mut conn = redis::Client::open(url).and_then(|c| c.get_connection()).expect("connect");
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).expect("INFO");
    info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|p| p.trim().parse().ok()).expect("a pid")
}

/// This process's resident memory, KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

/// What one step measured.
struct Step {
    rooms: usize,
    p50_us: u64,
    p99_us: u64,
    due_p99_us: u64,
    due_p90_us: u64,
    ticks_per_s: f64,
    frames_per_s: f64,
    room_kib: f64,
}

async fn step(url: &str, runtime: &Runtime, rooms: usize, n: usize) -> Step {
    let options = RedisOptions { namespace: Some(format!("rooms{n}")), ..RedisOptions::default() };
    let bus = Bus::redis_with(url, options).await.expect("connect");
    bus.publish_module("battle", warren_test_guests::read(warren_test_guests::SCRIPT_BATTLE)).await.expect("publish");
    let host = Arc::new(Host::local(bus.clone(), runtime.clone(), &format!("bench-{n}"), Duration::from_secs(30)));
    let module = host.role::<Battle>().await.expect("module");
    let tick = Duration::from_secs(1) / TICK_HZ;
    let app = Battleapp::new(host, module, tick, 20, "ws://bench/ws".into()).await.expect("battleapp");
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(app.clone().run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    // Wait for the battleapp's first report, so rooms can be placed on it.
    while bus.reports("battleapp").await.expect("reports").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_before = rss_kib();
    let frames = Arc::new(AtomicU64::new(0));
    let mut players = Vec::new();
    for r in 0..rooms as u64 {
        let ids: Vec<u64> = (1..=PLAYERS).map(|p| r * 100 + p).collect();
        let setup = serde_json::json!({"players": ids}).to_string().into_bytes();
        let placed = place_room(&bus, &app.keys, ids[0], setup).await.expect("place");
        for &p in &ids {
            let mut rx = app.listen(placed.room, p);
            let frames = frames.clone();
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    frames.fetch_add(1, Ordering::Relaxed);
                }
            });
            players.push((placed.room, p));
        }
    }
    while app.room_count() < rooms {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One input a second per player, spread over the second.
    let inputs = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let gap = Duration::from_secs(1) / players.len().max(1) as u32;
            let mut next = tokio::time::Instant::now();
            for (room, player) in players.iter().cycle() {
                let body = br#"{"type":"battle.input","action":"attack"}"#.to_vec();
                let msg = Outbound {
                    to: Address::Battle(*room),
                    sender: Some(Address::Player(*player)),
                    kind: INPUT.into(),
                    body,
                    hops: 0,
                };
                let _ = bus.send(msg).await;
                next += gap;
                tokio::time::sleep_until(next).await;
            }
        })
    };
    tokio::time::sleep(WARM_UP).await;
    let room_kib = rss_kib().saturating_sub(rss_before) as f64 / rooms as f64;
    app.tick_times().reset();
    app.tick_work().reset();
    let frames_before = frames.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(MEASURE).await;
    let secs = started.elapsed().as_secs_f64();
    let times = app.tick_work();
    let result = Step {
        rooms,
        p50_us: times.percentile(0.5).unwrap_or(0),
        p99_us: times.percentile(0.99).unwrap_or(0),
        due_p99_us: app.tick_times().percentile(0.99).unwrap_or(0),
        due_p90_us: app.tick_times().percentile(0.90).unwrap_or(0),
        ticks_per_s: times.count() as f64 / secs,
        frames_per_s: (frames.load(Ordering::Relaxed) - frames_before) as f64 / secs,
        room_kib,
    };
    inputs.abort();
    let _ = stop.send(true);
    let _ = running.await;
    result
}

fn main() {
    let server = RedisServer::start();
    pin(std::process::id(), 0);
    pin(redis_pid(&server.url), 1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio");
    let runtime = Runtime::new(Limits::default()).expect("runtime");
    println!("rooms of {PLAYERS} players at {TICK_HZ} Hz, one battleapp on core 0, redis-server on core 1");
    println!(
        "{:>6} {:>9} {:>9} {:>12} {:>12} {:>10} {:>11} {:>9}",
        "rooms", "p50 ms", "p99 ms", "due→out p90", "due→out p99", "ticks/s", "frames/s", "KiB/room"
    );
    let mut best = 0;
    let mut kib = 0.0;
    let mut due_p99 = 0.0;
    let steps: Vec<usize> = match std::env::var("ROOM_STEPS") {
        Ok(list) => list.split(',').map(|n| n.trim().parse().expect("ROOM_STEPS: room counts")).collect(),
        Err(_) => STEPS.to_vec(),
    };
    for (n, &rooms) in steps.iter().enumerate() {
        let s = rt.block_on(step(&server.url, &runtime, rooms, n));
        let ms = |us: u64| if us == u64::MAX { f64::INFINITY } else { us as f64 / 1000.0 };
        println!(
            "{:>6} {:>9.2} {:>9.2} {:>12.2} {:>12.2} {:>10.0} {:>11.0} {:>9.1}",
            s.rooms,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.due_p90_us),
            ms(s.due_p99_us),
            s.ticks_per_s,
            s.frames_per_s,
            s.room_kib
        );
        // A step that misses the limit, or plays fewer ticks than its rooms are due, ends
        // the sweep.
        let due = (rooms as f64 * f64::from(TICK_HZ)) * 0.95;
        if s.p99_us >= P99_LIMIT_US || s.ticks_per_s < due {
            break;
        }
        best = rooms;
        kib = s.room_kib;
        due_p99 = ms(s.due_p99_us);
    }
    println!("rooms_at_20hz_p99_under_2ms={best}");
    println!("room_kib={kib:.1}");
    println!("due_to_out_p99_ms_at_that_count={due_p99:.2}");
}
