//! The cluster as processes: `warren baseapp` and `warren guild` hosts against a real
//! redis-server, started, stopped and killed by the tests.

use crate::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use warren_bus::{Address, Bus, Outbound, group_of};
use warren_test_guests as guests;
use warren_testkit::{Process, RedisCluster, RedisServer};

/// How long a test waits for the cluster to settle or drain before it fails.
pub(crate) const SETTLE: Duration = Duration::from_secs(60);

pub(crate) fn warren() -> &'static str {
    env!("CARGO_BIN_EXE_warren")
}

/// Common host flags.
pub(crate) fn host_args(url: &str, groups: u32, name: &str, lease_ttl_ms: u64) -> Vec<String> {
    ["--redis", url, "--groups", &groups.to_string(), "--name", name, "--lease-ttl-ms", &lease_ttl_ms.to_string()]
        .map(String::from)
        .to_vec()
}

/// A host config for loads whose players never read the guild's answers, sent as fast as
/// the message center takes them: queues are not capped and a guild may answer as fast as
/// it is asked, so no request is refused for a full queue or a send rate (these tests count
/// every request applied exactly once; the quotas are tested in `sandbox`).
pub(crate) fn uncapped_queues() -> &'static str {
    static FILE: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("uncapped.toml");
            std::fs::write(
                &path,
                "[limits]\nmax_queue_len = 100000000\nsends_per_s = 100000000\nsends_burst = 100000000\n",
            )
            .expect("write config");
            let path = path.display().to_string();
            (dir, path)
        })
        .1
}

/// Starts `warren guild` and waits until it serves.
pub(crate) fn guild_host(url: &str, groups: u32, name: &str, lease_ttl_ms: u64) -> Process {
    let mut args = vec!["guild".to_owned(), "--config".into(), uncapped_queues().into()];
    args.extend(host_args(url, groups, name, lease_ttl_ms));
    let mut p = Process::start(name, warren(), &args);
    p.wait_for_line("serving", SETTLE);
    p
}

/// Starts `warren baseapp` on a free port and returns it with its address.
pub(crate) fn baseapp(url: &str, groups: u32, name: &str, lease_ttl_ms: u64) -> (Process, SocketAddr) {
    baseapp_with(url, groups, name, lease_ttl_ms, crate::baseapp_config())
}

