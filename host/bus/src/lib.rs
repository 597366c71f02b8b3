//! `warren-bus` is Warren's message center: every queue, every commit of a handler's
//! effects, every module blob. It knows nothing of WebAssembly.
//!
//! One interface, [`Bus`], over two backends: Redis, the cluster's message center, and an
//! embedded one, in-process, for `warren dev` and unit tests. One conformance suite
//! (`tests/conformance/`) runs against every backend.
//!
//! The promises:
//! - A message is delivered at least once: it stays pending until acknowledged.
//! - [`Bus::commit`] stores a handler's effects — the entity's state writes, its outgoing
//!   messages and the ack of the message it handled — in one atomic step, so a crash
//!   between steps neither loses the message nor applies it twice.
//! - A guild's messages are queued by group: `Guild(id)` goes to the queue of
//!   `GuildGroup(id mod groups)`, and the envelope keeps the guild's address.
//! - Whoever holds the lease on a queue's owner hears of each new message on its doorbell
//!   ([`Bus::doorbell`]), so one host waits for thousands of queues with one blocking read.
//! - Modules are stored by sha256; the role's current version is a pointer; moving it is
//!   announced to every host.
//! - Membership is by heartbeat ([`Bus::heartbeat`], [`Bus::members`], [`Bus::leave`]); a
//!   member may also [`Bus::report`] its load, which [`Bus::reports`] lists for the live
//!   members only.
//! - What battleapps coordinate with: ids from named counters that never repeat
//!   ([`Bus::next_id`]), registries of live entities ([`Bus::register`],
//!   [`Bus::registered`]), a doorbell rung by hand ([`Bus::ring`]: a new room handed to
//!   its battleapp) and one secret per cluster for signing tickets ([`Bus::cluster_secret`]).

mod accounts;
mod balance;
mod embedded;
mod redis;
mod types;

pub use balance::{assign_groups, group_of};
pub use embedded::{EmbeddedBus, Op};
pub use redis::{RedisBus, RedisOptions};
pub use types::{
    Address, BusError, Commit, DeadLetter, Delivery, EntityState, Envelope, Lease, MessageId, ModuleAnnouncement,
    Outbound, Push, PushLog, Receipt, Request, StateWrite,
};

/// How many groups guilds are split into unless configured otherwise.
pub const DEFAULT_GROUPS: u32 = 4096;

/// Dead letters a queue keeps (the newest); older ones are dropped, so a module that keeps
/// failing cannot grow the message center without bound. Redis trims by whole stream
/// nodes, so it may keep up to ~100 more.
pub const MAX_DEAD_LETTERS: usize = 1000;

/// How many pushes an owner's push log keeps unacknowledged (the newest): a client that
/// never acknowledges cannot grow the message center without bound. A client that comes
/// back after more than that many is told how many it missed.
pub const MAX_UNACKED_PUSHES: usize = 1000;

/// How many requests an owner remembers the outcome of (the newest): a retry of one of them
/// is answered with its outcome, and applied once.
pub const MAX_REQUESTS: usize = 128;

/// How many requests without a client's key (keys the host made up, which start with a
/// space) an owner remembers: enough to find out what became of a commit whose answer was
/// lost; apart from the [`MAX_REQUESTS`] of the client's keys, which they never push out.
pub const MAX_HOST_REQUESTS: usize = 32;

/// How many bytes the cluster secret ([`Bus::cluster_secret`]) has.
pub const CLUSTER_SECRET_LEN: usize = 32;

/// The queue a message to `to` goes to, with guilds split into `groups` groups.
pub fn queue_of(to: &Address, groups: u32) -> Address {
    match to {
        Address::Guild(id) => Address::GuildGroup(group_of(*id, groups)),
        other => other.clone(),
    }
}

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The message center, on one of its backends. Cheap to clone.
#[derive(Clone)]
pub enum Bus {
    /// In-process: for `warren dev` and tests of code above the bus.
    Embedded(Arc<EmbeddedBus>),
    /// Redis: the cluster's message center.
    Redis(Arc<RedisBus>),
}

impl Bus {
    /// A new, empty in-process bus with [`DEFAULT_GROUPS`] guild groups.
    pub fn embedded() -> Bus {
        Bus::embedded_with_groups(DEFAULT_GROUPS)
    }

    /// A new, empty in-process bus with `groups` guild groups.
    pub fn embedded_with_groups(groups: u32) -> Bus {
        Bus::Embedded(Arc::new(EmbeddedBus::new(groups)))
    }

