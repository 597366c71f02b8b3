//! The Redis backend: a stream per queue read through a consumer group, a hash per
//! entity's state, and one Lua script that commits a handler's effects.
//!
//! Every key of an owner carries its hash tag (`{p:42}:q`, `{p:42}:s`, ...), so the commit
//! script touches one slot and runs unchanged on Redis Cluster. Messages for other owners
//! are written to the owner's outbox (`{p:42}:o`) in the commit and relayed afterwards;
//! each carries a unique id that the receiver's commit records, so a message relayed twice
//! (a crash between relay and delete) is applied once. The global keys (`{accounts}:...`,
//! `{modules}:...`, `{members}:<role>`, `{dead}:queues`, `{cluster}:groups`,
//! `{host:<holder>}:bell`) are each touched by one command at a time.
//!
//! One code path serves both deployments: [`RedisBus::connect`] asks the server it is given
//! whether it is a cluster node (`INFO cluster`) and then talks to it through a
//! `ConnectionManager` (one Redis) or a `ClusterConnection` (Redis Cluster, which routes
//! each command to its slot's node and follows MOVED/ASK), both behind one connection type.
//!
//! An optional namespace ([`RedisOptions::namespace`]) prefixes every key *outside* its
//! hash tag (`t7:{p:42}:q`), so several buses share one Redis or one cluster apart while
//! every key keeps its slot.

use crate::types::{
    Address, BusError, Commit, DeadLetter, Delivery, EntityState, Envelope, Lease, MessageId, ModuleAnnouncement,
    Outbound,
};
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::streams::{StreamId, StreamPendingCountReply, StreamRangeReply, StreamReadOptions};
use redis::{AsyncCommands, AsyncConnectionConfig, Script};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// The consumer group every queue is read through.
const GROUP: &str = "g";
/// The channel module announcements are published on.
const MODULES_CHANNEL: &str = "warren:modules";
/// How long a receiver remembers the ids of messages it applied (relay duplicates arrive
/// within seconds; a day is a wide margin).
const SEEN_RETENTION_MS: u64 = 24 * 3600 * 1000;
/// One commit in this many trims its queue's acknowledged messages and its expired seen
/// ids (the commits of all queues counted together, so each queue is trimmed by about one
/// of its commits in this many).
const TRIM_EVERY: u64 = 16;

/// Commits a handler's effects atomically on the owner's slot. See `commit` for ARGV.
///
/// In order: the fence (refused whole if stale); the ack, which is also the check that
/// the message is still pending (nothing is written before it); for a relayed message,
/// the duplicate check; the state writes and the outbox; then, in one commit in
/// [`TRIM_EVERY`], the trim of acknowledged entries (kept until then rather than deleted one
/// by one: deleting an entry walks its stream node, which cost more than the rest of the
/// commit) and of expired seen ids. Direct sends (`x/...` ids) are never relayed, so never
/// arrive twice: only relayed ids are looked up and recorded.
const COMMIT_LUA: &str = r#"
local q, state, outbox, seen, seq, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ack, mid, now, owner, fence = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if fence ~= '' then
  local held = redis.call('GET', lease)
  if not held or string.match(held, '^%S+ (%d+)$') ~= fence then return redis.error_reply('STALE') end
end
if ack ~= '' then
  -- The unique id the acknowledged message carries (field 'm'): given by the bus that
  -- read the message, else read here.
  if mid == '' then
    local entry = redis.call('XRANGE', q, ack, ack)
    if entry[1] then
      local f = entry[1][2]
      for k = 1, #f, 2 do
        if f[k] == 'm' then mid = f[k + 1] end
      end
    end
  end
  -- The ack is the pending check, before anything is written: a message no longer
  -- pending was committed already and is refused whole.
  if redis.call('XACK', q, 'g', ack) == 0 then return redis.error_reply('NOTPENDING') end
