#![allow(dead_code, unused_imports)]
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
const ROUNDS: usize = 5;
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
    let (frame, _expected) = echo_frame();
    let bytes_v1 = warren_test_guests::read(PLAYER_V1);
    let runtime = Runtime::new(Limits::default())?;
    let which = std::env::args().nth(1).unwrap_or_default();
    let n: u32 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(3_000_000);
    let mut c: Box<dyn Caller> = match which.as_str() {
        "warren" => Box::new(WarrenCaller::new(Arc::new(runtime.load::<Baseapp>(&bytes_v1)?), frame.clone())),
        "raw" => Box::new(RawCaller::new(&plain_engine(false)?, &bytes_v1, false, frame.clone())?),
        "raw_epoch" => Box::new(RawCaller::new(&plain_engine(true)?, &bytes_v1, true, frame.clone())?),
        "raw_mem" => {
            let mut config = Config::new();
            config.wasm_component_model(true);
            config.memory_reservation(128 << 20);
            config.memory_guard_size(1 << 16);
            Box::new(RawCaller::new(&Engine::new(&config)?, &bytes_v1, false, frame.clone())?)
        }
        "raw_mem4g" => {
            let mut config = Config::new();
            config.wasm_component_model(true);
            config.epoch_interruption(true);
            config.memory_reservation(4 << 30);
            config.memory_guard_size(1 << 16);
            Box::new(RawCaller::new(&Engine::new(&config)?, &bytes_v1, true, frame.clone())?)
        }
        "raw_warren_engine" => Box::new(RawCaller::new(runtime.engine(), &bytes_v1, true, frame.clone())?),
        "swap" => Box::new(RawCaller::new(&plain_engine(false)?, &bytes_v1, false, frame.clone())?),
        _ => panic!("which"),
    };
    if which == "swap" {
        return swap_probe(&runtime, &bytes_v1, &frame);
    }
    c.checked_call();
    c.run(100_000);
    for _ in 0..3 {
        let t = Instant::now();
        c.run(n);
        println!("{which} {:.1} ns/call", t.elapsed().as_nanos() as f64 / f64::from(n));
    }
    let _ = (
        PLAYER_V2,
        Module::<Baseapp>::digest,
        digest as fn(&[u8]) -> String,
        swap_loop as fn(_, _, _, _) -> _,
        timer_overhead_ns,
        ms,
        verdict,
        cpu_model,
        median,
        ROUNDS,
        CALLS_PER_ROUND,
        WARMUP_CALLS,
    );
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
    let mut ordinary = Vec::with_capacity(SWAPS * (CALLS_PER_SWAP - 1));
    for cycle in 0..WARMUP_SWAPS + SWAPS {
        let timed = cycle >= WARMUP_SWAPS;
        let next = modules[(cycle + 1) % 2];
        role.swap(next.clone());
        let pause = timed_call(&mut inst);
        if timed {
            pauses.push(pause);
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
    }
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

fn ctx() -> (u64, u64) {
    let st = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let get = |k: &str| {
        st.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
    };
    (get("voluntary_ctxt_switches"), get("nonvoluntary_ctxt_switches"))
}

fn swap_probe(runtime: &Runtime, bytes_v1: &[u8], frame: &[u8]) -> wasmtime::Result<()> {
    let bytes_v2 = warren_test_guests::read(PLAYER_V2);
    let v1 = Arc::new(runtime.load::<Baseapp>(bytes_v1)?);
    let v2 = Arc::new(runtime.load::<Baseapp>(&bytes_v2)?);
    let role = RoleModule::new(v1.clone());
    let mut inst = Instance::new(role.clone());
    let mut state = EntityState::new();
    let env = CallEnv { now_ms: 1, seed: 1 };
    let mods = [v1, v2];
    let (mut vol, mut invol, mut ovol, mut oinvol) = (0, 0, 0, 0);
    let mut pauses = vec![];
    let n = 1000;
    for c in 0..n {
        role.swap(mods[(c + 1) % 2].clone());
        let b = ctx();
        let t = Instant::now();
        inst.on_client(&mut state, env, 1, frame).unwrap();
        let d = t.elapsed();
        let a = ctx();
        vol += a.0 - b.0;
        invol += a.1 - b.1;
        pauses.push(d);
        for k in 0..499 {
            if k == 10 {
                let b = ctx();
                inst.on_client(&mut state, env, 1, frame).unwrap();
                let a = ctx();
                ovol += a.0 - b.0;
                oinvol += a.1 - b.1;
            } else {
                inst.on_client(&mut state, env, 1, frame).unwrap();
            }
        }
    }
    let p = spread_us(&mut pauses);
    println!(
        "pauses {p:?}; switches during pause calls: voluntary {vol} involuntary {invol}; during {n} ordinary calls: voluntary {ovol} involuntary {oinvol}"
    );
    Ok(())
}