    /// Connects to the Redis at `url`, with [`DEFAULT_GROUPS`] guild groups.
    ///
    /// `url` is one Redis (`redis://host:6379`, `/<db>` selects a database) or any node of
    /// a Redis Cluster: a node reporting `cluster_enabled:1` is taken as the seed of a
    /// cluster client, and the same bus runs on the cluster. Several seed URLs of one
    /// cluster may be given comma-separated (`redis://a:7000,redis://b:7001`). Failures are
    /// [`BusError::Unavailable`] with the reason.
    pub async fn redis(url: &str) -> Result<Bus, BusError> {
        Bus::redis_with(url, RedisOptions::default()).await
    }

    /// Connects to the Redis (or Redis Cluster, see [`Bus::redis`]) at `url`. The number of
    /// guild groups is fixed by the first process that connects; a process configured
    /// otherwise is refused ([`BusError::Mismatch`]), since it would queue guilds' messages
    /// in the wrong groups.
    pub async fn redis_with_groups(url: &str, groups: u32) -> Result<Bus, BusError> {
        Bus::redis_with(url, RedisOptions { groups, ..RedisOptions::default() }).await
    }

    /// Connects to the Redis (or Redis Cluster, see [`Bus::redis`]) at `url` with
    /// `options`: the number of guild groups (fixed per namespace, see
    /// [`Bus::redis_with_groups`]) and an optional key namespace that keeps this bus apart
    /// from others on the same Redis ([`RedisOptions::namespace`]).
    pub async fn redis_with(url: &str, options: RedisOptions) -> Result<Bus, BusError> {
        Ok(Bus::Redis(Arc::new(RedisBus::connect(url, options).await?)))
    }

    /// How many groups guilds are split into.
    pub fn groups(&self) -> u32 {
        match self {
            Bus::Embedded(b) => b.groups,
            Bus::Redis(b) => b.groups,
        }
    }

    /// The queue a message to `to` goes to: the guild's group for a guild, else `to`'s own.
    pub fn queue_of(&self, to: &Address) -> Address {
        queue_of(to, self.groups())
    }

