//! The nginx gateway, real: `warren gateway-config` in front of two baseapps and a
//! battleapp, TLS with the test's own certificate authority, players over `wss://` under a
//! load of keyed whispers and guild chats; nginx reloaded, then a baseapp stopped, mid-load.
//! Every player's session resumes through the gateway, and every whisper and chat applied
//! is shown exactly once to each of its receivers.

use crate::cluster::{SETTLE, baseapp, guild_host, warren};
use crate::edge::{Loads, check_exactly_once, found_guild, publish, wait_until};
use crate::edge_client::Player;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use warren_bus::Bus;
use warren_testkit::{Process, RedisServer};

const GROUPS: u32 = 16;
const LEASE_MS: u64 = 20_000;
const PLAYERS: usize = 4;
/// Frames each player gets answered before the first fault, and after each.
const BEFORE_FAULT: u64 = 10;
const AFTER_FAULT: u64 = 15;

/// Runs a command to its end, failing the test with its output if it fails.
fn run(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}): tools/setup.sh installs it"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A certificate authority and a certificate for 127.0.0.1 it signed, in `dir`:
/// `ca.crt`, `gateway.crt`, `gateway.key`.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-days", "2", "-subj", "/CN=warren test CA", "-keyout", "ca.key", "-out", "ca.crt"],
    ];
    run("openssl", &ca.concat(), dir);
    let csr = [&["req"][..], &ec, &["-subj", "/CN=127.0.0.1", "-keyout", "gateway.key", "-out", "gateway.csr"]];
    run("openssl", &csr.concat(), dir);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let sign = [
        "x509",
        "-req",
        "-in",
        "gateway.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "gateway.crt",
    ];
    run("openssl", &sign, dir);
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// nginx as the gateway: its process, and how to reload it.
struct Nginx {
    /// Stopped with the test.
    _process: Process,
    args: Vec<String>,
}

