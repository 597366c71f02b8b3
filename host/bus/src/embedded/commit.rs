//! A commit on the embedded bus (see [`crate::Bus::commit`]).

use super::*;

impl Center {
    /// One commit, whole or not at all: the fence, the request's record, the pending
    /// check, then the writes, sends, ack and pushes.
    pub(super) fn commit(&mut self, commit: Commit) -> Result<Receipt, BusError> {
        let center = self;
        if let Some(token) = commit.fence {
            center.fenced(&commit.owner, token)?;
        }
        if let Some(request) = &commit.request
            && let Some(applied) = center.requests.get(&commit.owner).and_then(|r| r.decided(request))
        {
            return Err(BusError::RequestDecided { owner: commit.owner.tag(), key: request.key.clone(), applied });
        }
        if let Some(id) = &commit.ack {
            let pending = center.queues.get(&commit.owner).is_some_and(|q| q.pending.contains_key(&key_of(id)));
            if !pending {
                return Err(BusError::NotPending { queue: commit.owner.tag(), id: id.clone() });
            }
        }
        let state = center.states.entry(commit.owner.clone()).or_default();
        for (key, value) in commit.writes {
            match value {
                Some(v) => state.insert(key, v),
                None => state.remove(&key),
            };
        }
        for msg in commit.sends {
            center.enqueue(msg);
        }
        if let Some(id) = commit.ack
            && let Some(q) = center.queues.get_mut(&commit.owner)
        {
            q.pending.remove(&key_of(&id));
        }
        let mut receipt = Receipt::default();
        if !commit.pushes.is_empty() {
            let book = center.pushes.entry(commit.owner.clone()).or_default();
            for frame in commit.pushes {
                receipt.last_push = book.append(frame).seq;
            }
        }
        if let Some(request) = commit.request {
            let requests = center.requests.entry(commit.owner.clone()).or_default();
            requests.record(&request.key, Decided::Applied(request.outcome));
        }
        Ok(receipt)
    }
}