    /// Waits up to `wait` for news on the doorbell of `holder`: the queues, among those
    /// whose owner's lease `holder` holds, that received messages since the last call.
    /// A queue may be named when it has nothing new (a message taken meanwhile); a message
    /// appended by a process that died before ringing is not named — owners also look at
    /// their queues now and then.
    pub async fn doorbell(&self, holder: &str, wait: Duration) -> Result<Vec<Address>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.doorbell(holder, wait).await),
            Bus::Redis(b) => b.doorbell(holder, wait).await,
        }
    }

    /// Rings `holder`'s doorbell naming `queue`, whoever holds the lease on the queue's
    /// owner (an append rings only that lease's holder): a later [`Bus::doorbell`] of
    /// `holder` returns `queue` among its news, and a waiting one wakes. `queue` is named
    /// as given (a guild's queue is its group's, see [`Bus::queue_of`]). Like any news on a
    /// doorbell, a ring is heard once, by one waiter. Used to hand a new room to the
    /// battleapp chosen to run it.
    pub async fn ring(&self, holder: &str, queue: &Address) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.ring(holder, queue);
                Ok(())
            }
            Bus::Redis(b) => b.ring_doorbell(holder, queue).await,
        }
    }

    /// Who holds the lease on `owner` now, and its token.
    pub async fn lease_holder(&self, owner: &Address) -> Result<Option<(String, u64)>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.lease_holder(owner)),
            Bus::Redis(b) => b.lease_holder(owner).await,
        }
    }

    /// The queues that have dead letters.
    pub async fn dead_letter_queues(&self) -> Result<Vec<Address>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.dead_letter_queues()),
            Bus::Redis(b) => b.dead_letter_queues().await,
        }
    }

    /// Puts dead letter `id` of `queue` back at the end of its queue, in one atomic step
    /// (it leaves the dead letters as it is enqueued). Returns the new message id, or
    /// `None` if there is no such dead letter.
    pub async fn replay_dead_letter(&self, queue: &Address, id: &str) -> Result<Option<MessageId>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.replay_dead_letter(queue, id)),
            Bus::Redis(b) => b.replay_dead_letter(queue, id).await,
        }
    }

    /// Appends a message to its destination's queue, stamped with the time and a random
    /// seed (the handler's `now` and randomness, recorded so a replay is exact).
    pub async fn send(&self, msg: Outbound) -> Result<MessageId, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::Send).and_then(|()| b.send(msg)),
            Bus::Redis(b) => b.send(msg).await,
        }
    }

    /// How many messages wait in the queues of `destinations` (entity addresses, mapped to
    /// their queues: a guild's is its group's), delivered or not, until acknowledged: what
    /// a sender checks against a queue's cap before it commits a send.
    pub async fn backlogs(&self, destinations: &[Address]) -> Result<Vec<u64>, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::Read).map(|()| b.backlogs(destinations)),
            Bus::Redis(b) => b.backlogs(destinations).await,
        }
    }

    /// Takes up to `max` new messages from `queue`, waiting up to `wait` for one. They
    /// stay pending until a [`Commit`] acknowledges them.
    pub async fn read(&self, queue: &Address, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        match self {
            Bus::Embedded(b) => {
                b.check(Op::Read)?;
                b.read(queue, max, wait).await
            }
            Bus::Redis(b) => b.read(queue, max, wait).await,
        }
    }

    /// Takes again the messages of `queue` that were delivered but never acknowledged
    /// (a new owner calls this before [`Bus::read`]).
    pub async fn read_pending(&self, queue: &Address) -> Result<Vec<Delivery>, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::ReadPending).map(|()| b.read_pending(queue)),
            Bus::Redis(b) => b.read_pending(queue).await,
        }
    }

    /// Stores a handler's effects and acknowledges its message, atomically: state writes,
    /// messages, the frames for the owner's push log, the request's record. A failure other
    /// than a refusal ([`BusError::StaleOwner`], [`BusError::NotPending`],
    /// [`BusError::RequestDecided`]) leaves the outcome unknown: the commit may have been
    /// applied. Resolve a request's commit with [`Bus::resolve`]; a message's shows when
    /// it is committed again ([`BusError::NotPending`]).
    pub async fn commit(&self, commit: Commit) -> Result<Receipt, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::Commit).and_then(|()| b.commit(commit)),
            Bus::Redis(b) => b.commit(commit).await,
        }
    }

    /// Commits `commits` — all of one owner and one fence, each a [`Bus::commit`] — in
    /// order, in one trip: the way a read batch's messages, handled one after another over
    /// the state each leaves, are committed. One result for each commit tried, in order:
    /// every one but the last is `Ok`. A refusal ends the run, as the later commits were
    /// computed on the state the refused one would have left: they are not tried, and
    /// their messages stay pending. Any other error leaves the outcome of its commit and
    /// of every later one unknown (each may have been applied), as for [`Bus::commit`].
    pub async fn commit_all(&self, commits: Vec<Commit>) -> Vec<Result<Receipt, BusError>> {
        match self {
            Bus::Embedded(b) => match b.check(Op::Commit) {
                Ok(()) => b.commit_all(commits),
                Err(e) => vec![Err(e)],
            },
            Bus::Redis(b) => b.commit_all(commits).await,
        }
    }

    /// Moves the host messages `ids` of `owner`'s queue — frames for the client — into the
    /// owner's push log, in one atomic step fenced by `fence`: each is acknowledged and
    /// logged with the next sequence number, unless it is no longer pending or is a relayed
    /// copy of one logged before (then it is only acknowledged). Returns what was logged,
    /// in order: a frame is logged once, so a client shown each push once is shown each
    /// frame once.
    pub async fn take_pushes(&self, owner: &Address, fence: u64, ids: &[MessageId]) -> Result<Vec<Push>, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::Commit).and_then(|()| b.take_pushes(owner, fence, ids)),
            Bus::Redis(b) => b.take_pushes(owner, fence, ids).await,
        }
    }

    /// The pushes of `owner`'s log after sequence number `after` (those not yet trimmed),
    /// with the newest number logged and the highest acknowledged.
    pub async fn pushes(&self, owner: &Address, after: u64) -> Result<PushLog, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::LoadState).map(|()| b.pushes(owner, after)),
            Bus::Redis(b) => b.pushes(owner, after).await,
        }
    }

    /// The client acknowledged every push of `owner` up to `upto`: they leave the log.
    /// Idempotent; an older acknowledgement than one already taken changes nothing.
    pub async fn trim_pushes(&self, owner: &Address, upto: u64) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.trim_pushes(owner, upto);
                Ok(())
            }
            Bus::Redis(b) => b.trim_pushes(owner, upto).await,
        }
    }

    /// The keys of `owner`'s requests recorded as applied (the newest [`MAX_REQUESTS`]).
    pub async fn requests(&self, owner: &Address) -> Result<Vec<String>, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::LoadState).map(|()| b.requests(owner)),
            Bus::Redis(b) => b.requests(owner).await,
        }
    }

    /// The outcome recorded with request `key` of `owner`, if it was applied.
    pub async fn request_outcome(&self, owner: &Address, key: &str) -> Result<Option<Vec<u8>>, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::LoadState).map(|()| b.request_outcome(owner, key)),
            Bus::Redis(b) => b.request_outcome(owner, key).await,
        }
    }

    /// Finds out what became of the commit of request `key`, attempt `attempt`, whose
    /// answer was lost: `Some(outcome)` if the request was applied (by that attempt or
    /// another); `None` if it was not — and then that attempt is void: if it is still on
    /// its way, it will be refused ([`BusError::RequestDecided`]), so `None` is final.
    pub async fn resolve(&self, owner: &Address, key: &str, attempt: u64) -> Result<Option<Vec<u8>>, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::Commit).map(|()| b.resolve(owner, key, attempt)),
            Bus::Redis(b) => b.resolve(owner, key, attempt).await,
        }
    }

    /// Sets a message that keeps failing aside, with its error: acknowledges it and stores
    /// it in the queue's dead-letter list, in one atomic step.
    pub async fn dead_letter(&self, queue: &Address, delivery: &Delivery, error: &str) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::DeadLetter).and_then(|()| b.dead_letter(queue, delivery, error)),
            Bus::Redis(b) => b.dead_letter(queue, delivery, error).await,
        }
    }

    /// The dead letters of a queue, oldest first.
    pub async fn dead_letters(&self, queue: &Address) -> Result<Vec<DeadLetter>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.dead_letters(queue)),
            Bus::Redis(b) => b.dead_letters(queue).await,
        }
    }

    /// Takes the lease on `owner` for `holder`, for `ttl`; `None` while another holder's
    /// lease is live. Taking a lease one already holds renews it with the same token.
    pub async fn acquire_lease(&self, owner: &Address, holder: &str, ttl: Duration) -> Result<Option<Lease>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.acquire_lease(owner, holder, ttl)),
            Bus::Redis(b) => b.acquire_lease(owner, holder, ttl).await,
        }
    }

    /// Takes the lease on `owner` from `from` (a holder and its token, as
    /// [`Bus::lease_holder`] named them) for `holder`, with a new fencing token — if the
    /// lease is still exactly that one. For taking over from a host that is known dead
    /// (its membership lapsed) before its lease expires; the dead host's late commits are
    /// refused by the new token.
    pub async fn take_over_lease(
        &self,
        owner: &Address,
        holder: &str,
        ttl: Duration,
        from: &(String, u64),
    ) -> Result<Option<Lease>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.take_over_lease(owner, holder, ttl, from)),
            Bus::Redis(b) => b.take_over_lease(owner, holder, ttl, from).await,
        }
    }

    /// Extends a lease; `false` if it was lost (expired and taken, or released).
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.renew_lease(lease, ttl)),
            Bus::Redis(b) => b.renew_lease(lease, ttl).await,
        }
    }

    /// Gives a lease up (nothing happens if it was already lost).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.release_lease(lease);
                Ok(())
            }
            Bus::Redis(b) => b.release_lease(lease).await,
        }
    }

    /// Says `instance` of `role` is alive for `ttl` more (hosts call it every few seconds).
    /// A member keeps its latest [`Bus::report`] while its membership lasts; one that comes
    /// back after its heartbeat expired (or after [`Bus::leave`]) has none until it reports.
    pub async fn heartbeat(&self, role: &str, instance: &str, ttl: Duration) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.heartbeat(role, instance, ttl, None);
                Ok(())
            }
            Bus::Redis(b) => b.heartbeat(role, instance, ttl, None).await,
        }
    }

    /// A heartbeat with a report: says `instance` of `role` is alive for `ttl` more,
    /// exactly as [`Bus::heartbeat`] (it is a member [`Bus::members`] returns), and stores
    /// `report` as its latest report (a host's load, e.g. JSON with its rooms and its URL),
    /// replacing the one before. The report lasts as long as the membership: it is not
    /// listed by [`Bus::reports`] once the heartbeat expires or the member leaves, and it
    /// is gone when the member comes back.
    pub async fn report(&self, role: &str, instance: &str, report: &[u8], ttl: Duration) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.heartbeat(role, instance, ttl, Some(report));
                Ok(())
            }
            Bus::Redis(b) => b.heartbeat(role, instance, ttl, Some(report)).await,
        }
    }

    /// The live members of `role` (as [`Bus::members`]) that have a report, each with its
    /// latest one, sorted by instance name. A member whose heartbeat expired or that left
    /// is not listed, and its report is dropped.
    pub async fn reports(&self, role: &str) -> Result<Vec<(String, Vec<u8>)>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.reports(role)),
            Bus::Redis(b) => b.reports(role).await,
        }
    }

    /// Takes `instance` out of `role`'s members at once (a host draining), with its report.
    pub async fn leave(&self, role: &str, instance: &str) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.leave(role, instance);
                Ok(())
            }
            Bus::Redis(b) => b.leave(role, instance).await,
        }
    }

    /// The live instances of `role` (heartbeat not expired), sorted.
    pub async fn members(&self, role: &str) -> Result<Vec<String>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.members(role)),
            Bus::Redis(b) => b.members(role).await,
        }
    }

    /// The committed state of an entity (empty if it has none yet).
    pub async fn load_state(&self, owner: &Address) -> Result<EntityState, BusError> {
        match self {
            Bus::Embedded(b) => b.check(Op::LoadState).map(|()| b.load_state(owner)),
            Bus::Redis(b) => b.load_state(owner).await,
        }
    }

    /// The next id of the named `counter`: 1, 2, 3, ... cluster-wide (on Redis, every
    /// process of the namespace shares the counter), never handed out twice, also to
    /// callers racing. Ids are not taken back: a caller that fails after this leaves a gap.
    /// Counters are apart by name (battle rooms take theirs from one).
    pub async fn next_id(&self, counter: &str) -> Result<u64, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.next_id(counter)),
            Bus::Redis(b) => b.next_id(counter).await,
        }
    }

    /// Sets entity `id` of `registry` to `value`, overwriting the value it had: a registry
    /// lists live entities of one kind (which battle rooms exist, and which battleapp was
    /// asked to run each). Registries are apart by name.
    pub async fn register(&self, registry: &str, id: u64, value: &str) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.register(registry, id, value);
                Ok(())
            }
            Bus::Redis(b) => b.register(registry, id, value).await,
        }
    }

    /// Takes entity `id` out of `registry`; nothing happens if it is not there.
    pub async fn unregister(&self, registry: &str, id: u64) -> Result<(), BusError> {
        match self {
            Bus::Embedded(b) => {
                b.unregister(registry, id);
                Ok(())
            }
            Bus::Redis(b) => b.unregister(registry, id).await,
        }
    }

    /// Every entity of `registry` with its value, sorted by id (empty for a registry
    /// nobody registered in).
    pub async fn registered(&self, registry: &str) -> Result<Vec<(u64, String)>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.registered(registry)),
            Bus::Redis(b) => b.registered(registry).await,
        }
    }

    /// The cluster's secret: [`CLUSTER_SECRET_LEN`] random bytes (from the OS), made by
    /// the first caller and the same for every later caller of the same cluster — on
    /// Redis, every process of the namespace; embedded, this bus (another embedded bus
    /// has another secret). For signing what one host hands out and another checks
    /// (tickets to battle rooms). Kept in the message center like everything else: anyone
    /// who can read Redis can read it.
    pub async fn cluster_secret(&self) -> Result<Vec<u8>, BusError> {
        match self {
            Bus::Embedded(b) => b.cluster_secret(),
            Bus::Redis(b) => b.cluster_secret().await,
        }
    }

    /// Stores a module blob under its sha256, makes it `role`'s current module and
    /// announces it. Validate the module before: the bus stores bytes, it does not judge
    /// them.
    pub async fn publish_module(&self, role: &str, bytes: Vec<u8>) -> Result<String, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.publish_module(role, bytes)),
            Bus::Redis(b) => b.publish_module(role, bytes).await,
        }
    }

    /// A stored module blob.
    pub async fn module(&self, digest: &str) -> Result<Vec<u8>, BusError> {
        match self {
            Bus::Embedded(b) => b.module(digest),
            Bus::Redis(b) => b.module(digest).await,
        }
    }

    /// The digest of `role`'s current module, if one was published.
    pub async fn current_module(&self, role: &str) -> Result<Option<String>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.current_module(role)),
            Bus::Redis(b) => b.current_module(role).await,
        }
    }

    /// Every later change of a role's current module.
    pub fn module_announcements(&self) -> broadcast::Receiver<ModuleAnnouncement> {
        match self {
            Bus::Embedded(b) => b.module_announcements(),
            Bus::Redis(b) => b.module_announcements(),
        }
    }
}
