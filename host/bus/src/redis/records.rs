//! Everything beside the queues and membership: dead letters, leases, state, accounts,
//! ids, registries, the cluster secret and modules.

use super::*;

impl RedisBus {
    pub(crate) async fn dead_letter(&self, queue: &Address, delivery: &Delivery, error: &str) -> Result<(), BusError> {
        self.unique_ids.lock().unwrap_or_else(|e| e.into_inner()).take(&self.queue_key(queue), &delivery.id);
        let result: redis::RedisResult<String> = self
            .dead_letter
            .key(self.queue_key(queue))
            .key(self.owner_key(queue, "dead"))
            .key(self.owner_key(queue, "n"))
            .arg(&delivery.id)
            .arg(error)
            .arg(crate::MAX_DEAD_LETTERS)
            .invoke_async(&mut self.conn.clone())
            .await;
        match result {
            Ok(_) => {}
            Err(e) if e.to_string().contains("NOTPENDING") => {
                return Err(BusError::NotPending { queue: queue.tag(), id: delivery.id.clone() });
            }
            Err(e) => return Err(unavailable(e)),
        }
        // The index lives in a slot of its own; a crash before this line leaves a dead
        // letter that `dead_letters(queue)` shows but the index does not list.
        let _: () = self.conn.clone().sadd(self.key(DEAD_INDEX), queue.tag()).await.map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn dead_letter_queues(&self) -> Result<Vec<Address>, BusError> {
        let tags: Vec<String> = self.conn.clone().smembers(self.key(DEAD_INDEX)).await.map_err(unavailable)?;
        let mut queues: Vec<Address> = tags.iter().filter_map(|t| Address::from_tag(t)).collect();
        queues.sort();
        Ok(queues)
    }

    pub(crate) async fn replay_dead_letter(&self, queue: &Address, id: &str) -> Result<Option<MessageId>, BusError> {
        let tag = queue.tag();
        let dead = self.owner_key(queue, "dead");
        let reply: Vec<String> = self
            .replay
            .key(self.queue_key(queue))
            .key(&dead)
            .key(self.owner_key(queue, "lease"))
            .key(self.owner_key(queue, "n"))
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        if reply.is_empty() {
            return Ok(None);
        }
        let new_id = self.ring(queue, reply).await?;
        let left: u64 = self.conn.clone().xlen(&dead).await.map_err(unavailable)?;
        if left == 0 {
            let _: () = self.conn.clone().srem(self.key(DEAD_INDEX), &tag).await.map_err(unavailable)?;
        }
        Ok(Some(new_id))
    }

    pub(crate) async fn dead_letters(&self, queue: &Address) -> Result<Vec<DeadLetter>, BusError> {
        let range: StreamRangeReply =
            self.conn.clone().xrange_all(self.owner_key(queue, "dead")).await.map_err(unavailable)?;
        Ok(range
            .ids
            .into_iter()
            .filter_map(|entry| {
                let text = |f: &str| field(&entry, f).map(|b| String::from_utf8_lossy(&b).into_owned());
                let (id, error) = (text("id")?, text("err").unwrap_or_default());
                let envelope = delivery(entry.id, entry.map, 0, queue)?.0.envelope;
                Some(DeadLetter { queue: queue.clone(), id, envelope, error })
            })
            .collect())
    }

    pub(crate) async fn acquire_lease(
        &self,
        owner: &Address,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, BusError> {
        let token: Option<u64> = self
            .acquire
            .key(self.owner_key(owner, "lease"))
            .key(self.owner_key(owner, "fence"))
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(token.map(|token| Lease { owner: owner.clone(), holder: holder.to_owned(), token }))
    }

    pub(super) async fn lease_op(&self, lease: &Lease, ttl: Duration, op: &str) -> Result<bool, BusError> {
        let done: u32 = self
            .lease
            .key(self.owner_key(&lease.owner, "lease"))
            .arg(format!("{} {}", lease.holder, lease.token))
            .arg(ttl.as_millis().max(1) as u64)
            .arg(op)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    pub(crate) async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, BusError> {
        self.lease_op(lease, ttl, "renew").await
    }

    pub(crate) async fn release_lease(&self, lease: &Lease) -> Result<(), BusError> {
        self.lease_op(lease, Duration::ZERO, "release").await.map(drop)
    }

    pub(crate) async fn load_state(&self, owner: &Address) -> Result<EntityState, BusError> {
        let map: std::collections::HashMap<String, Vec<u8>> =
            self.conn.clone().hgetall(self.owner_key(owner, "s")).await.map_err(unavailable)?;
        Ok(map.into_iter().collect())
    }

    pub(crate) async fn next_id(&self, counter: &str) -> Result<u64, BusError> {
        self.conn.clone().incr(self.counter_key(counter), 1u64).await.map_err(unavailable)
    }

    pub(crate) async fn register(&self, registry: &str, id: u64, value: &str) -> Result<(), BusError> {
        self.conn.clone().hset(self.registry_key(registry), id, value).await.map_err(unavailable)
    }

    pub(crate) async fn unregister(&self, registry: &str, id: u64) -> Result<(), BusError> {
        self.conn.clone().hdel(self.registry_key(registry), id).await.map_err(unavailable)
    }

    pub(crate) async fn registered(&self, registry: &str) -> Result<Vec<(u64, String)>, BusError> {
        let all: HashMap<String, String> =
            self.conn.clone().hgetall(self.registry_key(registry)).await.map_err(unavailable)?;
        // Only this code writes registries; a field that is not an id is not an entry.
        let mut entries: Vec<(u64, String)> =
            all.into_iter().filter_map(|(id, value)| Some((id.parse().ok()?, value))).collect();
        entries.sort_unstable_by_key(|e| e.0);
        Ok(entries)
    }

    /// SET NX of fresh random bytes, then GET, in one request: the first caller's bytes
    /// stay, every caller reads them.
    pub(crate) async fn cluster_secret(&self) -> Result<Vec<u8>, BusError> {
        let mut fresh = [0u8; crate::CLUSTER_SECRET_LEN];
        getrandom::fill(&mut fresh).map_err(|e| BusError::Unavailable(format!("no randomness for the secret: {e}")))?;
        let key = self.key(SECRET_KEY);
        let (secret,): (Option<Vec<u8>>,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(&fresh[..])
            .arg("NX")
            .ignore()
            .get(&key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match secret {
            Some(secret) if secret.len() == crate::CLUSTER_SECRET_LEN => Ok(secret),
            Some(other) => Err(BusError::Unavailable(format!(
                "the cluster secret at {key} is {} bytes, not {}",
                other.len(),
                crate::CLUSTER_SECRET_LEN
            ))),
            None => Err(BusError::Unavailable(format!("the cluster secret at {key} vanished as it was set"))),
        }
    }

    pub(crate) async fn publish_module(&self, role: &str, bytes: Vec<u8>) -> Result<String, BusError> {
        let digest = hex::encode(Sha256::digest(&bytes));
        let mut conn = self.conn.clone();
        let blob_key = self.key(format_args!("{{modules}}:blob:{digest}"));
        let _: () = conn.set(blob_key, bytes).await.map_err(unavailable)?;
        let _: () = conn.hset(self.key("{modules}:current"), role, &digest).await.map_err(unavailable)?;
        let _: () = conn.publish(self.key(MODULES_CHANNEL), format!("{role} {digest}")).await.map_err(unavailable)?;
        Ok(digest)
    }

    pub(crate) async fn module(&self, digest: &str) -> Result<Vec<u8>, BusError> {
        let blob_key = self.key(format_args!("{{modules}}:blob:{digest}"));
        let blob: Option<Vec<u8>> = self.conn.clone().get(blob_key).await.map_err(unavailable)?;
        blob.ok_or_else(|| BusError::ModuleNotFound(digest.to_owned()))
    }

    pub(crate) async fn current_module(&self, role: &str) -> Result<Option<String>, BusError> {
        self.conn.clone().hget(self.key("{modules}:current"), role).await.map_err(unavailable)
    }

    pub(crate) fn module_announcements(&self) -> broadcast::Receiver<ModuleAnnouncement> {
        self.announcements.subscribe()
    }
}
