//! Owning a queue, written once for every role: player sessions, guild (and team) groups,
//! battle rooms.
//!
//! An owner holds the queue's lease and serves the queue in one loop ([`occupy`]): wait
//! (doorbell, periodic sweep, the role's own events), read a batch, and settle each
//! message by one policy ([`OwnedQueue::settle`]):
//!
//! - load the owner's committed state if it is not cached;
//! - run the handler ([`deliver::handle`]: a fault is retried on a fresh instance, then
//!   dead-lettered; a refusal is an answer);
//! - commit its effects with the ack, fenced by the lease token, in one atomic step.
//!
//! **A bus error is never a refusal and never acknowledges a message**: a failed load,
//! commit, ack or dead letter leaves the message pending, drops the cached state (the
//! outcome of the last step is unknown) and takes the queue's pending messages again after
//! a backoff. A stale lease ends the loop at once; nothing more is written.
//!
//! The role supplies only what differs, as an [`Occupant`]: how a message maps to an
//! entity ([`Target`]), the messages the host handles itself, what to do with an outcome,
//! and its own events (a client socket, a drain signal, a tick).

use crate::mechanics::doorbell::{Doorbells, Sweep, Watch};
pub use crate::mechanics::handles::Handles;
use crate::mechanics::lease::Held;
use crate::mechanics::logic::{CLIENT_FRAME, LogicPool, emit_logs, outbound};
pub use crate::mechanics::occupant::{Control, Ended, Occupant, Routed, Settled, Target};
use crate::mechanics::quota::{Admission, CallTime, Heat};
pub use occupy::occupy;
mod occupy;
mod staged;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use warren_bus::{Address, Bus, BusError, Commit, Delivery, EntityState, MessageId, Receipt, Request};
use warren_runtime::{CallEnv, CallError, CallResult, Effects, Instance, World};

/// The first wait after the message center failed; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two tries of a failing message center.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A queue this host owns by lease, with the owner's committed state cached.
pub struct OwnedQueue<W: World> {
    /// The message center.
    bus: Bus,
    /// The queue (`{p:42}`, `{g:17}`, `{b:9}`) — also the owner whose state is cached.
    queue: Address,
    /// The lease: its token fences every commit.
    held: Held,
    /// Runs the role's handlers.
    logic: Arc<LogicPool<W>>,
    /// The owner's committed state; `None` until loaded, and again after any step whose
    /// outcome is unknown, so the next call loads what was really committed.
    state: Option<EntityState>,
    /// Take the queue's pending messages (not only new ones) at the next read: first
    /// after taking the queue over, and after any failure.
    claim: bool,
    /// News of the queue from the host's doorbell.
    watch: Watch,
    /// The periodic look at the queue that bounds a lost doorbell ring.
    sweep: Sweep,
    /// Most messages taken in one read.
    batch: usize,
    /// When to try the message center again after a failure, and the next wait.
    retry_at: Option<Instant>,
    /// The wait after the next failure.
    backoff: Duration,
    /// The send quotas of the entities served here, and the backlogs of their destinations.
    admission: Admission,
    /// A message of this queue is being handled (it leaves the queue with its commit).
    handling: bool,
    /// The message just handled broke only its entity's send rate, which allows its sends
    /// after this wait: it stays in the queue until then ([`OwnedQueue::run`]).
    over_rate: Option<Duration>,
    /// How long the calls here take lately.
    heat: Heat,
    /// The replies of the handlers of queue messages, and what they push to the owner
    /// itself, are frames for the owner's client, committed to its push log with the rest
    /// of their effects (a player's session); else replies have nowhere to go.
    replies_are_pushes: bool,
    /// A commit's answer was lost since the occupant last asked ([`OwnedQueue::take_unsure`]):
    /// it may have landed, pushes and all.
    unsure: bool,
    /// Messages handled whose commits wait to go in one trip ([`OwnedQueue::flush`]).
    staged: Vec<staged::Staged>,
    /// What became of the messages settled, not yet told to the occupant, in order.
    outcomes: Vec<(Delivery, Settled)>,
}

