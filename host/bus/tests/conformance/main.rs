//! The bus's promises, checked through the public interface so the same suite runs on
//! every backend: embedded, one `redis-server` and a Redis Cluster of three masters (both
//! started by the suite, see `warren-testkit`), the Redis ones in a key namespace per test.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use warren_bus::{Address, Bus, BusError, Commit, Outbound, RedisOptions};
use warren_testkit::{RedisCluster, RedisServer};

mod accounts;
mod commit_all;
mod coordination;
mod pushes;
mod redis_only;

/// One redis-server for the whole suite.
fn redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// One Redis Cluster (three masters) for the whole suite.
fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// The Redis flavours every Redis test runs on: a single server and a cluster, by name
/// and URL.
fn redis_flavours() -> [(&'static str, &'static str); 2] {
    [("redis", redis().url.as_str()), ("cluster", cluster().url.as_str())]
}

/// A key namespace no other test of this process uses. Tests share the suite's servers
/// and reuse entity ids, so each keeps to a namespace of its own (a cluster has only
/// database 0, so databases cannot keep them apart).
fn fresh_namespace() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A Redis bus at `url` in `namespace`, with `groups` guild groups.
async fn redis_bus(url: &str, namespace: &str, groups: u32) -> Result<Bus, BusError> {
    Bus::redis_with(url, RedisOptions { groups, namespace: Some(namespace.to_owned()), ..RedisOptions::default() })
        .await
}

/// Every backend, fresh: the embedded bus, and a Redis bus on the single server and on the
/// cluster, each in a namespace of its own.
async fn backends() -> Vec<(&'static str, Bus)> {
    let mut all = vec![("embedded", Bus::embedded())];
    for (name, url) in redis_flavours() {
        let bus = redis_bus(url, &fresh_namespace(), warren_bus::DEFAULT_GROUPS)
            .await
            .unwrap_or_else(|e| panic!("connect to the suite's {name}: {e}"));
        all.push((name, bus));
    }
    all
}

/// Every backend, fresh, each with two handles on the same message center (as two
/// processes have): the embedded bus shared, and two Redis buses connected apart in one
/// namespace, on the single server and on the cluster.
async fn twin_backends() -> Vec<(&'static str, Bus, Bus)> {
    let embedded = Bus::embedded();
    let mut all = vec![("embedded", embedded.clone(), embedded)];
    for (name, url) in redis_flavours() {
        let ns = fresh_namespace();
        let connect = async || {
            redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS)
                .await
                .unwrap_or_else(|e| panic!("connect to the suite's {name}: {e}"))
        };
        all.push((name, connect().await, connect().await));
    }
    all
}

fn msg(to: Address, kind: &str, body: &str) -> Outbound {
    Outbound { to, sender: None, kind: kind.into(), body: body.as_bytes().to_vec(), hops: 0 }
}

