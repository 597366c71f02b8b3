//! One handler call as the guest sees it: the host capabilities of the WIT platform,
//! buffered so that nothing leaves the call unless it returns normally.

use crate::bindings::platform::warren::game::{env, log, messaging, state, types};
use crate::bindings::{Address, Level};
use crate::limits::{EmitLimit, Limits, Quota, ReservedKind, is_reserved_kind};
use std::collections::BTreeMap;

/// An entity's state as the host owns it: named values (`profile`, `bag`, ...).
pub type EntityState = BTreeMap<String, Vec<u8>>;

/// What a call needs from the host besides the message: the time it was taken up and the
/// seed of its random sequence. Both are recorded with the message, so a replay sees the
/// same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEnv {
    /// Milliseconds since the Unix epoch at which the host took up the message.
    pub now_ms: u64,
    /// Seed of the call's random sequence.
    pub seed: u64,
}

/// A message a handler sends to another entity's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The destination queue.
    pub to: Address,
    /// What the message is.
    pub kind: String,
    /// The payload.
    pub body: Vec<u8>,
}

/// One change to the entity's state: `None` removes the key.
pub type StateWrite = (String, Option<Vec<u8>>);

/// Everything a committed call did. The caller stores and delivers it in one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Final value of every key the call wrote, in key order.
    pub writes: Vec<StateWrite>,
    /// Messages to other entities' queues, in the order sent.
    pub sends: Vec<Outgoing>,
    /// Frames for the client whose frame caused the call.
    pub replies: Vec<Vec<u8>>,
    /// Frames for players' clients, wherever connected.
    pub pushes: Vec<(u64, Vec<u8>)>,
    /// Log lines.
    pub logs: Vec<(Level, String)>,
}

impl Effects {
    /// Applies the state writes to `state`.
    pub fn apply_to(&self, state: &mut EntityState) {
        for (key, value) in &self.writes {
            match value {
                Some(v) => state.insert(key.clone(), v.clone()),
                None => state.remove(key),
            };
        }
    }

    /// True when the call did nothing at all.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.sends.is_empty()
            && self.replies.is_empty()
            && self.pushes.is_empty()
            && self.logs.is_empty()
    }
}

/// The call in progress: the entity's committed state, the call's own writes over it, and
/// what it emitted so far.
#[derive(Default)]
struct ActiveCall {
    state: EntityState,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    effects: Effects,
    env: Option<CallEnv>,
    rng: u64,
    emitted: usize,
    emitted_bytes: usize,
}

/// The time a call has taken, kept by the epoch callback (see [`deadline_reached`]): no
/// clock is read unless a call runs past its first epoch ticks.
#[derive(Default)]
struct CallClock {
    /// Epoch ticks the call was given so far (its wall time, to within a tick).
    ticks: u64,
    /// The thread's CPU clock when the call was first past its first ticks.
    cpu_mark: Option<std::time::Duration>,
}

/// Epoch ticks a call runs before its clock is first looked at: a call shorter than this
/// (nearly every call) reads no clock at all.
pub(crate) const FIRST_TICKS: u64 = 2;
/// How many times its CPU deadline a call may take in wall time, however little CPU it
/// got (a machine so busy that a call waits this long is cut rather than waited for).
pub(crate) const WALL_FACTOR: u32 = 4;

/// The data of every Store: the limits and the call in progress.
pub struct HostState {
    /// The limits the store runs under; read by the limiter and the emit checks.
    pub(crate) limits: Limits,
    /// The call in progress (empty between calls).
    call: ActiveCall,
    /// Linear memory the instance holds, all memories together, for the memory cap.
    pub(crate) memory_bytes: usize,
    /// The most bytes the entity's state may hold (its role's quota).
    pub(crate) state_quota: usize,
    /// The call's time so far.
    clock: CallClock,
}

