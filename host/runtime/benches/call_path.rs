//! Benchmark program (not a timed test) for the runtime's two hot paths:
//!
//! 1. The handler call path: `Instance<Baseapp>::on_client` with a 64-byte echo frame,
//!    against a raw wasmtime typed call of the same export with the same frame (a plain
//!    engine, no epoch interruption, a minimal host). Rounds of the variants are
//!    interleaved so machine noise hits them alike; each figure is the median round.
//! 2. The hot-swap pause: a call loop on one `Instance` whose role module is swapped
//!    between two versions every 500 calls; the pause is the duration of the first call
//!    after each swap (it re-instantiates).
//!
//! Run with `cargo bench -p warren-runtime --bench call_path`. It prints a table, then one
//! `name=value` line per figure. BENCHMARKS.md at the repository root explains the figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warren_runtime::bindings::baseapp::{Baseapp as RawBaseapp, BaseappPre};
use warren_runtime::bindings::platform::Platform;
use warren_runtime::bindings::platform::warren::game::{env, log, messaging, state, types};
use warren_runtime::{
    Address, Baseapp, CallEnv, EntityState, Instance, Level, Limits, Module, RoleModule, Runtime, digest,
};
use warren_test_guests::{PLAYER_V1, PLAYER_V2};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

/// The frame's size, everything included.
const FRAME_BYTES: usize = 64;
/// Timed rounds per call-path variant; the median round is reported.
const ROUNDS: usize = 9;
/// Calls in one timed round.
const CALLS_PER_ROUND: u32 = 200_000;
/// Untimed calls per variant before the first round.
const WARMUP_CALLS: u32 = 100_000;
/// Swaps timed in the hot-swap loop (after the warm-up swaps).
const SWAPS: usize = 1_000;
/// Swaps made before timing starts.
const WARMUP_SWAPS: usize = 20;
/// Calls per swap cycle: the first one after the swap is the pause, the rest are ordinary.
const CALLS_PER_SWAP: usize = 500;
/// Epoch ticks given to each raw call on an engine with epoch interruption, as many as
/// Warren gives a call under the default limits (50 ms deadline, 1 ms tick, +1 +1).
const RAW_DEADLINE_TICKS: u64 = 52;

