//! Queues: sending, doorbells, reading, committing and relaying.

use super::*;

impl RedisBus {
    pub(crate) async fn send(&self, msg: Outbound) -> Result<MessageId, BusError> {
        let mid = format!("x/{:016x}{:016x}", random_u64(), now_ms());
        let sender = msg.sender.as_ref().map(Address::tag).unwrap_or_default();
        self.append(&msg.to, &msg.kind, &msg.body, &sender, msg.hops, &mid).await
    }

    /// The backlog counters of the destinations' queues (see [`crate::Bus::backlogs`]):
    /// one pipeline on one server; on a cluster, one request per queue, all at once (the
    /// counters live in their queues' slots).
    pub(crate) async fn backlogs(&self, destinations: &[Address]) -> Result<Vec<u64>, BusError> {
        let keys: Vec<String> =
            destinations.iter().map(|to| self.owner_key(&crate::queue_of(to, self.groups), "n")).collect();
        // A counter below zero (an entry acknowledged that was never counted) reads as 0.
        let read = |n: Option<i64>| n.unwrap_or(0).max(0) as u64;
        if let Conn::Cluster(_) = self.conn {
            let gets = keys.iter().map(|k| {
                let mut conn = self.conn.clone();
                async move { conn.get::<_, Option<i64>>(k).await }
            });
            let counts = futures_util::future::try_join_all(gets).await.map_err(unavailable)?;
            return Ok(counts.into_iter().map(read).collect());
        }
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.get(k);
        }
        let counts: Vec<Option<i64>> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(counts.into_iter().map(read).collect())
    }

    /// Appends a message for `to` to its queue with its time, seed and unique id, and
    /// rings the doorbell of the holder of the lease on the queue's owner.
    ///
    /// One request, a pipeline: the XADD, then a GET of the lease, then (on one server)
    /// the ring of the holder this bus saw last for the queue, so that the usual send is one
    /// round trip. The ring follows the append on the server, so the holder finds the
    /// message when it reads. Only if the lease names another holder (or none) is the right
    /// one rung afterwards, as the cluster always does (a doorbell lives in another slot):
    /// a holder that just lost a queue may be rung once for nothing, which a doorbell allows
    /// (a queue may be named with nothing new). The XADD and the GET are not one atomic
    /// step; they need not be: a lease that changes right after the GET would change as
    /// well right after an atomic step, and a new holder reads the queue when it takes it.
    pub(super) async fn append(
        &self,
        to: &Address,
        kind: &str,
        body: &[u8],
        sender: &str,
        hops: u32,
        mid: &str,
    ) -> Result<MessageId, BusError> {
        let queue = crate::queue_of(to, self.groups);
        let tag = queue.tag();
        let guess = match self.conn {
            Conn::Cluster(_) => None,
            _ => self.holders.lock().unwrap_or_else(|e| e.into_inner()).get(&tag).cloned(),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("XADD").arg(self.queue_key(&queue)).arg("*");
        pipe.arg("d").arg(to.tag()).arg("k").arg(kind).arg("b").arg(body).arg("f").arg(sender);
        pipe.arg("t").arg(now_ms()).arg("r").arg(random_u64()).arg("h").arg(hops).arg("m").arg(mid);
        // The queue's backlog: counted up here, down by the ack (see COMMIT_LUA).
        pipe.incr(self.owner_key(&queue, "n"), 1).ignore();
        pipe.get(self.owner_key(&queue, "lease"));
        if let Some(holder) = &guess {
            pipe.rpush(self.bell_key(holder), &tag).ignore();
        }
        let (id, held): (MessageId, Option<String>) =
            pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        let holder = held.and_then(|h| h.split_once(' ').map(|(holder, _)| holder.to_owned()));
        if holder != guess {
            if let Some(holder) = &holder {
                let _: () = self.conn.clone().rpush(self.bell_key(holder), &tag).await.map_err(unavailable)?;
            }
            if !matches!(self.conn, Conn::Cluster(_)) {
                let mut holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
                if holders.len() >= MAX_HOLDERS {
                    holders.clear();
                }
                match holder {
                    Some(holder) => holders.insert(tag, holder),
                    None => holders.remove(&tag),
                };
            }
        }
        Ok(id)
    }

    /// Rings the doorbell named in a REPLAY_LUA reply (`[id, holder?]`); returns the id.
    pub(super) async fn ring(&self, queue: &Address, mut reply: Vec<String>) -> Result<MessageId, BusError> {
        if let Some(holder) = reply.get(1) {
            self.ring_doorbell(holder, queue).await?;
        }
        if reply.is_empty() {
            return Err(BusError::Unavailable("append returned no id".into()));
        }
        Ok(reply.swap_remove(0))
    }

    /// Names `queue` on `holder`'s doorbell, whoever holds the queue's lease.
    pub(crate) async fn ring_doorbell(&self, holder: &str, queue: &Address) -> Result<(), BusError> {
        self.conn.clone().rpush(self.bell_key(holder), queue.tag()).await.map_err(unavailable)
    }

    pub(crate) async fn doorbell(&self, holder: &str, wait: Duration) -> Result<Vec<Address>, BusError> {
        let key = self.bell_key(holder);
        let first: Option<(String, String)> =
            self.blocking(redis::Cmd::blpop(&key, wait.as_secs_f64().max(0.001)), wait).await?;
        let Some((_, first)) = first else { return Ok(Vec::new()) };
        let rest: Option<Vec<String>> =
            redis::cmd("LPOP").arg(&key).arg(4096).query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        let mut queues: Vec<Address> =
            std::iter::once(first).chain(rest.unwrap_or_default()).filter_map(|t| Address::from_tag(&t)).collect();
        queues.sort();
        queues.dedup();
        Ok(queues)
    }

    pub(crate) async fn lease_holder(&self, owner: &Address) -> Result<Option<(String, u64)>, BusError> {
        let held: Option<String> = self.conn.clone().get(self.owner_key(owner, "lease")).await.map_err(unavailable)?;
        Ok(held.and_then(|h| {
            let (holder, token) = h.split_once(' ')?;
            Some((holder.to_owned(), token.parse().ok()?))
        }))
    }

    pub(crate) async fn read(&self, queue: &Address, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let key = self.queue_key(queue);
        self.ensure_group(&key).await?;
        let mut opts = StreamReadOptions::default().group(GROUP, &self.consumer).count(max.max(1));
        let reply: redis::Value = if wait.is_zero() {
            self.conn.clone().xread_options(&[&key], &[">"], &opts).await.map_err(unavailable)?
        } else {
            opts = opts.block(wait.as_millis().max(1) as usize);
            self.blocking(redis::Cmd::xread_options(&[&key], &[">"], &opts), wait).await?
        };
        // One key asked: `[[key, entries]]` (or a map of it), or nil when nothing came.
        let entries = match reply {
            redis::Value::Array(keys) => keys.into_iter().next().and_then(|k| match k {
                redis::Value::Array(k) => k.into_iter().nth(1),
                _ => None,
            }),
            redis::Value::Map(keys) => keys.into_iter().next().map(|(_, entries)| entries),
            _ => None,
        };
        let entries = entries.map(stream_entries).unwrap_or_default();
        self.handed_out(&key, queue, entries, |_| 1).await
    }

    pub(crate) async fn read_pending(&self, queue: &Address) -> Result<Vec<Delivery>, BusError> {
        let key = self.queue_key(queue);
        self.ensure_group(&key).await?;
        // A new owner first finishes the old owner's relaying.
        self.relay(queue).await?;
        let mut conn = self.conn.clone();
        // Take over everything pending in the group, whoever had it: `[next, entries, deleted]`.
        let claimed: Vec<redis::Value> = redis::cmd("XAUTOCLAIM")
            .arg(&key)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg("0-0")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let entries = claimed.into_iter().nth(1).map(stream_entries).unwrap_or_default();
        let counts: StreamPendingCountReply =
            conn.xpending_count(&key, GROUP, "-", "+", 1000).await.map_err(unavailable)?;
        let counts = counts.ids;
        let attempts = |id: &str| counts.iter().find(|c| c.id == id).map(|c| c.times_delivered as u32).unwrap_or(1);
        self.handed_out(&key, queue, entries, attempts).await
    }

    /// The deliveries of `entries`, just taken from `queue` (stream `key`), with their
    /// attempts; remembers their unique ids for their commits. An entry that is not a
    /// Warren message could never be acknowledged, and would keep the stream from being
    /// trimmed past it (see COMMIT_LUA): it is acknowledged and deleted here, loudly.
    pub(super) async fn handed_out(
        &self,
        key: &str,
        queue: &Address,
        entries: Vec<RawEntry>,
        attempts: impl Fn(&str) -> u32,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut ids = Vec::with_capacity(entries.len());
        let mut foreign = Vec::new();
        for (id, fields) in entries {
            let tries = attempts(&id);
            match delivery(id.clone(), fields, tries, queue) {
                Some((d, mid)) => {
                    ids.push((id, mid));
                    deliveries.push(d);
                }
                None => foreign.push(id),
            }
        }
        self.unique_ids.lock().unwrap_or_else(|e| e.into_inner()).remember(key, ids);
        if !foreign.is_empty() {
            tracing::error!(queue = key, ids = ?foreign, "queue entries that are not Warren messages dropped");
            let mut conn = self.conn.clone();
            let dropped: redis::RedisResult<()> = redis::pipe()
                .xack(key, GROUP, &foreign)
                .ignore()
                .xdel(key, &foreign)
                .ignore()
                .query_async(&mut conn)
                .await;
            if let Err(e) = dropped {
                // They stay pending; a later `read_pending` meets them again.
                tracing::warn!(queue = key, error = %e, "entries that are not Warren messages not dropped yet");
            }
        }
        Ok(deliveries)
    }

    /// Runs COMMIT_LUA on the owner's keys (KEYS: queue, state, outbox, seen, seq, lease,
    /// backlog, push log, push counter, requests, their order) for `commits`, all of one
    /// owner and fence, in order (see [`crate::Bus::commit_all`]).
    /// ARGV: the time, the owner's tag, the fence token (or empty), the seen ids'
    /// retention (ms), `1` if this call trims, the window of requests, the push log's cap,
    /// the window of the host's own requests, `1` on a cluster (direct sends may arrive
    /// twice, see [`RedisBus::direct_sends_may_repeat`]), the number of commits; then each
    /// commit's: the acked message id (or empty), its unique id (or empty: the script reads
    /// it), the number of writes and each as key, `s`/`d`, value, the number of sends and
    /// each as destination tag, kind, body, sender tag, hops, the number of pushes and each
    /// frame, the request's key (or empty), attempt and outcome.
    pub(crate) async fn commit(&self, c: Commit) -> Result<Receipt, BusError> {
        let mut results = self.commit_all(vec![c]).await;
        results.pop().unwrap_or_else(|| Err(BusError::Unavailable("the commit returned nothing".into())))
    }

    pub(crate) async fn commit_all(&self, commits: Vec<Commit>) -> Vec<Result<Receipt, BusError>> {
        let Some(first) = commits.first() else { return Vec::new() };
        let (owner, fence) = (first.owner.clone(), first.fence);
        debug_assert!(commits.iter().all(|c| c.owner == owner && c.fence == fence), "one owner, one fence");
        let tag = owner.tag();
        // The EVALSHA is written straight into one command: a `ScriptInvocation` keeps each
        // key and argument in a buffer of its own and copies them all into the command it
        // sends, some thirty allocations a commit. The keys share one buffer, too.
        // Sized at once: grown from empty, its buffers would be copied a few times over.
        let payload = commits
            .iter()
            .map(|c| {
                c.writes.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>()
                    + c.sends.iter().map(|s| s.kind.len() + s.body.len() + 64).sum::<usize>()
                    + c.pushes.iter().map(Vec::len).sum::<usize>()
                    + c.request.as_ref().map_or(0, |r| r.key.len() + r.outcome.len())
                    + 64
            })
            .sum::<usize>();
        let args = commits.iter().map(|c| 10 + 3 * c.writes.len() + 5 * c.sends.len() + c.pushes.len()).sum::<usize>();
        let mut cmd = redis::Cmd::with_capacity(30 + args, 512 + payload);
        cmd.arg("EVALSHA").arg(self.commit.get_hash()).arg(COMMIT_KEYS.len());
        let mut key = self.owner_key(&owner, "");
        let base = key.len();
        for suffix in COMMIT_KEYS {
            key.truncate(base);
            key.push_str(suffix);
            cmd.arg(key.as_str());
        }
        // The stream and the seen set are trimmed by one commit in `TRIM_EVERY`.
        let n = commits.len() as u64;
        let before = self.commits.fetch_add(n, Ordering::Relaxed);
        let trim = before.is_multiple_of(TRIM_EVERY) || before / TRIM_EVERY != (before + n - 1) / TRIM_EVERY;
        cmd.arg(now_ms()).arg(&tag);
        match fence {
            Some(token) => cmd.arg(token),
            None => cmd.arg(""),
        };
        cmd.arg(SEEN_RETENTION_MS).arg(if trim { "1" } else { "" });
        cmd.arg(crate::MAX_REQUESTS).arg(crate::MAX_UNACKED_PUSHES).arg(crate::MAX_HOST_REQUESTS);
        cmd.arg(self.direct_sends_may_repeat()).arg(n);
        key.truncate(base);
        key.push('q');
        for c in &commits {
            // The message's unique id, as this bus read it with the message (see
            // `UniqueIds`); empty for a message it did not read: the script reads it itself.
            let mid = match &c.ack {
                Some(id) => {
                    self.unique_ids.lock().unwrap_or_else(|e| e.into_inner()).take(&key, id).unwrap_or_default()
                }
                None => String::new(),
            };
            cmd.arg(c.ack.as_deref().unwrap_or_default()).arg(&mid);
            cmd.arg(c.writes.len());
            for (key, value) in &c.writes {
                match value {
                    Some(v) => cmd.arg(key).arg("s").arg(v.as_slice()),
                    None => cmd.arg(key).arg("d").arg(""),
                };
            }
            cmd.arg(c.sends.len());
            for s in &c.sends {
                let sender = s.sender.as_ref().map(Address::tag).unwrap_or_default();
                cmd.arg(s.to.tag()).arg(&s.kind).arg(s.body.as_slice()).arg(sender).arg(s.hops);
            }
            cmd.arg(c.pushes.len());
            for frame in &c.pushes {
                cmd.arg(frame.as_slice());
            }
            match &c.request {
                Some(r) => cmd.arg(&r.key).arg(r.attempt).arg(r.outcome.as_slice()),
                None => cmd.arg("").arg("").arg(""),
            };
        }
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<Vec<String>> = match cmd.query_async(&mut conn).await {
            // A server that lost its scripts (restarted, flushed) learns this one again;
            // the EVALSHA it refused ran nothing.
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                match self.commit.load_async(&mut conn).await {
                    Ok(_) => cmd.query_async(&mut conn).await,
                    Err(e) => Err(e),
                }
            }
            result => result,
        };
        let statuses = match result {
            Ok(statuses) => statuses,
            Err(e) if e.to_string().contains("STALE") => {
                return vec![Err(BusError::StaleOwner { owner: tag, token: fence.unwrap_or_default() })];
            }
            Err(e) => return vec![Err(unavailable(e))],
        };
        let mut sent = false;
        let mut results = Vec::with_capacity(statuses.len());
        for (c, status) in commits.into_iter().zip(statuses) {
            let ack = || c.ack.clone().unwrap_or_default();
            results.push(match status.as_str() {
                // A relayed copy of a message already applied: acknowledged, nothing
                // applied. The caller must not apply the effects it computed either.
                "DUPLICATE" | "NOTPENDING" => Err(BusError::NotPending { queue: tag.clone(), id: ack() }),
                "APPLIED" | "VOID" => {
                    let key = c.request.map(|r| r.key).unwrap_or_default();
                    Err(BusError::RequestDecided { owner: tag.clone(), key, applied: status == "APPLIED" })
                }
                ok => {
                    sent |= !c.sends.is_empty();
                    let last_push = ok.strip_prefix("OK:").and_then(|n| n.parse().ok()).unwrap_or(0);
                    Ok(Receipt { last_push })
                }
            });
        }
        // What an earlier owner left in the outbox is relayed when a new owner takes the
        // queue over (`read_pending`); here, only when a commit sent something. The commits
        // are done either way: a relay that fails is finished by the next commit that
        // sends, or by the next owner, so it is not theirs to fail.
        if sent && let Err(e) = self.relay(&owner).await {
            tracing::warn!(owner = %tag, error = %e, "outbox not relayed yet; the next send relays it");
        }
        results
    }

    /// `"1"` when a direct send may arrive twice — on a cluster, whose client sends a
    /// command that timed out again —, so commits remember direct ids as they do relayed
    /// ones; `""` on one Redis, where only relayed messages can.
    pub(super) fn direct_sends_may_repeat(&self) -> &'static str {
        if matches!(self.conn, Conn::Cluster(_)) { "1" } else { "" }
    }

    /// Moves the owner's outbox to the destination queues. Safe to run twice: a message
    /// appended twice carries one id, and the receiver applies it once.
    ///
    /// On one server a batch of the outbox goes in one pipeline — every append, its backlog
    /// count and its lease read — then one pipeline of doorbell rings and one delete: a
    /// guild chat to a hundred members costs a few round trips, not two per member. On a
    /// cluster the destinations live in other slots, and each is appended on its own, in
    /// order.
    pub(crate) async fn relay(&self, owner: &Address) -> Result<(), BusError> {
        let outbox = self.owner_key(owner, "o");
        loop {
            let batch: StreamRangeReply =
                self.conn.clone().xrange_count(&outbox, "-", "+", 100).await.map_err(unavailable)?;
            let batch = batch.ids;
            if batch.is_empty() {
                return Ok(());
            }
            let mut relayed = Vec::with_capacity(batch.len());
            for entry in &batch {
                let text = |f: &str| String::from_utf8_lossy(&field(entry, f).unwrap_or_default()).into_owned();
                let to = text("to");
                let Some(dest) = Address::from_tag(&to) else {
                    // Only this code writes outboxes; an entry it cannot read is dropped
                    // loudly rather than blocking the owner's outbox forever.
                    tracing::error!(outbox, to, "outbox entry for an unknown address dropped");
                    continue;
                };
                let hops = text("h").parse().unwrap_or(0);
                let body = field(entry, "b").unwrap_or_default();
                relayed.push(Relayed { dest, kind: text("k"), body, sender: text("f"), hops, mid: text("m") });
            }
            if let Conn::Cluster(_) = self.conn {
                for r in &relayed {
                    self.append(&r.dest, &r.kind, &r.body, &r.sender, r.hops, &r.mid).await?;
                }
            } else {
                self.append_all(&relayed).await?;
            }
            let ids: Vec<&str> = batch.iter().map(|e| e.id.as_str()).collect();
            let _: u64 = self.conn.clone().xdel(&outbox, &ids).await.map_err(unavailable)?;
        }
    }

    /// Appends `messages` in order, in one pipeline, and rings each destination's holder
    /// (one server only: the keys of every queue are on it).
    async fn append_all(&self, messages: &[Relayed]) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        let mut queues = Vec::with_capacity(messages.len());
        for r in messages {
            let queue = crate::queue_of(&r.dest, self.groups);
            pipe.cmd("XADD").arg(self.queue_key(&queue)).arg("*").ignore();
            pipe.arg("d")
                .arg(r.dest.tag())
                .arg("k")
                .arg(&r.kind)
                .arg("b")
                .arg(r.body.as_slice())
                .arg("f")
                .arg(&r.sender);
            pipe.arg("t").arg(now_ms()).arg("r").arg(random_u64()).arg("h").arg(r.hops).arg("m").arg(&r.mid);
            pipe.incr(self.owner_key(&queue, "n"), 1).ignore();
            pipe.get(self.owner_key(&queue, "lease"));
            queues.push(queue);
        }
        let leases: Vec<Option<String>> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        // Each queue's holder is rung once, after every append to it.
        let mut rings: Vec<(String, String)> = queues
            .iter()
            .zip(leases)
            .filter_map(|(queue, held)| {
                let holder = held?.split_once(' ')?.0.to_owned();
                Some((holder, queue.tag()))
            })
            .collect();
        rings.sort();
        rings.dedup();
        if rings.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (holder, tag) in &rings {
            pipe.rpush(self.bell_key(holder), tag).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await.map_err(unavailable)
    }
}

/// The owner's keys COMMIT_LUA is given, in order (see [`RedisBus::commit_all`]).
const COMMIT_KEYS: [&str; 12] =
    ["q", "s", "o", "seen", "seq", "lease", "n", "push", "pseq", "done", "doneat", "hostat"];

/// A message read from an outbox, to be appended to its destination's queue.
struct Relayed {
    dest: Address,
    kind: String,
    body: Vec<u8>,
    sender: String,
    hops: u32,
    mid: String,
}