impl<W: World> OwnedQueue<W> {
    /// Serves `queue`, owned through `held`; its news comes through `bells`.
    pub fn new(
        bus: Bus,
        queue: Address,
        held: Held,
        logic: Arc<LogicPool<W>>,
        bells: &Arc<Doorbells>,
        batch: usize,
    ) -> OwnedQueue<W> {
        let watch = bells.watch(queue.clone());
        OwnedQueue {
            bus,
            queue,
            held,
            logic,
            state: None,
            claim: true,
            watch,
            sweep: Sweep::new(),
            batch,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            admission: Admission::default(),
            handling: false,
            over_rate: None,
            heat: Heat::default(),
            replies_are_pushes: false,
            unsure: false,
            staged: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Whether a commit's answer was lost since the last call: what it logged for the
    /// owner's client, if it landed, the occupant has not seen.
    pub fn take_unsure(&mut self) -> bool {
        std::mem::take(&mut self.unsure)
    }

    /// Commits the replies of queue messages' handlers, and their pushes to the owner
    /// itself ([`screen_frames`]), to the owner's push log with the rest of their effects
    /// (a player's session: a whisper received while the socket fails still reaches the
    /// screen, once, without a trip through the player's own queue).
    pub fn log_replies(&mut self) {
        self.replies_are_pushes = true;
        self.admission.logs_own_pushes = true;
    }

    /// The queue.
    pub fn queue(&self) -> &Address {
        &self.queue
    }

    /// The short digest of the module serving the queue now.
    pub fn logic_digest(&self) -> String {
        self.logic.module_digest()
    }

    /// The quotas the queue's calls run under.
    pub fn quotas(&self) -> crate::mechanics::quota::Quotas {
        self.logic.sandbox.quotas
    }

    /// The lease the queue is owned by.
    pub fn held(&self) -> &Held {
        &self.held
    }

    /// The message center.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Stops watching the queue and gives the lease back (unless it was lost).
    pub async fn release(self) {
        let OwnedQueue { bus, held, watch, .. } = self;
        drop(watch);
        if held.is_lost() {
            return;
        }
        held.release(&bus).await;
    }

    /// Runs a handler over `target`'s committed state (loaded first if need be). An `Err`
    /// means the state could not be loaded and nothing ran.
    pub async fn call(
        &mut self,
        target: &Target,
        env: CallEnv,
        f: impl FnOnce(&mut Instance<W>, &mut EntityState, CallEnv) -> CallResult + Send + 'static,
    ) -> Result<CallResult, BusError> {
        self.load().await?;
        Ok(self.run(target, env, f).await)
    }

    /// Loads the owner's committed state unless it is cached.
    async fn load(&mut self) -> Result<(), BusError> {
        if self.state.is_none() {
            self.state = Some(self.bus.load_state(&self.queue).await?);
        }
        Ok(())
    }

    /// Runs a handler over `target`'s view of the cached state (load it first).
    async fn run(
        &mut self,
        target: &Target,
        env: CallEnv,
        f: impl FnOnce(&mut Instance<W>, &mut EntityState, CallEnv) -> CallResult + Send + 'static,
    ) -> CallResult {
        let whole = target.prefix.is_empty();
        let mut view = if whole { self.state.take().unwrap_or_default() } else { self.view(&target.prefix) };
        let pace = self.heat.pace();
        let (view, result, took) = self
            .logic
            .run_as(pace, move |i| {
                let took = CallTime::start(pace);
                let r = f(i, &mut view, env);
                (view, r, took.stop())
            })
            .await;
        self.heat.record(took);
        if whole {
            self.state = Some(view);
        }
        // A call whose sends break a quota fails as a refusal would: nothing is committed,
        // and the reason reaches the player. The message handled, and those staged before
        // it, leave the queue with their commits. But a queue message of an entity that has
        // its queue to itself (a player) and broke only its send rate waits instead
        // (`over_rate`): the wait holds back no one else, and a message that came from
        // elsewhere (a battle's reward) is not lost to a burst.
        let leaving = if self.handling { 1 + self.staged.len() as u64 } else { 0 };
        self.over_rate = None;
        match result {
            Ok(effects) => match self
                .admission
                .admit(&self.bus, self.logic.sandbox.quotas, &self.queue, leaving, &target.entity, &effects)
                .await
            {
                None => Ok(effects),
                Some(refusal) => {
                    if self.handling && whole {
                        self.over_rate = refusal.wait;
                    }
                    Err(CallError::Rejected(refusal.reason))
                }
            },
            failed => failed,
        }
    }

    /// The keys of the entity under `prefix`, without the prefix.
    fn view(&self, prefix: &str) -> EntityState {
        let Some(state) = &self.state else { return EntityState::new() };
        state
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k[prefix.len()..].to_owned(), v.clone()))
            .collect()
    }

