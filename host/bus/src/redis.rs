//! The Redis backend: a stream per queue read through a consumer group, a hash per
//! entity's state, and one Lua script that commits a handler's effects.
//!
//! Every key of an owner carries its hash tag (`{p:42}:q`, `{p:42}:s`, ...), so the commit
//! script touches one slot and runs unchanged on Redis Cluster. Messages for other owners
//! are written to the owner's outbox (`{p:42}:o`) in the commit and relayed afterwards;
//! each carries a unique id that the receiver's commit records, so a message relayed twice
//! (a crash between relay and delete) is applied once.

use crate::types::{
    Address, BusError, Commit, DeadLetter, Delivery, EntityState, Envelope, Lease, MessageId, ModuleAnnouncement,
    Outbound,
};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// The consumer group every queue is read through.
const GROUP: &str = "g";
/// The channel module announcements are published on.
const MODULES_CHANNEL: &str = "warren:modules";
/// How long a receiver remembers the ids of messages it applied (relay duplicates arrive
/// within seconds; a day is a wide margin).
const SEEN_RETENTION_MS: u64 = 24 * 3600 * 1000;

/// Commits a handler's effects atomically on the owner's slot. See `commit` for ARGV.
const COMMIT_LUA: &str = r#"
local q, state, outbox, seen, seq, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ack, now, owner, fence = ARGV[1], tonumber(ARGV[3]), ARGV[4], ARGV[5]
-- The unique id the acknowledged message carries (field 'm').
local mid = ''
if ack ~= '' then
  local entry = redis.call('XRANGE', q, ack, ack)
  if entry[1] then
    local f = entry[1][2]
    for k = 1, #f, 2 do
      if f[k] == 'm' then mid = f[k + 1] end
    end
  end
end
if fence ~= '' then
  local held = redis.call('GET', lease)
  if not held or string.match(held, '^%S+ (%d+)$') ~= fence then return redis.error_reply('STALE') end
end
if ack ~= '' then
  local p = redis.call('XPENDING', q, 'g', ack, ack, 1)
  if #p == 0 then return redis.error_reply('NOTPENDING') end
end
if mid ~= '' and redis.call('ZSCORE', seen, mid) then
  redis.call('XACK', q, 'g', ack)
  redis.call('XDEL', q, ack)
  return 'DUPLICATE'
end
local i = 6
local writes = tonumber(ARGV[i]); i = i + 1
for _ = 1, writes do
  if ARGV[i + 1] == 's' then
    redis.call('HSET', state, ARGV[i], ARGV[i + 2])
  else
    redis.call('HDEL', state, ARGV[i])
  end
  i = i + 3
end
local sends = tonumber(ARGV[i]); i = i + 1
if sends > 0 then
  local n = redis.call('INCR', seq)
  for s = 1, sends do
    redis.call('XADD', outbox, '*', 'to', ARGV[i], 'k', ARGV[i + 1], 'b', ARGV[i + 2], 'f', ARGV[i + 3],
      'm', owner .. '/' .. n .. '/' .. s)
    i = i + 4
  end
end
if mid ~= '' then
  redis.call('ZADD', seen, now, mid)
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - tonumber(ARGV[i]))
end
if ack ~= '' then
  redis.call('XACK', q, 'g', ack)
  redis.call('XDEL', q, ack)
end
return 'OK'
"#;

/// Appends a message (ARGV: field/value pairs) to a queue and returns its id and the
/// holder of the lease on the queue's owner, whose doorbell the caller rings.
const APPEND_LUA: &str = r#"
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV))
local held = redis.call('GET', KEYS[2])
if held then return {id, string.match(held, '^(%S+) ')} end
return {id}
"#;

