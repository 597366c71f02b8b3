//! A real `redis-server` on a free port, stopped when dropped or when the process ends.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server process this suite started.
pub struct RedisServer {
    child: Child,
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
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        // A watchdog shell owns the server: it stops it when this test process ends, since
        // a suite-wide server lives in a static that is never dropped.
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --databases 64 --dir '{dir}' & r=$!; \
             trap 'kill $r 2>/dev/null' EXIT; while kill -0 {me} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done",
            dir = dir.path().display(),
            me = std::process::id(),
        );
        assert!(
            Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success()),
            "redis-server must be installed (tools/setup.sh installs it)"
        );
        let child = Command::new("bash")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
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
        RedisServer { child, url, port, _dir: dir }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
