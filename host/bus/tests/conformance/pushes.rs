//! What reaches a player's screen and what a client's retry finds, on every backend: the
//! push log (pushes from commits and frames taken from the queue, numbered per owner,
//! trimmed by the client's acknowledgement, capped), the window of requests (applied once,
//! resolved, voided) and the lease taken over from a holder known dead.

use super::*;
use warren_bus::{MessageId, Push, PushLog, Request};

/// A commit of `owner` that logs `frames` and does nothing else.
fn pushing(owner: &Address, frames: &[&str]) -> Commit {
    Commit { pushes: frames.iter().map(|f| f.as_bytes().to_vec()).collect(), ..Commit::of(owner.clone()) }
}

/// A commit of `owner` answering request `key`, attempt `attempt`, with `outcome`, that
/// writes `hp`.
fn answering(owner: &Address, key: &str, attempt: u64, outcome: &str, hp: &str) -> Commit {
    Commit {
        writes: vec![("hp".into(), Some(hp.as_bytes().to_vec()))],
        request: Some(Request { key: key.into(), attempt, outcome: outcome.as_bytes().to_vec() }),
        ..Commit::of(owner.clone())
    }
}

/// The pushes numbered from `first`, one per frame.
fn numbered(first: u64, frames: &[&str]) -> Vec<Push> {
    frames.iter().zip(first..).map(|(f, seq)| Push { seq, frame: f.as_bytes().to_vec() }).collect()
}

/// Sorted, for comparing with [`Bus::requests`], which promises no order.
fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

/// A commit's pushes are numbered 1, 2, 3, ... per owner, consecutively across commits; the
/// receipt names the last; the log lists them oldest first after the number asked.
#[tokio::test]
async fn a_commits_pushes_are_numbered_consecutively_per_owner() {
    for (name, bus) in backends().await {
        let (p, other) = (Address::Player(900), Address::Player(901));
        assert_eq!(bus.pushes(&p, 0).await.unwrap(), PushLog::default(), "{name}: nothing logged yet");
        assert_eq!(bus.commit(pushing(&p, &["a", "b"])).await.unwrap().last_push, 2, "{name}");
        assert_eq!(bus.commit(pushing(&p, &[])).await.unwrap().last_push, 0, "{name}: no pushes, no number");
        assert_eq!(bus.commit(pushing(&p, &["c"])).await.unwrap().last_push, 3, "{name}");
        assert_eq!(bus.commit(pushing(&other, &["x"])).await.unwrap().last_push, 1, "{name}: owners apart");

        let log = bus.pushes(&p, 0).await.unwrap();
        assert_eq!(log, PushLog { pushes: numbered(1, &["a", "b", "c"]), last: 3, acked: 0 }, "{name}");
        let log = bus.pushes(&p, 2).await.unwrap();
        assert_eq!(log, PushLog { pushes: numbered(3, &["c"]), last: 3, acked: 0 }, "{name}: after 2");
        assert!(bus.pushes(&p, 3).await.unwrap().pushes.is_empty(), "{name}: nothing after the last");
        assert_eq!(bus.pushes(&other, 0).await.unwrap().pushes, numbered(1, &["x"]), "{name}");
    }
}

