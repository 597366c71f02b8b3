//! What hosts coordinate with beside queues, on every backend: ids from named counters,
//! registries of live entities, members' reports, doorbells rung by hand and the cluster
//! secret.

use super::*;
use std::collections::BTreeSet;

#[tokio::test]
async fn ids_from_a_counter_count_up_and_never_repeat_even_across_racing_handles() {
    for (name, one, two) in twin_backends().await {
        for expected in 1..=3 {
            assert_eq!(one.next_id("rooms").await.unwrap(), expected, "{name}");
        }
        assert_eq!(two.next_id("rooms").await.unwrap(), 4, "{name}: one counter for every handle");
        assert_eq!(one.next_id("tickets").await.unwrap(), 1, "{name}: counters apart by name");

        let mut racing = tokio::task::JoinSet::new();
        for bus in [one.clone(), two.clone()] {
            for _ in 0..200 {
                let bus = bus.clone();
                racing.spawn(async move { bus.next_id("rooms").await });
            }
        }
        let mut ids = BTreeSet::new();
        while let Some(id) = racing.join_next().await {
            let id = id.unwrap().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(ids.insert(id), "{name}: id {id} handed out twice");
        }
        assert_eq!(ids, (5..=404).collect(), "{name}: 400 distinct ids, none skipped");
        assert_eq!(two.next_id("rooms").await.unwrap(), 405, "{name}");
    }
}

#[tokio::test]
async fn a_registry_lists_its_entities_by_id_with_their_latest_value() {
    for (name, one, two) in twin_backends().await {
        assert!(one.registered("battles").await.unwrap().is_empty(), "{name}: nothing registered yet");
        one.register("battles", 10, "battleapp-a").await.unwrap();
        one.register("battles", 2, "battleapp-b").await.unwrap();
        two.register("battles", 300, "battleapp-a").await.unwrap();
        one.register("matches", 2, "elsewhere").await.unwrap();
        let listed = |entries: &[(u64, &str)]| entries.iter().map(|(id, v)| (*id, v.to_string())).collect::<Vec<_>>();
        assert_eq!(
            two.registered("battles").await.unwrap(),
            listed(&[(2, "battleapp-b"), (10, "battleapp-a"), (300, "battleapp-a")]),
            "{name}: sorted by id, as numbers"
        );

        // Registering again overwrites; unregistering twice, or what was never there, is fine.
        two.register("battles", 10, "battleapp-c").await.unwrap();
        one.unregister("battles", 2).await.unwrap();
        one.unregister("battles", 2).await.unwrap();
        one.unregister("battles", 9999).await.unwrap();
        one.unregister("nobody-registered-here", 1).await.unwrap();
        assert_eq!(
            one.registered("battles").await.unwrap(),
            listed(&[(10, "battleapp-c"), (300, "battleapp-a")]),
            "{name}"
        );
        assert_eq!(one.registered("matches").await.unwrap(), listed(&[(2, "elsewhere")]), "{name}: registries apart");
    }
}