fn main() -> wasmtime::Result<()> {
    let load_before = load_average();
    let (frame, expected_reply) = echo_frame();
    let bytes_v1 = warren_test_guests::read(PLAYER_V1);
    let bytes_v2 = warren_test_guests::read(PLAYER_V2);
    let runtime = Runtime::new(Limits::default())?;

    // ---- Loading: from source (Cranelift) and from `precompile` output, as from a cache.
    let started = Instant::now();
    let compiled_v1 = Arc::new(runtime.load::<Baseapp>(&bytes_v1)?);
    let load_ms = ms(started.elapsed());
    let started = Instant::now();
    let native_v1 = runtime.precompile(&bytes_v1)?;
    let precompile_ms = ms(started.elapsed());
    let native_v2 = runtime.precompile(&bytes_v2)?;
    let started = Instant::now();
    // SAFETY: the bytes were just produced by `Runtime::precompile` of this same runtime.
    let v1 = Arc::new(unsafe { runtime.load_precompiled::<Baseapp>(&native_v1, digest(&bytes_v1)) }?);
    let load_precompiled_ms = ms(started.elapsed());
    // SAFETY: as above.
    let v2 = Arc::new(unsafe { runtime.load_precompiled::<Baseapp>(&native_v2, digest(&bytes_v2)) }?);
    assert_eq!(v1.digest(), compiled_v1.digest(), "a precompiled module keeps its version");
    assert_ne!(v1.digest(), v2.digest(), "two versions to swap between");

    // ---- Call path: Warren against raw wasmtime, interleaved.
    let mut variants: Vec<(&'static str, Box<dyn Caller>)> = vec![
        ("warren", Box::new(WarrenCaller::new(compiled_v1.clone(), frame.clone()))),
        ("raw", Box::new(RawCaller::new(&plain_engine(false)?, &bytes_v1, false, frame.clone())?)),
        ("raw_epoch", Box::new(RawCaller::new(&plain_engine(true)?, &bytes_v1, true, frame.clone())?)),
        // Warren's memory settings alone (no epoch): what explicit bounds checks cost.
        ("raw_warren_memory", Box::new(RawCaller::new(&warren_memory_engine()?, &bytes_v1, false, frame.clone())?)),
        // Warren's own engine (its config, its epoch thread running) with the raw host and
        // loop: what is left between this and `warren` is Warren's code on the call path.
        ("raw_warren_engine", Box::new(RawCaller::new(runtime.engine(), &bytes_v1, true, frame.clone())?)),
    ];
    for (name, caller) in &mut variants {
        let reply = caller.checked_call();
        assert_eq!(reply, expected_reply, "{name}: the reply is the payload, JSON-encoded");
        caller.run(WARMUP_CALLS);
    }
    let mut rounds: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for round in 0..ROUNDS {
        // Rotate the order every round so no variant always runs first or last.
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            let started = Instant::now();
            variants[i].1.run(CALLS_PER_ROUND);
            rounds[i].push(started.elapsed().as_nanos() as f64 / f64::from(CALLS_PER_ROUND));
        }
    }
    let call_ns: Vec<f64> = rounds.iter().map(|r| median(r)).collect();
    let [warren_ns, raw_ns, raw_epoch_ns, raw_warren_memory_ns, raw_warren_engine_ns] = call_ns[..] else {
        unreachable!("five variants")
    };
    let ratio = warren_ns / raw_ns;
    let warren_code_ns = warren_ns - raw_warren_engine_ns;
    let names: Vec<&str> = variants.iter().map(|(name, _)| *name).collect();
    drop(variants);

    // ---- Hot swap: one instance, its role swapped between v1 and v2 every 500 calls.
    let swap = swap_loop(&v1, &v2, &frame, &expected_reply);
    let timer_ns = timer_overhead_ns();
    let load_after = load_average();

    // ---- Report.
    let cpu = cpu_model();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!();
    println!("Warren runtime: call path and hot swap ({cpu}, {cores} cores)");
    println!("Load average (1, 5, 15 min) before: {load_before}; after: {load_after}");
    println!();
    println!(
        "Call path: on_client, {FRAME_BYTES}-byte echo frame, {ROUNDS} interleaved rounds of {CALLS_PER_ROUND} calls"
    );
    println!("  {:<20} {:>10}  {:>8}   rounds (ns/call)", "variant", "ns/call", "vs raw");
    for ((name, ns), r) in names.iter().zip(&call_ns).zip(&rounds) {
        let all: Vec<String> = r.iter().map(|v| format!("{v:.1}")).collect();
        println!("  {name:<20} {ns:>10.1}  {:>7.3}x   {}", ns / raw_ns, all.join(" "));
    }
    println!("  call_overhead_ratio = warren / raw = {ratio:.3} (target <= 1.3: {})", verdict(ratio <= 1.3));
    println!("  where Warren's extra {:.1} ns/call goes:", warren_ns - raw_ns);
    println!("    epoch interruption (raw_epoch - raw)                       {:+7.1} ns", raw_epoch_ns - raw_ns);
    println!(
        "    Warren's memory settings (raw_warren_memory - raw)         {:+7.1} ns",
        raw_warren_memory_ns - raw_ns
    );
    println!(
        "    Warren's engine as a whole (raw_warren_engine - raw)       {:+7.1} ns",
        raw_warren_engine_ns - raw_ns
    );
    println!("    Warren's call code (warren - raw_warren_engine)            {warren_code_ns:+7.1} ns");
    println!();
    println!("Loading PLAYER_V1 ({} bytes):", bytes_v1.len());
    println!("  Runtime::load (Cranelift, check, init)            {load_ms:>8.2} ms");
    println!("  Runtime::precompile (Cranelift, serialize)        {precompile_ms:>8.2} ms");
    println!("  Runtime::load_precompiled (deserialize, check, init) {load_precompiled_ms:>5.2} ms");
    println!();
    println!(
        "Hot swap: {} swaps v1<->v2 (precompiled), one every {CALLS_PER_SWAP} calls, each call timed alone",
        SWAPS
    );
    println!("  {:<34} {:>9} {:>9} {:>9} {:>9}", "", "p50", "p90", "p99", "max");
    println!(
        "  {:<34} {:>6.1} us {:>6.1} us {:>6.1} us {:>6.1} us   (target p99 < 1000 us: {})",
        "pause (first call after a swap)",
        swap.pause_us[0],
        swap.pause_us[1],
        swap.pause_us[2],
        swap.pause_us[3],
        verdict(swap.pause_us[2] < 1000.0)
    );
    if let Some(u) = &swap.undisturbed {
        println!(
            "  {:<34} {:>6.1} us {:>6.1} us {:>6.1} us {:>6.1} us   ({} of {SWAPS} pauses)",
            "pause, thread not switched out", u.pause_us[0], u.pause_us[1], u.pause_us[2], u.pause_us[3], u.count
        );
    }
    println!(
        "  {:<34} {:>6.2} us {:>6.2} us {:>6.2} us {:>6.1} us",
        "ordinary call", swap.ordinary_us[0], swap.ordinary_us[1], swap.ordinary_us[2], swap.ordinary_us[3]
    );
    println!("  ({} ordinary calls; reading the clock twice costs ~{timer_ns:.0} ns, included)", swap.ordinary_calls);
    println!();

    println!("warren_call_ns={warren_ns:.1}");
    println!("raw_call_ns={raw_ns:.1}");
    println!("call_overhead_ratio={ratio:.3}");
    println!("raw_epoch_call_ns={raw_epoch_ns:.1}");
    println!("raw_warren_memory_call_ns={raw_warren_memory_ns:.1}");
    println!("raw_warren_engine_call_ns={raw_warren_engine_ns:.1}");
    println!("warren_code_ns={warren_code_ns:.1}");
    println!("swap_pause_median_us={:.1}", swap.pause_us[0]);
    println!("swap_pause_p99_us={:.1}", swap.pause_us[2]);
    println!("swap_pause_max_us={:.1}", swap.pause_us[3]);
    println!("swaps={SWAPS}");
    if let Some(u) = &swap.undisturbed {
        println!("swap_pause_undisturbed_count={}", u.count);
        println!("swap_pause_undisturbed_median_us={:.1}", u.pause_us[0]);
        println!("swap_pause_undisturbed_p99_us={:.1}", u.pause_us[2]);
    }
    println!("ordinary_call_p50_us={:.3}", swap.ordinary_us[0]);
    println!("ordinary_call_p99_us={:.3}", swap.ordinary_us[2]);
    println!("load_ms={load_ms:.2}");
    println!("precompile_ms={precompile_ms:.2}");
    println!("load_precompiled_ms={load_precompiled_ms:.2}");
    Ok(())
}