/// Frames taken from the owner's queue are acknowledged and logged in one step, in the
/// order asked, numbered after the commits' pushes, each with its message's body; a message
/// no longer pending is skipped, so taking the same ids again logs nothing, and the
/// backlog counts the taken messages no more.
#[tokio::test]
async fn taken_frames_are_logged_once_in_order_and_leave_the_backlog() {
    for (name, bus) in backends().await {
        let p = Address::Player(910);
        let lease = bus.acquire_lease(&p, "host-a", Duration::from_secs(30)).await.unwrap().expect("free");
        for i in 0..3 {
            bus.send(msg(p.clone(), "$frame", &format!("frame {i}"))).await.unwrap();
        }
        bus.send(msg(p.clone(), "n", "not a frame")).await.unwrap();
        let got = bus.read(&p, 10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(got.len(), 4, "{name}");
        assert_eq!(bus.backlogs(std::slice::from_ref(&p)).await.unwrap(), vec![4], "{name}");
        assert_eq!(bus.commit(pushing(&p, &["from a commit"])).await.unwrap().last_push, 1, "{name}");

        let ids: Vec<MessageId> = got[..3].iter().map(|d| d.id.clone()).collect();
        let taken = bus.take_pushes(&p, lease.token, &ids).await.unwrap();
        assert_eq!(taken, numbered(2, &["frame 0", "frame 1", "frame 2"]), "{name}");
        assert_eq!(bus.backlogs(std::slice::from_ref(&p)).await.unwrap(), vec![1], "{name}: taken, they wait no more");
        let pending = bus.read_pending(&p).await.unwrap();
        assert_eq!(pending.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), vec![got[3].id.clone()], "{name}");

        // Again (a retry after a lost reply): nothing is pending, nothing is logged twice.
        assert!(bus.take_pushes(&p, lease.token, &ids).await.unwrap().is_empty(), "{name}: only once");
        bus.commit(Commit::ack_only(p.clone(), got[3].id.clone())).await.unwrap();
        let late = [got[3].id.clone()];
        assert!(bus.take_pushes(&p, lease.token, &late).await.unwrap().is_empty(), "{name}: acknowledged before");
        let log = bus.pushes(&p, 0).await.unwrap();
        assert_eq!(
            log,
            PushLog { pushes: numbered(1, &["from a commit", "frame 0", "frame 1", "frame 2"]), last: 4, acked: 0 },
            "{name}"
        );
        assert_eq!(bus.backlogs(std::slice::from_ref(&p)).await.unwrap(), vec![0], "{name}");
    }
}

/// Frames taken with a lease token that is no longer the owner's current one are refused
/// whole: nothing is logged and the messages stay pending, for the new owner to take.
#[tokio::test]
async fn a_stale_owner_takes_no_frames() {
    for (name, bus) in backends().await {
        let p = Address::Player(920);
        let ttl = Duration::from_secs(30);
        let a = bus.acquire_lease(&p, "host-a", ttl).await.unwrap().expect("free");
        bus.send(msg(p.clone(), "$frame", "hello")).await.unwrap();
        let ids: Vec<MessageId> =
            bus.read(&p, 10, Duration::from_millis(10)).await.unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), 1, "{name}");
        bus.release_lease(&a).await.unwrap();
        let refused = bus.take_pushes(&p, a.token, &ids).await;
        assert!(matches!(refused, Err(BusError::StaleOwner { .. })), "{name}: nobody holds it: {refused:?}");

        let b = bus.acquire_lease(&p, "host-b", ttl).await.unwrap().expect("released");
        let refused = bus.take_pushes(&p, a.token, &ids).await;
        assert!(matches!(refused, Err(BusError::StaleOwner { .. })), "{name}: another holds it: {refused:?}");
        assert_eq!(bus.pushes(&p, 0).await.unwrap(), PushLog::default(), "{name}: nothing logged");
        assert_eq!(bus.read_pending(&p).await.unwrap().len(), 1, "{name}: still pending");
        assert_eq!(bus.backlogs(std::slice::from_ref(&p)).await.unwrap(), vec![1], "{name}: still waiting");

        assert_eq!(bus.take_pushes(&p, b.token, &ids).await.unwrap(), numbered(1, &["hello"]), "{name}");
    }
}

/// Pushes the client acknowledged leave the log; the acknowledged mark only moves forward
/// and never past the last push, and the numbering goes on after a trim.
#[tokio::test]
async fn acknowledged_pushes_leave_the_log_and_the_mark_only_moves_forward() {
    for (name, bus) in backends().await {
        let p = Address::Player(930);
        bus.trim_pushes(&p, 10).await.unwrap();
        assert_eq!(bus.pushes(&p, 0).await.unwrap(), PushLog::default(), "{name}: no mark past no push");
        bus.commit(pushing(&p, &["1", "2", "3", "4", "5"])).await.unwrap();

        bus.trim_pushes(&p, 3).await.unwrap();
        let trimmed = PushLog { pushes: numbered(4, &["4", "5"]), last: 5, acked: 3 };
        assert_eq!(bus.pushes(&p, 0).await.unwrap(), trimmed, "{name}");
        bus.trim_pushes(&p, 3).await.unwrap();
        bus.trim_pushes(&p, 1).await.unwrap();
        assert_eq!(bus.pushes(&p, 0).await.unwrap(), trimmed, "{name}: idempotent, and an older ack changes nothing");

        bus.trim_pushes(&p, 100).await.unwrap();
        assert_eq!(bus.pushes(&p, 0).await.unwrap(), PushLog { pushes: vec![], last: 5, acked: 5 }, "{name}");
        assert_eq!(bus.commit(pushing(&p, &["6"])).await.unwrap().last_push, 6, "{name}: numbering goes on");
        assert_eq!(
            bus.pushes(&p, 0).await.unwrap(),
            PushLog { pushes: numbered(6, &["6"]), last: 6, acked: 5 },
            "{name}: the mark stayed at the last push there was"
        );
    }
}