/// Puts a dead letter (by its original id, ARGV[1]) back at the end of its queue and
/// returns the new id and the lease holder, as APPEND_LUA; nothing if there is none.
const REPLAY_LUA: &str = r#"
local q, dead, lease = KEYS[1], KEYS[2], KEYS[3]
for _, entry in ipairs(redis.call('XRANGE', dead, '-', '+')) do
  local f, keep, match = entry[2], {}, false
  for k = 1, #f, 2 do
    if f[k] == 'id' then
      match = (f[k + 1] == ARGV[1])
    elseif f[k] ~= 'err' then
      table.insert(keep, f[k]); table.insert(keep, f[k + 1])
    end
  end
  if match then
    local id = redis.call('XADD', q, '*', unpack(keep))
    redis.call('XDEL', dead, entry[1])
    local held = redis.call('GET', lease)
    if held then return {id, string.match(held, '^(%S+) ')} end
    return {id}
  end
end
return {}
"#;

/// Moves a pending message to the queue's dead letters, with its error, and acks it.
const DEAD_LETTER_LUA: &str = r#"
local q, dead, id, err = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local p = redis.call('XPENDING', q, 'g', id, id, 1)
if #p == 0 then return redis.error_reply('NOTPENDING') end
local entry = redis.call('XRANGE', q, id, id)
local fields = entry[1][2]
table.insert(fields, 'id')
table.insert(fields, id)
table.insert(fields, 'err')
table.insert(fields, err)
redis.call('XADD', dead, '*', unpack(fields))
redis.call('XACK', q, 'g', id)
redis.call('XDEL', q, id)
return 'OK'
"#;

/// Takes or renews a lease: `holder token` with an expiry; a new holder gets the next
/// fencing token. Returns the token, or nil while another holder's lease is live.
const ACQUIRE_LUA: &str = r#"
local held = redis.call('GET', KEYS[1])
local token
if held then
  local holder, t = string.match(held, '^(%S+) (%d+)$')
  if holder ~= ARGV[1] then return false end
  token = tonumber(t)
else
  token = redis.call('INCR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"#;

/// Renews (ARGV[3] = 'renew') or releases a lease if it is still the caller's.
const LEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Gives an account name its player id, creating it once.
const ACCOUNT_LUA: &str = r#"
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return tonumber(id) end
id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], id)
return id
"#;

/// The key of the set of queues that have dead letters.
const DEAD_INDEX: &str = "{dead}:queues";
/// The key fixing the cluster's number of guild groups.
const GROUPS_KEY: &str = "{cluster}:groups";

/// The message center on one Redis server.
pub struct RedisBus {
    /// Dropped with the bus: background tasks stop.
    _alive: std::sync::Arc<()>,
    /// How many groups guilds are split into.
    pub(crate) groups: u32,
    /// For every non-blocking command; reconnects by itself.
    conn: ConnectionManager,
    /// Opens the dedicated connections blocking reads need.
    client: redis::Client,
    /// Connections for blocking reads, reused: a blocked read would stall every other
    /// command on a shared connection.
    readers: Mutex<Vec<MultiplexedConnection>>,
    /// This process's consumer name in every group.
    consumer: String,
    /// Queues whose group this process has made sure exists.
    grouped: Mutex<HashSet<String>>,
    commit: Script,
    dead_letter: Script,
    acquire: Script,
    lease: Script,
    account: Script,
    append: Script,
    replay: Script,
    /// Module announcements, fed from the Redis channel.
    announcements: broadcast::Sender<ModuleAnnouncement>,
}

fn unavailable(e: redis::RedisError) -> BusError {
    BusError::Unavailable(e.to_string())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A fresh random u64 (ids and seeds), from the standard library's per-process keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.finish()
}

fn queue_key(a: &Address) -> String {
    format!("{}:q", a.tag())
}

fn bell_key(holder: &str) -> String {
    format!("{{host:{holder}}}:bell")
}