impl HostState {
    pub(crate) fn new(limits: Limits, state_quota: usize) -> Self {
        let clock = CallClock { ticks: FIRST_TICKS, cpu_mark: None };
        HostState { limits, call: ActiveCall::default(), memory_bytes: 0, state_quota, clock }
    }

    /// The epoch callback: the call reached the deadline it was given. A call is cut when
    /// it has used its deadline in CPU time — time the thread spent off the CPU (a busy
    /// machine) does not count against it — or [`WALL_FACTOR`] times it in wall time.
    /// Its first [`FIRST_TICKS`] count as CPU time: that is when the thread's CPU clock is
    /// first read (reading it costs ~0.3 µs, a third of a short call, so short calls never
    /// do).
    pub(crate) fn deadline_reached(&mut self) -> wasmtime::UpdateDeadline {
        let tick = crate::engine::EPOCH_TICK;
        let deadline = self.limits.deadline;
        let clock = &mut self.clock;
        let wall = tick * clock.ticks as u32;
        // Without a CPU clock (not Linux), wall time is all there is.
        let cpu = match thread_cpu_time() {
            Some(now) => tick * FIRST_TICKS as u32 + now.saturating_sub(*clock.cpu_mark.get_or_insert(now)),
            None => wall,
        };
        if cpu >= deadline || wall >= deadline * WALL_FACTOR {
            return wasmtime::UpdateDeadline::Interrupt;
        }
        let more = ((deadline - cpu).as_micros().div_ceil(tick.as_micros().max(1)) as u64).max(1);
        clock.ticks += more;
        wasmtime::UpdateDeadline::Continue(more)
    }

    /// Starts a call over `state` (moved in; handed back by [`HostState::finish`]).
    pub(crate) fn begin(&mut self, state: EntityState, env: CallEnv) {
        self.clock = CallClock { ticks: FIRST_TICKS, cpu_mark: None };
        // Reset in place: this runs on every call, and the buffers are empty already.
        let c = &mut self.call;
        c.state = state;
        c.env = Some(env);
        c.rng = env.seed;
        c.emitted = 0;
        c.emitted_bytes = 0;
    }

    /// Ends the call: gives the state back, with the call's effects.
    pub(crate) fn finish(&mut self) -> (EntityState, Effects) {
        let c = &mut self.call;
        let mut effects = std::mem::take(&mut c.effects);
        if !c.writes.is_empty() {
            effects.writes = std::mem::take(&mut c.writes).into_iter().collect();
        }
        c.env = None;
        (std::mem::take(&mut c.state), effects)
    }

    /// Checks the end of a call that returned normally: its state against the entity's
    /// quota — refused only if the call grew it, so an entity over a lowered quota can
    /// still shrink —, and its refusal reason, if any, against its cap and the call's.
    pub(crate) fn check_end(&mut self, reason: Option<&str>) -> Result<(), crate::limits::CallError> {
        use crate::limits::CallError;
        if let Some(reason) = reason {
            let cap = self.limits.max_reason_bytes;
            if reason.len() > cap {
                return Err(CallError::Emit(EmitLimit::Item { what: "a refusal reason", bytes: reason.len(), cap }));
            }
            if self.call.emitted_bytes + reason.len() > self.limits.max_emit_bytes {
                return Err(CallError::Emit(EmitLimit::Bytes(self.limits.max_emit_bytes)));
            }
            return Ok(());
        }
        let c = &self.call;
        if c.writes.is_empty() {
            return Ok(());
        }
        let size = |k: &String, v: &Vec<u8>| k.len() + v.len();
        let before_bytes: usize = c.state.iter().map(|(k, v)| size(k, v)).sum();
        let (mut bytes, mut keys) = (before_bytes, c.state.len());
        for (k, v) in &c.writes {
            if let Some(old) = c.state.get(k) {
                bytes -= size(k, old);
                keys -= 1;
            }
            if let Some(new) = v {
                bytes += size(k, new);
                keys += 1;
            }
        }
        if bytes > self.state_quota && bytes > before_bytes {
            return Err(CallError::Quota(Quota::StateBytes { bytes, cap: self.state_quota }));
        }
        let cap = self.limits.max_state_keys;
        if keys > cap && keys > c.state.len() {
            return Err(CallError::Quota(Quota::StateKeys { keys, cap }));
        }
        Ok(())
    }

