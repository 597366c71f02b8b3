//! Where roles meet the runtime: a pool of instances that runs handler calls off the async
//! executor, and the translation of a call's effects into bus messages.

use crate::mechanics::quota::{Pace, Sandbox};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warren_bus::{Address as BusAddress, Outbound};
use warren_runtime::{Address, CallEnv, Effects, Instance, RoleModule, World};

/// The message kind that carries a frame for a player's client through the player's queue.
/// The player's session forwards it to the socket instead of calling the guest.
pub const CLIENT_FRAME: &str = "$frame";

/// How often a pool looks for instances to drop.
const TRIM_EVERY: Duration = Duration::from_secs(1);
/// How long an instance may sit idle before it is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A call on a pool whose recent calls average under this runs on the async worker that
/// asks for it, µs: a typical handler call takes a microsecond or two, while handing it
/// to a blocking thread and back costs two thread switches (tens of µs on a busy core).
const INLINE_UNDER_US: u64 = 200;
/// A call of an entity not known heavy that takes as long as a heavy entity's calls
/// ([`crate::mechanics::quota::Heat::HEAVY`]) turns the pool's calls off the asking thread
/// for [`INLINE_PAUSE`]: a module whose handlers turned slow (or a player whose calls did)
/// stalls a socket thread once, not call after call.
const SLOW_CALL_US: u64 = crate::mechanics::quota::Heat::HEAVY.as_micros() as u64;
/// See [`SLOW_CALL_US`].
const INLINE_PAUSE: Duration = Duration::from_secs(10);

/// A role's instances. Short calls run where they are asked for, on the async worker; a
/// pool whose calls have been slow lately, and a heavy entity's calls, run on tokio's
/// blocking threads, so that a long call (up to its deadline) does not stall the
/// executor's threads.
pub struct LogicPool<W: World> {
    /// The role's module, followed by every instance.
    role: Arc<RoleModule<W>>,
    /// Instances not in use, each with when it was last used; one is made when none is
    /// idle. At most as many as calls may run at once (the sandbox's bound), and fewer
    /// once idle: see [`LogicPool::trim`].
    idle: Mutex<Vec<(Instance<W>, Instant)>>,
    /// The process's quotas and its bound on calls running at once.
    pub sandbox: Sandbox,
    /// How long the pool's calls of entities that are not heavy took lately, µs: an
    /// average weighing the last call an eighth. Over [`INLINE_UNDER_US`], calls go to the
    /// blocking threads. (Heavy entities' calls go there anyway, and do not count: a few
    /// heavy players do not take the fast path from everyone else.)
    recent_us: AtomicU64,
    /// Until when (µs after `born`) no call runs on the asking thread: set by a slow call.
    inline_paused_until_us: AtomicU64,
    /// When the pool was made: the origin of `inline_paused_until_us`.
    born: Instant,
    /// Whether a call runs on an asking thread now: one at a time, so that on a host with
    /// several async workers a call that turns out long holds up one of them at most.
    inline_busy: std::sync::atomic::AtomicBool,
}

impl<W: World> LogicPool<W> {
    /// The short digest of the module serving now, for log lines about its faults.
    pub fn module_digest(&self) -> String {
        crate::mechanics::live::short(self.role.current().digest()).to_owned()
    }

