//! Quotas on what an entity's logic puts on the bus, written once for every role: how fast
//! an entity may send, how full a queue it may send to, how long a chain of messages
//! causing one another may grow. docs/limits.md lists them with their defaults.

use crate::mechanics::logic::to_bus;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use warren_bus::{Address, Bus};
use warren_runtime::Effects;

/// What every role of a process shares to keep modules in bounds: the quotas, and the
/// bound on handler calls running at once (a flood of slow calls queues for it rather than
/// oversubscribing the cores). Calls of *heavy* entities — whose recent calls took long,
/// see [`Heat`] — may hold all but one of the permits, so one core is always left to
/// everyone else's calls, which then wait only for each other.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The quotas.
    pub quotas: Quotas,
    /// One permit per call that may run at once.
    pub running: Arc<Semaphore>,
    /// One permit per call of a heavy entity that may run (or wait for `running`) at once.
    pub heavy: Arc<Semaphore>,
}

impl Sandbox {
    /// A sandbox with `quotas`.
    pub fn new(quotas: Quotas) -> Sandbox {
        let n = quotas.max_running_calls.max(1);
        Sandbox { quotas, running: Arc::new(Semaphore::new(n)), heavy: Arc::new(Semaphore::new((n - 1).max(1))) }
    }
}

/// How long an entity's calls take lately: an average that weighs the last call as much
/// as all those before. Above [`Heat::HEAVY`] the entity is heavy (see [`Sandbox`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Heat {
    average_us: u64,
    /// Whether a call was counted yet: an entity not seen calling is not known light.
    seen: bool,
}

/// What an entity's recent calls say about how to run its next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Its recent calls were short: it may run on the thread that asks for it.
    Light,
    /// Not known light (no call seen yet, or calls of a millisecond or so).
    Ordinary,
    /// Heavy: it may not crowd out the others (see [`Sandbox`]).
    Heavy,
}

impl Heat {
    /// The average call time above which an entity is heavy: a handler that takes this
    /// long is far from the usual ~1 µs–1 ms, and may not crowd out the others.
    pub const HEAVY: std::time::Duration = std::time::Duration::from_millis(5);
    /// The average call time under which an entity is light.
    pub const LIGHT: std::time::Duration = std::time::Duration::from_micros(200);

    /// Counts a call that took `took`.
    pub fn record(&mut self, took: std::time::Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        self.average_us = if self.seen { (self.average_us + us) / 2 } else { us };
        self.seen = true;
    }

    /// Whether the entity's calls are heavy.
    pub fn is_heavy(&self) -> bool {
        self.average_us >= Self::HEAVY.as_micros() as u64
    }

    /// How the entity's next call should run.
    pub fn pace(&self) -> Pace {
        if self.is_heavy() {
            Pace::Heavy
        } else if self.seen && self.average_us < Self::LIGHT.as_micros() as u64 {
            Pace::Light
        } else {
            Pace::Ordinary
        }
    }
}

/// How long a call took, as [`Heat`] counts it: CPU time, so that a call that waited for
/// a core on a busy machine does not make its entity look heavy (which would queue its next
/// call behind every heavy entity's). Reading the thread's CPU clock costs ~0.3 µs, a
/// third of a short call, so a light entity's call is timed by the wall clock instead,
/// and counted as at most [`Heat::HEAVY`]: one call delayed by the machine turns a light
/// entity ordinary, never heavy, and the next call is timed in CPU time.
pub struct CallTime {
    wall: std::time::Instant,
    /// The thread's CPU clock at the start; `None` for a light entity's call.
    cpu: Option<std::time::Duration>,
    light: bool,
}

impl CallTime {
    /// Starts timing a call of an entity of this `pace`.
    pub fn start(pace: Pace) -> CallTime {
        let light = pace == Pace::Light;
        let cpu = if light { None } else { warren_runtime::thread_cpu_time() };
        CallTime { wall: std::time::Instant::now(), cpu, light }
    }

