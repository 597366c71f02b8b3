//! A real `redis-server` on a free port, stopped when dropped or when the process ends;
//! it can also be crashed (SIGKILL) and restarted on the same port and data folder.

use crate::watchdog::{Watchdog, require};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// No persistence: the default for tests that do not restart the server.
const EPHEMERAL: &str = "--save '' --appendonly no";
/// The append-only file, fsynced on every write: what a restart must not lose.
const DURABLE: &str = "--save '' --appendonly yes --appendfsync always";

/// A redis-server process this suite started.
pub struct RedisServer {
    watchdog: Option<Watchdog>,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    persistence: &'static str,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on a free port, without persistence. Fails the test (never skips it)
    /// when redis-server is missing: `tools/setup.sh` installs it.
    pub fn start() -> RedisServer {
        RedisServer::launch(EPHEMERAL)
    }

    /// Starts one with the append-only file fsynced on every write
    /// (`appendfsync always`), so a crash loses nothing it acknowledged.
    pub fn start_durable() -> RedisServer {
        RedisServer::launch(DURABLE)
    }

    fn launch(persistence: &'static str) -> RedisServer {
        require("redis-server");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        let mut server =
            RedisServer { watchdog: None, url: format!("redis://127.0.0.1:{port}"), port, persistence, dir };
        server.run();
        server
    }

    /// Starts the server process and waits until it answers (its data loaded).
    fn run(&mut self) {
        // A watchdog shell owns the server: it stops it when this test process ends, since
        // a suite-wide server lives in a static that is never dropped.
        self.watchdog = Some(Watchdog::spawn(&[format!(
            "redis-server --port {port} --bind 127.0.0.1 {persistence} --databases 64 --dir '{dir}'",
            port = self.port,
            persistence = self.persistence,
            dir = self.dir.path().display(),
        )]));
        let started = Instant::now();
        while self.ping().is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "redis-server on port {} did not start", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> redis::RedisResult<String> {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is gone.
    pub fn crash(&mut self) {
        let info: String = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("INFO").arg("server").query(&mut c))
            .expect("INFO server");
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .map(|p| p.trim().to_owned())
            .expect("INFO server names the process id");
        let killed = Command::new("kill").args(["-9", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -9 redis-server {pid}");
        // Its watchdog ends with it.
        drop(self.watchdog.take());
        let started = Instant::now();
        while self.ping().is_ok() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server {pid} survived SIGKILL");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the server again on the same port and data folder (after [`Self::crash`]).
    pub fn restart(&mut self) {
        assert!(self.watchdog.is_none(), "restart follows a crash");
        self.run();
    }
}