    /// A pool over `role`, its calls bounded by `sandbox`.
    pub fn new(role: Arc<RoleModule<W>>, sandbox: Sandbox) -> Arc<Self> {
        let pool = Arc::new(LogicPool {
            role,
            idle: Mutex::new(Vec::new()),
            sandbox,
            recent_us: AtomicU64::new(0),
            inline_paused_until_us: AtomicU64::new(0),
            born: Instant::now(),
            inline_busy: std::sync::atomic::AtomicBool::new(false),
        });
        // The pool gives memory back by itself, as long as it exists.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&pool);
            runtime.spawn(async move {
                let mut every = tokio::time::interval(TRIM_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(pool) = weak.upgrade() else { return };
                    pool.trim(Instant::now());
                }
            });
        }
        pool
    }

    /// Drops the idle instances of a module that was replaced, and those idle longer than
    /// [`IDLE_TIMEOUT`]: their memory goes back to the system. Returns how many went.
    pub fn trim(&self, now: Instant) -> usize {
        let dropped: Vec<_> = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|(i, used)| !i.is_stale() && now.duration_since(*used) < IDLE_TIMEOUT);
            *idle = keep;
            drop
        };
        dropped.len()
    }

    /// Instances idle in the pool now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Runs `f` on an instance, once one of the process's running calls ends if as many as
    /// it allows are running.
    pub async fn run<R: Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&mut Instance<W>) -> R + Send + 'static) -> R {
        self.run_as(Pace::Ordinary, f).await
    }

    /// [`LogicPool::run`] for an entity of this `pace` (see [`Pace`]). The call runs here,
    /// on the async worker, if the entity is light, the pool's calls have been short lately
    /// and no other call runs on an asking thread; else on a blocking thread — so an
    /// entity's first call, and any call of an entity whose calls are not known short,
    /// never holds up the thread that serves sockets.
    ///
    /// A light entity's call waits for a running call's place here when none is free, and
    /// then runs here: handing it to a blocking thread would wait as long for the place and
    /// then pay two thread switches besides. (It did go apart, once: on a busy machine the
    /// calls handed over held the places through their hand-offs, so the next light call
    /// found none free and went apart too — half of the calls of the bus benchmark.) If
    /// another call runs on an asking thread, it is given one turn of the executor to end.
    pub async fn run_as<R: Send + 'static>(
        self: &Arc<Self>,
        pace: Pace,
        f: impl FnOnce(&mut Instance<W>) -> R + Send + 'static,
    ) -> R {
        let closed = "the sandbox's semaphores are never closed";
        if pace == Pace::Light && self.inline_allowed() {
            let permit = match self.sandbox.running.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => self.sandbox.running.clone().acquire_owned().await.expect(closed),
            };
            for turn in 0..2 {
                if turn > 0 {
                    tokio::task::yield_now().await;
                }
                if self.inline_allowed() && !self.inline_busy.swap(true, Ordering::Acquire) {
                    let out = self.call_on_idle(true, true, f);
                    drop(permit);
                    self.inline_busy.store(false, Ordering::Release);
                    return out;
                }
            }
            return self.apart(permit, None, f).await;
        }
        let heavy = match pace {
            Pace::Heavy => Some(self.sandbox.heavy.clone().acquire_owned().await.expect(closed)),
            Pace::Light | Pace::Ordinary => None,
        };
        let permit = self.sandbox.running.clone().acquire_owned().await.expect(closed);
        self.apart(permit, heavy, f).await
    }

    /// Whether calls may run on the asking thread now: the pool's calls have been short
    /// lately, and none was slow in the last [`INLINE_PAUSE`].
    fn inline_allowed(&self) -> bool {
        self.recent_us.load(Ordering::Relaxed) < INLINE_UNDER_US
            && self.since_born_us(Instant::now()) >= self.inline_paused_until_us.load(Ordering::Relaxed)
    }

    /// Runs `f` on a blocking thread, holding a running call's place (and a heavy entity's).
    async fn apart<R: Send + 'static>(
        self: &Arc<Self>,
        permit: tokio::sync::OwnedSemaphorePermit,
        heavy: Option<tokio::sync::OwnedSemaphorePermit>,
        f: impl FnOnce(&mut Instance<W>) -> R + Send + 'static,
    ) -> R {
        let pool = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let counted = heavy.is_none();
            let _permits = (permit, heavy);
            pool.call_on_idle(counted, false, f)
        });
        match task.await {
            Ok(out) => out,
            // A panic here is a host bug (guest faults are errors, not panics): surface it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down, and this task with it.
            Err(_) => std::future::pending().await,
        }
    }
}

impl<W: World> LogicPool<W> {
    /// µs from the pool's making to `at`.
    fn since_born_us(&self, at: Instant) -> u64 {
        at.duration_since(self.born).as_micros().min(u128::from(u64::MAX)) as u64
    }