/// A client that never acknowledges does not grow the log without bound: it keeps the
/// newest [`warren_bus::MAX_UNACKED_PUSHES`] (Redis trims by whole stream nodes, so a few
/// more may stay), and the last number still counts every push.
#[tokio::test]
async fn a_push_log_keeps_only_its_newest_pushes() {
    for (name, bus) in backends().await {
        let p = Address::Player(940);
        let cap = warren_bus::MAX_UNACKED_PUSHES;
        let n = cap + 150;
        let frames: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        for (batch, chunk) in frames.chunks(50).enumerate() {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let receipt = bus.commit(pushing(&p, &chunk)).await.unwrap();
            assert_eq!(receipt.last_push as usize, (batch + 1) * 50, "{name}");
        }
        let log = bus.pushes(&p, 0).await.unwrap();
        assert_eq!((log.last, log.acked), (n as u64, 0), "{name}");
        let kept = log.pushes.len();
        if name == "embedded" {
            assert_eq!(kept, cap, "{name}");
        }
        assert!((cap..cap + 150).contains(&kept), "{name}: {kept} kept");
        let first = (n - kept + 1) as u64;
        let expected: Vec<&str> = frames[n - kept..].iter().map(String::as_str).collect();
        assert_eq!(log.pushes, numbered(first, &expected), "{name}: the newest kept, in order");
    }
}

/// A commit answering a request records it with its outcome; any later commit of the same
/// request, whatever its attempt, is refused as applied and applies nothing: no write, no
/// send, no push, no ack.
#[tokio::test]
async fn a_request_is_applied_once_and_its_outcome_kept() {
    for (name, bus) in backends().await {
        let (p, other) = (Address::Player(950), Address::Player(951));
        assert!(bus.requests(&p).await.unwrap().is_empty(), "{name}");
        let first = Commit {
            sends: vec![msg(other.clone(), "n", "once")],
            pushes: vec![b"reply".to_vec()],
            ..answering(&p, "buy-1", 1, "bought", "1")
        };
        assert_eq!(bus.commit(first).await.unwrap().last_push, 1, "{name}");
        assert_eq!(bus.requests(&p).await.unwrap(), vec!["buy-1"], "{name}");
        assert_eq!(bus.request_outcome(&p, "buy-1").await.unwrap(), Some(b"bought".to_vec()), "{name}");
        assert_eq!(bus.request_outcome(&p, "buy-2").await.unwrap(), None, "{name}: never asked");
        assert_eq!(bus.read(&other, 10, Duration::from_millis(10)).await.unwrap().len(), 1, "{name}");

        bus.send(msg(p.clone(), "n", "1")).await.unwrap();
        let d = bus.read(&p, 1, Duration::from_millis(10)).await.unwrap().remove(0);
        for attempt in [2, 1] {
            let retry = Commit {
                sends: vec![msg(other.clone(), "n", "twice")],
                pushes: vec![b"reply again".to_vec()],
                ack: Some(d.id.clone()),
                ..answering(&p, "buy-1", attempt, "bought again", "2")
            };
            match bus.commit(retry).await {
                Err(BusError::RequestDecided { key, applied: true, .. }) => assert_eq!(key, "buy-1", "{name}"),
                other => panic!("{name}: attempt {attempt}: expected a refusal as applied, got {other:?}"),
            }
        }
        assert_eq!(bus.load_state(&p).await.unwrap().get("hp").unwrap(), b"1", "{name}: nothing written");
        assert!(bus.read(&other, 10, Duration::from_millis(10)).await.unwrap().is_empty(), "{name}: nothing sent");
        assert_eq!(bus.pushes(&p, 0).await.unwrap().last, 1, "{name}: nothing pushed");
        assert_eq!(bus.read_pending(&p).await.unwrap().len(), 1, "{name}: nothing acknowledged");
        assert_eq!(bus.request_outcome(&p, "buy-1").await.unwrap(), Some(b"bought".to_vec()), "{name}: kept");
    }
}

