//! The process's one wasm engine: its configuration, the linker of host capabilities,
//! the epoch clock behind every deadline, and the thread that frees retired instances.

use crate::bindings::platform::Platform;
use crate::call::HostState;
use crate::limits::Limits;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the engine's epoch advances: the resolution of every deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Runs WebAssembly components for any role: one per process, cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// Compiles and runs every module of the process.
    pub(crate) engine: Engine,
    /// The host capabilities (the `platform` world), shared by every role.
    pub(crate) linker: Linker<HostState>,
    /// Limits given to every new store.
    pub(crate) limits: Limits,
    /// Recently compiled components, so the same bytes compile once per process.
    pub(crate) compiled: crate::module::CompiledCache,
    /// Cranelift compilations so far (see `Runtime::compilations`).
    pub(crate) compilations: std::sync::atomic::AtomicU64,
    /// Advances the epoch that deadlines count in; stopped when the runtime goes.
    _ticker: EpochTicker,
    /// Takes instances that were replaced, so freeing their memory (~0.1 ms) happens off
    /// the caller's loop.
    retired: mpsc::Sender<Box<dyn Send>>,
}

impl Runtime {
    /// Builds the engine and starts its epoch clock.
    pub fn new(limits: Limits) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // A 4 GiB reservation lets Cranelift drop bounds checks on guest memory (a smaller
        // one costs ~0.1 µs a call). It is address space, not memory: tens of thousands of
        // instances fit in the 128 TiB of a 64-bit process. The memory cap is the limiter's.
        config.memory_reservation(4 << 30);
        config.memory_guard_size(1 << 16);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        Platform::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;

        let ticker = EpochTicker::start(engine.clone());
        let (retired, graveyard) = mpsc::channel::<Box<dyn Send>>();
        std::thread::Builder::new()
            .name("warren-retired-instances".into())
            .spawn(move || graveyard.into_iter().for_each(drop))?;

        Ok(Runtime {
            shared: Arc::new(Shared {
                engine,
                linker,
                limits,
                compiled: Default::default(),
                compilations: Default::default(),
                _ticker: ticker,
                retired,
            }),
        })
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// The engine, for callers that measure against raw wasmtime.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Hands a replaced instance to the background thread that frees it.
    pub(crate) fn retire(&self, thing: Box<dyn Send>) {
        // If the thread is gone the process is ending: dropping here is fine.
        let _ = self.shared.retired.send(thing);
    }
}

/// The thread that advances the engine's epoch every [`EPOCH_TICK`].
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("warren-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch thread");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
