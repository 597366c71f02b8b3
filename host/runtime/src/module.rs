//! Modules: a component compiled, checked against its role's world and initialised —
//! all before it may serve — and the slot through which a role's module is swapped.

use crate::call::{CallEnv, HostState};
use crate::engine::Runtime;
use crate::instance::Live;
use crate::limits::CallError;
use crate::world::World;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::Component;

/// Why a module was refused. The module serving before keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The module is bigger than the runtime accepts.
    #[error("{bytes} bytes, over the cap of {cap} on a module's size")]
    TooBig {
        /// Its size.
        bytes: usize,
        /// The cap ([`crate::Limits::max_module_bytes`]).
        cap: usize,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    /// A core module, not a component.
    #[error("a core WebAssembly module, not a component: build scripts with `warren build`")]
    CoreModule,
    /// The component does not validate or compile.
    #[error("does not compile: {0}")]
    Compile(String),
    /// The component needs imports Warren does not provide (files, clocks, sockets...).
    #[error("imports what Warren does not provide (guests get only the `warren:game` platform): {0}")]
    Imports(String),
    /// The component does not export the role's world.
    #[error("does not match the `{world}` world: {detail}")]
    World {
        /// The role's world.
        world: &'static str,
        /// What is missing or mistyped.
        detail: String,
    },
    /// The module's `init` refused to start.
    #[error("init refused: {0}")]
    Init(String),
    /// The module's `init` failed (trap, deadline, memory).
    #[error("init failed: {0}")]
    InitFault(CallError),
}

/// A role's module, ready to instantiate: compiled, type-checked and initialised once.
pub struct Module<W: World> {
    /// sha256 of the component bytes, hex: the module's version everywhere in Warren.
    digest: String,
    /// Pre-linked instance factory (imports resolved, exports looked up once).
    pub(crate) pre: W::Pre,
    /// The runtime that compiled it, whose engine and limits its instances use.
    pub(crate) runtime: Runtime,
    _world: PhantomData<W>,
}

impl<W: World> Module<W> {
    /// The module's version: the sha256 of its bytes, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// The sha256 of `bytes`, hex: how Warren names a module version.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Runtime {
    /// Compiles `bytes` as a module of world `W`, checks it, and runs its `init` on a
    /// trial instance. Slow (Cranelift) the first time: call it off the serving path. The
    /// compiled code is remembered by digest, so loading the same bytes again in this
    /// process (validated on upload, then swapped in) compiles once.
    ///
    /// Only a module that passed every check is remembered: a refused one's code is freed.
    pub fn load<W: World>(&self, bytes: &[u8]) -> Result<Module<W>, LoadError> {
        self.check_bytes(bytes)?;
        let digest = digest(bytes);
        let (component, fresh) = match self.shared.compiled.get(&digest) {
            Some(component) => (component, false),
            None => {
                let component =
                    Component::new(&self.shared.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                self.shared.compilations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (component, true)
            }
        };
        let module = self.prepare(component.clone(), digest)?;
        if fresh {
            self.shared.compiled.put(module.digest(), &component);
        }
        Ok(module)
    }

    /// The checks made before anything is compiled: the size cap, then the header.
    fn check_bytes(&self, bytes: &[u8]) -> Result<(), LoadError> {
        let cap = self.shared.limits.max_module_bytes;
        if bytes.len() > cap {
            return Err(LoadError::TooBig { bytes: bytes.len(), cap });
        }
        check_header(bytes)
    }

    /// How many modules this runtime has compiled with Cranelift (loads served from its
    /// cache of compiled code do not count): a metric, and how tests see the cache work.
    pub fn compilations(&self) -> u64 {
        self.shared.compilations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Loads a module from bytes produced by [`Module::precompile`] in a process with the
    /// same engine settings: no Cranelift, a fraction of a millisecond.
    ///
    /// # Safety
    /// `compiled` must come from [`Runtime::precompile`] of a trusted build of Warren: the
    /// bytes are native code, and wasmtime checks only their header.
    pub unsafe fn load_precompiled<W: World>(&self, compiled: &[u8], digest: String) -> Result<Module<W>, LoadError> {
        // SAFETY: the caller vouches for the bytes, as this function's contract says.
        let component = unsafe { Component::deserialize(&self.shared.engine, compiled) }
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        self.prepare(component, digest)
    }

    /// Compiles `bytes` to native code that [`Runtime::load_precompiled`] takes.
    pub fn precompile(&self, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        self.check_bytes(bytes)?;
        self.shared.engine.precompile_component(bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))
    }

    fn prepare<W: World>(&self, component: Component, digest: String) -> Result<Module<W>, LoadError> {
        let instance_pre =
            self.shared.linker.instantiate_pre(&component).map_err(|e| LoadError::Imports(format!("{e:#}")))?;
        let pre = W::pre(instance_pre).map_err(|e| LoadError::World { world: W::NAME, detail: format!("{e:#}") })?;
        let module = Module { digest, pre, runtime: self.clone(), _world: PhantomData };

        // A trial instance proves the module instantiates and accepts to serve.
        let mut trial = Live::new(Arc::new(module)).map_err(LoadError::InitFault)?;
        let env = CallEnv { now_ms: 0, seed: 0 };
        match trial.call(&mut Default::default(), env, |guest, store| W::init(guest, store)) {
            Ok(_) => {}
            Err(CallError::Rejected(reason)) => return Err(LoadError::Init(reason)),
            Err(fault) => return Err(LoadError::InitFault(fault)),
        }
        let module = trial.into_module();
        Ok(Arc::try_unwrap(module).unwrap_or_else(|_| unreachable!("the trial held the only reference")))
    }
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8: version and layer. Core modules are layer 0, components layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// The module serving a role in this process. Swapping it is one atomic pointer store;
/// every instance notices at its next call and moves to the new module, while calls in
/// flight finish on the old one.
pub struct RoleModule<W: World> {
    /// The module new calls use.
    current: ArcSwap<Module<W>>,
    /// Bumped on every swap, so an instance checks for a swap with one atomic load.
    generation: AtomicU64,
}

impl<W: World> RoleModule<W> {
    /// A role serving `module`.
    pub fn new(module: impl Into<Arc<Module<W>>>) -> Arc<Self> {
        Arc::new(RoleModule { current: ArcSwap::new(module.into()), generation: AtomicU64::new(1) })
    }

    /// The module serving now.
    pub fn current(&self) -> Arc<Module<W>> {
        self.current.load_full()
    }

    /// Makes `module` the one serving; returns the one it replaced.
    pub fn swap(&self, module: impl Into<Arc<Module<W>>>) -> Arc<Module<W>> {
        let old = self.current.swap(module.into());
        self.generation.fetch_add(1, Ordering::Release);
        old
    }

    /// Changes on every swap.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// The store type every instance uses.
pub(crate) type GuestStore = wasmtime::Store<HostState>;

/// Compiled components by digest, the most recent few: a module is typically loaded twice
/// in a process (validated, then swapped in), and compiling is the slow part. A compiled
/// component is shared code (an `Arc`), so keeping one is cheap.
#[derive(Default)]
pub(crate) struct CompiledCache(std::sync::Mutex<std::collections::VecDeque<(String, Component)>>);

impl CompiledCache {
    /// How many compiled modules are kept.
    const KEEP: usize = 8;

    fn get(&self, digest: &str) -> Option<Component> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.iter().find(|(d, _)| d == digest).map(|(_, c)| c.clone())
    }

    fn put(&self, digest: &str, component: &Component) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(d, _)| d != digest);
        cache.push_front((digest.to_owned(), component.clone()));
        cache.truncate(Self::KEEP);
    }
}
