//! End-to-end player→player messages on one Redis, through the owner loop every role runs
//! ([`occupy`] over an [`OwnedQueue`]): a producer enqueues (`Bus::send`, an XADD, which
//! rings the doorbell of the player's lease holder), the receiving player's owner loop
//! takes it (`Bus::read`, XREADGROUP), runs the wasm handler (`LogicPool`), and commits the
//! new state with the ack in one fenced Lua step (`Bus::commit`). Printed beside a raw
//! `redis-benchmark` XADD run against the same server, in the same run, with the same
//! 64-byte payload, with where the CPU went: redis-server's, this process's and other
//! processes' CPU time per message, and Redis's commands per message (`INFO`).
//!
//! The producers run in a process of their own (this bench binary started again with
//! `--producers`), so that the bench process's CPU per message is the owner loop's alone;
//! the producers' is reported apart.
//!
//! `cargo bench -p warren --bench bus_path`; ends with `name=value` lines.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warren::mechanics::doorbell::Doorbells;
use warren::mechanics::lease::Held;
use warren::mechanics::logic::LogicPool;
use warren::mechanics::owner::{Control, Ended, Occupant, OwnedQueue, Routed, Settled, Target, occupy};
use warren_bus::{Address, Bus, Delivery, Outbound};
use warren_runtime::{Baseapp, Limits, RoleModule, Runtime};
use warren_testkit::RedisServer;

/// Concurrent players (consumers) and producers, as `redis-benchmark -c 50`.
const CLIENTS: u64 = 50;
/// Messages per producer.
const PER_CLIENT: u64 = 2_000;
/// Requests of the raw XADD run.
const RAW_REQUESTS: u64 = 200_000;

fn raw_xadd(port: u16) -> (f64, f64) {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-c", &CLIENTS.to_string(), "-n", &RAW_REQUESTS.to_string(), "--csv"])
        .args(["XADD", "bench:raw", "*", "f"])
        .arg("x".repeat(64))
        .output()
        .expect("redis-benchmark must be installed (tools/setup.sh installs redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().last().expect("a result row");
    let cols: Vec<f64> = row.split(',').skip(1).map(|c| c.trim_matches('"').parse().unwrap_or(f64::NAN)).collect();
    (cols[0], cols[5]) // requests per second, p99 ms
}

/// Redis's CPU time (user + sys, µs) and per-command call counts and µs, from `INFO`.
struct RedisStats {
    cpu_us: f64,
    commands: std::collections::BTreeMap<String, (u64, u64)>,
}

fn redis_stats(url: &str) -> RedisStats {
    let mut conn = redis::Client::open(url).and_then(|c| c.get_connection()).expect("stats connection");
    let info: String = redis::cmd("INFO").arg("all").query(&mut conn).expect("INFO");
    let mut cpu_us = 0.0;
    let mut commands = std::collections::BTreeMap::new();
    for line in info.lines() {
        if let Some(v) = line.strip_prefix("used_cpu_user:").or_else(|| line.strip_prefix("used_cpu_sys:")) {
            cpu_us += v.trim().parse::<f64>().unwrap_or(0.0) * 1e6;
        }
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, fields) = rest.split_once(':').unwrap_or_default();
            let get = |k: &str| {
                fields.split(',').find_map(|f| f.strip_prefix(k)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            };
            commands.insert(name.to_owned(), (get("calls=") as u64, get("usec=") as u64));
        }
    }
    RedisStats { cpu_us, commands }
}

/// This process's CPU time (user + sys), µs.
fn own_cpu_us() -> f64 {
    stat_cpu_us(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// The CPU time (user + sys, µs) in a `/proc/<pid>/stat` line.
fn stat_cpu_us(stat: &str) -> f64 {
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14 and 15 (utime, stime) in clock ticks; `after` starts at field 3.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) * 1e6 / 100.0
}

/// The machine's busy CPU time (all cores, every process, µs), from /proc/stat.
fn machine_busy_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or("");
    let f: Vec<f64> = cpu.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0.0)).collect();
    // user nice system idle iowait irq softirq: all but idle and iowait are busy.
    let busy: f64 = f.iter().take(7).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy * 1e6 / 100.0
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Most messages a consumer takes in one read, as a player's session does.
const BATCH: usize = 32;
/// The lease holder (this "host") of every bench player.
const HOLDER: &str = "bench-host";

/// A bench player's side of its owned queue: counts each committed message's latency and
/// stops after `n`. Everything else — the doorbell, reads, loads, calls, fenced commits —
/// is the owner loop every role runs ([`occupy`]).
struct Counter {
    player: u64,
    n: u64,
    latencies: Vec<u64>,
}

impl Occupant<Baseapp> for Counter {
    type Event = ();

    fn target(&self, _: &Delivery) -> Option<Target> {
        Some(Target::whole(Address::Player(self.player)))
    }

    async fn route(&mut self, _: &Delivery, _: &mut OwnedQueue<Baseapp>) -> Routed {
        Routed::Handle(Target::whole(Address::Player(self.player)))
    }