    /// Stores a call's effects on `target` — state writes, messages, and the ack of `ack`
    /// — in one fenced step. On success the cached state follows; on any failure it is
    /// dropped (the outcome is unknown), and a stale lease is reported as such.
    ///
    /// For a call no message caused (a client's frame, a login): its messages start a
    /// chain ([`warren_bus::Outbound::hops`] 0).
    pub async fn commit(
        &mut self,
        target: &Target,
        effects: &Effects,
        ack: Option<MessageId>,
    ) -> Result<Receipt, BusError> {
        let commit = self.commit_of(target, effects, ack, 0, Vec::new(), None);
        self.commit_now(target, effects, commit).await
    }

    /// [`OwnedQueue::commit`] of a client's request: its record goes with the effects, so
    /// that a retry finds it applied and a lost answer is resolved
    /// ([`warren_bus::Bus::resolve`]).
    pub async fn commit_request(
        &mut self,
        target: &Target,
        effects: &Effects,
        request: Request,
    ) -> Result<Receipt, BusError> {
        let commit = self.commit_of(target, effects, None, 0, Vec::new(), Some(request));
        self.commit_now(target, effects, commit).await
    }

    /// Commits `commit`, made of a call's `effects` on `target` ([`OwnedQueue::commit_of`]),
    /// now; the cached state follows it, or is dropped if it failed.
    async fn commit_now(&mut self, target: &Target, effects: &Effects, commit: Commit) -> Result<Receipt, BusError> {
        let writes = commit.writes.clone();
        let committed = self.bus.commit(commit).await;
        self.admission.committed();
        let receipt = match committed {
            Ok(receipt) => receipt,
            Err(e) => {
                self.state = None;
                self.unsure |= !refused(&e);
                return Err(e);
            }
        };
        self.cache(writes);
        emit_logs(&target.entity, effects);
        Ok(receipt)
    }

    /// The fenced commit of a call's effects on `target`, its messages `hops` deep, with
    /// `pushes` for the owner's push log and the `request` it answers. For a call no
    /// message caused (a client's frame, a login), its messages start a chain (`hops` 0).
    fn commit_of(
        &self,
        target: &Target,
        effects: &Effects,
        ack: Option<MessageId>,
        hops: u32,
        pushes: Vec<Vec<u8>>,
        request: Option<Request>,
    ) -> Commit {
        let writes = effects.writes.iter().map(|(k, v)| (format!("{}{k}", target.prefix), v.clone())).collect();
        let mut sends = outbound(&target.entity, effects, hops);
        if !pushes.is_empty() {
            // The owner's pushes to itself are in `pushes` already.
            sends.retain(|s| !(s.to == self.queue && s.kind == CLIENT_FRAME));
        }
        Commit { owner: self.queue.clone(), writes, sends, ack, fence: Some(self.held.token()), pushes, request }
    }

    /// Applies committed (or staged) state writes to the cached state, if any.
    fn cache(&mut self, writes: Vec<(String, Option<Vec<u8>>)>) {
        if let Some(state) = self.state.as_mut() {
            for (key, value) in writes {
                match value {
                    Some(v) => state.insert(key, v),
                    None => state.remove(&key),
                };
            }
        }
    }

    /// Whether a call's effects change nothing the bus holds — no state write, no message,
    /// no push; replies and log lines only — so that there is nothing to commit.
    pub fn changes_nothing(effects: &Effects) -> bool {
        effects.writes.is_empty() && effects.sends.is_empty() && effects.pushes.is_empty()
    }

    /// Settles a call on `target` that changed nothing ([`OwnedQueue::changes_nothing`])
    /// without a trip to the bus: only its log lines are left to write.
    pub fn settle_unchanged(&self, target: &Target, effects: &Effects) {
        debug_assert!(Self::changes_nothing(effects));
        emit_logs(&target.entity, effects);
    }