/// [`baseapp`] with the configuration file `config`.
pub(crate) fn baseapp_with(
    url: &str,
    groups: u32,
    name: &str,
    lease_ttl_ms: u64,
    config: &str,
) -> (Process, SocketAddr) {
    let mut args = vec!["baseapp".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(["--config".to_owned(), config.to_owned()]);
    args.extend(host_args(url, groups, name, lease_ttl_ms));
    let mut p = Process::start(name, warren(), &args);
    let addr = p.listening_address(SETTLE);
    (p, addr)
}

pub(crate) async fn login(addr: SocketAddr, name: &str) -> (Client, u64) {
    let mut c = Client::connect_as(addr, name).await;
    c.send(json!({"type": "login", "name": name})).await;
    let welcome = c.recv_type("welcome").await;
    (c, welcome["player"].as_u64().expect("a player id"))
}

/// The next `guild.event` of kind `event`, skipping other frames.
async fn guild_event(c: &mut Client, event: &str) -> Value {
    loop {
        let frame = c.recv_type("guild.event").await;
        if frame["event"] == event {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_two_baseapps_talk_to_each_other_and_to_their_guild_on_one_redis() {
    let redis = RedisServer::start();
    players_talk_across_baseapps(&redis.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_two_baseapps_talk_to_each_other_and_to_their_guild_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    players_talk_across_baseapps(&cluster.url).await;
}

/// Two guild hosts and two baseapps on the message center at `url`; ann and bob on
/// different baseapps found a guild, chat in it and whisper; bob moves to ann's baseapp.
async fn players_talk_across_baseapps(url: &str) {
    let groups = 16;
    let modules = tempfile::tempdir().unwrap();
    for (role, path) in
        [("baseapp", guests::SCRIPT_BASEAPP), ("battle", guests::SCRIPT_BATTLE), ("guild", guests::SCRIPT_GUILD)]
    {
        std::fs::copy(path, modules.path().join(format!("{role}.wasm"))).unwrap();
    }
    let published = std::process::Command::new(warren())
        .args(["publish", "--redis", url, "--modules"])
        .arg(modules.path())
        .output()
        .unwrap();
    assert!(published.status.success(), "publish: {}", String::from_utf8_lossy(&published.stderr));
    assert_eq!(String::from_utf8_lossy(&published.stdout).lines().filter(|l| l.starts_with("published")).count(), 3);

    let _g1 = guild_host(url, groups, "guild-1", 10_000);
    let _g2 = guild_host(url, groups, "guild-2", 10_000);
    let (_b1, addr1) = baseapp(url, groups, "base-1", 10_000);
    let (_b2, addr2) = baseapp(url, groups, "base-2", 10_000);

    let (mut ann, ann_id) = login(addr1, "ann").await;
    let (mut bob, bob_id) = login(addr2, "bob").await;

    ann.send(json!({"type": "guild.create", "name": "Foxes"})).await;
    let created = guild_event(&mut ann, "created").await;
    assert_eq!((created["name"].as_str(), created["leader"].as_u64()), (Some("Foxes"), Some(ann_id)), "{created}");
    bob.send(json!({"type": "guild.join", "name": "foxes"})).await;
    let joined = guild_event(&mut bob, "joined").await;
    assert_eq!(joined["player"].as_u64(), Some(bob_id));
    assert_eq!(guild_event(&mut ann, "joined").await["player"].as_u64(), Some(bob_id), "members hear of it");

    bob.send(json!({"type": "guild.chat", "text": "hello foxes"})).await;
    for c in [&mut ann, &mut bob] {
        let chat = guild_event(c, "chat").await;
        assert_eq!((chat["text"].as_str(), chat["from"].as_u64()), (Some("hello foxes"), Some(bob_id)));
    }

    ann.send(json!({"type": "whisper", "to": bob_id, "text": "psst"})).await;
    let whisper = bob.recv_type("whisper").await;
    assert_eq!((whisper["from"].as_u64(), whisper["text"].as_str()), (Some(ann_id), Some("psst")));

    // Bob logs in on the other baseapp: the first session is told and ends; the new one
    // has his data, guild included.
    let (mut bob_again, again_id) = login(addr1, "bob").await;
    assert_eq!(again_id, bob_id);
    let ended = bob.recv_type("error").await;
    assert_eq!(ended["reason"], "logged in elsewhere");
    bob_again.send(json!({"type": "guild.chat", "text": "moved"})).await;
    let chat = guild_event(&mut ann, "chat").await;
    assert_eq!((chat["text"].as_str(), chat["from"].as_u64()), (Some("moved"), Some(bob_id)));
}

/// Sends `guild.info` requests to `guilds`, round robin, until told to stop, counting
/// per guild the sends the message center acknowledged and those that failed (whose
/// outcome is unknown: the message may or may not have been stored).
struct Load {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Sent>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// What a load sent, per guild.
#[derive(Default)]
struct Sent {
    acked: BTreeMap<u64, u64>,
    unknown: BTreeMap<u64, u64>,
}

/// The players a [`Load`] sends as: 1 to 7.
const SENDERS: u64 = 7;

impl Load {
    /// A load whose every send must succeed.
    fn start(bus: Bus, guilds: Vec<u64>, pause: Duration) -> Load {
        Load::run(bus, guilds, pause, false)
    }

    /// A load that rides out an unavailable message center, counting failed sends.
    fn tolerant(bus: Bus, guilds: Vec<u64>, pause: Duration) -> Load {
        Load::run(bus, guilds, pause, true)
    }

    fn run(bus: Bus, guilds: Vec<u64>, pause: Duration, tolerate: bool) -> Load {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        let task = tokio::spawn(async move {
            // The senders are players with accounts (a message to a player id no account
            // has is refused, and the guild answers its senders).
            for n in 1..=SENDERS {
                bus.account(&format!("user:load{n}")).await.expect("an account");
            }
            let mut out = Sent::default();
            let mut i = 0usize;
            while !*stopped.borrow() {
                let guild = guilds[i % guilds.len()];
                let msg = Outbound {
                    to: Address::Guild(guild),
                    sender: Some(Address::Player(1 + i as u64 % SENDERS)),
                    kind: "guild.info".into(),
                    body: b"{}".to_vec(),
                    hops: 0,
                };
                i += 1;
                match bus.send(msg).await {
                    Ok(_) => {
                        *out.acked.entry(guild).or_default() += 1;
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) if tolerate => {
                        *out.unknown.entry(guild).or_default() += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("the message center refused a send: {e}"),
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            out
        });
        Load { stop, task, sent }
    }

    /// Acknowledged sends so far.
    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn until_sent(&self, n: u64) {
        let started = Instant::now();
        while self.sent() < n {
            assert!(started.elapsed() < SETTLE, "the load stalled at {} sends", self.sent());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> Sent {
        let _ = self.stop.send(true);
        self.task.await.expect("the load ran")
    }
}

/// How many messages guild `guild` has applied (its script's `applied` counter).
async fn applied(bus: &Bus, guild: u64) -> u64 {
    let group = Address::GuildGroup(group_of(guild, bus.groups()));
    let state = bus.load_state(&group).await.expect("state");
    state.get(&format!("{guild}/applied")).map(|v| serde_json::from_slice(v).expect("a number")).unwrap_or(0)
}

async fn applied_total(bus: &Bus, guilds: &[u64]) -> u64 {
    let mut total = 0;
    for g in guilds {
        total += applied(bus, *g).await;
    }
    total
}

/// Waits until every guild has applied what it was sent, then checks nothing was applied
/// twice (exact counts) and nothing is left in any group's queue.
async fn assert_applied_exactly(bus: &Bus, sent: &BTreeMap<u64, u64>) {
    let guilds: Vec<u64> = sent.keys().copied().collect();
    let total: u64 = sent.values().sum();
    let started = Instant::now();
    loop {
        let done = applied_total(bus, &guilds).await;
        assert!(done <= total, "applied {done} of {total} sent: something was applied twice");
        if done == total {
            break;
        }
        assert!(started.elapsed() < SETTLE, "only {done} of {total} messages applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (guild, count) in sent {
        assert_eq!(applied(bus, *guild).await, *count, "guild {guild}: applied exactly what it was sent");
    }
}

/// After every host stopped: no group's queue holds a message, delivered or not.
async fn assert_queues_empty(bus: &Bus) {
    for group in 0..bus.groups() {
        let q = Address::GuildGroup(group);
        assert!(bus.read_pending(&q).await.unwrap().is_empty(), "group {group} has pending messages");
        assert!(bus.read(&q, 1, Duration::ZERO).await.unwrap().is_empty(), "group {group} has unread messages");
        assert!(bus.dead_letters(&q).await.unwrap().is_empty(), "group {group} has dead letters");
    }
}

/// Lease holders of every group, counted by holder; `None` while a group has no holder.
async fn spread(bus: &Bus) -> Option<BTreeMap<String, u32>> {
    let mut counts = BTreeMap::new();
    for group in 0..bus.groups() {
        let (holder, _) = bus.lease_holder(&Address::GuildGroup(group)).await.unwrap()?;
        *counts.entry(holder).or_insert(0) += 1;
    }
    Some(counts)
}

/// Waits until the groups are held by exactly `hosts`, each within one of even.
async fn await_spread(bus: &Bus, hosts: &[&str]) -> BTreeMap<String, u32> {
    let started = Instant::now();
    loop {
        if let Some(counts) = spread(bus).await {
            let even = bus.groups() / hosts.len() as u32;
            let holders: Vec<&str> = counts.keys().map(String::as_str).collect();
            if holders == hosts && counts.values().all(|c| *c == even || *c == even + 1) {
                return counts;
            }
        }
        assert!(started.elapsed() < SETTLE, "groups never spread over {hosts:?}: {:?}", spread(bus).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish_guild(bus: &Bus) {
    bus.publish_module("guild", guests::read(guests::SCRIPT_GUILD)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guild_hosts_going_one_three_two_under_load_apply_every_message_once() {
    let redis = RedisServer::start();
    let groups = 12;
    let bus = Bus::redis_with_groups(&redis.url, groups).await.unwrap();
    publish_guild(&bus).await;
    // Two guilds per group.
    let guilds: Vec<u64> = (1..=24).collect();

    let _a = guild_host(&redis.url, groups, "host-a", 5_000);
    await_spread(&bus, &["host-a"]).await;
    let load = Load::start(bus.clone(), guilds.clone(), Duration::from_micros(500));
    load.until_sent(200).await;

    let _b = guild_host(&redis.url, groups, "host-b", 5_000);
    let mut c = guild_host(&redis.url, groups, "host-c", 5_000);
    let three = await_spread(&bus, &["host-a", "host-b", "host-c"]).await;
    assert!(three.values().all(|n| *n == 4), "{three:?}");
    load.until_sent(load.sent() + 200).await;

    // host-c leaves gracefully: it hands its groups over while the load goes on.
    c.signal("TERM");
    assert!(c.wait(SETTLE).success(), "host-c stops cleanly; its log:\n{}", c.log());
    let two = await_spread(&bus, &["host-a", "host-b"]).await;
    assert!(two.values().all(|n| *n == 6), "{two:?}");
    load.until_sent(load.sent() + 200).await;

    let sent = load.finish().await.acked;
    assert_applied_exactly(&bus, &sent).await;
    drop((_a, _b));
    assert_queues_empty(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_host_killed_mid_batch_is_replaced_and_nothing_is_lost_or_doubled() {
    let redis = RedisServer::start();
    let groups = 4;
    let bus = Bus::redis_with_groups(&redis.url, groups).await.unwrap();
    publish_guild(&bus).await;
    let guilds: Vec<u64> = (1..=8).collect();

    let mut a = guild_host(&redis.url, groups, "host-a", 1_500);
    // As fast as the producer goes: a backlog builds.
    let load = Load::start(bus.clone(), guilds.clone(), Duration::ZERO);
    let started = Instant::now();
    while applied_total(&bus, &guilds).await < 300 {
        assert!(started.elapsed() < SETTLE, "host-a never got going; its log:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Killed with messages delivered but not committed: stopped (SIGSTOP) until some are
    // seen in its hands, then killed there.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    loop {
        a.signal("STOP");
        let mut in_hand = 0;
        for group in 0..groups {
            let pending: redis::streams::StreamPendingReply =
                redis::AsyncCommands::xpending(&mut conn, format!("{{g:{group}}}:q"), "g").await.unwrap();
            in_hand += pending.count();
        }
        if in_hand > 0 {
            break;
        }
        a.signal("CONT");
        assert!(started.elapsed() < SETTLE, "host-a never held a batch in hand");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.signal("KILL");
    a.wait(SETTLE);

    let b = guild_host(&redis.url, groups, "host-b", 1_500);
    await_spread(&bus, &["host-b"]).await;
    let sent = load.finish().await.acked;
    assert_applied_exactly(&bus, &sent).await;
    drop(b);
    assert_queues_empty(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_with_aof_loses_no_acknowledged_message() {
    let mut redis = RedisServer::start_durable();
    let groups = 4;
    let bus = Bus::redis_with_groups(&redis.url, groups).await.unwrap();
    publish_guild(&bus).await;
    let guilds: Vec<u64> = (1..=8).collect();

    let mut a = guild_host(&redis.url, groups, "host-a", 10_000);
    let load = Load::tolerant(bus.clone(), guilds.clone(), Duration::from_micros(200));
    let started = Instant::now();
    while applied_total(&bus, &guilds).await < 200 {
        assert!(started.elapsed() < SETTLE, "host-a never got going; its log:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Mid-load: Redis dies, stays away a moment (sends fail, commits fail), comes back.
    redis.crash();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    let resumed_at = load.sent();
    load.until_sent(resumed_at + 300).await;
    let sent = load.finish().await;
    assert!(a.running(), "the guild host stayed up; its log:\n{}", a.log());
    // The outage was seen on both sides.
    assert!(sent.unknown.values().sum::<u64>() > 0, "some sends failed while Redis was down");
    assert!(a.log().contains("message center unavailable"), "the host noticed; its log:\n{}", a.log());

    // Every acknowledged message is applied; a failed send may or may not have been.
    let acked: u64 = sent.acked.values().sum();
    let started = Instant::now();
    while applied_total(&bus, &guilds).await < acked {
        assert!(started.elapsed() < SETTLE, "acknowledged messages missing; host log:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.signal("TERM");
    assert!(a.wait(SETTLE).success(), "host-a stops cleanly; its log:\n{}", a.log());
    for guild in &guilds {
        let (ok, unknown) =
            (sent.acked.get(guild).copied().unwrap_or(0), sent.unknown.get(guild).copied().unwrap_or(0));
        let done = applied(&bus, *guild).await;
        assert!(
            ok <= done && done <= ok + unknown,
            "guild {guild}: applied {done}, acknowledged {ok}, unknown {unknown}"
        );
    }
    assert_queues_empty(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_from_the_command_line() {
    let redis = RedisServer::start();
    let bus = Bus::redis(&redis.url).await.unwrap();
    let p = Address::Player(5);
    bus.send(Outbound { to: p.clone(), sender: None, kind: "poison".into(), body: b"{}".to_vec(), hops: 0 })
        .await
        .unwrap();
    let d = bus.read(&p, 1, Duration::ZERO).await.unwrap().remove(0);
    bus.dead_letter(&p, &d, "trapped: unreachable").await.unwrap();

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(warren())
            .args(["dead-letters", "--redis", &redis.url])
            .args(args)
            .output()
            .expect("run warren");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), text, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, listed, _) = cli(&["list"]);
    assert!(ok);
    assert!(listed.contains("{p:5}") && listed.contains(&d.id) && listed.contains("trapped: unreachable"), "{listed}");
    let (ok, _, err) = cli(&["replay", "--queue", "p:5", "--id", "1-1"]);
    assert!(!ok && err.contains("no dead letter 1-1"), "{err}");
    let (ok, replayed, err) = cli(&["replay", "--queue", "p:5"]);
    assert!(ok, "{err}");
    assert!(replayed.contains(&format!("replayed {{p:5}} {}", d.id)), "{replayed}");
    assert_eq!(cli(&["list"]).1.trim(), "no dead letters");
    let back = bus.read(&p, 10, Duration::ZERO).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].envelope.kind, "poison");
}
