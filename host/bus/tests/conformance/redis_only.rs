//! The promises only the Redis backend can be asked about: what lies under the bus
//! (relay duplicates, trims, stray entries), namespaces, and Redis Cluster.

use super::*;

/// Appends the only entry of stream `key` once more, exactly as it is.
async fn append_again(conn: &mut impl redis::aio::ConnectionLike, key: &str) {
    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(key).arg("-").arg("+").query_async(conn).await.unwrap();
    assert_eq!(entries.ids.len(), 1);
    let mut xadd = redis::cmd("XADD");
    xadd.arg(key).arg("*");
    for (k, v) in &entries.ids[0].map {
        xadd.arg(k).arg(redis::from_redis_value::<Vec<u8>>(v.clone()).unwrap());
    }
    let _: String = xadd.query_async(conn).await.unwrap();
}

/// A connection to one of the suite's Redis flavours, for looking under the bus.
enum RawConnection {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl RawConnection {
    /// A connection to the suite's Redis flavour `name` at `url`.
    async fn open(name: &str, url: &str) -> RawConnection {
        if name == "cluster" {
            let client = redis::cluster::ClusterClient::new(vec![url]).unwrap();
            RawConnection::Cluster(client.get_async_connection().await.unwrap())
        } else {
            RawConnection::Single(redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap())
        }
    }
}

impl redis::aio::ConnectionLike for RawConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            RawConnection::Single(c) => c.req_packed_command(cmd),
            RawConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            RawConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RawConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RawConnection::Single(c) => c.get_db(),
            RawConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// Player 1 sends player 2 a gift through its outbox; the relayed entry is then appended
/// once more, exactly as the relay wrote it (a crash between the relay's append and its
/// outbox delete). Returns both copies, as `bus` reads them.
async fn a_gift_relayed_twice(bus: &Bus, name: &str, url: &str, ns: &str) -> Vec<warren_bus::Delivery> {
    relayed_twice(bus, name, url, ns, "gift", "1").await
}

/// Player 1 sends player 2 a message of `kind` with `body` through its outbox, and the
/// relayed entry is appended once more, as in [`a_gift_relayed_twice`]. Returns both
/// copies, as `bus` reads them.
async fn relayed_twice(
    bus: &Bus,
    name: &str,
    url: &str,
    ns: &str,
    kind: &str,
    body: &str,
) -> Vec<warren_bus::Delivery> {
    let (a, b) = (Address::Player(1), Address::Player(2));
    let send = Commit {
        owner: a,
        writes: vec![],
        sends: vec![msg(b.clone(), kind, body)],
        ack: None,
        fence: None,
        pushes: vec![],
        request: None,
    };
    bus.commit(send).await.unwrap();
    // The namespace prefixes the key outside its hash tag.
    append_again(&mut RawConnection::open(name, url).await, &format!("{ns}:{{p:2}}:q")).await;
    let got = bus.read(&b, 10, Duration::from_millis(10)).await.unwrap();
    assert_eq!(got.len(), 2, "{name}: the duplicate is in the queue");
    got
}

/// Commits both copies through `committer`, each writing how many were applied so far:
/// the first applies, the second is reported as applied already and changes nothing.
async fn commit_both_copies(committer: &Bus, name: &str, copies: Vec<warren_bus::Delivery>) {
    let b = Address::Player(2);
    for (n, d) in copies.into_iter().enumerate() {
        let applied = n + 1;
        let commit = Commit {
            owner: b.clone(),
            writes: vec![("applied".into(), Some(applied.to_string().into_bytes()))],
            sends: vec![],
            ack: Some(d.id),
            fence: None,
            pushes: vec![],
            request: None,
        };
        let result = committer.commit(commit).await;
        if applied == 1 {
            result.unwrap();
        } else {
            // The caller is told the copy was applied already, so it applies nothing.
            assert!(matches!(result, Err(BusError::NotPending { .. })), "{name}: {result:?}");
        }
    }
    let state = committer.load_state(&b).await.unwrap();
    assert_eq!(state.get("applied").unwrap(), b"1", "{name}: the second copy applied nothing");
    assert!(committer.read_pending(&b).await.unwrap().is_empty(), "{name}: both copies acknowledged");
}

/// Redis only: the relay of an outbox may append a message twice (a crash between the
/// append and the outbox delete); the receiver's commit applies it once.
#[tokio::test]
async fn a_message_relayed_twice_is_applied_once() {
    for (name, url) in redis_flavours() {
        let ns = fresh_namespace();
        let bus = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let copies = a_gift_relayed_twice(&bus, name, url, &ns).await;
        commit_both_copies(&bus, name, copies).await;
    }
}

/// Redis only: a relayed message's copies are told apart by the unique id they carry even
/// when the bus that commits them is not the one that read them (the commit then reads the
/// id from the queue itself).
#[tokio::test]
async fn a_message_relayed_twice_is_applied_once_by_a_bus_that_did_not_read_it() {
    for (name, url) in redis_flavours() {
        let ns = fresh_namespace();
        let bus = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let other = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let copies = a_gift_relayed_twice(&bus, name, url, &ns).await;
        commit_both_copies(&other, name, copies).await;
    }
}

/// Redis only: a frame for the client relayed twice from an outbox (a crash between the
/// relay's append and its outbox delete) is logged once when its owner takes the frames,
/// both copies in one call or each in its own, and both copies are acknowledged.
#[tokio::test]
async fn a_frame_relayed_twice_is_pushed_once() {
    for (name, url) in redis_flavours() {
        for together in [true, false] {
            let ns = fresh_namespace();
            let bus = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
            let b = Address::Player(2);
            let lease = bus.acquire_lease(&b, "host-a", Duration::from_secs(30)).await.unwrap().expect("free");
            let copies = relayed_twice(&bus, name, url, &ns, "$frame", "you got mail").await;
            let ids: Vec<_> = copies.iter().map(|d| d.id.clone()).collect();
            let taken = if together {
                bus.take_pushes(&b, lease.token, &ids).await.unwrap()
            } else {
                let first = bus.take_pushes(&b, lease.token, &ids[..1]).await.unwrap();
                let second = bus.take_pushes(&b, lease.token, &ids[1..]).await.unwrap();
                assert!(second.is_empty(), "{name}: the later copy is not logged again: {second:?}");
                first
            };
            let once = vec![warren_bus::Push { seq: 1, frame: b"you got mail".to_vec() }];
            assert_eq!(taken, once, "{name} (together: {together}): logged once");
            assert_eq!(bus.pushes(&b, 0).await.unwrap().pushes, once, "{name}");
            assert_eq!(bus.pushes(&b, 0).await.unwrap().last, 1, "{name}");
            assert!(bus.read_pending(&b).await.unwrap().is_empty(), "{name}: both copies acknowledged");
        }
    }
}

/// Redis only: acknowledged messages do not pile up in a queue's stream (commits trim them
/// now and then), and trimming never takes a message still pending.
#[tokio::test]
async fn acknowledged_messages_are_trimmed_and_pending_ones_kept() {
    for (name, url) in redis_flavours() {
        let ns = fresh_namespace();
        let bus = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let p = Address::Player(7);
        let key = format!("{ns}:{{p:7}}:q");
        let mut conn = RawConnection::open(name, url).await;
        let handle_all = async |keep: Option<&[u8]>| {
            let mut kept = Vec::new();
            loop {
                let got = bus.read(&p, 50, Duration::from_millis(10)).await.unwrap();
                if got.is_empty() {
                    return kept;
                }
                for d in got {
                    if Some(d.envelope.body.as_slice()) == keep {
                        kept.push(d.id);
                    } else {
                        bus.commit(Commit::ack_only(p.clone(), d.id)).await.unwrap();
                    }
                }
            }
        };
        for i in 0..400 {
            bus.send(msg(p.clone(), "n", &i.to_string())).await.unwrap();
        }
        // All handled but message 150, left pending.
        let kept = handle_all(Some(b"150")).await;
        let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await.unwrap();
        assert!((250..=350).contains(&len), "{name}: entries before the pending one trimmed, {len} left");
        let again = bus.read_pending(&p).await.unwrap();
        assert_eq!(again.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), kept, "{name}: the pending one kept");
        assert_eq!(again[0].envelope.body, b"150", "{name}");
        bus.commit(Commit::ack_only(p.clone(), again[0].id.clone())).await.unwrap();

        // Nothing pending any more: the next commits trim what is left before them.
        for i in 0..40 {
            bus.send(msg(p.clone(), "n", &i.to_string())).await.unwrap();
        }
        assert!(handle_all(None).await.is_empty());
        let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await.unwrap();
        assert!(len <= 100, "{name}: acknowledged entries trimmed, {len} left");
        assert!(bus.read_pending(&p).await.unwrap().is_empty(), "{name}");
    }
}