/// Resolving an applied request, by any attempt, gives its outcome and changes nothing:
/// it stays listed and a later commit of it is still refused as applied.
#[tokio::test]
async fn resolving_an_applied_request_gives_its_outcome() {
    for (name, bus) in backends().await {
        let p = Address::Player(960);
        bus.commit(answering(&p, "k", 1, "done", "1")).await.unwrap();
        assert_eq!(bus.resolve(&p, "k", 1).await.unwrap(), Some(b"done".to_vec()), "{name}");
        assert_eq!(bus.resolve(&p, "k", 7).await.unwrap(), Some(b"done".to_vec()), "{name}: any attempt");
        assert_eq!(bus.requests(&p).await.unwrap(), vec!["k"], "{name}");
        let again = bus.commit(answering(&p, "k", 7, "other", "2")).await;
        assert!(matches!(again, Err(BusError::RequestDecided { applied: true, .. })), "{name}: {again:?}");
        assert_eq!(bus.load_state(&p).await.unwrap().get("hp").unwrap(), b"1", "{name}");
    }
}

/// Resolving a request that was not applied says so and voids that attempt, for good: a
/// commit of it arriving later is refused as void and applies nothing, while a new attempt
/// of the request goes through; a voided request is not listed as applied.
#[tokio::test]
async fn resolving_an_unknown_request_voids_that_attempt_only() {
    for (name, bus) in backends().await {
        let p = Address::Player(970);
        assert_eq!(bus.resolve(&p, "k", 1).await.unwrap(), None, "{name}: not applied");
        assert_eq!(bus.resolve(&p, "k", 1).await.unwrap(), None, "{name}: final");
        assert!(bus.requests(&p).await.unwrap().is_empty(), "{name}: a void request is not listed");
        assert_eq!(bus.request_outcome(&p, "k").await.unwrap(), None, "{name}");

        match bus.commit(answering(&p, "k", 1, "late", "late")).await {
            Err(BusError::RequestDecided { key, applied: false, .. }) => assert_eq!(key, "k", "{name}"),
            other => panic!("{name}: expected a refusal as void, got {other:?}"),
        }
        assert!(bus.load_state(&p).await.unwrap().is_empty(), "{name}: nothing applied");
        assert!(bus.requests(&p).await.unwrap().is_empty(), "{name}");

        bus.commit(answering(&p, "k", 2, "second", "2")).await.unwrap();
        assert_eq!(bus.load_state(&p).await.unwrap().get("hp").unwrap(), b"2", "{name}: a new attempt applies");
        assert_eq!(bus.requests(&p).await.unwrap(), vec!["k"], "{name}");
        assert_eq!(bus.request_outcome(&p, "k").await.unwrap(), Some(b"second".to_vec()), "{name}");
        assert_eq!(bus.resolve(&p, "k", 1).await.unwrap(), Some(b"second".to_vec()), "{name}: applied by another");
        let late = bus.commit(answering(&p, "k", 1, "late", "late")).await;
        assert!(matches!(late, Err(BusError::RequestDecided { applied: true, .. })), "{name}: {late:?}");
        assert_eq!(bus.load_state(&p).await.unwrap().get("hp").unwrap(), b"2", "{name}");
    }
}

/// An owner remembers the newest [`warren_bus::MAX_REQUESTS`] requests: older ones leave
/// the list and their outcomes are forgotten.
#[tokio::test]
async fn an_owner_remembers_only_its_newest_requests() {
    for (name, bus) in backends().await {
        let p = Address::Player(980);
        let n = warren_bus::MAX_REQUESTS + 3;
        let keys: Vec<String> = (0..n).map(|i| format!("r{i:04}")).collect();
        for (i, key) in keys.iter().enumerate() {
            bus.commit(answering(&p, key, 1, key, &i.to_string())).await.unwrap();
        }
        assert_eq!(sorted(bus.requests(&p).await.unwrap()), keys[3..].to_vec(), "{name}: the first 3 are gone");
        for gone in &keys[..3] {
            assert_eq!(bus.request_outcome(&p, gone).await.unwrap(), None, "{name}: {gone}");
        }
        assert_eq!(bus.request_outcome(&p, &keys[3]).await.unwrap(), Some(keys[3].as_bytes().to_vec()), "{name}");
        let newest = keys.last().unwrap();
        assert_eq!(bus.request_outcome(&p, newest).await.unwrap(), Some(newest.as_bytes().to_vec()), "{name}");
    }
}