impl RedisBus {
    /// Connects to the Redis at `url` (`redis://127.0.0.1:6379`).
    pub async fn connect(url: &str, groups: u32) -> Result<RedisBus, BusError> {
        let groups = groups.max(1);
        let client = redis::Client::open(url).map_err(unavailable)?;
        let mut conn = ConnectionManager::new(client.clone()).await.map_err(unavailable)?;
        let _: Option<String> = redis::cmd("SET")
            .arg(GROUPS_KEY)
            .arg(groups)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let fixed: u32 = conn.get(GROUPS_KEY).await.map_err(unavailable)?;
        if fixed != groups {
            return Err(BusError::Mismatch(format!(
                "this process is configured with {groups} guild groups, the cluster was started with {fixed}"
            )));
        }
        let (announcements, _) = broadcast::channel(64);
        // Subscribe once here, so a bad URL fails the connect; later losses reconnect.
        let pubsub = subscribe(&client).await.map_err(unavailable)?;
        let alive = std::sync::Arc::new(());
        tokio::spawn(announce(client.clone(), pubsub, announcements.clone(), std::sync::Arc::downgrade(&alive)));
        Ok(RedisBus {
            _alive: alive,
            groups,
            conn,
            client,
            readers: Mutex::new(Vec::new()),
            consumer: format!("c{:016x}", random_u64()),
            grouped: Mutex::new(HashSet::new()),
            commit: Script::new(COMMIT_LUA),
            dead_letter: Script::new(DEAD_LETTER_LUA),
            acquire: Script::new(ACQUIRE_LUA),
            lease: Script::new(LEASE_LUA),
            account: Script::new(ACCOUNT_LUA),
            append: Script::new(APPEND_LUA),
            replay: Script::new(REPLAY_LUA),
            announcements,
        })
    }