#[tokio::test]
async fn messages_arrive_in_order_and_stay_pending_until_acked() {
    for (name, bus) in backends().await {
        let p = Address::Player(1);
        for i in 0..3 {
            bus.send(msg(p.clone(), "n", &i.to_string())).await.unwrap();
        }
        let got = bus.read(&p, 10, Duration::from_millis(10)).await.unwrap();
        let bodies: Vec<_> = got.iter().map(|d| d.envelope.body.clone()).collect();
        assert_eq!(bodies, vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec()], "{name}");
        let seq = |id: &str| {
            let (ms, n) = id.split_once('-').expect("<ms>-<seq>");
            (ms.parse::<u64>().unwrap(), n.parse::<u64>().unwrap())
        };
        assert!(got.windows(2).all(|w| seq(&w[0].id) < seq(&w[1].id)), "{name}: ids increase");

        // Not acknowledged: a new owner gets them again, with the attempt counted.
        let again = bus.read_pending(&p).await.unwrap();
        assert_eq!(again.len(), 3, "{name}");
        assert!(again.iter().all(|d| d.attempts == 2), "{name}");

        for d in &got {
            bus.commit(Commit::ack_only(p.clone(), d.id.clone())).await.unwrap();
        }
        assert!(bus.read_pending(&p).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_commit_stores_state_sends_and_ack_together_and_only_once() {
    for (name, bus) in backends().await {
        let (a, b) = (Address::Player(10), Address::Player(11));
        bus.send(msg(a.clone(), "hit", "1")).await.unwrap();
        let d = bus.read(&a, 1, Duration::from_millis(10)).await.unwrap().remove(0);
        let commit = Commit {
            owner: a.clone(),
            writes: vec![("hp".into(), Some(b"9".to_vec())), ("gone".into(), None)],
            sends: vec![msg(b.clone(), "hello", "{}")],
            ack: Some(d.id.clone()),
            fence: None,
            pushes: vec![],
            request: None,
        };
        bus.commit(commit.clone()).await.unwrap();
        assert_eq!(bus.load_state(&a).await.unwrap().get("hp").unwrap(), b"9", "{name}");
        assert_eq!(bus.read(&b, 10, Duration::from_millis(10)).await.unwrap().len(), 1, "{name}");

        // The same commit again (a retry after a lost reply) is refused whole.
        let err = bus.commit(Commit { writes: vec![("hp".into(), Some(b"0".to_vec()))], ..commit }).await;
        assert!(matches!(err, Err(BusError::NotPending { .. })), "{name}: {err:?}");
        assert_eq!(bus.load_state(&a).await.unwrap().get("hp").unwrap(), b"9", "{name}: nothing applied twice");
        assert!(bus.read(&b, 10, Duration::from_millis(10)).await.unwrap().is_empty(), "{name}: no second send");
    }
}

#[tokio::test]
async fn a_waiting_reader_wakes_on_arrival() {
    for (name, bus) in backends().await {
        let q = Address::Team(3);
        let reader = {
            let (bus, q) = (bus.clone(), q.clone());
            tokio::spawn(async move { bus.read(&q, 1, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        bus.send(msg(q, "chat", "hi")).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("woke").unwrap().unwrap();
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].envelope.kind, "chat", "{name}");
    }
}

#[tokio::test]
async fn messages_carry_a_time_and_a_distinct_seed() {
    for (name, bus) in backends().await {
        let q = Address::Team(1);
        bus.send(msg(q.clone(), "a", "")).await.unwrap();
        bus.send(msg(q.clone(), "b", "")).await.unwrap();
        let got = bus.read(&q, 2, Duration::from_millis(10)).await.unwrap();
        assert!(got[0].envelope.now_ms > 1_600_000_000_000, "{name}");
        assert_ne!(got[0].envelope.seed, got[1].envelope.seed, "{name}");
    }
}

#[tokio::test]
async fn modules_are_stored_by_digest_and_announced() {
    for (name, bus) in backends().await {
        let mut announced = bus.module_announcements();
        assert_eq!(bus.current_module("baseapp").await.unwrap(), None, "{name}");
        let digest = bus.publish_module("baseapp", b"module bytes".to_vec()).await.unwrap();
        assert_eq!(digest.len(), 64, "{name}");
        assert_eq!(bus.module(&digest).await.unwrap(), b"module bytes", "{name}");
        assert_eq!(bus.current_module("baseapp").await.unwrap(), Some(digest.clone()), "{name}");
        let a = announced.recv().await.unwrap();
        assert_eq!((a.role.as_str(), a.digest.as_str()), ("baseapp", digest.as_str()), "{name}");
        assert!(matches!(bus.module("00").await, Err(BusError::ModuleNotFound(_))), "{name}");
    }
}

#[tokio::test]
async fn accounts_get_stable_distinct_ids() {
    for (name, bus) in backends().await {
        let ann = bus.account("ann").await.unwrap();
        let bob = bus.account("bob").await.unwrap();
        assert_ne!(ann, bob, "{name}");
        assert_eq!(bus.account("ann").await.unwrap(), ann, "{name}");
    }
}

#[tokio::test]
async fn a_failing_message_is_set_aside_with_its_error() {
    for (name, bus) in backends().await {
        let q = Address::Player(77);
        bus.send(msg(q.clone(), "poison", "{}")).await.unwrap();
        bus.send(msg(q.clone(), "fine", "{}")).await.unwrap();
        let got = bus.read(&q, 1, Duration::from_millis(10)).await.unwrap();
        bus.dead_letter(&q, &got[0], "trapped: unreachable").await.unwrap();
        assert!(bus.read_pending(&q).await.unwrap().is_empty(), "{name}: acknowledged");
        assert!(
            matches!(bus.dead_letter(&q, &got[0], "again").await, Err(BusError::NotPending { .. })),
            "{name}: only once"
        );
        let dead = bus.dead_letters(&q).await.unwrap();
        assert_eq!(dead.len(), 1, "{name}");
        assert_eq!(
            (dead[0].id.as_str(), dead[0].error.as_str()),
            (got[0].id.as_str(), "trapped: unreachable"),
            "{name}"
        );
        assert_eq!(dead[0].envelope.kind, "poison", "{name}");
        let next = bus.read(&q, 10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(next[0].envelope.kind, "fine", "{name}: the queue moves on");
    }
}

#[tokio::test]
async fn pending_messages_come_back_in_order_even_many_in_one_millisecond() {
    for (name, bus) in backends().await {
        let q = Address::Player(78);
        for i in 0..25 {
            bus.send(msg(q.clone(), "n", &i.to_string())).await.unwrap();
        }
        bus.read(&q, 25, Duration::from_millis(10)).await.unwrap();
        let again: Vec<String> = bus
            .read_pending(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|d| String::from_utf8(d.envelope.body).unwrap())
            .collect();
        let expected: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        assert_eq!(again, expected, "{name}");
    }
}

#[tokio::test]
async fn leases_have_one_holder_and_a_stale_owners_commit_is_refused() {
    for (name, bus) in backends().await {
        let g = Address::GuildGroup(5);
        let ttl = Duration::from_secs(30);
        let a = bus.acquire_lease(&g, "host-a", ttl).await.unwrap().expect("free lease");
        assert_eq!(bus.acquire_lease(&g, "host-b", ttl).await.unwrap(), None, "{name}: one holder");
        assert_eq!(bus.acquire_lease(&g, "host-a", ttl).await.unwrap().map(|l| l.token), Some(a.token), "{name}");
        assert!(bus.renew_lease(&a, ttl).await.unwrap(), "{name}");

        let write = |fence| Commit {
            owner: g.clone(),
            writes: vec![("n".into(), Some(b"1".to_vec()))],
            sends: vec![],
            ack: None,
            fence: Some(fence),
            pushes: vec![],
            request: None,
        };
        bus.commit(write(a.token)).await.unwrap();

        // A moves on; B takes over with a newer token; A's late commit is refused whole.
        bus.release_lease(&a).await.unwrap();
        let b = bus.acquire_lease(&g, "host-b", ttl).await.unwrap().expect("released lease");
        assert!(b.token > a.token, "{name}: tokens only grow");
        assert!(!bus.renew_lease(&a, ttl).await.unwrap(), "{name}: a lost lease does not renew");
        let stale = Commit { writes: vec![("n".into(), Some(b"stale".to_vec()))], ..write(a.token) };
        assert!(matches!(bus.commit(stale).await, Err(BusError::StaleOwner { .. })), "{name}");
        assert_eq!(bus.load_state(&g).await.unwrap().get("n").unwrap(), b"1", "{name}: nothing applied");
        bus.commit(write(b.token)).await.unwrap();
    }
}

#[tokio::test]
async fn an_expired_lease_can_be_taken() {
    for (name, bus) in backends().await {
        let g = Address::GuildGroup(6);
        let a = bus.acquire_lease(&g, "host-a", Duration::from_millis(50)).await.unwrap().unwrap();
        // Wait on the lease itself, not on a clock guess: poll until B can take it.
        let started = std::time::Instant::now();
        let b = loop {
            if let Some(b) = bus.acquire_lease(&g, "host-b", Duration::from_secs(30)).await.unwrap() {
                break b;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{name}: the lease never expired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(b.token > a.token, "{name}");
    }
}

#[tokio::test]
async fn members_are_live_until_their_heartbeat_expires_or_they_leave() {
    for (name, bus) in backends().await {
        bus.heartbeat("guild", "host-a", Duration::from_secs(30)).await.unwrap();
        bus.heartbeat("guild", "host-b", Duration::from_secs(30)).await.unwrap();
        bus.heartbeat("guild", "host-c", Duration::from_millis(30)).await.unwrap();
        bus.heartbeat("baseapp", "host-x", Duration::from_secs(30)).await.unwrap();
        let started = std::time::Instant::now();
        while bus.members("guild").await.unwrap().len() == 3 {
            assert!(started.elapsed() < Duration::from_secs(10), "{name}: host-c never expired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(bus.members("guild").await.unwrap(), vec!["host-a", "host-b"], "{name}");
        bus.leave("guild", "host-a").await.unwrap();
        assert_eq!(bus.members("guild").await.unwrap(), vec!["host-b"], "{name}");
        assert_eq!(bus.members("baseapp").await.unwrap(), vec!["host-x"], "{name}: roles apart");
    }
}

#[tokio::test]
async fn a_guilds_messages_queue_in_its_group_and_keep_the_guilds_address() {
    for (name, bus) in backends().await {
        let groups = bus.groups();
        assert_eq!(groups, warren_bus::DEFAULT_GROUPS, "{name}");
        let (g1, g2) = (Address::Guild(17), Address::Guild(17 + u64::from(groups)));
        let group = Address::GuildGroup(17);
        assert_eq!(bus.queue_of(&g1), group, "{name}");
        bus.send(msg(g1.clone(), "guild.chat", "a")).await.unwrap();
        // Sent from a commit (through the outbox on Redis), with the sender kept.
        let from = Address::Player(9);
        let send = Outbound { sender: Some(from.clone()), ..msg(g2.clone(), "guild.chat", "b") };
        bus.commit(Commit {
            owner: from.clone(),
            writes: vec![],
            sends: vec![send],
            ack: None,
            fence: None,
            pushes: vec![],
            request: None,
        })
        .await
        .unwrap();
        let got = bus.read(&group, 10, Duration::from_millis(10)).await.unwrap();
        let seen: Vec<_> = got.iter().map(|d| (d.envelope.to.clone(), d.envelope.sender.clone())).collect();
        assert_eq!(seen, vec![(g1, None), (g2, Some(from))], "{name}");
    }
}

#[tokio::test]
async fn the_lease_holder_hears_of_new_messages_on_its_doorbell() {
    for (name, bus) in backends().await {
        let (p, g) = (Address::Player(300), Address::GuildGroup(9));
        let ttl = Duration::from_secs(30);
        bus.acquire_lease(&p, "host-a", ttl).await.unwrap().expect("free");
        bus.acquire_lease(&g, "host-a", ttl).await.unwrap().expect("free");
        assert_eq!(bus.lease_holder(&p).await.unwrap().map(|h| h.0), Some("host-a".to_owned()), "{name}");
        assert!(bus.doorbell("host-a", Duration::from_millis(10)).await.unwrap().is_empty(), "{name}: quiet");

        // A waiting holder wakes on arrival.
        let waiter = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.doorbell("host-a", Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        bus.send(msg(p.clone(), "n", "1")).await.unwrap();
        let rung = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("woke").unwrap().unwrap();
        assert_eq!(rung, vec![p.clone()], "{name}");

        // Several arrivals are named once each; a queue nobody leases rings no one.
        bus.send(msg(Address::Guild(9), "n", "2")).await.unwrap();
        bus.send(msg(p.clone(), "n", "3")).await.unwrap();
        bus.send(msg(p.clone(), "n", "4")).await.unwrap();
        bus.send(msg(Address::Player(301), "n", "5")).await.unwrap();
        let mut rung = bus.doorbell("host-a", Duration::from_secs(5)).await.unwrap();
        rung.sort();
        assert_eq!(rung, vec![p.clone(), g.clone()], "{name}");
        assert!(bus.doorbell("host-b", Duration::from_millis(10)).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_new_lease_holder_hears_of_the_messages_sent_after_it_took_the_queue() {
    for (name, bus) in backends().await {
        let p = Address::Player(310);
        let ttl = Duration::from_secs(30);
        let a = bus.acquire_lease(&p, "host-a", ttl).await.unwrap().expect("free");
        bus.send(msg(p.clone(), "n", "1")).await.unwrap();
        assert_eq!(bus.doorbell("host-a", Duration::from_secs(5)).await.unwrap(), vec![p.clone()], "{name}");

        // The sender has seen host-a hold the queue; the next message must still reach the
        // new holder's doorbell (the old one may hear of it once more, or not).
        bus.release_lease(&a).await.unwrap();
        bus.acquire_lease(&p, "host-b", ttl).await.unwrap().expect("released");
        bus.send(msg(p.clone(), "n", "2")).await.unwrap();
        assert_eq!(bus.doorbell("host-b", Duration::from_secs(5)).await.unwrap(), vec![p.clone()], "{name}");
        bus.doorbell("host-a", Duration::from_millis(10)).await.unwrap();

        // Once nobody holds it, sends ring nobody any more.
        let b = bus.acquire_lease(&p, "host-b", ttl).await.unwrap().expect("held");
        bus.release_lease(&b).await.unwrap();
        bus.send(msg(p.clone(), "n", "3")).await.unwrap();
        bus.doorbell("host-b", Duration::from_millis(10)).await.unwrap();
        bus.send(msg(p.clone(), "n", "4")).await.unwrap();
        assert!(bus.doorbell("host-b", Duration::from_millis(10)).await.unwrap().is_empty(), "{name}");
        assert!(bus.doorbell("host-a", Duration::from_millis(10)).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_dead_letter_is_listed_and_replayed_once() {
    for (name, bus) in backends().await {
        let q = Address::Player(400);
        bus.send(msg(q.clone(), "poison", "x")).await.unwrap();
        let got = bus.read(&q, 1, Duration::from_millis(10)).await.unwrap();
        bus.dead_letter(&q, &got[0], "trapped").await.unwrap();
        assert_eq!(bus.dead_letter_queues().await.unwrap(), vec![q.clone()], "{name}");

        let replayed = bus.replay_dead_letter(&q, &got[0].id).await.unwrap().expect("replayed");
        assert_ne!(replayed, got[0].id, "{name}: a new place in the queue");
        assert_eq!(bus.replay_dead_letter(&q, &got[0].id).await.unwrap(), None, "{name}: only once");
        assert!(bus.dead_letters(&q).await.unwrap().is_empty(), "{name}");
        assert!(bus.dead_letter_queues().await.unwrap().is_empty(), "{name}");
        let again = bus.read(&q, 10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(again.len(), 1, "{name}");
        assert_eq!((again[0].envelope.kind.as_str(), again[0].envelope.body.as_slice()), ("poison", &b"x"[..]));
    }
}

#[tokio::test]
async fn a_blocking_wait_longer_than_a_second_ends_empty_not_in_error() {
    for (name, bus) in backends().await {
        let wait = Duration::from_millis(1500);
        let (read, rung) = tokio::join!(bus.read(&Address::Team(50), 1, wait), bus.doorbell("host-quiet", wait));
        assert!(read.unwrap_or_else(|e| panic!("{name}: {e}")).is_empty(), "{name}");
        assert!(rung.unwrap_or_else(|e| panic!("{name}: {e}")).is_empty(), "{name}");
        // The dedicated connections go back to the pool and serve again.
        bus.send(msg(Address::Team(50), "n", "1")).await.unwrap();
        assert_eq!(bus.read(&Address::Team(50), 1, wait).await.unwrap().len(), 1, "{name}");
    }
}

/// Redis only: processes configured with another number of guild groups are refused.
#[tokio::test]
async fn a_process_with_another_group_count_is_refused() {
    for (name, url) in redis_flavours() {
        let ns = fresh_namespace();
        let tool = redis_bus(url, &ns, 0).await.expect("a tool adopts the count");
        assert_eq!(tool.groups(), warren_bus::DEFAULT_GROUPS, "{name}: nothing fixed yet: the default");
        let first = redis_bus(url, &ns, 64).await.expect("first process fixes 64, the tool did not");
        assert_eq!(first.groups(), 64, "{name}");
        redis_bus(url, &ns, 64).await.expect("same count");
        assert_eq!(redis_bus(url, &ns, 0).await.unwrap().groups(), 64, "{name}: a tool adopts 64");
        match redis_bus(url, &ns, 4096).await {
            Err(BusError::Mismatch(reason)) => assert!(reason.contains("64"), "{name}: {reason}"),
            other => panic!("{name}: expected a mismatch, got {:?}", other.map(|b| b.groups())),
        }
        // Another namespace is another world, with its own count.
        redis_bus(url, &fresh_namespace(), 4096).await.expect("a namespace of its own");
    }
}

#[tokio::test]
async fn a_queues_backlog_counts_what_waits_until_it_is_acknowledged() {
    for (name, bus) in backends().await {
        let (q, other, guild) = (Address::Player(500), Address::Player(501), Address::Guild(7));
        for i in 0..5 {
            bus.send(msg(q.clone(), "m", &i.to_string())).await.unwrap();
        }
        bus.send(msg(guild.clone(), "guild.chat", "hi")).await.unwrap();
        assert_eq!(bus.backlogs(&[q.clone(), other.clone(), guild.clone()]).await.unwrap(), vec![5, 0, 1], "{name}");
        // Delivered but not acknowledged still waits.
        let got = bus.read(&q, 3, Duration::from_millis(10)).await.unwrap();
        assert_eq!(bus.backlogs(std::slice::from_ref(&q)).await.unwrap(), vec![5], "{name}");
        bus.commit(Commit::ack_only(q.clone(), got[0].id.clone())).await.unwrap();
        let commit = Commit {
            owner: q.clone(),
            writes: vec![],
            sends: vec![msg(other.clone(), "reply", "{}")],
            ack: Some(got[1].id.clone()),
            fence: None,
            pushes: vec![],
            request: None,
        };
        bus.commit(commit).await.unwrap();
        assert_eq!(bus.backlogs(&[q.clone(), other.clone()]).await.unwrap(), vec![3, 1], "{name}");
        bus.dead_letter(&q, &got[2], "poison").await.unwrap();
        assert_eq!(
            bus.backlogs(std::slice::from_ref(&q)).await.unwrap(),
            vec![2],
            "{name}: a dead letter waits no more"
        );
        bus.replay_dead_letter(&q, &got[2].id).await.unwrap().expect("replayed");
        assert_eq!(bus.backlogs(std::slice::from_ref(&q)).await.unwrap(), vec![3], "{name}: replayed, it waits again");
    }
}

#[tokio::test]
async fn a_message_keeps_its_hop_count_through_send_commit_and_relay() {
    for (name, bus) in backends().await {
        let (a, b) = (Address::Player(600), Address::Player(601));
        bus.send(Outbound { hops: 3, ..msg(a.clone(), "m", "{}") }).await.unwrap();
        let d = bus.read(&a, 1, Duration::from_millis(10)).await.unwrap().remove(0);
        assert_eq!(d.envelope.hops, 3, "{name}");
        let commit = Commit {
            owner: a.clone(),
            writes: vec![],
            sends: vec![Outbound { hops: d.envelope.hops + 1, ..msg(b.clone(), "next", "{}") }],
            ack: Some(d.id),
            fence: None,
            pushes: vec![],
            request: None,
        };
        bus.commit(commit).await.unwrap();
        let next = bus.read(&b, 1, Duration::from_millis(10)).await.unwrap();
        assert_eq!(next[0].envelope.hops, 4, "{name}");
    }
}

#[tokio::test]
async fn a_commit_fanning_out_to_many_queues_delivers_each_once_in_order_and_rings_their_holders() {
    for (name, bus) in backends().await {
        let owner = Address::Guild(70);
        let members: Vec<Address> = (700..703).map(Address::Player).collect();
        bus.acquire_lease(&members[0], "host-m", Duration::from_secs(30)).await.unwrap().expect("free");
        // 150 messages: more than one relay batch, interleaved over three queues.
        let sends: Vec<Outbound> = (0..150).map(|i| msg(members[i % 3].clone(), "chat", &i.to_string())).collect();
        let commit = Commit {
            owner: owner.clone(),
            writes: vec![],
            sends,
            ack: None,
            fence: None,
            pushes: vec![],
            request: None,
        };
        bus.commit(commit).await.unwrap();
        for (m, member) in members.iter().enumerate() {
            let got = bus.read(member, 1000, Duration::from_millis(10)).await.unwrap();
            let bodies: Vec<String> =
                got.iter().map(|d| String::from_utf8_lossy(&d.envelope.body).into_owned()).collect();
            let expected: Vec<String> = (0..150).filter(|i| i % 3 == m).map(|i| i.to_string()).collect();
            assert_eq!(bodies, expected, "{name}: member {m} gets its messages once, in order");
        }
        let rung = bus.doorbell("host-m", Duration::from_secs(5)).await.unwrap();
        assert_eq!(rung, vec![members[0].clone()], "{name}: the holder of a member's queue is rung");
    }
}

#[tokio::test]
async fn a_queue_keeps_only_its_newest_dead_letters() {
    for (name, bus) in backends().await {
        let q = Address::Player(800);
        let n = warren_bus::MAX_DEAD_LETTERS + 150;
        for i in 0..n {
            bus.send(msg(q.clone(), "poison", &i.to_string())).await.unwrap();
        }
        let got = bus.read(&q, n, Duration::from_millis(10)).await.unwrap();
        assert_eq!(got.len(), n, "{name}");
        for d in &got {
            bus.dead_letter(&q, d, "trapped").await.unwrap();
        }
        let dead = bus.dead_letters(&q).await.unwrap();
        // Redis trims whole stream nodes: a few more than the cap may stay.
        assert!(
            (warren_bus::MAX_DEAD_LETTERS..warren_bus::MAX_DEAD_LETTERS + 150).contains(&dead.len()),
            "{name}: {} kept",
            dead.len()
        );
        let last = String::from_utf8_lossy(&dead.last().expect("some").envelope.body).into_owned();
        assert_eq!(last, (n - 1).to_string(), "{name}: the newest is kept");
    }
}