end
-- Only a message relayed from an outbox (an id other than 'x/...') can arrive twice, so
-- only those are looked up and remembered.
local relayed = nil
if mid ~= '' and string.sub(mid, 1, 2) ~= 'x/' then relayed = mid end
if relayed and redis.call('ZSCORE', seen, relayed) then
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
if relayed then redis.call('ZADD', seen, now, relayed) end
if ack ~= '' and ARGV[i + 1] == '1' then
  -- Every entry older than the oldest one pending (or than this one, if none is) was
  -- delivered and acknowledged: whole stream nodes of them go.
  local oldest = redis.call('XPENDING', q, 'g', '-', '+', 1)[1]
  redis.call('XTRIM', q, 'MINID', '~', oldest and oldest[1] or ack)
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - tonumber(ARGV[i]))
end
return 'OK'
"#;

/// Puts a dead letter (by its original id, ARGV[1]) back at the end of its queue and
/// returns the new id and the lease holder (whose doorbell the caller rings); nothing if
/// there is none.
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

/// The key of the set of queues that have dead letters (without the namespace).
const DEAD_INDEX: &str = "{dead}:queues";
/// The key fixing the cluster's number of guild groups (without the namespace).
const GROUPS_KEY: &str = "{cluster}:groups";
/// How long a blocking read may outlast its own wait before the connection is deemed
/// lost (the server answers a blocking read when its wait ends).
const BLOCKING_GRACE: Duration = Duration::from_secs(5);
/// How long one command on a cluster may wait for a node's reply.
const CLUSTER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command on a cluster may take in all, with the retries and redirections
/// of a cluster that is moving slots or electing a master.
const CLUSTER_OVERALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How to reach and lay out a Redis bus, beyond its URL.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// How many groups guilds are split into. The first process to connect (within a
    /// namespace) fixes it; a process configured otherwise is refused. 0 adopts the
    /// count already fixed (the default if none is), without fixing it: for tools.
    pub groups: u32,
    /// A prefix for every key and for the announcement channel, so that several buses
    /// share one Redis or one Redis Cluster without seeing each other (tests do; so may
    /// staging worlds). `Some("t7")` stores `{p:42}:q` as `t7:{p:42}:q`: the prefix is
    /// outside the hash tag, so every key keeps its slot and every script its one slot.
    /// It must not be empty nor contain braces or whitespace. `None`: keys as they are.
    pub namespace: Option<String>,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions { groups: crate::DEFAULT_GROUPS, namespace: None }
    }
}

/// A connection to one Redis or to a Redis Cluster; every command is written once, against
/// this.
#[derive(Clone)]
enum Conn {
    /// The shared connection to one server; reconnects by itself.
    Single(ConnectionManager),
    /// A dedicated connection to one server, for blocking reads.
    Dedicated(MultiplexedConnection),
    /// A connection to a Redis Cluster: routes each command to the node serving its slot,
    /// follows redirections and reconnects by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Dedicated(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Dedicated(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Dedicated(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What the bus is connected to; opens the dedicated connections blocking reads need.
enum Deployment {
    /// One Redis server.
    Single(redis::Client),
    /// A Redis Cluster; this client's connections have no response timeout of their own
    /// (blocking reads bound their wait themselves).
    Cluster(Box<ClusterClient>),
}

impl Deployment {
    async fn dedicated(&self) -> Result<Conn, BusError> {
        match self {
            Deployment::Single(client) => {
                // No response timeout: the server answers a blocking read when its wait
                // ends, which may be long after the default timeout.
                let config = AsyncConnectionConfig::new().set_response_timeout(None);
                let conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(unavailable)?;
                Ok(Conn::Dedicated(conn))
            }
            Deployment::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)),
        }
    }
}

