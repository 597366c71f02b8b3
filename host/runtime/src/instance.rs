//! Instances: a store running one module, and the calls made into it under limits.

use crate::call::{CallEnv, Effects, EntityState, FIRST_TICKS, HostState};
use crate::limits::CallError;
use crate::module::{GuestStore, Module, RoleModule};
use crate::world::World;
use std::sync::Arc;

/// A store with one instance of a module in it.
pub(crate) struct Live<W: World> {
    store: GuestStore,
    guest: W::Guest,
    module: Arc<Module<W>>,
}

impl<W: World> Live<W> {
    /// Instantiates `module` in a fresh store.
    pub(crate) fn new(module: Arc<Module<W>>) -> Result<Self, CallError> {
        let runtime = &module.runtime;
        let limits = runtime.limits();
        let mut store = wasmtime::Store::new(&runtime.shared.engine, HostState::new(limits, W::state_quota(&limits)));
        store.limiter(|s| s);
        store.epoch_deadline_callback(|mut cx| Ok(cx.data_mut().deadline_reached()));
        store.set_epoch_deadline(FIRST_TICKS);
        let guest =
            W::instantiate(&module.pre, &mut store).map_err(|e| match CallError::from_wasm(e, &runtime.limits()) {
                CallError::Trap(t) => CallError::Instantiate(t),
                other => other,
            })?;
        Ok(Live { store, guest, module })
    }

    /// The module this instance runs.
    pub(crate) fn module(&self) -> &Arc<Module<W>> {
        &self.module
    }

    /// The most bytes the entity's state may hold.
    pub(crate) fn state_quota(&self) -> usize {
        self.store.data().state_quota
    }

    /// Gives back the module (dropping the instance).
    pub(crate) fn into_module(self) -> Arc<Module<W>> {
        self.module
    }

    /// Runs one handler call as a transaction over `state`: the effects come back only if
    /// the handler returned `ok`. `state` itself is never changed here; the caller applies
    /// [`Effects::writes`] when it commits.
    ///
    /// After an `Err` other than [`CallError::Rejected`] the instance must not be called
    /// again: a trap can leave guest memory half-updated.
    pub(crate) fn call<R>(
        &mut self,
        state: &mut EntityState,
        env: CallEnv,
        f: impl FnOnce(&W::Guest, &mut GuestStore) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<(R, Effects), CallError> {
        self.store.set_epoch_deadline(FIRST_TICKS);
        self.store.data_mut().begin(std::mem::take(state), env);
        let outcome = f(&self.guest, &mut self.store);
        // What the guest left is checked before the call's buffers are handed back.
        let checked = match &outcome {
            Ok(Ok(_)) => self.store.data_mut().check_end(None),
            Ok(Err(reason)) => self.store.data_mut().check_end(Some(reason)),
            Err(_) => Ok(()),
        };
        let (taken, effects) = self.store.data_mut().finish();
        *state = taken;
        checked?;
        match outcome {
            Ok(Ok(value)) => Ok((value, effects)),
            Ok(Err(reason)) => Err(CallError::Rejected(reason)),
            Err(e) => Err(failed(CallError::from_wasm(e, &self.store.data().limits), &effects)),
        }
    }

    /// Hands the instance to the runtime's background thread to be freed.
    pub(crate) fn retire(self) {
        let runtime = self.module.runtime.clone();
        runtime.retire(Box::new(self));
    }
}

/// What a guest's panic hook writes as the last log line of a call that then traps (the
/// guest SDK's `PANIC_PREFIX`): `panicked at <file>:<line>:<column>: <message>`.
pub const PANIC_PREFIX: &str = "panicked at ";

/// A failed call's error, told from what the guest said before it failed: a trap that
/// followed a panic is that panic (its message and place), not the engine's backtrace.
/// The failed call's log lines are kept at debug level, marked as such.
fn failed(error: CallError, effects: &Effects) -> CallError {
    for (level, text) in &effects.logs {
        tracing::debug!(?level, "(from a failed call) {text}");
    }
    let panic = effects.logs.iter().rev().find(|(_, text)| text.starts_with(PANIC_PREFIX));
    match (error, panic) {
        (CallError::Trap(_), Some((_, text))) => CallError::Trap(text.clone()),
        (CallError::Trap(engine), None) => {
            // The engine's message is a wasm backtrace ending with its cause (`wasm trap:
            // out of bounds memory access`): the cause is what the log line needs.
            tracing::debug!("trap backtrace: {engine}");
            let cause = match engine.rfind("wasm trap:") {
                Some(at) => engine[at..].trim().to_owned(),
                None => engine.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_owned(),
            };
            CallError::Trap(cause)
        }
        (other, _) => other,
    }
}

/// A role's instance for handlers whose entity state the host owns (players, guilds,
/// teams, match queues). It follows its role's module: after a swap, its next call runs on
/// the new module; after a fault, its next call runs on a fresh instance. Neither loses
/// anything, since the guest keeps no state between calls that matters.
pub struct Instance<W: World> {
    role: Arc<RoleModule<W>>,
    /// The live instance and the role generation it was made for.
    live: Option<(u64, Live<W>)>,
}

impl<W: World> Instance<W> {
    /// An instance of `role`'s module (instantiated at the first call).
    pub fn new(role: Arc<RoleModule<W>>) -> Self {
        Instance { role, live: None }
    }

    /// True when the instance holds a live instance of a module the role has replaced:
    /// memory kept for nothing until its next call, which would replace it anyway.
    pub fn is_stale(&self) -> bool {
        self.live.as_ref().is_some_and(|(g, _)| *g != self.role.generation())
    }

    /// The version (digest) of the module the next call runs on.
    pub fn module_digest(&self) -> String {
        self.role.current().digest().to_owned()
    }

    /// Moves to the role's current module if it changed, and instantiates if needed.
    /// Returns the replaced instance, to be retired after the call: freeing its memory
    /// while the new one maps its own would contend for the process's memory map lock.
    fn ready(&mut self) -> Result<(&mut Live<W>, Option<Live<W>>), CallError> {
        let generation = self.role.generation();
        let mut replaced = None;
        if self.live.as_ref().is_some_and(|(g, _)| *g != generation) {
            replaced = self.live.take().map(|(_, old)| old);
        }
        if self.live.is_none() {
            let live = Live::new(self.role.current())?;
            self.live = Some((generation, live));
        }
        Ok((&mut self.live.as_mut().expect("instantiated above").1, replaced))
    }

    /// Runs one call (see [`Live::call`]). A fault drops the instance, so the next call
    /// starts on a fresh one.
    pub(crate) fn call<R>(
        &mut self,
        state: &mut EntityState,
        env: CallEnv,
        f: impl FnOnce(&W::Guest, &mut GuestStore) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<(R, Effects), CallError> {
        let (live, replaced) = self.ready()?;
        let result = live.call(state, env, f);
        if let Some(old) = replaced {
            old.retire();
        }
        if let Err(e) = &result
            && e.is_fault()
            && let Some((_, broken)) = self.live.take()
        {
            broken.retire();
        }
        result
    }
}
