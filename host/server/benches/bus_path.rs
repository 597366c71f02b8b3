//! End-to-end player→player messages on one Redis: a producer enqueues (XADD), the
//! receiving player's consumer takes it (XREADGROUP), runs the wasm handler, and commits
//! the new state with the ack in one Lua step. Printed beside a raw `redis-benchmark`
//! XADD run against the same server, in the same run.
//!
//! `cargo bench -p warren --bench bus_path`; ends with `name=value` lines.

use std::sync::Arc;
use std::time::{Duration, Instant};
use warren::logic::{LogicPool, outbound};
use warren_bus::{Address, Bus, Commit, Outbound};
use warren_runtime::{Baseapp, CallEnv, EntityState, Limits, Message, RoleModule, Runtime};
use warren_testkit::RedisServer;

/// Concurrent players (consumers) and producers, as `redis-benchmark -c 50`.
const CLIENTS: u64 = 50;
/// Messages per producer.
const PER_CLIENT: u64 = 2_000;

fn raw_xadd(port: u16) -> (f64, f64) {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-c", "50", "-n", "200000", "--csv", "XADD", "bench:raw", "*", "f"])
        .arg("x".repeat(64))
        .output()
        .expect("redis-benchmark must be installed (tools/setup.sh installs redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().last().expect("a result row");
    let cols: Vec<f64> = row.split(',').skip(1).map(|c| c.trim_matches('"').parse().unwrap_or(f64::NAN)).collect();
    (cols[0], cols[5]) // requests per second, p99 ms
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn consume(bus: Bus, logic: Arc<LogicPool<Baseapp>>, player: u64, start: Instant, n: u64) -> Vec<u64> {
    let queue = Address::Player(player);
    let mut state = EntityState::new();
    let mut latencies = Vec::with_capacity(n as usize);
    while (latencies.len() as u64) < n {
        for d in bus.read(&queue, 32, Duration::from_millis(200)).await.expect("read") {
            let sent_us: u64 = String::from_utf8_lossy(&d.envelope.body).trim_matches('"').parse().expect("send time");
            let env = CallEnv { now_ms: d.envelope.now_ms, seed: d.envelope.seed };
            let msg = Message { sender: None, kind: d.envelope.kind.clone(), body: d.envelope.body.clone() };
            let (s, result) = logic
                .run(move |inst| {
                    let mut s = state;
                    let r = inst.on_message(&mut s, env, player, &msg);
                    (s, r)
                })
                .await;
            state = s;
            let effects = result.expect("the handler succeeds");
            let sends = outbound(&queue, &effects);
            let commit =
                Commit { owner: queue.clone(), writes: effects.writes.clone(), sends, ack: Some(d.id), fence: None };
            bus.commit(commit).await.expect("commit");
            effects.apply_to(&mut state);
            latencies.push(start.elapsed().as_micros() as u64 - sent_us);
        }
    }
    latencies
}

fn main() {
    let server = RedisServer::start();
    let (raw_rps, raw_p99) = raw_xadd(server.port);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let (rps, p50, p99, handled) = rt.block_on(async {
        let bus = Bus::redis(&server.url).await.expect("connect");
        let runtime = Runtime::new(Limits::default()).expect("runtime");
        let module = runtime.load::<Baseapp>(&warren_test_guests::read(warren_test_guests::PLAYER_V1)).expect("load");
        let logic = LogicPool::new(RoleModule::new(module));
        let start = Instant::now();
        let consumers: Vec<_> =
            (1..=CLIENTS).map(|p| tokio::spawn(consume(bus.clone(), logic.clone(), p, start, PER_CLIENT))).collect();
        let producers: Vec<_> = (1..=CLIENTS)
            .map(|p| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    for _ in 0..PER_CLIENT {
                        let sent = start.elapsed().as_micros().to_string();
                        let msg = Outbound {
                            to: Address::Player(p),
                            sender: None,
                            kind: "bench".into(),
                            body: sent.into_bytes(),
                        };
                        bus.send(msg).await.expect("send");
                    }
                })
            })
            .collect();
        for p in producers {
            p.await.expect("producer");
        }
        let mut latencies = Vec::new();
        for c in consumers {
            latencies.extend(c.await.expect("consumer"));
        }
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let handled = latencies.len();
        (handled as f64 / elapsed, percentile(&latencies, 0.5), percentile(&latencies, 0.99), handled)
    });

    let ratio = rps / raw_rps;
    println!(
        "Player->player messages through Redis ({CLIENTS} players, {handled} messages, wasm handler, atomic commit)"
    );
    println!(
        "  warren bus        {rps:>10.0} msg/s   p50 {:.2} ms   p99 {:.2} ms",
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0
    );
    println!("  raw XADD -c 50    {raw_rps:>10.0} req/s   p99 {raw_p99:.2} ms (redis-benchmark, same server)");
    println!("  ratio {ratio:.3} (target >= 0.5)");
    println!("bus_msgs_per_s={rps:.0}");
    println!("raw_xadd_per_s={raw_rps:.0}");
    println!("bus_vs_raw_xadd_ratio={ratio:.3}");
    println!("bus_p50_ms={:.2}", p50 as f64 / 1000.0);
    println!("bus_p99_ms={:.2}", p99 as f64 / 1000.0);
    println!("raw_xadd_p99_ms={raw_p99:.2}");
}