/// The message center on one Redis server or on a Redis Cluster.
pub struct RedisBus {
    /// Dropped with the bus: background tasks stop.
    _alive: std::sync::Arc<()>,
    /// How many groups guilds are split into.
    pub(crate) groups: u32,
    /// For every non-blocking command; reconnects by itself.
    conn: Conn,
    /// Opens the dedicated connections blocking reads need.
    deployment: Deployment,
    /// Connections for blocking reads, reused: a blocked read would stall every other
    /// command on a shared connection (on a cluster, every command to the same node).
    readers: Mutex<Vec<Conn>>,
    /// The namespace's key prefix (`t7:`), or empty.
    prefix: String,
    /// This process's consumer name in every group.
    consumer: String,
    /// Queues whose group this process has made sure exists.
    grouped: Mutex<HashSet<String>>,
    /// The unique ids of the messages this bus handed out, until their commit.
    unique_ids: Mutex<UniqueIds>,
    /// Commits made, to trim by one in [`TRIM_EVERY`].
    commits: AtomicU64,
    /// The lease holder of each queue this bus appended to, as last seen, by queue tag
    /// (one server only, see `append`).
    holders: Mutex<HashMap<String, String>>,
    commit: Script,
    dead_letter: Script,
    acquire: Script,
    lease: Script,
    account: Script,
    replay: Script,
    /// Module announcements, fed from the Redis channel.
    announcements: broadcast::Sender<ModuleAnnouncement>,
}

/// How many queues' lease holders a bus remembers for ringing (see `append`); past that
/// it forgets them all.
const MAX_HOLDERS: usize = 1 << 16;
/// How many unique ids [`UniqueIds`] keeps at most; past that it forgets them all (a
/// commit whose id is forgotten reads it from the queue itself, see `commit`).
const MAX_UNIQUE_IDS: usize = 1 << 16;

/// The unique id (field `m`) of each message this bus handed out and has not committed,
/// by queue key and message id, exactly as read from the message's stream entry with it.
///
/// The commit script must know a message's unique id to apply a relayed duplicate once.
/// Given it, the script need not read the entry again (an XRANGE, and its reply turned into
/// Lua tables: about a quarter of Redis's work per message). The id is never taken from the
/// caller of [`Bus::commit`](crate::Bus::commit): a host could pass a wrong one, and the
/// script cannot tell without reading the entry. A wrong id would break exactly-once: one
/// of a relayed message's copies passed as `x/...` would be applied twice, and a message
/// passed with the id of a message already applied would be acknowledged as a duplicate
/// and its effects dropped. Here the id is bound to the message id when both are read from
/// the same entry, and the commit looks it up by the message id it acknowledges: the
/// script then learns exactly what its own XRANGE would (a stream's message ids are never
/// reused), and a message this bus did not read (forgotten, or read by another process)
/// is read in the script as before.
#[derive(Default)]
struct UniqueIds {
    by_queue: HashMap<String, HashMap<MessageId, String>>,
    count: usize,
}

impl UniqueIds {
    fn remember(&mut self, queue_key: &str, read: Vec<(MessageId, String)>) {
        if read.is_empty() {
            return;
        }
        if self.count + read.len() > MAX_UNIQUE_IDS {
            // Messages read and never committed here (a session that ended) would pile up.
            self.by_queue.clear();
            self.count = 0;
        }
        let ids = match self.by_queue.get_mut(queue_key) {
            Some(ids) => ids,
            None => self.by_queue.entry(queue_key.to_owned()).or_default(),
        };
        for (id, mid) in read {
            if ids.insert(id, mid).is_none() {
                self.count += 1;
            }
        }
    }

    fn take(&mut self, queue_key: &str, id: &str) -> Option<String> {
        let ids = self.by_queue.get_mut(queue_key)?;
        let mid = ids.remove(id)?;
        self.count -= 1;
        if ids.is_empty() {
            self.by_queue.remove(queue_key);
        }
        Some(mid)
    }
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

/// The key prefix of a namespace: `t7` gives `t7:`; none gives none.
fn namespace_prefix(namespace: Option<&str>) -> Result<String, BusError> {
    let Some(ns) = namespace else { return Ok(String::new()) };
    if ns.is_empty() || ns.chars().any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control()) {
        return Err(BusError::Unavailable(format!(
            "invalid Redis namespace {ns:?}: it must be non-empty, without braces or whitespace"
        )));
    }
    Ok(format!("{ns}:"))
}

