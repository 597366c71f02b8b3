//! [`Harness`]: one entity's committed state, run through calls as the host runs them.

use super::Effects;
use super::call::{CALL, Call};
use super::caps::{Breach, Caps, Role, state_size};
use crate::{Outcome, Reject};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;

/// A call that returned `Ok` within every cap, not kept yet: a room call is kept only
/// once the room's snapshot is within its quota too.
pub(super) struct Returned<T> {
    /// What the handler returned.
    pub(super) value: T,
    /// The entity's state the call leaves.
    pub(super) state: BTreeMap<String, Vec<u8>>,
    /// What it emitted.
    pub(super) effects: Effects,
}

/// One entity's committed state, a clock, a seed and the caps its calls run under: runs
/// calls as the host would.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The entity's committed state.
    state: BTreeMap<String, Vec<u8>>,
    /// The time the next calls see.
    now_ms: u64,
    /// The seed of the next call's random sequence.
    seed: u64,
    /// The caps every call runs under.
    pub(super) caps: Caps,
    /// The role of the entity, which picks its state quota.
    role: Role,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A player with no state, at time 1 000 000 ms, seed 1, under the host's default
    /// caps.
    pub fn new() -> Self {
        Self::for_role(Role::Baseapp)
    }

    /// An entity of `role` (whose state quota its calls run under) with no state, at time
    /// 1 000 000 ms, seed 1, under the host's default caps.
    pub fn for_role(role: Role) -> Self {
        Harness { state: BTreeMap::new(), now_ms: 1_000_000, seed: 1, caps: Caps::default(), role }
    }

    /// A player like [`Harness::new`], whose calls run under `caps`: for a script whose
    /// hosts are configured with other limits. Other roles: [`Harness::for_role`], then
    /// [`Harness::set_caps`].
    pub fn with_caps(caps: Caps) -> Self {
        Harness { caps, ..Self::new() }
    }

    /// Sets the caps the next calls run under.
    pub fn set_caps(&mut self, caps: Caps) {
        self.caps = caps;
    }

    /// The caps calls run under.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// The role of the entity, which picks its state quota.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Sets the clock the next calls see.
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// Sets the random seed of the next call. Each call — a rejected one too — then takes
    /// the next seed, as each message on the host carries its own.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Runs `f` as one handler call: its state writes and effects are kept only on `Ok`
    /// within every cap (see the module's *Limits*).
    pub fn call<R>(&mut self, f: impl FnOnce() -> Outcome<R>) -> Outcome<(R, Effects)> {
        let seed = self.take_seed();
        let returned = self.attempt(seed, f)?;
        Ok(self.keep(returned))
    }

    /// The seed of the next message's call; the one after becomes next.
    pub(super) fn take_seed(&mut self) -> u64 {
        let seed = self.seed;
        self.seed = self.seed.wrapping_add(1);
        seed
    }

    /// Runs `f` as one call with random seed `seed`, checking every cap, and keeps
    /// nothing yet: [`Harness::keep`] commits what it returns.
    pub(super) fn attempt<R>(&mut self, seed: u64, f: impl FnOnce() -> Outcome<R>) -> Outcome<Returned<R>> {
        let call = Call {
            state: self.state.clone(),
            now_ms: self.now_ms,
            rng: seed,
            effects: Effects::default(),
            caps: self.caps,
            emitted: 0,
            emitted_bytes: 0,
        };
        CALL.with(|c| {
            let prev = c.borrow_mut().replace(call);
            assert!(prev.is_none(), "harness calls do not nest");
        });
        let ended = std::panic::catch_unwind(AssertUnwindSafe(f));
        let call = CALL.with(|c| c.borrow_mut().take()).expect("call state present");
        let result = match ended {
            Ok(result) => result,
            Err(payload) => match payload.downcast::<Breach>() {
                Ok(breach) => return Err(Reject(breach.0)),
                // The guest's own panic: the test sees it as it is.
                Err(panic) => std::panic::resume_unwind(panic),
            },
        };
        let value = result.map_err(|reject| call.refusal(reject))?;
        self.check_quota(&call.state)?;
        Ok(Returned { value, state: call.state, effects: call.effects })
    }

    /// Checks the state a call leaves against the entity's quotas, as the host does at the
    /// end of a call: refused only if the call grew it, so an entity over a lowered quota
    /// can still shrink.
    fn check_quota(&self, after: &BTreeMap<String, Vec<u8>>) -> Outcome {
        let ((before_bytes, before_keys), (bytes, keys)) = (state_size(&self.state), state_size(after));
        let quota = self.caps.state_bytes.of(self.role);
        if bytes > quota && bytes > before_bytes {
            return Err(Reject(format!(
                "(quota) this call grows {} from {before_bytes} to {bytes} bytes, keys and values, over its quota of \
                 {quota} (`{}`)",
                self.role.state_of(),
                self.role.quota_key()
            )));
        }
        let cap = self.caps.max_state_keys;
        if keys > cap && keys > before_keys {
            return Err(Reject(format!(
                "(quota) this call grows {} from {before_keys} to {keys} keys, over the cap of {cap} \
                 (`max_state_keys`)",
                self.role.state_of()
            )));
        }
        Ok(())
    }

    /// Commits a call that returned within every cap: its state becomes the entity's.
    pub(super) fn keep<R>(&mut self, returned: Returned<R>) -> (R, Effects) {
        self.state = returned.state;
        (returned.value, returned.effects)
    }

    /// Reads a committed state value.
    pub fn state<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.state.get(key).map(|b| serde_json::from_slice(b).expect("state value is JSON of this type"))
    }

    /// Sets a committed state value, as if an earlier call had written it. No cap is
    /// checked: the state is arranged, not written by a call (an entity may hold more than
    /// a lowered quota allows).
    pub fn set_state<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.state.insert(key.to_owned(), crate::encode(value));
    }

    /// The committed state's keys.
    pub fn keys(&self) -> Vec<String> {
        self.state.keys().cloned().collect()
    }
}