/// A live lease is taken over only from exactly the holder and token named, with a newer
/// token; the old holder's fenced commits are then refused and its lease does not renew.
#[tokio::test]
async fn a_lease_is_taken_over_only_from_the_holder_and_token_named() {
    for (name, bus) in backends().await {
        let g = Address::GuildGroup(40);
        let ttl = Duration::from_secs(30);
        let write = |fence, n: &str| Commit {
            writes: vec![("n".into(), Some(n.as_bytes().to_vec()))],
            fence: Some(fence),
            ..Commit::of(g.clone())
        };
        let a = bus.acquire_lease(&g, "host-a", ttl).await.unwrap().expect("free");
        bus.commit(write(a.token, "a")).await.unwrap();

        let wrong_token = ("host-a".to_owned(), a.token + 1);
        assert_eq!(bus.take_over_lease(&g, "host-b", ttl, &wrong_token).await.unwrap(), None, "{name}");
        let wrong_holder = ("host-x".to_owned(), a.token);
        assert_eq!(bus.take_over_lease(&g, "host-b", ttl, &wrong_holder).await.unwrap(), None, "{name}");
        assert_eq!(bus.lease_holder(&g).await.unwrap(), Some(("host-a".to_owned(), a.token)), "{name}: untouched");

        let named = bus.lease_holder(&g).await.unwrap().expect("held");
        let b = bus.take_over_lease(&g, "host-b", ttl, &named).await.unwrap().expect("the lease named");
        assert_eq!((b.owner.clone(), b.holder.as_str()), (g.clone(), "host-b"), "{name}");
        assert!(b.token > a.token, "{name}: a newer token");
        assert_eq!(bus.lease_holder(&g).await.unwrap(), Some(("host-b".to_owned(), b.token)), "{name}");

        let stale = bus.commit(write(a.token, "stale")).await;
        assert!(matches!(stale, Err(BusError::StaleOwner { .. })), "{name}: {stale:?}");
        assert_eq!(bus.load_state(&g).await.unwrap().get("n").unwrap(), b"a", "{name}: nothing applied");
        assert!(!bus.renew_lease(&a, ttl).await.unwrap(), "{name}: the old lease does not renew");
        assert_eq!(bus.acquire_lease(&g, "host-a", ttl).await.unwrap(), None, "{name}: nor is it taken back");
        assert_eq!(bus.take_over_lease(&g, "host-c", ttl, &named).await.unwrap(), None, "{name}: named once only");
        bus.commit(write(b.token, "b")).await.unwrap();
        assert_eq!(bus.load_state(&g).await.unwrap().get("n").unwrap(), b"b", "{name}");
    }
}

/// A lease that is no longer live — released, or expired — is not taken over, even from
/// the holder and token it had (it is acquired instead).
#[tokio::test]
async fn a_lease_no_longer_live_is_not_taken_over() {
    for (name, bus) in backends().await {
        let (g, h) = (Address::GuildGroup(41), Address::GuildGroup(42));
        let ttl = Duration::from_secs(30);
        let a = bus.acquire_lease(&g, "host-a", ttl).await.unwrap().expect("free");
        bus.release_lease(&a).await.unwrap();
        let was = ("host-a".to_owned(), a.token);
        assert_eq!(bus.take_over_lease(&g, "host-b", ttl, &was).await.unwrap(), None, "{name}: released");

        let short = bus.acquire_lease(&h, "host-a", Duration::from_millis(50)).await.unwrap().expect("free");
        let started = std::time::Instant::now();
        while bus.lease_holder(&h).await.unwrap().is_some() {
            assert!(started.elapsed() < Duration::from_secs(10), "{name}: the lease never expired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let was = ("host-a".to_owned(), short.token);
        assert_eq!(bus.take_over_lease(&h, "host-b", ttl, &was).await.unwrap(), None, "{name}: expired");
        assert!(bus.acquire_lease(&h, "host-b", ttl).await.unwrap().is_some(), "{name}");
    }
}
