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
    redis.call('XADD', outbox, '*', 'to', ARGV[i], 'k', ARGV[i + 1], 'b', ARGV[i + 2], 'f', owner,
      'm', owner .. '/' .. n .. '/' .. s)
    i = i + 3
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

/// The message center on one Redis server.
pub struct RedisBus {
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

impl RedisBus {
    /// Connects to the Redis at `url` (`redis://127.0.0.1:6379`).
    pub async fn connect(url: &str) -> Result<RedisBus, BusError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let conn = ConnectionManager::new(client.clone()).await.map_err(unavailable)?;
        let (announcements, _) = broadcast::channel(64);
        let mut pubsub = client.get_async_pubsub().await.map_err(unavailable)?;
        pubsub.subscribe(MODULES_CHANNEL).await.map_err(unavailable)?;
        let tx = announcements.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(text) = msg.get_payload::<String>() else { continue };
                if let Some((role, digest)) = text.split_once(' ') {
                    let _ = tx.send(ModuleAnnouncement { role: role.into(), digest: digest.into() });
                }
            }
        });
        Ok(RedisBus {
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

    /// XADDs a message to `to`'s queue with its time, seed and unique id.
    async fn append(
        &self,
        to: &Address,
        kind: &str,
        body: &[u8],
        sender: &str,
        mid: &str,
    ) -> Result<MessageId, BusError> {
        let fields: [(&str, &[u8]); 6] = [
            ("k", kind.as_bytes()),
            ("b", body),
            ("f", sender.as_bytes()),
            ("t", &now_ms().to_string().into_bytes()),
            ("r", &random_u64().to_string().into_bytes()),
            ("m", mid.as_bytes()),
        ];
        self.conn.clone().xadd(queue_key(to), "*", &fields).await.map_err(unavailable)
    }

    pub(crate) async fn read(&self, queue: &Address, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let key = queue_key(queue);
        self.ensure_group(&key).await?;
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
        Ok(entries.filter_map(|e| delivery(e, 1)).collect())
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
                delivery(e, attempts)
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
            inv.arg(s.to.tag()).arg(&s.kind).arg(s.body.as_slice());
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
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("NOTPENDING") => {
                Err(BusError::NotPending { queue: queue.tag(), id: delivery.id.clone() })
            }
            Err(e) => Err(unavailable(e)),
        }
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
                let envelope = delivery(entry, 0)?.envelope;
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

fn field(entry: &StreamId, name: &str) -> Option<Vec<u8>> {
    entry.map.get(name).and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
}

/// A stream entry as a delivery; `None` for an entry that is not a Warren message.
fn delivery(entry: StreamId, attempts: u32) -> Option<Delivery> {
    let text = |f: &str| field(&entry, f).map(|b| String::from_utf8_lossy(&b).into_owned());
    let number = |f: &str| text(f).and_then(|t| t.parse::<u64>().ok());
    let envelope = Envelope {
        sender: text("f").and_then(|t| Address::from_tag(&t)),
        kind: text("k")?,
        body: field(&entry, "b").unwrap_or_default(),
        now_ms: number("t").unwrap_or(0),
        seed: number("r").unwrap_or(0),
    };
    Some(Delivery { id: entry.id, envelope, attempts })
}