/// Redis only: a server that lost its scripts (restarted, or `SCRIPT FLUSH`) is given the
/// commit script again by the next commit, which then lands once.
#[tokio::test]
async fn a_commit_after_the_server_lost_its_scripts_lands() {
    for (name, url) in redis_flavours() {
        if name == "cluster" {
            continue; // A flush there reaches one node; the code path is the same.
        }
        let ns = fresh_namespace();
        let bus = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let p = Address::Player(9);
        let mut conn = RawConnection::open(name, url).await;
        for body in ["1", "2"] {
            bus.send(msg(p.clone(), "n", body)).await.unwrap();
            let got = bus.read(&p, 10, Duration::from_millis(10)).await.unwrap();
            let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
            let writes = vec![("k".to_owned(), Some(body.as_bytes().to_vec()))];
            bus.commit(Commit { writes, ack: Some(got[0].id.clone()), ..Commit::of(p.clone()) }).await.unwrap();
            assert_eq!(bus.load_state(&p).await.unwrap()["k"], body.as_bytes(), "{name}");
        }
        assert!(bus.read_pending(&p).await.unwrap().is_empty(), "{name}: both acknowledged");
    }
}

/// Redis only: an entry in a queue that is not a Warren message is never handed out, and
/// is dropped rather than left pending (it would keep acknowledged messages from being
/// trimmed past it).
#[tokio::test]
async fn an_entry_that_is_not_a_message_is_dropped() {
    for (name, url) in redis_flavours() {
        let ns = fresh_namespace();
        let bus = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let p = Address::Player(8);
        bus.send(msg(p.clone(), "n", "1")).await.unwrap();
        let key = format!("{ns}:{{p:8}}:q");
        let mut conn = RawConnection::open(name, url).await;
        let _: String = redis::cmd("XADD").arg(&key).arg("*").arg("x").arg("y").query_async(&mut conn).await.unwrap();
        bus.send(msg(p.clone(), "n", "2")).await.unwrap();

        let got = bus.read(&p, 10, Duration::from_millis(10)).await.unwrap();
        let bodies: Vec<_> = got.iter().map(|d| d.envelope.body.clone()).collect();
        assert_eq!(bodies, vec![b"1".to_vec(), b"2".to_vec()], "{name}");
        assert_eq!(bus.read_pending(&p).await.unwrap().len(), 2, "{name}: only the messages are pending");
        let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await.unwrap();
        assert_eq!(len, 2, "{name}: the other entry is gone");
    }
}