    async fn settled(&mut self, d: &Delivery, outcome: Settled) {
        assert!(matches!(outcome, Settled::Done(..)), "the handler succeeds: {outcome:?}");
        let sent_us: u64 = std::str::from_utf8(&d.envelope.body).ok().and_then(|t| t.parse().ok()).expect("time");
        self.latencies.push(wall_us().saturating_sub(sent_us));
    }

    async fn event(&mut self) {
        std::future::pending::<()>().await
    }

    async fn on_event(&mut self, _: (), _: &mut OwnedQueue<Baseapp>) -> Control {
        Control::Continue
    }

    async fn idle(&mut self, _: &mut OwnedQueue<Baseapp>) -> Control {
        if self.latencies.len() as u64 >= self.n { Control::Stop } else { Control::Continue }
    }
}

/// A player's consumer: the owner loop over its queue until `n` messages are committed.
async fn consume(mut q: OwnedQueue<Baseapp>, player: u64, n: u64) -> Vec<u64> {
    let mut counter = Counter { player, n, latencies: Vec::with_capacity(n as usize) };
    assert_eq!(occupy(&mut q, &mut counter).await, Ended::Stopped, "the lease holds");
    q.release().await;
    counter.latencies
}

/// What one run of the bus path measured.
struct BusRun {
    /// Messages handled per second.
    rps: f64,
    /// Enqueue → committed latency, µs.
    p50: u64,
    p99: u64,
    /// Messages handled.
    handled: usize,
    /// This process's CPU time during the run (the owner loops), µs.
    host_cpu: f64,
    /// The producers' process's CPU time during the run, µs.
    producers_cpu: f64,
    /// The machine's busy CPU time during the run (every process), µs.
    machine_cpu: f64,
    /// Redis's CPU time and command counts, before and after the run.
    redis_before: RedisStats,
    redis_after: RedisStats,
}