/// Whether the Redis behind `client` is a Redis Cluster node (`cluster_enabled:1`). Asked
/// on database 0: a cluster node refuses to select any other.
async fn cluster_enabled(client: &redis::Client) -> redis::RedisResult<bool> {
    let info = client.get_connection_info().clone();
    let db0 = info.redis_settings().clone().set_db(0);
    let probe = redis::Client::open(info.set_redis_settings(db0))?;
    let mut conn = probe.get_multiplexed_async_connection().await?;
    let text: String = redis::cmd("INFO").arg("cluster").query_async(&mut conn).await?;
    Ok(text.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

/// The connections to the Redis or Redis Cluster at `url` (one URL, or comma-separated
/// seed URLs of one cluster), and the clients announcements are subscribed through, in
/// order of preference.
async fn open(url: &str) -> Result<(Conn, Deployment, Vec<redis::Client>), BusError> {
    let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if urls.is_empty() {
        return Err(BusError::Unavailable("no Redis URL given".into()));
    }
    let mut clients = Vec::with_capacity(urls.len());
    for u in &urls {
        clients
            .push(redis::Client::open(*u).map_err(|e| BusError::Unavailable(format!("invalid Redis URL {u}: {e}")))?);
    }
    // The first seed that answers says which kind of deployment this is.
    let mut failures = Vec::new();
    let mut probed = None;
    for (u, client) in urls.iter().zip(&clients) {
        match cluster_enabled(client).await {
            Ok(enabled) => {
                probed = Some((*u, enabled));
                break;
            }
            Err(e) => failures.push(format!("{u}: {e}")),
        }
    }
    let Some((answered, is_cluster)) = probed else {
        return Err(BusError::Unavailable(format!("cannot reach Redis at {}", failures.join("; "))));
    };
    if !is_cluster {
        if urls.len() > 1 {
            return Err(BusError::Unavailable(format!(
                "{} seed URLs given, but {answered} is a single Redis, not a Redis Cluster node (cluster_enabled:0): \
                 give one URL for a single Redis",
                urls.len()
            )));
        }
        let client = clients.swap_remove(0);
        let conn = ConnectionManager::new(client.clone())
            .await
            .map_err(|e| BusError::Unavailable(format!("cannot connect to Redis at {answered}: {e}")))?;
        return Ok((Conn::Single(conn), Deployment::Single(client.clone()), vec![client]));
    }
    for (u, client) in urls.iter().zip(&clients) {
        let db = client.get_connection_info().redis_settings().db();
        if db != 0 {
            return Err(BusError::Unavailable(format!(
                "{u} names database {db}, but a Redis Cluster has only database 0: drop the /{db} \
                 (buses share a cluster apart through a namespace)"
            )));
        }
    }
    let seeds: Vec<redis::ConnectionInfo> = clients.iter().map(|c| c.get_connection_info().clone()).collect();
    let cluster_error =
        |e: redis::RedisError| BusError::Unavailable(format!("cannot use the Redis Cluster at {url}: {e}"));
    let shared = ClusterClient::builder(seeds.clone())
        .response_timeout(CLUSTER_RESPONSE_TIMEOUT)
        .overall_response_timeout(Some(CLUSTER_OVERALL_TIMEOUT))
        .build()
        .map_err(cluster_error)?;
    let blocking = ClusterClient::builder(seeds).build().map_err(cluster_error)?;
    let conn = shared.get_async_connection().await.map_err(cluster_error)?;
    Ok((Conn::Cluster(conn), Deployment::Cluster(Box::new(blocking)), clients))
}

impl RedisBus {
    /// Connects to the Redis at `url` (`redis://127.0.0.1:6379`, `/<db>` selects a
    /// database) or to the Redis Cluster it is a node of: a server that reports
    /// `cluster_enabled:1` in `INFO cluster` is used as the seed of a cluster client.
    /// `url` may also list several seed URLs of one cluster, comma-separated; the first
    /// that answers is asked. Announcements are subscribed to on the first seed that
    /// accepts (a PUBLISH on any node of a cluster reaches every node's subscribers).
    pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisBus, BusError> {
        let prefix = namespace_prefix(options.namespace.as_deref())?;
        let (conn, deployment, seeds) = open(url).await?;
        let mut fixing = conn.clone();
        let groups_key = format!("{prefix}{GROUPS_KEY}");
        let groups = if options.groups == 0 {
            // Adopt the cluster's count (an operator's tool need not know it).
            let fixed: Option<u32> = fixing.get(&groups_key).await.map_err(unavailable)?;
            fixed.unwrap_or(crate::DEFAULT_GROUPS)
        } else {
            let groups = options.groups;
            let _: Option<String> = redis::cmd("SET")
                .arg(&groups_key)
                .arg(groups)
                .arg("NX")
                .query_async(&mut fixing)
                .await
                .map_err(unavailable)?;
            let fixed: u32 = fixing.get(&groups_key).await.map_err(unavailable)?;
            if fixed != groups {
                return Err(BusError::Mismatch(format!(
                    "this process is configured with {groups} guild groups, the cluster was started with {fixed}"
                )));
            }
            groups
        };
        let (announcements, _) = broadcast::channel(64);
        // Subscribe once here, so a bad URL fails the connect; later losses reconnect.
        let channel = format!("{prefix}{MODULES_CHANNEL}");
        let pubsub = subscribe(&seeds, &channel).await?;
        let alive = std::sync::Arc::new(());
        tokio::spawn(announce(seeds, channel, pubsub, announcements.clone(), std::sync::Arc::downgrade(&alive)));
        Ok(RedisBus {
            _alive: alive,
            groups,
            conn,
            deployment,
            readers: Mutex::new(Vec::new()),
            prefix,
            consumer: format!("c{:016x}", random_u64()),
            grouped: Mutex::new(HashSet::new()),
            unique_ids: Mutex::new(UniqueIds::default()),
            commits: AtomicU64::new(0),
            holders: Mutex::new(HashMap::new()),
            commit: Script::new(COMMIT_LUA),
            dead_letter: Script::new(DEAD_LETTER_LUA),
            acquire: Script::new(ACQUIRE_LUA),
            lease: Script::new(LEASE_LUA),
            account: Script::new(ACCOUNT_LUA),
            replay: Script::new(REPLAY_LUA),
            announcements,
        })
    }

    /// A key in this bus's namespace.
    fn key(&self, key: impl std::fmt::Display) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The key of an owner's `suffix` (`q`, `s`, `lease`, ...): `[ns:]{p:42}:q`.
    fn owner_key(&self, owner: &Address, suffix: &str) -> String {
        format!("{}{}:{suffix}", self.prefix, owner.tag())
    }

    fn queue_key(&self, a: &Address) -> String {
        self.owner_key(a, "q")
    }

    fn bell_key(&self, holder: &str) -> String {
        format!("{}{{host:{holder}}}:bell", self.prefix)
    }

    fn members_key(&self, role: &str) -> String {
        format!("{}{{members}}:{role}", self.prefix)
    }

    /// Runs a blocking command, which waits up to `wait` on the server, on a dedicated
    /// connection taken from (and given back to) the pool. A connection that failed or
    /// did not answer in time is dropped, not reused.
    async fn blocking<T: redis::FromRedisValue>(&self, cmd: redis::Cmd, wait: Duration) -> Result<T, BusError> {
        let taken = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => self.deployment.dedicated().await?,
        };
        let limit = wait + BLOCKING_GRACE;
        match tokio::time::timeout(limit, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => {
                self.readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
                Ok(value)
            }
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(BusError::Unavailable(format!("no reply to a blocking read within {limit:?}"))),
        }
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
    async fn append(
        &self,
        to: &Address,
        kind: &str,
        body: &[u8],
        sender: &str,
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
        pipe.arg("t").arg(now_ms()).arg("r").arg(random_u64()).arg("m").arg(mid);
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
    async fn ring(&self, queue: &Address, mut reply: Vec<String>) -> Result<MessageId, BusError> {
        if let Some(holder) = reply.get(1) {
            let _: () = self.conn.clone().rpush(self.bell_key(holder), queue.tag()).await.map_err(unavailable)?;
        }
        if reply.is_empty() {
            return Err(BusError::Unavailable("append returned no id".into()));
        }
        Ok(reply.swap_remove(0))
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
    async fn handed_out(
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

    /// Runs COMMIT_LUA on the owner's keys (KEYS: queue, state, outbox, seen, seq, lease).
    /// ARGV: the acked message id (or empty), its unique id (or empty: the script reads
    /// it), the time, the owner's tag, the fence token (or empty), the number of writes and
    /// each as key, `s`/`d`, value, the number of sends and each as destination tag, kind,
    /// body, sender tag, then the seen ids' retention (ms) and `1` if this commit trims.
    pub(crate) async fn commit(&self, c: Commit) -> Result<(), BusError> {
        let tag = c.owner.tag();
        let ack = c.ack.clone().unwrap_or_default();
        let mut inv = self.commit.prepare_invoke();
        for suffix in ["q", "s", "o", "seen", "seq", "lease"] {
            inv.key(self.owner_key(&c.owner, suffix));
        }
        let fence = c.fence.map(|t| t.to_string()).unwrap_or_default();
        // The message's unique id, as this bus read it with the message (see `UniqueIds`);
        // empty for a message it did not read: the script reads it itself.
        let mid = match &c.ack {
            Some(id) => {
                let queue_key = self.queue_key(&c.owner);
                self.unique_ids.lock().unwrap_or_else(|e| e.into_inner()).take(&queue_key, id).unwrap_or_default()
            }
            None => String::new(),
        };
        inv.arg(&ack).arg(&mid).arg(now_ms()).arg(&tag).arg(&fence).arg(c.writes.len());
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
        // The stream and the seen set are trimmed by one commit in `TRIM_EVERY`.
        let trim = self.commits.fetch_add(1, Ordering::Relaxed).is_multiple_of(TRIM_EVERY);
        inv.arg(SEEN_RETENTION_MS).arg(if trim { "1" } else { "" });
        let result: redis::RedisResult<String> = inv.invoke_async(&mut self.conn.clone()).await;
        match result {
            // A relayed copy of a message already applied: acknowledged, nothing applied.
            // The caller must not apply the effects it computed either.
            Ok(reply) if reply == "DUPLICATE" => {
                return Err(BusError::NotPending { queue: tag, id: c.ack.unwrap_or_default() });
            }
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
        let outbox = self.owner_key(owner, "o");
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
        self.unique_ids.lock().unwrap_or_else(|e| e.into_inner()).take(&self.queue_key(queue), &delivery.id);
        let result: redis::RedisResult<String> = self
            .dead_letter
            .key(self.queue_key(queue))
            .key(self.owner_key(queue, "dead"))
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

    async fn lease_op(&self, lease: &Lease, ttl: Duration, op: &str) -> Result<bool, BusError> {
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

    pub(crate) async fn heartbeat(&self, role: &str, instance: &str, ttl: Duration) -> Result<(), BusError> {
        let expiry = now_ms() + ttl.as_millis() as u64;
        let _: () = self.conn.clone().zadd(self.members_key(role), instance, expiry).await.map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn leave(&self, role: &str, instance: &str) -> Result<(), BusError> {
        let _: () = self.conn.clone().zrem(self.members_key(role), instance).await.map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn members(&self, role: &str) -> Result<Vec<String>, BusError> {
        // Expiry is each host's clock plus its ttl: hosts' clocks must agree to well within
        // the ttl (NTP does).
        let key = self.members_key(role);
        let mut conn = self.conn.clone();
        let _: () = conn.zrembyscore(&key, "-inf", now_ms()).await.map_err(unavailable)?;
        let mut live: Vec<String> = conn.zrange(&key, 0, -1).await.map_err(unavailable)?;
        live.sort();
        Ok(live)
    }

    pub(crate) async fn load_state(&self, owner: &Address) -> Result<EntityState, BusError> {
        let map: std::collections::HashMap<String, Vec<u8>> =
            self.conn.clone().hgetall(self.owner_key(owner, "s")).await.map_err(unavailable)?;
        Ok(map.into_iter().collect())
    }

    pub(crate) async fn account(&self, name: &str) -> Result<u64, BusError> {
        self.account
            .key(self.key("{accounts}:names"))
            .key(self.key("{accounts}:next"))
            .arg(name)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
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

/// Subscribes to `channel` through the first of `seeds` that accepts.
async fn subscribe(seeds: &[redis::Client], channel: &str) -> Result<redis::aio::PubSub, BusError> {
    let mut failures = Vec::new();
    for seed in seeds {
        let attempt = async {
            let mut pubsub = seed.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        match attempt.await {
            Ok(pubsub) => return Ok(pubsub),
            Err(e) => failures.push(format!("{}: {e}", seed.get_connection_info().addr())),
        }
    }
    Err(BusError::Unavailable(format!("cannot subscribe to module announcements: {}", failures.join("; "))))
}

/// Forwards module announcements from the Redis channel; when the connection is lost,
/// subscribes again (through any of the seeds) with backoff (an announcement missed
/// meanwhile is caught by hosts' periodic look at the current pointer). Ends when nobody
/// listens any more.
async fn announce(
    seeds: Vec<redis::Client>,
    channel: String,
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
        match subscribe(&seeds, &channel).await {
            Ok(p) => pubsub = Some(p),
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to module announcements yet"),
        }
    }
}

fn field(entry: &StreamId, name: &str) -> Option<Vec<u8>> {
    entry.map.get(name).and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
}

/// A stream entry of `queue` (its id and field/value pairs) as a delivery, with the unique
/// id it carries (empty if none); `None` for an entry that is not a Warren message.
fn delivery<N: AsRef<[u8]>>(
    id: String,
    fields: impl IntoIterator<Item = (N, redis::Value)>,
    attempts: u32,
    queue: &Address,
) -> Option<(Delivery, String)> {
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let number = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    let (mut to, mut sender, mut kind, mut body, mut now_ms, mut seed, mut mid) =
        (None, None, None, Vec::new(), 0, 0, String::new());
    for (name, value) in fields {
        let Ok(v) = redis::from_redis_value::<Vec<u8>>(value) else { continue };
        match name.as_ref() {
            b"d" => to = Address::from_tag(&text(v)),
            b"f" => sender = Address::from_tag(&text(v)),
            b"k" => kind = Some(text(v)),
            b"b" => body = v,
            b"t" => now_ms = number(&v),
            b"r" => seed = number(&v),
            b"m" => mid = text(v),
            _ => {}
        }
    }
    let envelope = Envelope { to: to.unwrap_or_else(|| queue.clone()), sender, kind: kind?, body, now_ms, seed };
    Some((Delivery { id, envelope, attempts }, mid))
}

/// A stream entry as read: its id and its field/value pairs.
type RawEntry = (String, Vec<(Vec<u8>, redis::Value)>);

/// The entries of a stream reply (a list of `[id, [field, value, ...]]`), moved out of the
/// reply; anything else in it is skipped.
fn stream_entries(reply: redis::Value) -> Vec<RawEntry> {
    let redis::Value::Array(entries) = reply else { return Vec::new() };
    entries
        .into_iter()
        .filter_map(|entry| {
            let redis::Value::Array(entry) = entry else { return None };
            let mut parts = entry.into_iter();
            let id: String = redis::from_redis_value(parts.next()?).ok()?;
            let flat: Vec<(redis::Value, redis::Value)> = match parts.next()? {
                redis::Value::Array(flat) => {
                    let mut flat = flat.into_iter();
                    std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
                }
                redis::Value::Map(pairs) => pairs,
                _ => return None,
            };
            let pairs = flat.into_iter().filter_map(|(n, v)| Some((redis::from_redis_value(n).ok()?, v))).collect();
            Some((id, pairs))
        })
        .collect()
}
