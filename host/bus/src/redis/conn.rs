//! Reaching Redis: one server or a cluster, dedicated connections for blocking reads, and
//! the module announcement channel.

use super::*;

/// A connection to one Redis or to a Redis Cluster; every command is written once, against
/// this.
#[derive(Clone)]
pub(super) enum Conn {
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
pub(super) enum Deployment {
    /// One Redis server.
    Single(redis::Client),
    /// A Redis Cluster; this client's connections have no response timeout of their own
    /// (blocking reads bound their wait themselves).
    Cluster(Box<ClusterClient>),
}

impl Deployment {
    pub(super) async fn dedicated(&self) -> Result<Conn, BusError> {
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

/// The key prefix of a namespace: `t7` gives `t7:`; none gives none.
pub(super) fn namespace_prefix(namespace: Option<&str>) -> Result<String, BusError> {
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
pub(super) async fn cluster_enabled(client: &redis::Client) -> redis::RedisResult<bool> {
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
/// Redis connections send each request at once: with many requests in flight on one
/// multiplexed connection, Nagle's algorithm would hold a request back until the reply to
/// the one before was acknowledged (~40 ms with a delayed ack).
fn no_delay() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

pub(super) async fn open(
    url: &str,
    options: &RedisOptions,
) -> Result<(Conn, Deployment, Vec<redis::Client>), BusError> {
    let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if urls.is_empty() {
        return Err(BusError::Unavailable("no Redis URL given".into()));
    }
    let mut clients = Vec::with_capacity(urls.len());
    for u in &urls {
        let invalid = |e: redis::RedisError| BusError::Unavailable(format!("invalid Redis URL {u}: {e}"));
        let info = redis::IntoConnectionInfo::into_connection_info(*u).map_err(invalid)?.set_tcp_settings(no_delay());
        clients.push(redis::Client::open(info).map_err(invalid)?);
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
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(options.response_timeout)
            .set_number_of_retries(options.reconnect_retries)
            .set_connection_timeout(Some(options.connect_timeout));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
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
        .tcp_settings(no_delay())
        .response_timeout(options.response_timeout.unwrap_or(CLUSTER_OVERALL_TIMEOUT))
        .connection_timeout(options.connect_timeout)
        .overall_response_timeout(Some(CLUSTER_OVERALL_TIMEOUT))
        .build()
        .map_err(cluster_error)?;
    let blocking = ClusterClient::builder(seeds).tcp_settings(no_delay()).build().map_err(cluster_error)?;
    let conn = shared.get_async_connection().await.map_err(cluster_error)?;
    Ok((Conn::Cluster(conn), Deployment::Cluster(Box::new(blocking)), clients))
}

/// Subscribes to `channel` through the first of `seeds` that accepts.
pub(super) async fn subscribe(seeds: &[redis::Client], channel: &str) -> Result<redis::aio::PubSub, BusError> {
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
pub(super) async fn announce(
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
