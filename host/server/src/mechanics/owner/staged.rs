//! Settling a queue message by the one policy, its commit staged: a read batch's handlers
//! run one after another over the state each leaves, and their commits go to the message
//! center in one trip ([`OwnedQueue::flush`], [`warren_bus::Bus::commit_all`]).

use super::{FIRST_BACKOFF, Handles, OwnedQueue, Settled, Target, refused, screen_frames};
use crate::mechanics::deliver::{self, Verdict};
use crate::mechanics::logic::{emit_logs, from_bus};
use warren_bus::{BusError, Commit, Delivery};
use warren_runtime::{CallEnv, Effects, Message, World};

/// How many times in a row a message waits for its entity's send rate before its refusal
/// is final ([`OwnedQueue::run`]). Each wait is what the entity's bucket needs, so a second
/// one is the clock's rounding at most: this is a guard, not a policy.
const MAX_WAITS: u32 = 10;

/// A message handled whose commit waits for the next [`OwnedQueue::flush`].
pub(super) struct Staged {
    delivery: Delivery,
    target: Target,
    commit: Commit,
    /// The handler's effects; or the reason the script refused the message (its commit
    /// only acknowledges it).
    outcome: Result<Effects, String>,
}

impl<W: World> OwnedQueue<W> {
    /// Settles message `d` for `target` by the one policy (see the module docs of
    /// `owner`): its handler runs now, over the cached state with the staged commits'
    /// writes, and its commit is staged; a dead letter, or a state that cannot be loaded,
    /// first flushes what is staged. What became of it is in `outcomes` once its commit
    /// landed (or failed).
    pub(super) async fn stage(&mut self, d: Delivery, target: &Target)
    where
        W: Handles,
    {
        let env = CallEnv { now_ms: d.envelope.now_ms, seed: d.envelope.seed };
        if let Err(e) = self.load().await {
            // Not the handler's doing: the message stays pending, never refused.
            tracing::warn!(queue = %self.queue.tag(), id = %d.id, error = %e, "cannot load the state; the message stays pending");
            self.flush().await;
            let outcome = self.failed(e);
            self.outcomes.push((d, outcome));
            return;
        }
        // Named in every log line about this message's faults (written only for one): what
        // it was, for whom, and which module handled it.
        let (logic, e) = (self.logic.clone(), &d.envelope);
        let what = std::fmt::from_fn(|f| {
            write!(f, "{} for {} (role {}, module {})", e.kind, target.entity.tag(), W::NAME, logic.module_digest())
        });
        let mut waits = 0;
        let verdict = loop {
            // Each try borrows the cached state; `deliver::handle` wants a closure per try.
            let this = tokio::sync::Mutex::new(&mut *self);
            let verdict = deliver::handle(&what, d.attempts, || async {
                let m = Message {
                    sender: e.sender.as_ref().and_then(from_bus),
                    kind: e.kind.clone(),
                    body: e.body.clone(),
                };
                let to = target.entity.clone();
                let mut q = this.lock().await;
                q.handling = true;
                let result = q.run(target, env, move |i, st, env| W::on_message(i, st, env, &to, &m)).await;
                q.handling = false;
                result
            })
            .await;
            // Over its entity's send rate (`OwnedQueue::run`): the message waits in its
            // queue, with those after it, until the rate allows its sends, and is handled
            // again. Those before it land first. The loop waits with it: the wait is
            // what one message's sends need at the entity's rate, a few milliseconds
            // (at most a burst's worth, 2 s by default), and the occupant's events are
            // looked at between messages as always.
            let Some(wait) = self.over_rate.take().filter(|_| waits < MAX_WAITS) else { break verdict };
            waits += 1;
            tracing::debug!(queue = %self.queue.tag(), id = %d.id, ?wait, "over the send rate; the message waits");
            if !self.flush().await {
                // It stays pending, and the queue is read again.
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // Another owner takes it.
                () = self.held.lost() => {
                    self.outcomes.push((d, Settled::Lost));
                    return;
                }
            }
        };
        let (commit, outcome) = match verdict {
            Verdict::Done(effects) => {
                let pushes = if self.replies_are_pushes { screen_frames(&self.queue, &effects) } else { Vec::new() };
                let hops = d.envelope.hops + 1;
                let commit = self.commit_of(target, &effects, Some(d.id.clone()), hops, pushes, None);
                // The next handler sees these writes; a failed flush drops the cache.
                self.cache(commit.writes.clone());
                (commit, Ok(effects))
            }
            Verdict::Refused(reason) => {
                tracing::info!(%what, %reason, "message refused");
                let commit =
                    Commit { fence: Some(self.held.token()), ..Commit::ack_only(self.queue.clone(), d.id.clone()) };
                (commit, Err(reason))
            }
            Verdict::Dead(error) => {
                // Set aside only once what came before it landed: it ran on their state.
                // Else it stays pending, and the queue is read again (`claim`).
                if self.flush().await {
                    let outcome = match self.bus.dead_letter(&self.queue, &d, &error).await {
                        Ok(()) => self.settled_ok(Settled::Dead),
                        Err(e) => self.commit_failed(&d, e),
                    };
                    self.outcomes.push((d, outcome));
                }
                return;
            }
        };
        self.staged.push(Staged { delivery: d, target: target.clone(), commit, outcome });
        if self.staged.len() >= self.batch {
            self.flush().await;
        }
    }