    /// The call's time.
    pub fn stop(self) -> std::time::Duration {
        let wall = self.wall.elapsed();
        if self.light {
            return wall.min(Heat::HEAVY);
        }
        // Without a CPU clock (not Linux), wall time is all there is.
        match (self.cpu, warren_runtime::thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => wall,
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new(Quotas::default())
    }
}

/// The host's quotas on entities' traffic (the `[limits]` section of a config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Most messages waiting in a player's, a team's or a room's queue: a send to a full
    /// queue fails the sending call (backpressure, not unbounded growth).
    pub max_queue_len: u64,
    /// Most messages waiting in a guild group's queue, which its guilds share.
    pub max_group_queue_len: u64,
    /// Messages (sends and pushes) one entity may send per second, on average...
    pub sends_per_s: u32,
    /// ...and at once after a quiet spell (the bucket's size).
    pub sends_burst: u32,
    /// Longest chain of messages each caused by the one before; a message deeper than
    /// this is set aside as a dead letter instead of handled.
    pub max_hops: u32,
    /// Handler calls running at once in the process; more wait their turn.
    pub max_running_calls: usize,
    /// Roles no host will serve (a `warren dev` without their module): a send to one of
    /// their entities fails its call with a sentence instead of waiting in a queue forever.
    pub roles_off: RolesOff,
}

/// Which roles' entities nothing serves, so sending to them is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolesOff {
    /// Guilds (no guild module).
    pub guild: bool,
    /// Teams (no team host).
    pub team: bool,
    /// Matchmaking queues (no match host).
    pub matchmaker: bool,
}

impl RolesOff {
    /// Why a send to `to` is refused, if its role is off.
    pub fn refuses(&self, to: &Address) -> Option<String> {
        let (off, what, module) = match to {
            Address::Guild(_) | Address::GuildGroup(_) => (self.guild, "guilds", "guild"),
            Address::Team(_) => (self.team, "teams", "team"),
            Address::MatchQueue(_) => (self.matchmaker, "matchmaking", "matchmaker"),
            _ => return None,
        };
        off.then(|| format!("{what} are off on this server (it has no {module} module)"))
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_queue_len: 1_000,
            max_group_queue_len: 10_000,
            sends_per_s: 1_000,
            sends_burst: 2_000,
            max_hops: 64,
            max_running_calls: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            roles_off: RolesOff::default(),
        }
    }
}

impl Quotas {
    /// The cap of the queue that messages to `to` go to.
    pub fn queue_cap(&self, to: &Address) -> u64 {
        match to {
            Address::Guild(_) | Address::GuildGroup(_) => self.max_group_queue_len,
            _ => self.max_queue_len,
        }
    }
}

/// A token bucket per sending entity: `sends_per_s` tokens a second, up to `sends_burst`.
/// Entities whose bucket is full again are forgotten, so the map holds only the busy ones.
#[derive(Debug, Default)]
pub struct SendBudget {
    buckets: HashMap<Address, (f64, Instant)>,
}

impl SendBudget {
    /// Buckets kept before the full ones are swept out.
    const SWEEP_AT: usize = 64;

    /// Takes `n` tokens from `entity`'s bucket if it has them. `Err` means the entity
    /// sends faster than its quota, and the call must fail: `Err(Some(wait))` when the
    /// bucket will hold `n` after `wait`, `Err(None)` when it never will (`n` is more than
    /// the burst).
    pub fn take(&mut self, quotas: &Quotas, entity: &Address, n: usize, now: Instant) -> Result<(), Option<Duration>> {
        let (rate, burst) = (f64::from(quotas.sends_per_s), f64::from(quotas.sends_burst));
        let refill = |(tokens, at): (f64, Instant)| (tokens + now.duration_since(at).as_secs_f64() * rate).min(burst);
        if self.buckets.len() >= Self::SWEEP_AT {
            self.buckets.retain(|_, b| refill(*b) < burst);
        }
        let bucket = self.buckets.entry(entity.clone()).or_insert((burst, now));
        let tokens = refill(*bucket);
        let n = n as f64;
        if tokens < n {
            *bucket = (tokens, now);
            let never = n > burst || rate <= 0.0;
            return Err(if never { None } else { Duration::try_from_secs_f64((n - tokens) / rate).ok() });
        }
        *bucket = (tokens - n, now);
        Ok(())
    }
}