impl Nginx {
    /// Writes the configuration with `warren gateway-config` and starts nginx on it.
    fn start(dir: &Path, listen: SocketAddr, baseapps: &[SocketAddr], battleapp: (&str, SocketAddr)) -> Nginx {
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut args: Vec<String> = vec!["gateway-config".into(), "--listen".into(), listen.to_string()];
        for (flag, value) in [("--cert", "gateway.crt"), ("--key", "gateway.key")] {
            args.extend([flag.to_owned(), dir.join(value).display().to_string()]);
        }
        for b in baseapps {
            args.extend(["--baseapp".to_owned(), b.to_string()]);
        }
        args.extend(["--battleapp".to_owned(), format!("{}={}", battleapp.0, battleapp.1)]);
        args.extend(["--runtime-dir".to_owned(), run_dir.display().to_string()]);
        let out = Command::new(warren()).args(&args).output().unwrap();
        assert!(out.status.success(), "gateway-config: {}", String::from_utf8_lossy(&out.stderr));
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, &out.stdout).unwrap();
        let which = Command::new("sh").args(["-c", "command -v nginx"]).output().unwrap();
        assert!(which.status.success(), "nginx is not installed: tools/setup.sh installs it");
        let args = vec!["-p".to_owned(), run_dir.display().to_string(), "-c".to_owned(), conf.display().to_string()];
        let mut start = args.clone();
        start.extend(["-g".to_owned(), "daemon off;".to_owned()]);
        let process = Process::start("nginx", "nginx", &start);
        let started = Instant::now();
        while std::net::TcpStream::connect(listen).is_err() {
            assert!(started.elapsed() < SETTLE, "nginx never listened; its log:\n{}", process.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { _process: process, args }
    }

    /// `nginx -s reload`: new workers on the same configuration; the old ones close their
    /// sockets within `worker_shutdown_timeout`.
    fn reload(&self) {
        let mut args = self.args.clone();
        args.extend(["-s".to_owned(), "reload".to_owned()]);
        let out = Command::new("nginx").args(&args).output().unwrap();
        assert!(out.status.success(), "nginx reload: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// How many of nginx's workers are old ones still shutting down (holding sockets).
    fn old_workers(&self) -> usize {
        let ps = Command::new("ps").args(["-o", "args=", "--ppid", &self._process.pid().to_string()]).output().unwrap();
        String::from_utf8_lossy(&ps.stdout).lines().filter(|l| l.contains("shutting down")).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_through_a_gateway_reload_and_a_baseapp_stop_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let redis = RedisServer::start_durable();
    let bus = Bus::redis_with_groups(&redis.url, GROUPS).await.unwrap();
    publish(&bus).await;
    let gateway: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _guilds = guild_host(&redis.url, GROUPS, "guild-1", LEASE_MS);
    let (mut b1, addr1) = baseapp(&redis.url, GROUPS, "base-1", LEASE_MS);
    let (_b2, addr2) = baseapp(&redis.url, GROUPS, "base-2", LEASE_MS);
    let public_url = format!("wss://{gateway}/battle/b1/ws");
    let battle_args: Vec<String> = ["battleapp", "--listen", "127.0.0.1:0", "--redis", &redis.url, "--groups"]
        .into_iter()
        .map(String::from)
        .chain([GROUPS.to_string(), "--name".into(), "b1".into(), "--public-url".into(), public_url.clone()])
        .collect();
    let mut battle = Process::start("b1", warren(), &battle_args);
    let battle_addr = battle.listening_address(SETTLE);
    let nginx = Nginx::start(dir.path(), gateway, &[addr1, addr2], ("b1", battle_addr));
    crate::tls::register(gateway, &dir.path().join("ca.crt"));

    // Everyone comes in through the gateway, registered over https.
    let mut players = vec![];
    for i in 0..PLAYERS {
        players.push(Player::login(gateway, &format!("gw{i}")).await);
    }
    // A battle socket goes through the gateway to the battleapp its room is on.
    let placed = players[0].ask(&json!({"type": "battle.start", "req": "battle"})).await.unwrap();
    let started = placed.iter().find(|f| f["type"] == "battle.started").unwrap_or_else(|| panic!("{placed:?}"));
    assert_eq!(started["url"], public_url.as_str(), "{started}");
    let config = crate::tls::config_for(gateway).unwrap();
    let mut socket = crate::Client::connect_tls(&public_url, None, config).await;
    socket.send(json!({"type": "battle.join", "room": started["room"], "ticket": started["ticket"]})).await;
    assert_eq!(socket.recv_type("battle.joined").await["player"], players[0].id);
    drop(socket);

    let guild = found_guild(&mut players).await;
    assert!(guild > 0);
    let ids: Vec<u64> = players.iter().map(|p| p.id).collect();
    let loads = Loads::start(players, gateway);
    let counts = || loads.counts();
    wait_until("the load to get going", || counts().iter().all(|n| *n >= BEFORE_FAULT)).await;

    // The gateway reloaded mid-load: the old workers close their sockets, the clients
    // come back through the new ones.
    nginx.reload();
    let started = Instant::now();
    while nginx.old_workers() == 0 && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Within worker_shutdown_timeout (10 s) the old workers close every socket they hold.
    wait_until("the old workers to let their sockets go", || nginx.old_workers() == 0).await;
    let before = counts();
    let progressed = |before: &[u64]| counts().iter().zip(before).all(|(n, b)| *n >= b + AFTER_FAULT);
    wait_until("every player to go on after the reload", || progressed(&before)).await;
    // A baseapp stopped mid-load: its players resume on the other, through the gateway.
    let before = counts();
    b1.signal("TERM");
    wait_until("every player to go on after the baseapp stopped", || progressed(&before)).await;
    let (mut players, sent) = loads.finish().await;
    assert!(b1.wait(SETTLE).success(), "base-1 stops cleanly; its log:\n{}", b1.log());
    let violations = check_exactly_once(&mut players, &sent, &ids).await;
    let resumed: usize = players.iter().map(|p| p.failovers.len()).sum();
    println!("gateway: {} frames answered, {resumed} sessions resumed", sent.len());
    for p in &players {
        // Every socket was on a worker the reload replaced.
        assert!(!p.failovers.is_empty(), "{}: its socket outlived the old workers: {:?}", p.name, p.endings);
    }
    assert!(
        violations.is_empty(),
        "{} violations:\n{}\nnginx log:\n{}",
        violations.len(),
        violations.join("\n"),
        std::fs::read_to_string(dir.path().join("run/error.log")).unwrap_or_default()
    );
    let _ = battle.running();
}
