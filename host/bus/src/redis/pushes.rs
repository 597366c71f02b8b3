//! What reaches a player's screen: the push log (`{p:42}:push`, a stream whose entry
//! `<seq>-1` is push number `seq`; `{p:42}:pseq` the last number, `{p:42}:pack` the last
//! acknowledged) and the window of requests (`{p:42}:done`, outcomes by key;
//! `{p:42}:doneat`, their order), each in the owner's slot. Also the lease taken over from
//! a dead holder.

use super::*;

/// A reply that does not read as expected.
fn garbled(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("unexpected reply: {e}"))
}

/// Reads `{seq, frame, ...}` pairs from a script's reply, starting at `from`.
fn pushes_of(reply: &[redis::Value], from: usize) -> Result<Vec<Push>, BusError> {
    let mut pushes = Vec::with_capacity(reply.len().saturating_sub(from) / 2);
    for pair in reply[from.min(reply.len())..].chunks(2) {
        let [seq, frame] = pair else { return Err(BusError::Unavailable("a push without its frame".into())) };
        let seq: u64 = redis::from_redis_value_ref(seq).map_err(garbled)?;
        let frame: Vec<u8> = redis::from_redis_value_ref(frame).map_err(garbled)?;
        pushes.push(Push { seq, frame });
    }
    Ok(pushes)
}

impl RedisBus {
    pub(crate) async fn take_pushes(
        &self,
        owner: &Address,
        fence: u64,
        ids: &[MessageId],
    ) -> Result<Vec<Push>, BusError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let queue_key = self.queue_key(owner);
        {
            // The script reads each entry itself (it needs the frame): forget the ids kept
            // for commits.
            let mut unique = self.unique_ids.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                unique.take(&queue_key, id);
            }
        }
        let mut inv = self.take_pushes.prepare_invoke();
        for suffix in ["q", "push", "pseq", "seen", "lease", "n"] {
            inv.key(self.owner_key(owner, suffix));
        }
        inv.arg(fence).arg(now_ms()).arg(crate::MAX_UNACKED_PUSHES).arg(SEEN_RETENTION_MS);
        inv.arg(self.direct_sends_may_repeat());
        for id in ids {
            inv.arg(id);
        }
        let reply: redis::RedisResult<Vec<redis::Value>> = inv.invoke_async(&mut self.conn.clone()).await;
        match reply {
            Ok(reply) => pushes_of(&reply, 0),
            Err(e) if e.to_string().contains("STALE") => Err(BusError::StaleOwner { owner: owner.tag(), token: fence }),
            Err(e) => Err(unavailable(e)),
        }
    }

    pub(crate) async fn pushes(&self, owner: &Address, after: u64) -> Result<PushLog, BusError> {
        let reply: Vec<redis::Value> = self
            .pushes
            .key(self.owner_key(owner, "push"))
            .key(self.owner_key(owner, "pseq"))
            .key(self.owner_key(owner, "pack"))
            .arg(after)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let number = |i: usize| -> Result<u64, BusError> {
            let v = reply.get(i).ok_or_else(|| BusError::Unavailable("a short push log reply".into()))?;
            redis::from_redis_value_ref(v).map_err(garbled)
        };
        Ok(PushLog { last: number(0)?, acked: number(1)?, pushes: pushes_of(&reply, 2)? })
    }

    pub(crate) async fn trim_pushes(&self, owner: &Address, upto: u64) -> Result<(), BusError> {
        let _: i64 = self
            .trim_pushes
            .key(self.owner_key(owner, "push"))
            .key(self.owner_key(owner, "pseq"))
            .key(self.owner_key(owner, "pack"))
            .arg(upto)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn requests(&self, owner: &Address) -> Result<Vec<String>, BusError> {
        self.requests.key(self.owner_key(owner, "done")).invoke_async(&mut self.conn.clone()).await.map_err(unavailable)
    }

    pub(crate) async fn request_outcome(&self, owner: &Address, key: &str) -> Result<Option<Vec<u8>>, BusError> {
        let v: Option<Vec<u8>> =
            self.conn.clone().hget(self.owner_key(owner, "done"), key).await.map_err(unavailable)?;
        Ok(v.filter(|v| !v.starts_with(b"void:")))
    }

    pub(crate) async fn resolve(&self, owner: &Address, key: &str, attempt: u64) -> Result<Option<Vec<u8>>, BusError> {
        let reply: Vec<redis::Value> = self
            .resolve
            .key(self.owner_key(owner, "done"))
            .key(self.owner_key(owner, "doneat"))
            .key(self.owner_key(owner, "hostat"))
            .arg(key)
            .arg(attempt)
            .arg(now_ms())
            .arg(crate::MAX_REQUESTS)
            .arg(crate::MAX_HOST_REQUESTS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        // Only an exact `{0}` says "not applied": anything else is no answer.
        match reply.as_slice() {
            [applied, outcome] if redis::from_redis_value_ref::<i64>(applied).map_err(garbled)? == 1 => {
                Ok(Some(redis::from_redis_value_ref(outcome).map_err(garbled)?))
            }
            [voided] if redis::from_redis_value_ref::<i64>(voided).map_err(garbled)? == 0 => Ok(None),
            _ => Err(garbled(format!("{reply:?}"))),
        }
    }

    pub(crate) async fn take_over_lease(
        &self,
        owner: &Address,
        holder: &str,
        ttl: Duration,
        from: &(String, u64),
    ) -> Result<Option<Lease>, BusError> {
        let token: Option<u64> = self
            .take_over
            .key(self.owner_key(owner, "lease"))
            .key(self.owner_key(owner, "fence"))
            .arg(format!("{} {}", from.0, from.1))
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(token.map(|token| Lease { owner: owner.clone(), holder: holder.to_owned(), token }))
    }
}