/// The echo frame padded to exactly [`FRAME_BYTES`], and the reply it must get: the
/// payload, JSON-encoded by the guest SDK.
fn echo_frame() -> (Vec<u8>, Vec<u8>) {
    let shell = r#"{"type":"echo","payload":""}"#.len();
    let payload = "x".repeat(FRAME_BYTES - shell);
    let frame = serde_json::to_vec(&serde_json::json!({"type": "echo", "payload": payload})).expect("json");
    assert_eq!(frame.len(), FRAME_BYTES, "{}", String::from_utf8_lossy(&frame));
    (frame, serde_json::to_vec(&payload).expect("json"))
}

/// One way of making the benchmarked call.
trait Caller {
    /// Makes one call and returns its reply.
    fn checked_call(&mut self) -> Vec<u8>;
    /// Makes `n` calls back to back.
    fn run(&mut self, n: u32);
}

/// The call through Warren: `Instance<Baseapp>::on_client`.
struct WarrenCaller {
    inst: Instance<Baseapp>,
    state: EntityState,
    env: CallEnv,
    frame: Vec<u8>,
}

impl WarrenCaller {
    fn new(module: Arc<Module<Baseapp>>, frame: Vec<u8>) -> Self {
        let env = CallEnv { now_ms: 1_700_000_000_000, seed: 1 };
        WarrenCaller { inst: Instance::new(RoleModule::new(module)), state: EntityState::new(), env, frame }
    }
}