/// Redis only: namespaces keep buses on one server apart.
#[tokio::test]
async fn buses_in_different_namespaces_do_not_see_each_other() {
    for (name, url) in redis_flavours() {
        let (one, two) = (fresh_namespace(), fresh_namespace());
        let a = redis_bus(url, &one, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let a_too = redis_bus(url, &one, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let b = redis_bus(url, &two, warren_bus::DEFAULT_GROUPS).await.unwrap();
        let mut heard_by_b = b.module_announcements();
        let p = Address::Player(5);
        a.send(msg(p.clone(), "n", "in one")).await.unwrap();
        a.publish_module("guild", b"v1".to_vec()).await.unwrap();
        assert!(b.read(&p, 10, Duration::from_millis(10)).await.unwrap().is_empty(), "{name}");
        assert_eq!(b.current_module("guild").await.unwrap(), None, "{name}");
        assert_eq!(b.account("ann").await.unwrap(), a.account("ann").await.unwrap(), "{name}: ids restart");
        assert_eq!(a_too.read(&p, 10, Duration::from_millis(10)).await.unwrap().len(), 1, "{name}: same namespace");
        // B hears its own announcement first: A's, made before, went to another channel.
        let own = b.publish_module("guild", b"v2".to_vec()).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), heard_by_b.recv()).await.expect("heard").unwrap();
        assert_eq!(first.digest, own, "{name}: announcements stay in their namespace");
    }
    for bad in ["", "a{b", "a}b", "a b"] {
        match redis_bus(&redis().url, bad, 1).await {
            Err(BusError::Unavailable(reason)) => assert!(reason.contains("namespace"), "{reason}"),
            other => panic!("namespace {bad:?}: expected a refusal, got {:?}", other.map(|b| b.groups())),
        }
    }
}