    async fn ensure_group(&self, key: &str) -> Result<(), BusError> {
        if self.grouped.lock().unwrap_or_else(|e| e.into_inner()).contains(key) {
            return Ok(());
        }
        let made: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match made {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(unavailable(e)),
        }
        self.grouped.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned());
        Ok(())
    }

    pub(crate) async fn send(&self, msg: Outbound) -> Result<MessageId, BusError> {
        let mid = format!("x/{:016x}{:016x}", random_u64(), now_ms());
        let sender = msg.sender.as_ref().map(Address::tag).unwrap_or_default();
        self.append(&msg.to, &msg.kind, &msg.body, &sender, &mid).await
    }

    /// Appends a message for `to` to its queue with its time, seed and unique id, and
    /// rings the doorbell of the queue's owner.
    async fn append(
        &self,
        to: &Address,
        kind: &str,
        body: &[u8],
        sender: &str,
        mid: &str,
    ) -> Result<MessageId, BusError> {
        let queue = crate::queue_of(to, self.groups);
        let mut inv = self.append.prepare_invoke();
        inv.key(queue_key(&queue)).key(format!("{}:lease", queue.tag()));
        inv.arg("d").arg(to.tag()).arg("k").arg(kind).arg("b").arg(body).arg("f").arg(sender);
        inv.arg("t").arg(now_ms()).arg("r").arg(random_u64()).arg("m").arg(mid);
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        self.ring(&queue, reply).await
    }

    /// Rings the doorbell named in an APPEND_LUA reply (`[id, holder?]`); returns the id.
    async fn ring(&self, queue: &Address, mut reply: Vec<String>) -> Result<MessageId, BusError> {
        if let Some(holder) = reply.get(1) {
            let _: () = self.conn.clone().rpush(bell_key(holder), queue.tag()).await.map_err(unavailable)?;
        }
        if reply.is_empty() {
            return Err(BusError::Unavailable("append returned no id".into()));
        }
        Ok(reply.swap_remove(0))
    }

    pub(crate) async fn doorbell(&self, holder: &str, wait: Duration) -> Result<Vec<Address>, BusError> {
        let key = bell_key(holder);
        let taken = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => self.client.get_multiplexed_async_connection().await.map_err(unavailable)?,
        };
        let first: Option<(String, String)> =
            conn.blpop(&key, wait.as_secs_f64().max(0.001)).await.map_err(unavailable)?;
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
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
        let held: Option<String> =
            self.conn.clone().get(format!("{}:lease", owner.tag())).await.map_err(unavailable)?;
        Ok(held.and_then(|h| {
            let (holder, token) = h.split_once(' ')?;
            Some((holder.to_owned(), token.parse().ok()?))
        }))
    }

    pub(crate) async fn read(&self, queue: &Address, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let key = queue_key(queue);
        self.ensure_group(&key).await?;
        if wait.is_zero() {
            let opts = StreamReadOptions::default().group(GROUP, &self.consumer).count(max.max(1));
            let reply: Option<StreamReadReply> =
                self.conn.clone().xread_options(&[&key], &[">"], &opts).await.map_err(unavailable)?;
            let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
            return Ok(entries.filter_map(|e| delivery(e, 1, queue)).collect());
        }
        let taken = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => self.client.get_multiplexed_async_connection().await.map_err(unavailable)?,
        };
        let opts = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(max.max(1))
            .block(wait.as_millis().max(1) as usize);
        let reply: Option<StreamReadReply> = conn.xread_options(&[&key], &[">"], &opts).await.map_err(unavailable)?;
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        Ok(entries.filter_map(|e| delivery(e, 1, queue)).collect())
    }

    pub(crate) async fn read_pending(&self, queue: &Address) -> Result<Vec<Delivery>, BusError> {
        let key = queue_key(queue);
        self.ensure_group(&key).await?;
        // A new owner first finishes the old owner's relaying.
        self.relay(queue).await?;
        let mut conn = self.conn.clone();
        // Take over everything pending in the group, whoever had it.
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
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
        let entries = claimed.claimed;
        let counts: StreamPendingCountReply =
            conn.xpending_count(&key, GROUP, "-", "+", 1000).await.map_err(unavailable)?;
        let counts = counts.ids;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                let attempts = counts.iter().find(|c| c.id == e.id).map(|c| c.times_delivered as u32).unwrap_or(1);
                delivery(e, attempts, queue)
            })
            .collect())
    }

    pub(crate) async fn commit(&self, c: Commit) -> Result<(), BusError> {
        let tag = c.owner.tag();
        let ack = c.ack.clone().unwrap_or_default();
        let mut inv = self.commit.prepare_invoke();
        for suffix in ["q", "s", "o", "seen", "seq", "lease"] {
            inv.key(format!("{tag}:{suffix}"));
        }
        let fence = c.fence.map(|t| t.to_string()).unwrap_or_default();
        // ARGV[2] is unused (the script reads the message's unique id itself).
        inv.arg(&ack).arg("").arg(now_ms()).arg(&tag).arg(&fence).arg(c.writes.len());
        for (key, value) in &c.writes {
            match value {
                Some(v) => inv.arg(key).arg("s").arg(v.as_slice()),
                None => inv.arg(key).arg("d").arg(""),
            };
        }
        inv.arg(c.sends.len());
        for s in &c.sends {
            let sender = s.sender.as_ref().map(Address::tag).unwrap_or_default();
            inv.arg(s.to.tag()).arg(&s.kind).arg(s.body.as_slice()).arg(sender);
        }
        inv.arg(SEEN_RETENTION_MS);
        let result: redis::RedisResult<String> = inv.invoke_async(&mut self.conn.clone()).await;
        match result {
            Ok(_) => {}
            Err(e) if e.to_string().contains("NOTPENDING") => {
                return Err(BusError::NotPending { queue: tag, id: c.ack.unwrap_or_default() });
            }
            Err(e) if e.to_string().contains("STALE") => {
                return Err(BusError::StaleOwner { owner: tag, token: c.fence.unwrap_or_default() });
            }
            Err(e) => return Err(unavailable(e)),
        }
        // What an earlier owner left in the outbox is relayed when a new owner takes the
        // queue over (`read_pending`); here, only when this commit sent something.
        if c.sends.is_empty() { Ok(()) } else { self.relay(&c.owner).await }
    }

    /// Moves the owner's outbox to the destination queues. Safe to run twice: a message
    /// appended twice carries one id, and the receiver applies it once.
    pub(crate) async fn relay(&self, owner: &Address) -> Result<(), BusError> {
        let outbox = format!("{}:o", owner.tag());
        loop {
            let batch: StreamRangeReply =
                self.conn.clone().xrange_count(&outbox, "-", "+", 100).await.map_err(unavailable)?;
            let batch = batch.ids;
            if batch.is_empty() {
                return Ok(());
            }
            for entry in &batch {
                let get = |f: &str| field(entry, f).unwrap_or_default();
                let to = String::from_utf8_lossy(&get("to")).into_owned();
                let Some(dest) = Address::from_tag(&to) else {
                    // Only this code writes outboxes; an entry it cannot read is dropped
                    // loudly rather than blocking the owner's outbox forever.
                    tracing::error!(outbox, to, "outbox entry for an unknown address dropped");
                    let _: u64 = self.conn.clone().xdel(&outbox, &[&entry.id]).await.map_err(unavailable)?;
                    continue;
                };
                let kind = String::from_utf8_lossy(&get("k")).into_owned();
                let sender = String::from_utf8_lossy(&get("f")).into_owned();
                let mid = String::from_utf8_lossy(&get("m")).into_owned();
                self.append(&dest, &kind, &get("b"), &sender, &mid).await?;
                let _: u64 = self.conn.clone().xdel(&outbox, &[&entry.id]).await.map_err(unavailable)?;
            }
        }
    }

    pub(crate) async fn dead_letter(&self, queue: &Address, delivery: &Delivery, error: &str) -> Result<(), BusError> {
        let result: redis::RedisResult<String> = self
            .dead_letter
            .key(queue_key(queue))
            .key(format!("{}:dead", queue.tag()))
            .arg(&delivery.id)
            .arg(error)
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
        let _: () = self.conn.clone().sadd(DEAD_INDEX, queue.tag()).await.map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn dead_letter_queues(&self) -> Result<Vec<Address>, BusError> {
        let tags: Vec<String> = self.conn.clone().smembers(DEAD_INDEX).await.map_err(unavailable)?;
        let mut queues: Vec<Address> = tags.iter().filter_map(|t| Address::from_tag(t)).collect();
        queues.sort();
        Ok(queues)
    }

    pub(crate) async fn replay_dead_letter(&self, queue: &Address, id: &str) -> Result<Option<MessageId>, BusError> {
        let tag = queue.tag();
        let dead = format!("{tag}:dead");
        let reply: Vec<String> = self
            .replay
            .key(queue_key(queue))
            .key(&dead)
            .key(format!("{tag}:lease"))
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
            let _: () = self.conn.clone().srem(DEAD_INDEX, &tag).await.map_err(unavailable)?;
        }
        Ok(Some(new_id))
    }

    pub(crate) async fn dead_letters(&self, queue: &Address) -> Result<Vec<DeadLetter>, BusError> {
        let range: StreamRangeReply =
            self.conn.clone().xrange_all(format!("{}:dead", queue.tag())).await.map_err(unavailable)?;
        Ok(range
            .ids
            .into_iter()
            .filter_map(|entry| {
                let text = |f: &str| field(&entry, f).map(|b| String::from_utf8_lossy(&b).into_owned());
                let (id, error) = (text("id")?, text("err").unwrap_or_default());
                let envelope = delivery(entry, 0, queue)?.envelope;
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
        let tag = owner.tag();
        let token: Option<u64> = self
            .acquire
            .key(format!("{tag}:lease"))
            .key(format!("{tag}:fence"))
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(token.map(|token| Lease { owner: owner.clone(), holder: holder.to_owned(), token }))
    }

    async fn lease_op(&self, lease: &Lease, ttl: Duration, op: &str) -> Result<bool, BusError> {
        let done: u32 = self
            .lease
            .key(format!("{}:lease", lease.owner.tag()))
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

    fn members_key(role: &str) -> String {
        format!("{{members}}:{role}")
    }

    pub(crate) async fn heartbeat(&self, role: &str, instance: &str, ttl: Duration) -> Result<(), BusError> {
        let expiry = now_ms() + ttl.as_millis() as u64;
        let _: () = self.conn.clone().zadd(Self::members_key(role), instance, expiry).await.map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn leave(&self, role: &str, instance: &str) -> Result<(), BusError> {
        let _: () = self.conn.clone().zrem(Self::members_key(role), instance).await.map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn members(&self, role: &str) -> Result<Vec<String>, BusError> {
        // Expiry is each host's clock plus its ttl: hosts' clocks must agree to well within
        // the ttl (NTP does).
        let key = Self::members_key(role);
        let mut conn = self.conn.clone();
        let _: () = conn.zrembyscore(&key, "-inf", now_ms()).await.map_err(unavailable)?;
        let mut live: Vec<String> = conn.zrange(&key, 0, -1).await.map_err(unavailable)?;
        live.sort();
        Ok(live)
    }

    pub(crate) async fn load_state(&self, owner: &Address) -> Result<EntityState, BusError> {
        let map: std::collections::HashMap<String, Vec<u8>> =
            self.conn.clone().hgetall(format!("{}:s", owner.tag())).await.map_err(unavailable)?;
        Ok(map.into_iter().collect())
    }

    pub(crate) async fn account(&self, name: &str) -> Result<u64, BusError> {
        self.account
            .key("{accounts}:names")
            .key("{accounts}:next")
            .arg(name)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn publish_module(&self, role: &str, bytes: Vec<u8>) -> Result<String, BusError> {
        let digest = hex::encode(Sha256::digest(&bytes));
        let mut conn = self.conn.clone();
        let _: () = conn.set(format!("{{modules}}:blob:{digest}"), bytes).await.map_err(unavailable)?;
        let _: () = conn.hset("{modules}:current", role, &digest).await.map_err(unavailable)?;
        let _: () = conn.publish(MODULES_CHANNEL, format!("{role} {digest}")).await.map_err(unavailable)?;
        Ok(digest)
    }

    pub(crate) async fn module(&self, digest: &str) -> Result<Vec<u8>, BusError> {
        let blob: Option<Vec<u8>> =
            self.conn.clone().get(format!("{{modules}}:blob:{digest}")).await.map_err(unavailable)?;
        blob.ok_or_else(|| BusError::ModuleNotFound(digest.to_owned()))
    }

    pub(crate) async fn current_module(&self, role: &str) -> Result<Option<String>, BusError> {
        self.conn.clone().hget("{modules}:current", role).await.map_err(unavailable)
    }

    pub(crate) fn module_announcements(&self) -> broadcast::Receiver<ModuleAnnouncement> {
        self.announcements.subscribe()
    }
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(MODULES_CHANNEL).await?;
    Ok(pubsub)
}

/// Forwards module announcements from the Redis channel; when the connection is lost,
/// subscribes again with backoff (an announcement missed meanwhile is caught by hosts'
/// periodic look at the current pointer). Ends when nobody listens any more.
async fn announce(
    client: redis::Client,
    first: redis::aio::PubSub,
    tx: broadcast::Sender<ModuleAnnouncement>,
    alive: std::sync::Weak<()>,
) {
    use futures_util::StreamExt;
    let mut pubsub = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Some(p) = pubsub.take() {
            backoff = Duration::from_millis(100);
            let mut messages = p.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(text) = msg.get_payload::<String>() else { continue };
                if let Some((role, digest)) = text.split_once(' ') {
                    let _ = tx.send(ModuleAnnouncement { role: role.into(), digest: digest.into() });
                }
            }
            tracing::warn!("lost the module announcement channel; subscribing again");
        }
        if alive.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        match subscribe(&client).await {
            Ok(p) => pubsub = Some(p),
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to module announcements yet"),
        }
    }
}

fn field(entry: &StreamId, name: &str) -> Option<Vec<u8>> {
    entry.map.get(name).and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
}

/// A stream entry of `queue` as a delivery; `None` for an entry that is not a Warren
/// message.
fn delivery(entry: StreamId, attempts: u32, queue: &Address) -> Option<Delivery> {
    let text = |f: &str| field(&entry, f).map(|b| String::from_utf8_lossy(&b).into_owned());
    let number = |f: &str| text(f).and_then(|t| t.parse::<u64>().ok());
    let envelope = Envelope {
        to: text("d").and_then(|t| Address::from_tag(&t)).unwrap_or_else(|| queue.clone()),
        sender: text("f").and_then(|t| Address::from_tag(&t)),
        kind: text("k")?,
        body: field(&entry, "b").unwrap_or_default(),
        now_ms: number("t").unwrap_or(0),
        seed: number("r").unwrap_or(0),
    };
    Some(Delivery { id: entry.id, envelope, attempts })
}