impl Caller for WarrenCaller {
    fn checked_call(&mut self) -> Vec<u8> {
        let mut fx = self.inst.on_client(&mut self.state, self.env, 1, &self.frame).expect("warren call");
        assert_eq!(fx.replies.len(), 1);
        fx.replies.remove(0)
    }

    #[inline(never)]
    fn run(&mut self, n: u32) {
        for _ in 0..n {
            let fx = self.inst.on_client(&mut self.state, self.env, 1, &self.frame).expect("warren call");
            black_box(fx);
        }
    }
}

/// The host of the raw call: the platform imports, doing the least they can.
#[derive(Default)]
struct RawHost {
    reply: Option<Vec<u8>>,
}

impl types::Host for RawHost {}

impl log::Host for RawHost {
    fn write(&mut self, _level: Level, _text: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl messaging::Host for RawHost {
    fn send(&mut self, _to: Address, _kind: String, _body: Vec<u8>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn reply(&mut self, frame: Vec<u8>) -> wasmtime::Result<()> {
        self.reply = Some(frame);
        Ok(())
    }

    fn push(&mut self, _player: u64, _frame: Vec<u8>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl state::Host for RawHost {
    fn get(&mut self, _key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn set(&mut self, _key: String, _value: Vec<u8>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn remove(&mut self, _key: String) -> wasmtime::Result<()> {
        Ok(())
    }

    fn keys(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

impl env::Host for RawHost {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(0)
    }

    fn random(&mut self) -> wasmtime::Result<u64> {
        Ok(0)
    }
}

/// A plain engine: the component model on, optionally epoch interruption, defaults
/// otherwise.
fn plain_engine(epoch: bool) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(epoch);
    Engine::new(&config)
}

/// A plain engine with Warren's memory settings (`Runtime::new`: a 4 GiB reservation and
/// a 64 KiB guard), without epoch interruption.
fn warren_memory_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.memory_reservation(4 << 30);
    config.memory_guard_size(1 << 16);
    Engine::new(&config)
}

/// The raw call: a typed wasmtime call of `on-client` on the guest's own store.
struct RawCaller {
    store: Store<RawHost>,
    guest: RawBaseapp,
    frame: Vec<u8>,
    /// Whether the engine interrupts on epochs (then every call sets its deadline).
    epoch: bool,
}

impl RawCaller {
    fn new(engine: &Engine, bytes: &[u8], epoch: bool, frame: Vec<u8>) -> wasmtime::Result<Self> {
        let component = Component::new(engine, bytes)?;
        let mut linker = Linker::<RawHost>::new(engine);
        Platform::add_to_linker::<RawHost, HasSelf<RawHost>>(&mut linker, |s| s)?;
        let pre = BaseappPre::new(linker.instantiate_pre(&component)?)?;
        let mut store = Store::new(engine, RawHost::default());
        if epoch {
            // The deadline starts at 0: without this even instantiation traps.
            store.set_epoch_deadline(RAW_DEADLINE_TICKS);
        }
        let guest = pre.instantiate(&mut store)?;
        guest.warren_game_lifecycle().call_init(&mut store)?.map_err(wasmtime::Error::msg)?;
        Ok(RawCaller { store, guest, frame, epoch })
    }

    #[inline(always)]
    fn call(&mut self) -> Option<Vec<u8>> {
        if self.epoch {
            self.store.set_epoch_deadline(RAW_DEADLINE_TICKS);
        }
        self.guest
            .warren_game_player()
            .call_on_client(&mut self.store, 1, &self.frame)
            .expect("raw call")
            .expect("echo accepted");
        self.store.data_mut().reply.take()
    }
}

impl Caller for RawCaller {
    fn checked_call(&mut self) -> Vec<u8> {
        self.call().expect("a reply")
    }

    #[inline(never)]
    fn run(&mut self, n: u32) {
        for _ in 0..n {
            black_box(self.call());
        }
    }
}

/// What the hot-swap loop measured: [p50, p90, p99, max] in µs.
struct SwapFigures {
    pause_us: [f64; 4],
    ordinary_us: [f64; 4],
    ordinary_calls: usize,
    /// Pauses during which the OS did not switch the loop's thread out (when the kernel
    /// exposes /proc/thread-self/schedstat).
    undisturbed: Option<Undisturbed>,
}

/// The pauses the OS did not interrupt: the cost of the swap itself, without time lost to
/// other processes on a busy machine.
struct Undisturbed {
    count: usize,
    pause_us: [f64; 4],
}

/// A call loop on one instance whose role module is swapped between `v1` and `v2` every
/// [`CALLS_PER_SWAP`] calls. Every call is timed alone.
fn swap_loop(v1: &Arc<Module<Baseapp>>, v2: &Arc<Module<Baseapp>>, frame: &[u8], expected: &[u8]) -> SwapFigures {
    let role = RoleModule::new(v1.clone());
    let mut inst = Instance::new(role.clone());
    let mut state = EntityState::new();
    let env = CallEnv { now_ms: 1_700_000_000_000, seed: 1 };
    let modules = [v1, v2];
    let mut timed_call = |inst: &mut Instance<Baseapp>| -> Duration {
        let started = Instant::now();
        let result = inst.on_client(&mut state, env, 1, frame);
        let took = started.elapsed();
        let fx = result.expect("no call fails across swaps");
        assert_eq!(fx.replies.len(), 1);
        assert_eq!(fx.replies[0], expected);
        took
    };
    for _ in 0..WARMUP_CALLS / 10 {
        timed_call(&mut inst);
    }

    let mut pauses = Vec::with_capacity(SWAPS);
    let mut undisturbed = Vec::with_capacity(SWAPS);
    let mut sched_visible = true;
    let mut ordinary = Vec::with_capacity(SWAPS * (CALLS_PER_SWAP - 1));
    for cycle in 0..WARMUP_SWAPS + SWAPS {
        let timed = cycle >= WARMUP_SWAPS;
        let next = modules[(cycle + 1) % 2];
        role.swap(next.clone());
        let before = times_scheduled();
        let pause = timed_call(&mut inst);
        let after = times_scheduled();
        if timed {
            pauses.push(pause);
            match (before, after) {
                (Some(b), Some(a)) if a == b => undisturbed.push(pause),
                (Some(_), Some(_)) => {}
                _ => sched_visible = false,
            }
        }
        assert_eq!(inst.module_digest(), next.digest(), "the call after a swap runs the new module");
        for _ in 1..CALLS_PER_SWAP {
            let took = timed_call(&mut inst);
            if timed {
                ordinary.push(took);
            }
        }
    }
    SwapFigures {
        pause_us: spread_us(&mut pauses),
        ordinary_us: spread_us(&mut ordinary),
        ordinary_calls: ordinary.len(),
        undisturbed: (sched_visible && !undisturbed.is_empty())
            .then(|| Undisturbed { count: undisturbed.len(), pause_us: spread_us(&mut undisturbed) }),
    }
}

/// How many times the OS has put this thread on a CPU (the third field of
/// /proc/thread-self/schedstat): if it did not change across a call, nothing else ran on
/// the thread's CPU in between.
fn times_scheduled() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().nth(2)?.parse().ok()
}

/// [p50, p90, p99, max] of `samples`, in µs.
fn spread_us(samples: &mut [Duration]) -> [f64; 4] {
    samples.sort_unstable();
    let us: Vec<f64> = samples.iter().map(|d| d.as_nanos() as f64 / 1000.0).collect();
    [percentile(&us, 0.50), percentile(&us, 0.90), percentile(&us, 0.99), percentile(&us, 1.0)]
}

/// The nearest-rank percentile `q` of ascending `sorted`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median of `values`.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// What two clock reads cost back to back (median), in ns.
fn timer_overhead_ns() -> f64 {
    let mut samples: Vec<Duration> = (0..100_000).map(|_| Instant::now().elapsed()).collect();
    spread_us(&mut samples)[0] * 1000.0
}

/// The first three fields of /proc/loadavg: other work on the machine skews the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The CPU model from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