/// The node (by port) serving each slot of the suite's cluster.
fn cluster_slot_owners() -> Vec<(i64, i64, i64)> {
    let mut conn = redis::Client::open(cluster().url.as_str()).unwrap().get_connection().unwrap();
    let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).unwrap();
    slots
        .into_iter()
        .map(|range| {
            let start: i64 = redis::from_redis_value(range[0].clone()).unwrap();
            let end: i64 = redis::from_redis_value(range[1].clone()).unwrap();
            let master: Vec<redis::Value> = redis::from_redis_value(range[2].clone()).unwrap();
            (start, end, redis::from_redis_value(master[1].clone()).unwrap())
        })
        .collect()
}

/// The port of the cluster node serving `key`, and its slot.
fn cluster_node_of(key: &str) -> (i64, i64) {
    let mut conn = redis::Client::open(cluster().url.as_str()).unwrap().get_connection().unwrap();
    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut conn).unwrap();
    let owners = cluster_slot_owners();
    let port = owners.iter().find(|(start, end, _)| (*start..=*end).contains(&slot)).expect("slot served").2;
    (port, slot)
}

/// Cluster only: an owner's keys share one slot (the namespace does not move them), and a
/// commit's message reaches an owner served by another node.
#[tokio::test]
async fn on_a_cluster_a_commit_reaches_an_owner_on_another_node() {
    let ns = fresh_namespace();
    let bus = redis_bus(&cluster().url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
    let a = Address::Player(1);
    let (node_a, slot_a) = cluster_node_of(&format!("{ns}:{{p:1}}:q"));
    for suffix in ["s", "o", "seen", "seq", "lease", "fence", "dead"] {
        assert_eq!(cluster_node_of(&format!("{ns}:{{p:1}}:{suffix}")).1, slot_a, "{suffix}");
    }
    assert_eq!(cluster_node_of("{p:1}:q").1, slot_a, "the namespace is outside the hash tag");
    let b = (2..1000)
        .map(Address::Player)
        .find(|p| cluster_node_of(&format!("{ns}:{}:q", p.tag())).0 != node_a)
        .expect("a player served by another node");

    bus.send(msg(a.clone(), "hit", "1")).await.unwrap();
    let d = bus.read(&a, 1, Duration::from_millis(10)).await.unwrap().remove(0);
    let commit = Commit {
        owner: a.clone(),
        writes: vec![("hp".into(), Some(b"9".to_vec()))],
        sends: vec![msg(b.clone(), "hello", "{}")],
        ack: Some(d.id),
        fence: None,
        pushes: vec![],
        request: None,
    };
    bus.commit(commit).await.unwrap();
    let got = bus.read(&b, 10, Duration::from_millis(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.kind, "hello");
    assert_eq!(bus.load_state(&a).await.unwrap().get("hp").unwrap(), b"9");
}

/// Cluster only: any node, or a list of seeds, finds the cluster; an announcement made
/// through one node reaches a bus subscribed through another; a database other than 0 and
/// a seed list naming a single Redis are refused with the reason.
#[tokio::test]
async fn a_cluster_is_found_from_any_node_or_a_seed_list() {
    let ns = fresh_namespace();
    let c = cluster();
    let from_last = redis_bus(&c.urls[2], &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
    let from_seeds = redis_bus(&c.seeds(), &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
    let mut heard = from_seeds.module_announcements();
    let digest = from_last.publish_module("battle", b"room".to_vec()).await.unwrap();
    let a = tokio::time::timeout(Duration::from_secs(10), heard.recv()).await.expect("announced").unwrap();
    assert_eq!((a.role.as_str(), a.digest.as_str()), ("battle", digest.as_str()));
    assert_eq!(from_seeds.module(&digest).await.unwrap(), b"room");

    let p = Address::Player(12);
    from_last.send(msg(p.clone(), "n", "x")).await.unwrap();
    assert_eq!(from_seeds.read(&p, 10, Duration::from_millis(10)).await.unwrap().len(), 1);

    match Bus::redis(&format!("{}/1", c.url)).await {
        Err(BusError::Unavailable(reason)) => assert!(reason.contains("database 0"), "{reason}"),
        other => panic!("expected a refusal of database 1, got {:?}", other.map(|b| b.groups())),
    }
    let single = &redis().url;
    match Bus::redis(&format!("{single},{single}")).await {
        Err(BusError::Unavailable(reason)) => assert!(reason.contains("not a Redis Cluster"), "{reason}"),
        other => panic!("expected a refusal of a seed list, got {:?}", other.map(|b| b.groups())),
    }
}

/// Redis only: the keys of ids, registries, reports and the secret are in the namespace, as
/// documented (operators and other tools read them), and a role's reports share a slot
/// with its members on a cluster (one script changes both).
#[tokio::test]
async fn coordination_keys_are_namespaced_and_reports_share_their_members_slot() {
    for (name, url) in redis_flavours() {
        let ns = fresh_namespace();
        let bus = redis_bus(url, &ns, warren_bus::DEFAULT_GROUPS).await.unwrap();
        bus.next_id("rooms").await.unwrap();
        bus.register("battles", 5, "app-a").await.unwrap();
        bus.report("battleapp", "app-a", b"{}", Duration::from_secs(30)).await.unwrap();
        let secret = bus.cluster_secret().await.unwrap();
        let mut conn = RawConnection::open(name, url).await;
        let id: u64 = redis::cmd("GET").arg(format!("{ns}:{{ids}}:rooms")).query_async(&mut conn).await.unwrap();
        assert_eq!(id, 1, "{name}");
        let app: String =
            redis::cmd("HGET").arg(format!("{ns}:{{registry}}:battles")).arg(5).query_async(&mut conn).await.unwrap();
        assert_eq!(app, "app-a", "{name}");
        let report: Vec<u8> = redis::cmd("HGET")
            .arg(format!("{ns}:{{members}}:battleapp:reports"))
            .arg("app-a")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(report, b"{}", "{name}");
        let stored: Vec<u8> =
            redis::cmd("GET").arg(format!("{ns}:{{cluster}}:secret")).query_async(&mut conn).await.unwrap();
        assert_eq!(stored, secret, "{name}");
    }
    let slot = |key: &str| cluster_node_of(key).1;
    assert_eq!(slot("t:{members}:battleapp"), slot("t:{members}:battleapp:reports"));
}
