//! The Redis backend: a stream per queue read through a consumer group, a hash per
//! entity's state, and one Lua script that commits a handler's effects.
//!
//! Every key of an owner carries its hash tag (`{p:42}:q`, `{p:42}:s`, ...), so the commit
//! script touches one slot and runs unchanged on Redis Cluster. Messages for other owners
//! are written to the owner's outbox (`{p:42}:o`) in the commit and relayed afterwards;
//! each carries a unique id that the receiver's commit records, so a message relayed twice
//! (a crash between relay and delete) is applied once. The global keys (`{accounts}:...`,
//! `{modules}:...`, `{dead}:queues`, `{cluster}:groups`, `{cluster}:secret`,
//! `{ids}:<counter>`, `{registry}:<name>`, `{host:<holder>}:bell`) are each touched by one
//! command at a time; a role's members (`{members}:<role>`, a sorted set of expiries) and
//! their reports (`{members}:<role>:reports`, a hash) share a slot and change together in
//! one script.
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
    Outbound, Push, PushLog, Receipt,
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

mod accounts;
mod conn;
mod membership;
mod pushes;
mod queues;
mod records;
mod scripts;

use conn::{Conn, Deployment, announce, namespace_prefix, open, subscribe};
use scripts::*;

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

/// The key of the set of queues that have dead letters (without the namespace).
const DEAD_INDEX: &str = "{dead}:queues";
/// The key fixing the cluster's number of guild groups (without the namespace).
const GROUPS_KEY: &str = "{cluster}:groups";
/// The key of the cluster secret (without the namespace).
const SECRET_KEY: &str = "{cluster}:secret";
/// How long a blocking read may outlast its own wait before the connection is deemed
/// lost (the server answers a blocking read when its wait ends).
const BLOCKING_GRACE: Duration = Duration::from_secs(5);
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
    /// How long one command may wait for its reply before it fails (`None`: forever). A
    /// command that timed out may still be applied: callers never take a timeout for a
    /// refusal (a commit's outcome is found out, see [`crate::Bus::resolve`]).
    pub response_timeout: Option<Duration>,
    /// How many times a lost connection is opened again, with backoff, before a command
    /// fails (each later command tries again).
    pub reconnect_retries: usize,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            groups: crate::DEFAULT_GROUPS,
            namespace: None,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            reconnect_retries: DEFAULT_RECONNECT_RETRIES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// How long a command waits for its reply unless configured ([`RedisOptions`]).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a lost connection is opened again unless configured.
pub const DEFAULT_RECONNECT_RETRIES: usize = 6;
/// How long opening a connection may take unless configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
    replay: Script,
    heartbeat: Script,
    reports: Script,
    take_pushes: Script,
    pushes: Script,
    trim_pushes: Script,
    resolve: Script,
    requests: Script,
    take_over: Script,
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

impl RedisBus {
    /// Connects to the Redis at `url` (`redis://127.0.0.1:6379`, `/<db>` selects a
    /// database) or to the Redis Cluster it is a node of: a server that reports
    /// `cluster_enabled:1` in `INFO cluster` is used as the seed of a cluster client.
    /// `url` may also list several seed URLs of one cluster, comma-separated; the first
    /// that answers is asked. Announcements are subscribed to on the first seed that
    /// accepts (a PUBLISH on any node of a cluster reaches every node's subscribers).
    pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisBus, BusError> {
        let prefix = namespace_prefix(options.namespace.as_deref())?;
        let (conn, deployment, seeds) = open(url, &options).await?;
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
            replay: Script::new(REPLAY_LUA),
            heartbeat: Script::new(HEARTBEAT_LUA),
            reports: Script::new(REPORTS_LUA),
            take_pushes: Script::new(TAKE_PUSHES_LUA),
            pushes: Script::new(PUSHES_LUA),
            trim_pushes: Script::new(TRIM_PUSHES_LUA),
            resolve: Script::new(RESOLVE_LUA),
            requests: Script::new(REQUESTS_LUA),
            take_over: Script::new(TAKE_OVER_LUA),
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

    /// The hash of the latest report of each member of `role`, in the members' slot.
    fn reports_key(&self, role: &str) -> String {
        format!("{}{{members}}:{role}:reports", self.prefix)
    }

    fn counter_key(&self, counter: &str) -> String {
        format!("{}{{ids}}:{counter}", self.prefix)
    }

    fn registry_key(&self, registry: &str) -> String {
        format!("{}{{registry}}:{registry}", self.prefix)
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
    let (mut to, mut sender, mut kind, mut body, mut now_ms, mut seed, mut mid, mut hops) =
        (None, None, None, Vec::new(), 0, 0, String::new(), 0);
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
            b"h" => hops = number(&v).min(u64::from(u32::MAX)) as u32,
            _ => {}
        }
    }
    let envelope = Envelope { to: to.unwrap_or_else(|| queue.clone()), sender, kind: kind?, body, now_ms, seed, hops };
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