/// One run of the bus path: `CLIENTS` producers each send `PER_CLIENT` messages of 64 bytes
/// to their own player, whose owner loop handles them as a baseapp session's does.
async fn run_bus(url: &str, first_player: u64) -> BusRun {
    let bus = Bus::redis(url).await.expect("connect");
    let runtime = Runtime::new(Limits::default()).expect("runtime");
    let module = runtime.load::<Baseapp>(&warren_test_guests::read(warren_test_guests::PLAYER_V1)).expect("load");
    let logic = LogicPool::new(RoleModule::new(module), Default::default());
    let players: Vec<u64> = (first_player..first_player + CLIENTS).collect();
    let bells = Doorbells::start(bus.clone(), HOLDER.into());
    let mut queues = Vec::new();
    for &p in &players {
        let ttl = Duration::from_secs(60);
        let held =
            Held::acquire(&bus, &Address::Player(p), HOLDER, ttl).await.expect("lease").expect("the lease is free");
        queues.push(OwnedQueue::new(bus.clone(), Address::Player(p), held, logic.clone(), &bells, BATCH));
    }
    // The producers connect, say they are ready, and send when told to.
    let exe = std::env::current_exe().expect("the bench binary");
    let mut producers = std::process::Command::new(exe)
        .args(["--producers", url, &first_player.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the producers' process");
    let mut said = std::io::BufReader::new(producers.stdout.take().expect("its stdout"));
    let mut line = String::new();
    said.read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready", "the producers connected");
    let redis_before = redis_stats(url);
    let start = Instant::now();
    let host_cpu = own_cpu_us();
    let machine_cpu = machine_busy_us();
    let producers_cpu = process_cpu_us(producers.id());
    let consumers: Vec<_> = players.iter().zip(queues).map(|(&p, q)| tokio::spawn(consume(q, p, PER_CLIENT))).collect();
    writeln!(producers.stdin.as_mut().expect("its stdin"), "go").expect("go");
    let mut latencies = Vec::new();
    for c in consumers {
        latencies.extend(c.await.expect("consumer"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let host_cpu = own_cpu_us() - host_cpu;
    let machine_cpu = machine_busy_us() - machine_cpu;
    let producers_cpu = process_cpu_us(producers.id()) - producers_cpu;
    drop(producers.stdin.take());
    assert!(producers.wait().expect("the producers end").success(), "the producers sent everything");
    let redis_after = redis_stats(url);
    latencies.sort_unstable();
    let handled = latencies.len();
    BusRun {
        rps: handled as f64 / elapsed,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        handled,
        host_cpu,
        producers_cpu,
        machine_cpu,
        redis_before,
        redis_after,
    }
}

/// µs since the Unix epoch: the send time a message carries, read by another process.
fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// A process's CPU time (user + sys), µs, while it runs.
fn process_cpu_us(pid: u32) -> f64 {
    stat_cpu_us(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// The producers' process (`--producers <url> <first player>`): connects, says `ready`,
/// and on `go` sends `PER_CLIENT` messages of 64 bytes to each of `CLIENTS` players, from
/// one task per player, as `redis-benchmark -c 50` does; ends when all are sent.
fn producers(url: &str, first_player: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let bus = Bus::redis(url).await.expect("connect");
        println!("ready");
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).expect("go");
        let tasks: Vec<_> = (first_player..first_player + CLIENTS)
            .map(|p| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    for _ in 0..PER_CLIENT {
                        // 64 bytes, as the raw XADD's value: the send time, zero-padded.
                        let body = format!("{:064}", wall_us()).into_bytes();
                        let to = Address::Player(p);
                        let msg = Outbound { to, sender: None, kind: "bench".into(), body, hops: 0 };
                        bus.send(msg).await.expect("send");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("producer");
        }
    });
}

/// Prints one run's figures for people.
fn report(title: &str, run: &BusRun, raw_rps: f64, raw_redis_us: f64) {
    let per_msg = |x: f64| x / run.handled as f64;
    println!("{title}");
    println!(
        "  {:>10.0} msg/s   ratio to raw XADD {:.3}   p50 {:.2} ms   p99 {:.2} ms",
        run.rps,
        run.rps / raw_rps,
        run.p50 as f64 / 1000.0,
        run.p99 as f64 / 1000.0
    );
    println!(
        "  CPU per message: redis-server {:.1} µs (raw XADD: {raw_redis_us:.1} µs a request), bench process (owner \
         loops) {:.1} µs, producers' process {:.1} µs, other processes {:.1} µs",
        run.redis_us(),
        run.host_us(),
        run.producers_us(),
        run.other_us()
    );
    println!("  Redis commands per message (calls, µs inside the command; a script's include its commands'):");
    for (name, (calls, usec)) in &run.redis_after.commands {
        let (c0, u0) = run.redis_before.commands.get(name).copied().unwrap_or((0, 0));
        if per_msg((calls - c0) as f64) >= 0.01 {
            let (calls, usec) = (per_msg((calls - c0) as f64), per_msg((usec - u0) as f64));
            println!("    {name:<16} {calls:>6.3} calls  {usec:>6.2} µs");
        }
    }
}

/// Prints one run's figures as `name=value` lines, each name prefixed with `prefix`.
fn figures(prefix: &str, run: &BusRun, raw_rps: f64) {
    println!("{prefix}msgs_per_s={:.0}", run.rps);
    println!("{prefix}vs_raw_xadd_ratio={:.3}", run.rps / raw_rps);
    println!("{prefix}p50_ms={:.2}", run.p50 as f64 / 1000.0);
    println!("{prefix}p99_ms={:.2}", run.p99 as f64 / 1000.0);
    println!("{prefix}redis_cpu_us_per_msg={:.1}", run.redis_us());
    println!("{prefix}host_cpu_us_per_msg={:.1}", run.host_us());
    println!("{prefix}producers_cpu_us_per_msg={:.1}", run.producers_us());
    println!("{prefix}other_cpu_us_per_msg={:.1}", run.other_us());
}

impl BusRun {
    /// redis-server's CPU time per message, µs.
    fn redis_us(&self) -> f64 {
        (self.redis_after.cpu_us - self.redis_before.cpu_us) / self.handled as f64
    }

    /// This process's CPU time per message, µs.
    fn host_us(&self) -> f64 {
        self.host_cpu / self.handled as f64
    }

    /// The producers' process's CPU time per message, µs.
    fn producers_us(&self) -> f64 {
        self.producers_cpu / self.handled as f64
    }

    /// Other processes' CPU time per message (the machine's, less Redis's, this process's
    /// and the producers'), µs: about 0 on a quiet machine, within the 10 ms resolution of
    /// the counts.
    fn other_us(&self) -> f64 {
        self.machine_cpu / self.handled as f64 - self.host_us() - self.redis_us() - self.producers_us()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--producers") {
        let first = args.get(at + 2).and_then(|p| p.parse().ok()).expect("--producers <url> <first player>");
        return producers(&args[at + 1], first);
    }
    let server = RedisServer::start();
    let before_raw = redis_stats(&server.url);
    let (raw_rps, raw_p99) = raw_xadd(server.port);
    let after_raw = redis_stats(&server.url);
    let raw_redis_us = (after_raw.cpu_us - before_raw.cpu_us) / RAW_REQUESTS as f64;

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let run = rt.block_on(run_bus(&server.url, 1));

    let ratio = run.rps / raw_rps;
    println!("raw XADD (redis-benchmark -c {CLIENTS}, 64-byte value, same server)");
    println!("  {raw_rps:>10.0} req/s   p99 {raw_p99:.2} ms   redis-server CPU {raw_redis_us:.1} µs a request");
    report(
        &format!(
            "warren bus: player->player through the owner loop ({CLIENTS} players leased, {} messages, each send \
             rings the doorbell, wasm handler, fenced atomic commit; producers in a process of their own)",
            run.handled
        ),
        &run,
        raw_rps,
        raw_redis_us,
    );
    println!("ratio {ratio:.3} (target >= 0.5)");
    figures("bus_", &run, raw_rps);
    println!("raw_xadd_per_s={raw_rps:.0}");
    println!("raw_xadd_p99_ms={raw_p99:.2}");
    println!("raw_redis_cpu_us_per_xadd={raw_redis_us:.1}");
}