/// Why [`Admission::admit`] refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What the player (or the log) is told.
    pub reason: String,
    /// The call broke only its entity's send rate, and the same sends would be admitted
    /// after this wait (the entity's bucket holds enough by then). `None`: waiting would
    /// not help (more than a burst at once, a full queue, an unknown player).
    pub wait: Option<Duration>,
}

impl Refusal {
    fn final_(reason: String) -> Refusal {
        Refusal { reason, wait: None }
    }
}

/// What a call's sends are checked against before commit: the sender's rate, and the
/// backlog of each destination queue, read from the bus and trusted for a moment while
/// far from its cap (this owner's own sends counted meanwhile).
#[derive(Debug, Default)]
pub struct Admission {
    budget: SendBudget,
    backlogs: HashMap<Address, (u64, Instant)>,
    /// Messages admitted per destination queue whose commits have not landed yet (a read
    /// batch's, committed together): a backlog read from the bus does not count them.
    uncommitted: HashMap<Address, u64>,
    /// The owner's pushes to itself from a queue message's handler go to its push log, not
    /// through its queue (a player's session, see `OwnedQueue::log_replies`): they count
    /// against the send rate only.
    pub logs_own_pushes: bool,
    /// The last account id known to exist: player ids up to it are players.
    players_known: u64,
}

/// How long a backlog read well under the cap is trusted without reading it again.
const BACKLOG_FRESH: std::time::Duration = std::time::Duration::from_millis(100);

impl Admission {
    /// Checks what a call sends against the quotas: the backlog of each destination queue,
    /// then the sender's rate. `Some(refusal)` refuses the call. A backlog that cannot be
    /// read holds the call to the rate alone (the commit meets the same outage and is
    /// retried). `leaving`:
    /// the messages of `own_queue` handled whose acks are not committed yet, the one being
    /// handled included — they leave the queue with their commits.
    pub async fn admit(
        &mut self,
        bus: &Bus,
        quotas: Quotas,
        own_queue: &Address,
        leaving: u64,
        entity: &Address,
        effects: &Effects,
    ) -> Option<Refusal> {
        let n = effects.sends.len() + effects.pushes.len();
        if n == 0 {
            return None;
        }
        if let Some(refused) = effects.sends.iter().find_map(|s| quotas.roles_off.refuses(&to_bus(&s.to))) {
            return Some(Refusal::final_(refused));
        }
        if let Some(refused) = self.refuse_unknown_players(bus, effects).await {
            return Some(Refusal::final_(refused));
        }
        let now = Instant::now();
        // Messages per destination queue (a guild's queue is its group's).
        let mut per_queue: std::collections::BTreeMap<Address, u64> = std::collections::BTreeMap::new();
        for s in &effects.sends {
            *per_queue.entry(bus.queue_of(&to_bus(&s.to))).or_default() += 1;
        }
        for (p, _) in &effects.pushes {
            let queue = bus.queue_of(&Address::Player(*p));
            // Only a queue message's handler logs them (`leaving`): a client frame's go
            // through the queue.
            if !(self.logs_own_pushes && leaving > 0 && queue == *own_queue) {
                *per_queue.entry(queue).or_default() += 1;
            }
        }
        let stale: Vec<Address> = per_queue
            .keys()
            .filter(|queue| match self.backlogs.get(*queue) {
                Some((waiting, at)) => {
                    now.duration_since(*at) > BACKLOG_FRESH || *waiting * 2 >= quotas.queue_cap(queue)
                }
                None => true,
            })
            .cloned()
            .collect();
        let mut known = true;
        if !stale.is_empty() {
            match bus.backlogs(&stale).await {
                Ok(read) => {
                    if self.backlogs.len() > 256 {
                        self.backlogs.clear();
                    }
                    for (queue, waiting) in stale.into_iter().zip(read) {
                        let unsent = self.uncommitted.get(&queue).copied().unwrap_or(0);
                        self.backlogs.insert(queue, (waiting + unsent, now));
                    }
                }
                Err(e) => {
                    // The commit meets the same outage and is retried.
                    tracing::debug!(error = %e, "queue backlogs not read; the call is not held to them");
                    known = false;
                }
            }
        }
        for (queue, n) in per_queue.iter().filter(|_| known) {
            let cap = quotas.queue_cap(queue);
            let Some((waiting, _)) = self.backlogs.get(queue) else { continue };
            let leaving = if queue == own_queue { leaving } else { 0 };
            if waiting.saturating_sub(leaving) + n > cap {
                return Some(Refusal::final_(format!(
                    "{} has {waiting} messages waiting, the most its queue takes: try again later",
                    describe(queue)
                )));
            }
        }
        // The rate last: a call refused for a full queue spends none of it.
        if let Err(wait) = self.budget.take(&quotas, entity, n, now) {
            let reason = format!(
                "sending too fast: at most {} messages a second (bursts of {})",
                quotas.sends_per_s, quotas.sends_burst
            );
            return Some(Refusal { reason, wait });
        }
        if !known {
            return None;
        }
        for (queue, n) in per_queue {
            if let Some((waiting, _)) = self.backlogs.get_mut(&queue) {
                *waiting += n;
            }
            *self.uncommitted.entry(queue).or_default() += n;
        }
        None
    }

