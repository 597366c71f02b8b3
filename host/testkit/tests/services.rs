//! The services start ready to use and stop when dropped.

use std::net::TcpStream;
use std::time::{Duration, Instant};
use warren_testkit::{RedisCluster, RedisServer};

/// Waits until nothing listens on `port` any more; fails after a deadline.
fn assert_stops_listening(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "port {port} still served after drop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cluster_serves_every_slot_and_stops_when_dropped() {
    let cluster = RedisCluster::start();
    assert_eq!(cluster.ports.len(), 3);
    assert_eq!(cluster.seeds().split(',').count(), 3);
    let client = redis::cluster::ClusterClient::new(cluster.urls.clone()).unwrap();
    let mut conn = client.get_connection().unwrap();
    // Keys in many slots, so every node serves some of them.
    for i in 0..64 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut conn).unwrap();
    }
    for i in 0..64 {
        let v: i64 = redis::cmd("GET").arg(format!("k{i}")).query(&mut conn).unwrap();
        assert_eq!(v, i);
    }
    let ports = cluster.ports.clone();
    drop(conn);
    drop(cluster);
    for port in ports {
        assert_stops_listening(port);
        assert_stops_listening(port + 10000);
    }
}

#[test]
fn a_server_stops_when_dropped() {
    let server = RedisServer::start();
    let port = server.port;
    drop(server);
    assert_stops_listening(port);
}