    /// Runs `f` on an idle instance (or a new one) and puts the instance back; a `counted`
    /// call's time goes into the pool's recent average.
    ///
    /// A call on a blocking thread is timed in the thread's CPU time: on a busy machine such
    /// a thread waits for a core often, and a call that waited 5 ms (not slow at all) would
    /// otherwise pause every inline call for [`INLINE_PAUSE`] and send them all through the
    /// blocking threads, two thread switches each, which makes the machine busier still.
    /// Reading that clock (~0.3 µs) is small beside such a call's hand-off. A call on the
    /// asking thread counts in the pool's average by the wall clock, as before, and reads
    /// the CPU clock once more only when it took as long as a slow call: it pauses inline
    /// calls only if it used that much CPU (a module turned slow), not if its thread waited
    /// for a core (then the average alone sends a few calls apart).
    fn call_on_idle<R>(&self, counted: bool, inline: bool, f: impl FnOnce(&mut Instance<W>) -> R) -> R {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut instance = taken.map_or_else(|| Instance::new(self.role.clone()), |(i, _)| i);
        let cpu = if counted { warren_runtime::thread_cpu_time() } else { None };
        let started = Instant::now();
        let out = f(&mut instance);
        let now = Instant::now();
        let wall = now.duration_since(started);
        let slow = SLOW_CALL_US as u128;
        // Without a CPU clock (not Linux), wall time is all there is.
        let used = |cpu: Option<Duration>| match (cpu, cpu.and(warren_runtime::thread_cpu_time())) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => wall,
        };
        let (took, slow) = if inline {
            (wall, wall.as_micros() > slow && used(cpu).as_micros() > slow)
        } else {
            let cpu = used(cpu);
            (cpu, cpu.as_micros() > slow)
        };
        let took = took.as_micros().min(u128::from(u32::MAX)) as u64;
        if counted {
            // Racing updates may lose one another's sample; the average stays an average.
            let recent = self.recent_us.load(Ordering::Relaxed);
            self.recent_us.store((recent * 7 + took) / 8, Ordering::Relaxed);
            if slow {
                let until = self.since_born_us(now) + INLINE_PAUSE.as_micros() as u64;
                self.inline_paused_until_us.fetch_max(until, Ordering::Relaxed);
            }
        }
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push((instance, now));
        out
    }
}

/// The environment of a call that did not come from a queue (a client frame, a tick):
/// the time now and a fresh seed.
pub fn fresh_env() -> CallEnv {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    CallEnv { now_ms, seed: RandomState::new().hash_one(now_ms) }
}

/// The runtime's address as the bus names it.
pub fn to_bus(address: &Address) -> BusAddress {
    match address {
        Address::Player(id) => BusAddress::Player(*id),
        Address::Guild(id) => BusAddress::Guild(*id),
        Address::Team(id) => BusAddress::Team(*id),
        Address::Battle(id) => BusAddress::Battle(*id),
        Address::MatchQueue(name) => BusAddress::MatchQueue(name.clone()),
    }
}

/// The bus's address as the runtime names it; a guild group is no entity a guest sees.
pub fn from_bus(address: &BusAddress) -> Option<Address> {
    Some(match address {
        BusAddress::Player(id) => Address::Player(*id),
        BusAddress::Guild(id) => Address::Guild(*id),
        BusAddress::Team(id) => Address::Team(*id),
        BusAddress::Battle(id) => Address::Battle(*id),
        BusAddress::MatchQueue(name) => Address::MatchQueue(name.clone()),
        BusAddress::GuildGroup(_) => return None,
    })
}

/// The messages a call's effects put on the bus: its sends, and its pushes as client
/// frames through the players' queues.
///
/// `hops` is how many messages caused them: one more than caused the call's message (0
/// for a client's frame or a tick).
pub fn outbound(sender: &BusAddress, effects: &Effects, hops: u32) -> Vec<Outbound> {
    // The runtime refuses a guest's send of a host kind; this is the seam where guest
    // messages become bus messages, so it is checked here as well.
    let allowed = |s: &&warren_runtime::Outgoing| {
        let reserved = warren_runtime::is_reserved_kind(&s.kind);
        if reserved {
            tracing::error!(sender = %sender.tag(), kind = %s.kind, "a guest's message of a host kind dropped");
        }
        !reserved
    };
    let sends = effects.sends.iter().filter(allowed).map(|s| Outbound {
        to: to_bus(&s.to),
        sender: Some(sender.clone()),
        kind: s.kind.clone(),
        body: s.body.clone(),
        hops,
    });
    let pushes = effects.pushes.iter().map(|(player, frame)| Outbound {
        to: BusAddress::Player(*player),
        sender: Some(sender.clone()),
        kind: CLIENT_FRAME.to_owned(),
        body: frame.clone(),
        hops,
    });
    sends.chain(pushes).collect()
}