    /// Checks one item against its own cap, then counts it against the call's.
    fn emit_item(&mut self, what: &'static str, bytes: usize, cap: usize) -> wasmtime::Result<()> {
        if bytes > cap {
            return Err(wasmtime::Error::new(EmitLimit::Item { what, bytes, cap }));
        }
        self.emit(bytes)
    }

    /// Counts one emitted item of `bytes` bytes against the call's caps.
    fn emit(&mut self, bytes: usize) -> wasmtime::Result<()> {
        let c = &mut self.call;
        c.emitted += 1;
        c.emitted_bytes += bytes;
        if c.emitted > self.limits.max_emits {
            return Err(wasmtime::Error::new(EmitLimit::Count(self.limits.max_emits)));
        }
        if c.emitted_bytes > self.limits.max_emit_bytes {
            return Err(wasmtime::Error::new(EmitLimit::Bytes(self.limits.max_emit_bytes)));
        }
        Ok(())
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn write(&mut self, level: Level, text: String) -> wasmtime::Result<()> {
        self.emit_item("a log line", text.len(), self.limits.max_log_bytes)?;
        self.call.effects.logs.push((level, text));
        Ok(())
    }
}

impl messaging::Host for HostState {
    fn send(&mut self, to: Address, kind: String, body: Vec<u8>) -> wasmtime::Result<()> {
        if is_reserved_kind(&kind) {
            return Err(wasmtime::Error::new(ReservedKind(kind)));
        }
        self.emit_item("a message", kind.len() + body.len(), self.limits.max_message_bytes)?;
        self.call.effects.sends.push(Outgoing { to, kind, body });
        Ok(())
    }

    fn reply(&mut self, frame: Vec<u8>) -> wasmtime::Result<()> {
        self.emit_item("a reply", frame.len(), self.limits.max_frame_bytes)?;
        self.call.effects.replies.push(frame);
        Ok(())
    }

    fn push(&mut self, player: u64, frame: Vec<u8>) -> wasmtime::Result<()> {
        self.emit_item("a push", frame.len(), self.limits.max_frame_bytes)?;
        self.call.effects.pushes.push((player, frame));
        Ok(())
    }
}

impl state::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let c = &self.call;
        Ok(match c.writes.get(&key) {
            Some(written) => written.clone(),
            None => c.state.get(&key).cloned(),
        })
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        self.emit_item("a state key", key.len(), self.limits.max_key_bytes)?;
        self.emit_item("a state value", value.len(), self.limits.max_value_bytes)?;
        self.call.writes.insert(key, Some(value));
        Ok(())
    }

    fn remove(&mut self, key: String) -> wasmtime::Result<()> {
        self.emit_item("a state key", key.len(), self.limits.max_key_bytes)?;
        self.call.writes.insert(key, None);
        Ok(())
    }

    fn keys(&mut self) -> wasmtime::Result<Vec<String>> {
        let c = &self.call;
        let mut keys: BTreeMap<&String, bool> = c.state.keys().map(|k| (k, true)).collect();
        for (k, v) in &c.writes {
            keys.insert(k, v.is_some());
        }
        Ok(keys.into_iter().filter(|(_, live)| *live).map(|(k, _)| k.clone()).collect())
    }
}

impl env::Host for HostState {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.call.env.map(|e| e.now_ms).unwrap_or(0))
    }

    fn random(&mut self) -> wasmtime::Result<u64> {
        Ok(splitmix64(&mut self.call.rng))
    }
}

/// The call's random sequence: SplitMix64 over the message's seed (the guest SDK's test
/// harness uses the same, so native tests see what the host gives).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The calling thread's CPU time, if the system keeps one (Linux: ~0.3 µs a read).
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}
