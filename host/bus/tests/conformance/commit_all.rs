//! A read batch's commits in one trip ([`Bus::commit_all`]), on every backend: applied in
//! order, each whole; the first refused ends the run and the later ones stay pending;
//! a stale fence refuses the run; pushes are numbered across the run.

use super::*;

/// A commit of `owner` acknowledging `ack` that sets `key` to `value` and logs `frame`.
fn setting(owner: &Address, ack: &str, key: &str, value: &str, frame: &str, fence: u64) -> Commit {
    Commit {
        writes: vec![(key.into(), Some(value.as_bytes().to_vec()))],
        sends: vec![msg(Address::Player(99), "echo", value)],
        ack: Some(ack.into()),
        fence: Some(fence),
        pushes: vec![frame.as_bytes().to_vec()],
        ..Commit::of(owner.clone())
    }
}

#[tokio::test]
async fn a_run_of_commits_lands_in_order_and_stops_at_the_first_refused() {
    for (name, bus) in backends().await {
        let p = Address::Player(70);
        let lease = bus.acquire_lease(&p, "host-a", Duration::from_secs(30)).await.unwrap().expect("free lease");
        for i in 0..4 {
            bus.send(msg(p.clone(), "n", &i.to_string())).await.unwrap();
        }
        let got = bus.read(&p, 10, Duration::from_millis(10)).await.unwrap();
        let ids: Vec<&str> = got.iter().map(|d| d.id.as_str()).collect();
        // The second message is committed on its own (a commit whose answer was lost, say).
        bus.commit(Commit { fence: Some(lease.token), ..Commit::ack_only(p.clone(), ids[1].into()) }).await.unwrap();

        let t = lease.token;
        let run = vec![
            setting(&p, ids[0], "a", "1", "f0", t),
            setting(&p, ids[1], "b", "1", "f1", t),
            setting(&p, ids[2], "c", "1", "f2", t),
        ];
        let results = bus.commit_all(run).await;
        assert_eq!(results.len(), 2, "{name}: the run ends at the refused one: {results:?}");
        assert_eq!(results[0].as_ref().unwrap().last_push, 1, "{name}");
        assert!(matches!(results[1], Err(BusError::NotPending { .. })), "{name}: {results:?}");
        let state = bus.load_state(&p).await.unwrap();
        assert_eq!(state.get("a").map(Vec::as_slice), Some(&b"1"[..]), "{name}: the first landed");
        assert!(!state.contains_key("b") && !state.contains_key("c"), "{name}: nothing of the others: {state:?}");
        let echoes = bus.read(&Address::Player(99), 10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(echoes.len(), 1, "{name}: one send landed");
        let pending: Vec<String> = bus.read_pending(&p).await.unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(pending, vec![ids[2].to_owned(), ids[3].to_owned()], "{name}: the untried stays pending");

        // Pushes are numbered on across a run.
        let results =
            bus.commit_all(vec![setting(&p, ids[2], "c", "2", "f2", t), setting(&p, ids[3], "d", "2", "f3", t)]).await;
        let last: Vec<u64> = results.into_iter().map(|r| r.unwrap().last_push).collect();
        assert_eq!(last, vec![2, 3], "{name}");
        let frames: Vec<Vec<u8>> = bus.pushes(&p, 0).await.unwrap().pushes.into_iter().map(|p| p.frame).collect();
        assert_eq!(frames, vec![b"f0".to_vec(), b"f2".to_vec(), b"f3".to_vec()], "{name}");
        assert!(bus.read_pending(&p).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_run_under_a_stale_fence_is_refused_whole() {
    for (name, bus) in backends().await {
        let p = Address::Player(71);
        let ttl = Duration::from_secs(30);
        let old = bus.acquire_lease(&p, "host-a", ttl).await.unwrap().expect("free lease");
        bus.send(msg(p.clone(), "n", "0")).await.unwrap();
        let d = bus.read(&p, 10, Duration::from_millis(10)).await.unwrap().remove(0);
        bus.release_lease(&old).await.unwrap();
        bus.acquire_lease(&p, "host-b", ttl).await.unwrap().expect("released lease");
        let results = bus.commit_all(vec![setting(&p, &d.id, "a", "1", "f", old.token)]).await;
        assert!(matches!(results.as_slice(), [Err(BusError::StaleOwner { .. })]), "{name}: {results:?}");
        assert!(bus.load_state(&p).await.unwrap().is_empty(), "{name}: nothing written");
        assert_eq!(bus.read_pending(&p).await.unwrap().len(), 1, "{name}: still pending");
    }
}
