//! The owner loop ([`occupy`]): wait for news of the queue or the occupant's events, read
//! a batch, settle it by the policy, tell the occupant.

use super::{Control, Ended, Handles, Occupant, OwnedQueue, Routed, Settled};
use tokio::time::Instant;

/// How many messages of one batch are settled between two looks at the occupant's events.
const EVENTS_EVERY: usize = 16;

/// Handles the occupant's next event if one is ready, without waiting.
async fn poll_event<W: Handles, O: Occupant<W>>(q: &mut OwnedQueue<W>, o: &mut O) -> Control {
    let ready = tokio::select! {
        biased;
        event = o.event() => Some(event),
        () = std::future::ready(()) => None,
    };
    match ready {
        Some(event) => o.on_event(event, q).await,
        None => Control::Continue,
    }
}

/// What the batch loop does after the outcomes so far were told to the occupant.
enum Next {
    /// Go on with the batch.
    Go,
    /// Leave the batch: the queue is read again (pending messages first) when due.
    Leave,
    /// End the loop.
    End(Ended),
}

/// Commits what the policy staged ([`OwnedQueue::flush`]) and tells the occupant each
/// outcome so far, in the queue's order; then, if there were any (or `acted`: the occupant
/// took a message itself), lets it flush what is due (`idle`). Every call into the
/// occupant but [`Occupant::target`] comes after this: it never sees the queue with a
/// commit still to land.
async fn report<W: Handles, O: Occupant<W>>(q: &mut OwnedQueue<W>, o: &mut O, acted: bool) -> Next {
    q.flush().await;
    if q.outcomes.is_empty() && !acted {
        // A message left pending (not tried, or not set aside) is taken again first.
        return if q.claim { Next::Leave } else { Next::Go };
    }
    for (d, outcome) in std::mem::take(&mut q.outcomes) {
        match outcome {
            Settled::Lost => return Next::End(Ended::Lost),
            // The message stays pending; so do those after it (taken again after a backoff).
            Settled::Retry => return Next::Leave,
            outcome => o.settled(&d, outcome).await,
        }
    }
    if o.idle(q).await == Control::Stop {
        return Next::End(Ended::Stopped);
    }
    // Something failed to be acknowledged, or was not tried: take the pending ones again.
    if q.claim { Next::Leave } else { Next::Go }
}

/// Serves `q` for `o` until the occupant stops or the lease is lost. Queue reads happen
/// outside the `select!`, so none is ever dropped half-done.
///
/// A batch's messages whose target the occupant knows from the message alone
/// ([`Occupant::target`]) are handled one after another over the state each leaves, and
/// their commits go in one trip ([`OwnedQueue::flush`]) before the occupant hears of any
/// of them, or is asked anything.
pub async fn occupy<W: Handles, O: Occupant<W>>(q: &mut OwnedQueue<W>, o: &mut O) -> Ended {
    // Messages a previous owner took but did not finish come first.
    let mut due = true;
    loop {
        if o.idle(q).await == Control::Stop {
            return Ended::Stopped;
        }
        if q.held.is_lost() {
            return Ended::Lost;
        }
        if due && q.retry_at.is_none() {
            due = false;
            let mut batch = match q.take().await {
                Ok((batch, more)) => {
                    due = more;
                    batch
                }
                Err(e) => {
                    tracing::warn!(queue = %q.queue.tag(), error = %e, "cannot read the queue");
                    q.back_off();
                    continue;
                }
            };
            if let Err(e) = o.taken(&mut batch, q).await {
                tracing::warn!(queue = %q.queue.tag(), error = %e, "batch not settled; it stays pending");
                if matches!(q.failed(e), Settled::Lost) {
                    return Ended::Lost;
                }
                continue;
            }
            let mut next = Next::Go;
            for (n, d) in batch.into_iter().enumerate() {
                // A long batch (the pending messages taken over with a queue) does not keep
                // the occupant's own events (the client's first frame) waiting to its end.
                if n > 0 && n % EVENTS_EVERY == 0 {
                    next = report(q, o, false).await;
                    if !matches!(next, Next::Go) {
                        break;
                    }
                    if poll_event(q, o).await == Control::Stop {
                        return Ended::Stopped;
                    }
                }
                let max_hops = q.logic.sandbox.quotas.max_hops;
                let acted = if d.envelope.hops >= max_hops {
                    // A storm of messages causing one another stops here, whatever the
                    // module does with them.
                    let error = format!(
                        "message chain too long: {} messages before this one caused one another, the limit is {max_hops}",
                        d.envelope.hops
                    );
                    next = report(q, o, false).await;
                    if matches!(next, Next::Go) {
                        let outcome = q.set_aside(&d, &error).await;
                        q.outcomes.push((d, outcome));
                    }
                    true
                } else if let Some(target) = o.target(&d) {
                    q.stage(d, &target).await;
                    false
                } else {
                    next = report(q, o, false).await;
                    if matches!(next, Next::Go) {
                        match o.route(&d, q).await {
                            Routed::Done => {}
                            Routed::Handle(target) => q.stage(d, &target).await,
                            Routed::Misaddressed(error) => {
                                let outcome = q.set_aside(&d, &error).await;
                                q.outcomes.push((d, outcome));
                            }
                            Routed::Outcome(outcome) => q.outcomes.push((d, outcome)),
                        }
                    }
                    true
                };
                if matches!(next, Next::Go) && (acted || q.claim || !q.outcomes.is_empty()) {
                    next = report(q, o, acted).await;
                }
                if !matches!(next, Next::Go) {
                    break;
                }
            }
            if matches!(next, Next::Go) {
                next = report(q, o, false).await;
            }
            match next {
                Next::End(ended) => return ended,
                Next::Leave => due = q.claim,
                Next::Go => {}
            }
            // However long the queue, the occupant's own events (a client's frame or
            // disconnect, a room's tick) are looked at between two batches.
            if due && poll_event(q, o).await == Control::Stop {
                return Ended::Stopped;
            }
            continue;
        }
        let retry_at = q.retry_at;
        tokio::select! {
            _ = q.held.lost() => return Ended::Lost,
            _ = q.watch.rung() => due = true,
            claim = q.sweep.tick() => {
                due = true;
                q.claim |= claim;
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                q.retry_at = None;
                due = true;
            }
            event = o.event() => if o.on_event(event, q).await == Control::Stop {
                return Ended::Stopped;
            },
        }
    }
}
