//! Sessions as the server pays for them: the memory an idle logged-in session (and an
//! upgraded socket that never logs in) holds, and how fast fresh players log in.

use super::WAIT;
use super::cluster::Client;
use super::load::{self, Round, Socket, Window};
use super::servers::rss_kib;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Logins (or bare connections) under way at once while sessions are opened.
const OPENING_AT_ONCE: usize = 100;
/// A logged-in session is drained once nothing has come for this long: the welcome and
/// the script's login replies come in one write.
const DRAIN_QUIET: Duration = Duration::from_millis(50);
/// Sessions logged in (and kept) before the baseline is read, so the baseline includes
/// what the first sessions start up (an instance of the script, the accounts' tables).
const WARMUP_SESSIONS: usize = 50;
/// How often the server's memory is read while it settles.
const RSS_EVERY: Duration = Duration::from_secs(1);
/// Readings that must agree for the memory to count as settled.
const RSS_READINGS: usize = 3;
/// A server closes a socket that has not logged in after 30 s (`net.login_timeout_ms`,
/// docs/limits.md): idle sockets are measured before the oldest is this old.
const SOCKET_MEASURED_WITHIN: Duration = Duration::from_secs(25);

/// Logs in `count` players named `{prefix}-{i}`, [`OPENING_AT_ONCE`] at a time, each
/// drained of its login replies and pushes acknowledged; the sessions stay open.
pub(crate) async fn open_sessions(addr: SocketAddr, prefix: &str, count: usize) -> Vec<Client> {
    futures_util::stream::iter(0..count)
        .map(|i| async move {
            let mut client = Client::login(addr, &format!("{prefix}-{i}"), WAIT).await;
            client.drain(DRAIN_QUIET).await;
            client
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await
}

/// Opens `count` WebSockets that never log in, [`OPENING_AT_ONCE`] at a time.
async fn open_sockets(addr: SocketAddr, count: usize) -> Vec<Socket> {
    futures_util::stream::iter(0..count).map(|_| load::connect(addr)).buffer_unordered(OPENING_AT_ONCE).collect().await
}

/// The process's resident memory once it holds still: [`RSS_READINGS`] readings
/// [`RSS_EVERY`] apart within 1% (or 1 MiB) of each other, or the last reading at
/// `deadline`. KiB.
async fn settled_rss_kib(pid: u32, deadline: Instant) -> u64 {
    let mut readings = vec![rss_kib(pid)];
    loop {
        let last = readings[readings.len() - 1];
        if Instant::now() + RSS_EVERY > deadline {
            return last;
        }
        tokio::time::sleep(RSS_EVERY).await;
        readings.push(rss_kib(pid));
        let recent = &readings[readings.len().saturating_sub(RSS_READINGS)..];
        let (low, high) = (recent.iter().min().copied().unwrap_or(0), recent.iter().max().copied().unwrap_or(0));
        if recent.len() == RSS_READINGS && high - low <= (high / 100).max(1024) {
            return high;
        }
    }
}

/// What holding many idle connections cost the server.
#[derive(Debug)]
pub(crate) struct Idle {
    /// Connections opened and held.
    pub(crate) count: usize,
    /// The server's resident memory before and after, KiB.
    pub(crate) before_kib: u64,
    pub(crate) after_kib: u64,
    /// How long opening them took, s.
    pub(crate) open_s: f64,
}

impl Idle {
    /// The server's memory per connection held, KiB.
    pub(crate) fn per_connection_kib(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) / self.count as f64
    }
}

/// The server's memory before and after `count` sessions logged in and left idle (each
/// drained of its login replies), after [`WARMUP_SESSIONS`] warm-up sessions.
pub(crate) async fn idle_sessions(addr: SocketAddr, pid: u32, count: usize) -> Idle {
    let warmup = open_sessions(addr, "warmup", WARMUP_SESSIONS).await;
    let before_kib = settled_rss_kib(pid, Instant::now() + Duration::from_secs(20)).await;
    let started = Instant::now();
    let idle = open_sessions(addr, "idle", count).await;
    let open_s = started.elapsed().as_secs_f64();
    let after_kib = settled_rss_kib(pid, Instant::now() + Duration::from_secs(60)).await;
    drop((warmup, idle));
    Idle { count, before_kib, after_kib, open_s }
}

/// The server's memory before and after `count` upgraded sockets that never log in,
/// after [`WARMUP_SESSIONS`] warm-up sessions; measured before the server's login wait
/// closes the oldest of them (fails the bench if opening them took too long for that).
pub(crate) async fn idle_sockets(addr: SocketAddr, pid: u32, count: usize) -> Idle {
    let warmup = open_sessions(addr, "warmup", WARMUP_SESSIONS).await;
    let before_kib = settled_rss_kib(pid, Instant::now() + Duration::from_secs(20)).await;
    let started = Instant::now();
    let sockets = open_sockets(addr, count).await;
    let open_s = started.elapsed().as_secs_f64();
    let after_kib = settled_rss_kib(pid, started + SOCKET_MEASURED_WITHIN).await;
    assert!(
        started.elapsed() < SOCKET_MEASURED_WITHIN + RSS_EVERY,
        "opening {count} sockets took {open_s:.1} s: the server closes them after 30 s; use fewer"
    );
    drop((warmup, sockets));
    Idle { count, before_kib, after_kib, open_s }
}

/// `clients` clients each logging in fresh players (`{prefix}-{client}-{n}`) in a closed
/// loop: connect, log in, wait for the `welcome` (the exchange's round trip ends there),
/// then close the socket cleanly before the next login, so the server's logout of each
/// player is in the load too.
pub(crate) async fn logins(addr: SocketAddr, pid: u32, clients: usize, window: Window, prefix: &str) -> Round {
    let loops: Vec<_> = (0..clients)
        .map(|client| {
            let mut next = 0u64;
            async move || {
                let name = format!("{prefix}-{client}-{next}");
                next += 1;
                let session = Client::login(addr, &name, WAIT).await;
                let welcomed = Instant::now();
                load::close(session.ws).await;
                welcomed
            }
        })
        .collect();
    load::closed_loop(loops, window, pid).await
}