#[tokio::test]
async fn reports_are_the_latest_of_live_members_and_go_with_their_membership() {
    for (name, one, two) in twin_backends().await {
        let (long, short) = (Duration::from_secs(30), Duration::from_millis(300));
        one.report("battleapp", "app-b", br#"{"rooms": 1}"#, long).await.unwrap();
        two.report("battleapp", "app-a", br#"{"rooms": 12, "tick_lag_ms": 0.4}"#, long).await.unwrap();
        one.report("battleapp", "app-c", br#"{"rooms": 3}"#, short).await.unwrap();
        one.heartbeat("battleapp", "app-d", long).await.unwrap();
        one.report("baseapp", "base-x", b"{}", long).await.unwrap();
        let shown = |entries: &[(&str, &str)]| {
            entries.iter().map(|(i, r)| (i.to_string(), r.as_bytes().to_vec())).collect::<Vec<_>>()
        };
        assert_eq!(
            two.reports("battleapp").await.unwrap(),
            shown(&[
                ("app-a", r#"{"rooms": 12, "tick_lag_ms": 0.4}"#),
                ("app-b", r#"{"rooms": 1}"#),
                ("app-c", r#"{"rooms": 3}"#)
            ]),
            "{name}: sorted by instance; a member without a report is not listed"
        );
        assert_eq!(
            one.members("battleapp").await.unwrap(),
            vec!["app-a", "app-b", "app-c", "app-d"],
            "{name}: reporters are members"
        );

        // A newer report replaces the one before; a heartbeat keeps it.
        one.report("battleapp", "app-b", br#"{"rooms": 2}"#, long).await.unwrap();
        one.heartbeat("battleapp", "app-b", long).await.unwrap();
        let reports = two.reports("battleapp").await.unwrap();
        assert_eq!(reports[1], ("app-b".to_owned(), br#"{"rooms": 2}"#.to_vec()), "{name}");

        // app-c's heartbeat expires: it is neither listed nor a member, and when it comes
        // back by heartbeat, its old report does not.
        tokio::time::sleep(short + Duration::from_millis(100)).await;
        assert_eq!(
            two.reports("battleapp").await.unwrap(),
            shown(&[("app-a", r#"{"rooms": 12, "tick_lag_ms": 0.4}"#), ("app-b", r#"{"rooms": 2}"#)]),
            "{name}: an expired member's report is not listed"
        );
        assert_eq!(one.members("battleapp").await.unwrap(), vec!["app-a", "app-b", "app-d"], "{name}");
        one.heartbeat("battleapp", "app-c", long).await.unwrap();
        let instances = |r: Vec<(String, Vec<u8>)>| r.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(instances(one.reports("battleapp").await.unwrap()), vec!["app-a", "app-b"], "{name}");

        // A member that leaves takes its report with it, also when it comes back.
        two.leave("battleapp", "app-a").await.unwrap();
        assert_eq!(instances(one.reports("battleapp").await.unwrap()), vec!["app-b"], "{name}");
        assert_eq!(one.members("battleapp").await.unwrap(), vec!["app-b", "app-c", "app-d"], "{name}");
        one.heartbeat("battleapp", "app-a", long).await.unwrap();
        assert_eq!(instances(one.reports("battleapp").await.unwrap()), vec!["app-b"], "{name}");

        assert_eq!(two.reports("baseapp").await.unwrap(), shown(&[("base-x", "{}")]), "{name}: roles apart");
        assert!(two.reports("nobody").await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_ring_names_a_queue_on_a_doorbell_without_the_queues_lease() {
    for (name, one, two) in twin_backends().await {
        let room = Address::Battle(7);
        assert_eq!(one.lease_holder(&room).await.unwrap(), None, "{name}: nobody holds the room");
        one.ring("app-a", &room).await.unwrap();
        assert_eq!(two.doorbell("app-a", Duration::from_secs(5)).await.unwrap(), vec![room.clone()], "{name}");
        assert!(two.doorbell("app-a", Duration::from_millis(10)).await.unwrap().is_empty(), "{name}: heard once");

        // A waiting holder wakes; a ring reaches only the holder it names.
        let waiter = {
            let two = two.clone();
            tokio::spawn(async move { two.doorbell("app-a", Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        one.ring("app-a", &Address::Battle(8)).await.unwrap();
        let rung = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("woke").unwrap().unwrap();
        assert_eq!(rung, vec![Address::Battle(8)], "{name}");
        assert!(one.doorbell("app-b", Duration::from_millis(10)).await.unwrap().is_empty(), "{name}");

        // A ring for a queue another host leases reaches the holder rung, not the lease's.
        one.acquire_lease(&room, "app-b", Duration::from_secs(30)).await.unwrap().expect("free");
        one.ring("app-a", &room).await.unwrap();
        assert_eq!(two.doorbell("app-a", Duration::from_secs(5)).await.unwrap(), vec![room], "{name}");
        assert!(one.doorbell("app-b", Duration::from_millis(10)).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn the_cluster_secret_is_made_once_and_the_same_for_every_caller() {
    for (name, one, two) in twin_backends().await {
        // The first callers race; both get the one secret made.
        let (a, b) = tokio::join!(one.cluster_secret(), two.cluster_secret());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len(), warren_bus::CLUSTER_SECRET_LEN, "{name}");
        assert_eq!(a.len(), 32, "{name}");
        assert_eq!(a, b, "{name}: the same from both handles");
        assert_eq!(one.cluster_secret().await.unwrap(), a, "{name}: and later");
        assert!(a.iter().any(|&byte| byte != 0), "{name}: random, not zeros");
    }
    let (one, two) = (Bus::embedded(), Bus::embedded());
    assert_ne!(one.cluster_secret().await.unwrap(), two.cluster_secret().await.unwrap(), "embedded buses apart");
    for (name, url) in redis_flavours() {
        let one = redis_bus(url, &fresh_namespace(), warren_bus::DEFAULT_GROUPS).await.unwrap();
        let two = redis_bus(url, &fresh_namespace(), warren_bus::DEFAULT_GROUPS).await.unwrap();
        assert_ne!(
            one.cluster_secret().await.unwrap(),
            two.cluster_secret().await.unwrap(),
            "{name}: each namespace its own cluster"
        );
    }
}