    /// The calls admitted so far were committed (or failed): the bus's backlogs count
    /// what they sent from now on.
    pub fn committed(&mut self) {
        self.uncommitted.clear();
    }
}

impl Admission {
    /// A message to a player id no account has is refused, never queued: it would wait
    /// for whoever registers that id next, or pile up for an id no one will have. Ids
    /// count up from 1, so one read of the last id given answers for every id under it.
    async fn refuse_unknown_players(&mut self, bus: &Bus, effects: &Effects) -> Option<String> {
        let sends = effects.sends.iter().filter_map(|s| match s.to {
            warren_runtime::Address::Player(id) => Some(id),
            _ => None,
        });
        let ids = sends.chain(effects.pushes.iter().map(|(p, _)| *p));
        let (lowest, highest) =
            ids.fold(None, |m: Option<(u64, u64)>, id| Some(m.map_or((id, id), |(lo, hi)| (lo.min(id), hi.max(id)))))?;
        if lowest == 0 {
            return Some("there is no player 0".into());
        }
        if highest <= self.players_known {
            return None;
        }
        match bus.accounts_made().await {
            Ok(made) => self.players_known = self.players_known.max(made),
            // The commit meets the same outage and is retried.
            Err(e) => {
                tracing::debug!(error = %e, "accounts not read; the call is admitted");
                return None;
            }
        }
        (highest > self.players_known).then(|| format!("there is no player {highest}"))
    }
}