    /// A fenced commit of `writes` and `sends` that runs apart from the loop: the future
    /// owns what it needs, so the caller may spawn it and go on. The cached state is
    /// dropped, since the loop cannot know when (or whether) the commit lands.
    pub fn commit_apart(
        &mut self,
        target: &Target,
        writes: Vec<(String, Option<Vec<u8>>)>,
    ) -> impl Future<Output = Result<(), BusError>> + Send + 'static {
        self.state = None;
        let writes = writes.into_iter().map(|(k, v)| (format!("{}{k}", target.prefix), v)).collect();
        let commit = Commit { writes, fence: Some(self.held.token()), ..Commit::of(self.queue.clone()) };
        let bus = self.bus.clone();
        async move { bus.commit(commit).await.map(|_| ()) }
    }

    /// Acknowledges message `id` and changes nothing else (fenced).
    pub async fn ack(&mut self, id: MessageId) -> Result<(), BusError> {
        let commit = Commit { fence: Some(self.held.token()), ..Commit::ack_only(self.queue.clone(), id) };
        self.bus.commit(commit).await.map(|_| ())
    }

    /// Sets a message aside as a dead letter with `error`, without calling any handler.
    pub async fn set_aside(&mut self, d: &Delivery, error: &str) -> Settled {
        tracing::error!(queue = %self.queue.tag(), id = %d.id, %error, "message dead-lettered");
        match self.bus.dead_letter(&self.queue, d, error).await {
            Ok(()) => Settled::Dead,
            Err(BusError::NotPending { .. }) => Settled::Duplicate,
            Err(e) => self.failed(e),
        }
    }

    /// The owner's committed state (loaded first if need be).
    pub async fn state(&mut self) -> Result<&EntityState, BusError> {
        self.load().await?;
        Ok(self.state.get_or_insert_default())
    }

    /// Stores state writes and messages that are no handler's (a room's checkpoint), with
    /// the ack of `ack`, in one fenced step; see [`OwnedQueue::commit`].
    pub async fn commit_writes(
        &mut self,
        target: &Target,
        writes: Vec<(String, Option<Vec<u8>>)>,
        sends: Vec<warren_runtime::Outgoing>,
        ack: Option<MessageId>,
    ) -> Result<(), BusError> {
        let effects = Effects { writes, sends, ..Effects::default() };
        self.commit(target, &effects, ack).await.map(|_| ())
    }

    /// What the policy makes of a failed step of the role's own (see
    /// [`OwnedQueue::failed`]): `Retry` after a backoff, or `Lost`.
    pub fn fail(&mut self, e: BusError) -> Settled {
        self.failed(e)
    }

    /// After a failed step: the cache is dropped and the queue is taken again, pending
    /// messages first, after a backoff — or the loop ends if the lease is stale.
    fn failed(&mut self, e: BusError) -> Settled {
        self.state = None;
        if matches!(e, BusError::StaleOwner { .. }) {
            return Settled::Lost;
        }
        self.back_off();
        Settled::Retry
    }

    fn back_off(&mut self) {
        self.claim = true;
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Takes the next batch: the pending messages after a takeover or a failure, else
    /// new ones. `Ok((batch, more))`, `more` when the queue may hold more at once.
    async fn take(&mut self) -> Result<(Vec<Delivery>, bool), BusError> {
        let claim = self.claim;
        let batch = if claim {
            self.bus.read_pending(&self.queue).await?
        } else {
            self.bus.read(&self.queue, self.batch, Duration::ZERO).await?
        };
        self.claim = false;
        let more = claim || batch.len() >= self.batch;
        Ok((batch, more))
    }

    /// Marks the queue's pending messages to be taken again at the next read (a frame
    /// acknowledged after it was sent failed to be acknowledged, say).
    pub fn reclaim(&mut self) {
        self.claim = true;
    }
}

/// Whether a commit's error is a refusal — it was not applied — rather than an answer
/// lost (it may have been).
fn refused(e: &BusError) -> bool {
    matches!(e, BusError::StaleOwner { .. } | BusError::NotPending { .. } | BusError::RequestDecided { .. })
}

/// The frames a call of player `owner`'s own handler puts on that player's screen, in
/// order: its replies, then its pushes to the player itself.
pub fn screen_frames(owner: &Address, effects: &Effects) -> Vec<Vec<u8>> {
    let mine = |p: &u64| *owner == Address::Player(*p);
    let pushed = effects.pushes.iter().filter(|(p, _)| mine(p)).map(|(_, f)| f.clone());
    effects.replies.iter().cloned().chain(pushed).collect()
}