/// Writes a call's log lines to the host log, tagged with the entity.
pub fn emit_logs(entity: &BusAddress, effects: &Effects) {
    use warren_runtime::Level;
    if effects.logs.is_empty() {
        return;
    }
    let entity = entity.tag();
    for (level, text) in &effects.logs {
        match level {
            Level::Trace => tracing::trace!(%entity, "{text}"),
            Level::Debug => tracing::debug!(%entity, "{text}"),
            Level::Info => tracing::info!(%entity, "{text}"),
            Level::Warn => tracing::warn!(%entity, "{text}"),
            Level::Error => tracing::error!(%entity, "{text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_runtime::{Baseapp, Limits, Runtime};

    fn pool(running: usize) -> Arc<LogicPool<Baseapp>> {
        let runtime = Runtime::new(Limits::default()).unwrap();
        let module = runtime.load::<Baseapp>(&warren_test_guests::read(warren_test_guests::PLAYER_V1)).unwrap();
        let quotas = crate::mechanics::quota::Quotas { max_running_calls: running, ..Default::default() };
        LogicPool::new(RoleModule::new(module), Sandbox::new(quotas))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn light_entities_calls_run_where_asked_and_the_others_apart() {
        let pool = pool(2);
        let here = || std::thread::current().id();
        let on = |pace| {
            let pool = pool.clone();
            async move { pool.run_as(pace, move |_| std::thread::current().id()).await }
        };
        // A light entity on a pool of short calls: on the asking thread.
        assert_eq!(on(Pace::Light).await, here());
        // An entity not known light (its first call), and a heavy one: apart.
        assert_ne!(on(Pace::Ordinary).await, here());
        assert_ne!(on(Pace::Heavy).await, here());
        // Heavy calls do not count: the pool's calls are still short.
        pool.run_as(Pace::Heavy, |_| std::thread::sleep(Duration::from_millis(5))).await;
        assert_eq!(on(Pace::Light).await, here());
        // A call apart that waits (a thread kept off the cores of a busy machine) is not slow.
        pool.run(|_| std::thread::sleep(Duration::from_millis(8))).await;
        assert_eq!(on(Pace::Light).await, here());
        // A slow call of an entity not known heavy sends even light entities' calls apart
        // for a while: a hundred short calls later, still apart.
        pool.run(|_| {
            let cpu = || warren_runtime::thread_cpu_time().expect("Linux keeps a thread CPU clock");
            let started = cpu();
            while cpu() - started < Duration::from_millis(8) {
                std::hint::black_box(0u64);
            }
        })
        .await;
        for _ in 0..100 {
            assert_ne!(on(Pace::Light).await, here());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_here_that_only_waited_does_not_pause_the_others() {
        let pool = pool(2);
        let here = || std::thread::current().id();
        let light = || pool.run_as(Pace::Light, move |_| std::thread::current().id());
        assert_eq!(light().await, here());
        // A long call here that used little CPU (its thread waited for a core, say) sends a
        // few calls apart through the pool's average, and does not pause the rest.
        pool.run_as(Pace::Light, |_| std::thread::sleep(Duration::from_millis(8))).await;
        assert_ne!(light().await, here());
        for _ in 0..40 {
            pool.run(|_| ()).await;
        }
        assert_eq!(light().await, here());
    }

    #[test]
    fn an_entity_is_light_once_its_calls_were_seen_short() {
        use crate::mechanics::quota::Heat;
        let mut heat = Heat::default();
        assert_eq!(heat.pace(), Pace::Ordinary, "no call seen yet");
        heat.record(Duration::from_micros(20));
        assert_eq!(heat.pace(), Pace::Light);
        heat.record(Duration::from_millis(3));
        assert_eq!(heat.pace(), Pace::Ordinary);
        heat.record(Duration::from_millis(28));
        assert_eq!(heat.pace(), Pace::Heavy);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_waits_apart_when_every_running_place_is_taken() {
        let pool = pool(1);
        let (started, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(std::sync::Barrier::new(2)));
        let (s, r) = (started.clone(), release.clone());
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run_as(Pace::Heavy, move |_| {
                    s.notify_one();
                    r.wait();
                })
                .await
            }
        });
        started.notified().await;
        // The one place is taken: this call does not run here now, it waits its turn.
        let asked = std::thread::current().id();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move |_| std::thread::current().id()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "no call runs beyond the sandbox's bound");
        release.wait();
        busy.await.unwrap();
        assert_ne!(waiting.await.unwrap(), asked);
    }
}