/// How a reason names a destination.
fn describe(to: &Address) -> String {
    match to {
        Address::Player(id) => format!("player {id}"),
        Address::Guild(id) => format!("guild {id}"),
        Address::GuildGroup(g) => format!("guild group {g}"),
        Address::Team(id) => format!("team {id}"),
        Address::Battle(id) => format!("battle room {id}"),
        Address::MatchQueue(name) => format!("match queue `{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let q = Quotas { sends_per_s: 100, sends_burst: 10, ..Quotas::default() };
        let (mut b, p, t0) = (SendBudget::default(), Address::Player(1), Instant::now());
        assert_eq!(b.take(&q, &p, 10, t0), Ok(()), "a full bucket gives its burst");
        assert_eq!(b.take(&q, &p, 1, t0), Err(Some(Duration::from_millis(10))), "then one after 10 ms at 100/s");
        assert_eq!(b.take(&q, &p, 4, t0), Err(Some(Duration::from_millis(40))), "four after 40 ms");
        assert_eq!(b.take(&q, &p, 1, t0 + Duration::from_millis(10)), Ok(()), "one token after 10 ms");
        assert!(b.take(&q, &p, 1, t0 + Duration::from_millis(10)).is_err());
        assert_eq!(b.take(&q, &p, 11, t0 + Duration::from_secs(60)), Err(None), "never more than the burst");
        assert_eq!(b.take(&q, &Address::Player(2), 10, t0), Ok(()), "each entity has its own bucket");
    }

    #[tokio::test]
    async fn a_call_refused_for_a_full_queue_spends_none_of_its_rate_and_one_over_its_rate_is_told_when() {
        let bus = Bus::embedded();
        for login in ["user:a", "user:b", "user:c", "user:d", "user:e"] {
            bus.create_account(login, &[]).await.unwrap();
        }
        let to = |p: u64| warren_runtime::Outgoing {
            to: warren_runtime::Address::Player(p),
            kind: "hi".into(),
            body: vec![],
        };
        let send = |p: u64| Effects { sends: vec![to(p)], ..Effects::default() };
        bus.send(warren_bus::Outbound {
            to: Address::Player(2),
            sender: None,
            kind: "hi".into(),
            body: vec![],
            hops: 0,
        })
        .await
        .unwrap();
        let quotas = Quotas { max_queue_len: 1, sends_per_s: 10, sends_burst: 2, ..Quotas::default() };
        let (mut admission, me) = (Admission::default(), Address::Player(1));
        let full = admission.admit(&bus, quotas, &me, 0, &me, &send(2)).await.expect("player 2's queue is full");
        assert_eq!(full.wait, None, "waiting for a queue to empty is not the sender's to do: {full:?}");
        assert!(full.reason.contains("player 2 has 1 messages waiting"), "{full:?}");
        // Its burst is whole: two sends (to players 3 and 4), then a third is too fast.
        for p in [3, 4] {
            assert_eq!(admission.admit(&bus, quotas, &me, 0, &me, &send(p)).await, None);
        }
        let fast = admission.admit(&bus, quotas, &me, 0, &me, &send(5)).await.expect("over the rate");
        assert!(fast.reason.starts_with("sending too fast"), "{fast:?}");
        let wait = fast.wait.expect("a send fits in a burst: it may wait");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "one token at 10/s: {wait:?}");
    }

    #[test]
    fn sends_to_a_role_that_is_off_are_refused_with_a_sentence() {
        let off = RolesOff { guild: true, ..RolesOff::default() };
        assert_eq!(
            off.refuses(&Address::Guild(3)).as_deref(),
            Some("guilds are off on this server (it has no guild module)")
        );
        assert_eq!(off.refuses(&Address::Player(3)), None);
        assert_eq!(off.refuses(&Address::Team(3)), None);
    }

    #[test]
    fn time_off_the_cpu_does_not_make_an_entity_heavy() {
        // A call that waits (as one preempted on a busy machine does) uses little CPU.
        let ordinary = CallTime::start(Pace::Ordinary);
        std::thread::sleep(std::time::Duration::from_millis(30));
        let took = ordinary.stop();
        assert!(took < std::time::Duration::from_millis(5), "counted {took:?} of a call that waited 30 ms");
        // A light entity's call is timed by the wall clock, and turns it ordinary at most.
        let light = CallTime::start(Pace::Light);
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut heat = Heat::default();
        heat.record(std::time::Duration::from_micros(50));
        heat.record(light.stop());
        assert_eq!(heat.pace(), Pace::Ordinary);
        // Work on the CPU counts in full.
        let busy = CallTime::start(Pace::Ordinary);
        let cpu = || warren_runtime::thread_cpu_time().expect("Linux keeps a thread CPU clock");
        let started = cpu();
        while cpu() - started < std::time::Duration::from_millis(12) {
            std::hint::black_box(0u64);
        }
        let took = busy.stop();
        assert!(took >= std::time::Duration::from_millis(12), "counted {took:?} of 12 ms on the CPU");
        heat.record(took);
        heat.record(took);
        assert_eq!(heat.pace(), Pace::Heavy);
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let q = Quotas { sends_per_s: 1000, sends_burst: 10, ..Quotas::default() };
        let (mut b, t0) = (SendBudget::default(), Instant::now());
        for p in 0..SendBudget::SWEEP_AT as u64 {
            assert!(b.take(&q, &Address::Player(p), 1, t0).is_ok());
        }
        assert!(b.take(&q, &Address::Player(1000), 1, t0 + Duration::from_secs(1)).is_ok());
        assert_eq!(b.buckets.len(), 1, "the refilled buckets were swept out");
    }
}