    /// Commits the staged messages' effects in one trip, in order, and records what became
    /// of each in `outcomes`. A refusal ends the run: the messages after it were handled
    /// over the state it would have left, so they are not committed and stay pending, and
    /// the queue's pending messages are taken again at the next read, over the committed
    /// state. After any failure the cached state is dropped. Whether every staged commit
    /// landed.
    pub(super) async fn flush(&mut self) -> bool {
        if self.staged.is_empty() {
            return true;
        }
        let mut staged = std::mem::take(&mut self.staged);
        let commits = staged.iter_mut().map(|s| std::mem::replace(&mut s.commit, Commit::of(self.queue.clone())));
        let results = self.bus.commit_all(commits.collect()).await;
        self.admission.committed();
        let tried = results.len();
        let all_landed = results.iter().all(Result::is_ok) && tried == staged.len();
        for (s, result) in staged.drain(..).zip(results) {
            let outcome = match (result, s.outcome) {
                (Ok(receipt), Ok(effects)) => {
                    emit_logs(&s.target.entity, &effects);
                    self.settled_ok(Settled::Done(effects, receipt))
                }
                (Ok(_), Err(reason)) => self.settled_ok(Settled::Refused(reason)),
                (Err(e), _) => self.commit_failed(&s.delivery, e),
            };
            self.outcomes.push((s.delivery, outcome));
        }
        if !all_landed {
            // The cache holds the writes of commits that did not land, or may not have.
            self.state = None;
            // Those not tried stay pending: take them again.
            self.claim = true;
        }
        all_landed
    }

    fn settled_ok(&mut self, outcome: Settled) -> Settled {
        self.backoff = FIRST_BACKOFF;
        outcome
    }

    /// What the policy makes of a message whose commit (or dead letter) failed with `e`.
    fn commit_failed(&mut self, d: &Delivery, e: BusError) -> Settled {
        self.state = None;
        self.unsure |= !refused(&e);
        match e {
            BusError::NotPending { .. } => {
                // Committed before: what was cached may lag behind what was committed.
                tracing::warn!(queue = %self.queue.tag(), id = %d.id, "message already committed");
                Settled::Duplicate
            }
            e => {
                tracing::warn!(queue = %self.queue.tag(), id = %d.id, error = %e, "not committed; the message stays pending");
                self.failed(e)
            }
        }
    }
}
