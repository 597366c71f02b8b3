//! A real `redis-server` on a free port, stopped when dropped or when the process ends.

use crate::watchdog::{Watchdog, require};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A redis-server process this suite started.
pub struct RedisServer {
    _watchdog: Watchdog,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on a free port. Fails the test (never skips it) when redis-server is
    /// missing: `tools/setup.sh` installs it.
    pub fn start() -> RedisServer {
        require("redis-server");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        // A watchdog shell owns the server: it stops it when this test process ends, since
        // a suite-wide server lives in a static that is never dropped.
        let watchdog = Watchdog::spawn(&[format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --databases 64 --dir '{dir}'",
            dir = dir.path().display(),
        )]);
        let url = format!("redis://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ready.is_ok() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "redis-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { _watchdog: watchdog, url, port, _dir: dir }
    }
}
