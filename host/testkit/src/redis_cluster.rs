//! A real Redis Cluster of three masters on free ports, stopped when dropped or when the
//! process ends.

use crate::watchdog::{Watchdog, require};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How many masters the cluster has.
const NODES: usize = 3;
/// Redis Cluster's node-to-node bus listens on the client port plus this.
const BUS_PORT_OFFSET: u16 = 10000;
/// How long starting, joining and settling may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A Redis Cluster this suite started: three `redis-server` masters (no replicas) with all
/// 16384 slots assigned, every node reporting `cluster_state:ok`.
pub struct RedisCluster {
    _watchdog: Watchdog,
    /// `redis://127.0.0.1:<port>` of the first node: a seed that a cluster client finds
    /// the whole cluster from.
    pub url: String,
    /// `redis://127.0.0.1:<port>` of every node.
    pub urls: Vec<String>,
    /// The client ports of the nodes (127.0.0.1); each node's cluster bus is on port + 10000.
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts three cluster-enabled `redis-server`s on free ports, joins them with
    /// `redis-cli --cluster create` and waits until every node reports `cluster_state:ok`.
    /// Fails the test (never skips it) when redis-server or redis-cli is missing:
    /// `tools/setup.sh` installs them.
    pub fn start() -> RedisCluster {
        require("redis-server");
        require("redis-cli");
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_port_pairs(NODES);
        let commands: Vec<String> = ports
            .iter()
            .map(|port| {
                format!(
                    "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir '{dir}' \
                     --cluster-enabled yes --cluster-config-file '{dir}/nodes-{port}.conf' --cluster-node-timeout 5000",
                    dir = dir.path().display(),
                )
            })
            .collect();
        // A watchdog shell owns the servers: it stops them when this test process ends,
        // since a suite-wide cluster lives in a static that is never dropped.
        let watchdog = Watchdog::spawn(&commands);
        let urls: Vec<String> = ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
        let started = Instant::now();

        for url in &urls {
            wait_until(started, &format!("{url} answers PING"), || query(url, "PING").is_some_and(|r| r == "PONG"));
        }

        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        run_with_deadline(create, started);

        for url in &urls {
            wait_until(started, &format!("{url} reports cluster_state:ok"), || {
                query(url, "CLUSTER INFO").is_some_and(|info| {
                    info.lines().any(|l| l.trim() == "cluster_state:ok")
                        && info.lines().any(|l| l.trim() == format!("cluster_known_nodes:{NODES}"))
                })
            });
        }
        RedisCluster { _watchdog: watchdog, url: urls[0].clone(), urls, ports, _dir: dir }
    }

    /// Every node's URL, comma-separated: a seed list `warren_bus::Bus::redis` accepts.
    pub fn seeds(&self) -> String {
        self.urls.join(",")
    }
}

/// `count` distinct ports on 127.0.0.1 that are free, each with its cluster bus port
/// (port + 10000) free too. They are held while choosing, so no two collide.
fn free_port_pairs(count: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..1000 {
        if ports.len() == count {
            break;
        }
        let Ok(client) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(port) = client.local_addr().map(|a| a.port()) else { continue };
        let Some(bus_port) = port.checked_add(BUS_PORT_OFFSET) else { continue };
        let Ok(bus) = TcpListener::bind(("127.0.0.1", bus_port)) else { continue };
        ports.push(port);
        held.push((client, bus));
    }
    assert_eq!(ports.len(), count, "no {count} free port pairs (port, port + {BUS_PORT_OFFSET}) on 127.0.0.1");
    ports
}

/// One command's reply as text on a fresh connection to `url`; `None` on any error.
fn query(url: &str, command: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
    let mut words = command.split(' ');
    let mut cmd = redis::cmd(words.next()?);
    for word in words {
        cmd.arg(word);
    }
    cmd.query::<String>(&mut conn).ok()
}

/// Polls `ready` until it holds; fails the test once the start's deadline has passed.
fn wait_until(started: Instant, what: &str, mut ready: impl FnMut() -> bool) {
    while !ready() {
        assert!(started.elapsed() < DEADLINE, "redis cluster: timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` to completion, failing the test with its output if it fails or outlives
/// the start's deadline.
fn run_with_deadline(mut command: Command, started: Instant) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run redis-cli (tools/setup.sh installs it)");
    loop {
        match child.try_wait().expect("wait for redis-cli") {
            Some(_) => break,
            None if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli --cluster create did not finish in {DEADLINE:?}");
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let output = child.wait_with_output().expect("redis-cli output");
    assert!(
        output.status.success(),
        "redis-cli --cluster create failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
