//! The hot path as players load it, on real processes, the server pinned to core 0 and
//! the load client (one runtime thread, [`load`]) to core 1:
//!
//! 1. **Frames.** N clients (each a closed loop) send the shipped baseapp script's `ping`
//!    to `warren dev` and wait for its `pong`; the same clients, on the same cores, send
//!    the same frame to a plain WebSocket echo server on Warren's stack ([`echo`]), a
//!    process too. Rounds alternate (echo, warren, echo, warren, ...); the figures are
//!    the medians of the rounds, and `ws_vs_echo_ratio` is Warren's share of the echo's
//!    round trips per second.
//! 2. **Logins.** C clients each log in fresh players in a closed loop (connect, login,
//!    `welcome`, close) on a fresh `warren dev`, then on one `warren baseapp` of a cluster
//!    on a fresh `redis-server`.
//! 3. **Idle memory.** A fresh `warren dev`'s resident memory before and after S
//!    upgraded sockets that never log in, then (on another fresh one) S sessions logged in
//!    and left idle: KiB per socket and per session.
//!
//! `cargo bench -p warren --bench hot_path`; ends with `name=value` lines. Settings from
//! the environment (defaults in brackets): `HOT_PATH_CLIENTS` [50], `HOT_PATH_ROUNDS` [5
//! per server], `HOT_PATH_WARMUP_S` [1], `HOT_PATH_ROUND_S` [3], `HOT_PATH_LOGIN_CLIENTS`
//! [50], `HOT_PATH_LOGIN_S` [5], `HOT_PATH_SESSIONS` [10000], `HOT_PATH_PARTS`
//! [`frames,logins,idle`].

use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use warren_testkit::RedisServer;

// Shared with the edge bench, which uses the rest of it.
#[allow(dead_code)]
#[path = "edge/cluster.rs"]
mod cluster;
#[path = "hot_path/echo.rs"]
mod echo;
#[path = "hot_path/load.rs"]
mod load;
#[path = "hot_path/servers.rs"]
mod servers;
#[path = "hot_path/sessions.rs"]
mod sessions;

use load::{Round, Socket, Window};

/// Guild groups of the cluster (its hosts must agree; only a baseapp runs here).
const GROUPS: u32 = 16;
/// How long a server may take to start, and a frame to come, before the bench fails.
const WAIT: Duration = Duration::from_secs(60);
/// The core every server process is pinned to.
const SERVER_CORE: usize = 0;
/// The core the load client's thread is pinned to.
const CLIENT_CORE: usize = 1;
/// The frame of the frames part: the shipped baseapp script answers it with `pong`, the
/// echo server with itself.
const PING: &str = r#"{"type":"ping"}"#;
/// What marks the script's answer to [`PING`].
const PONG: &str = r#""pong""#;
/// Open files this process and its servers need beyond the idle connections.
const SPARE_FILES: u64 = 1024;

/// What to run, from the environment.
struct Settings {
    /// Clients of the frames part.
    clients: usize,
    /// Rounds per server in the frames part.
    rounds: usize,
    /// One round of the frames part.
    frames_window: Window,
    /// Clients logging in at once.
    login_clients: usize,
    /// The login loop's run on each server.
    login_window: Window,
    /// Idle sockets, and idle sessions, held at once.
    sessions: usize,
    /// The parts to run (`frames`, `logins`, `idle`).
    parts: Vec<String>,
}

/// `name` from the environment, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v} does not parse")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let warmup = Duration::from_secs_f64(env_or("HOT_PATH_WARMUP_S", 1.0));
        Settings {
            clients: env_or("HOT_PATH_CLIENTS", 50),
            rounds: env_or("HOT_PATH_ROUNDS", 5),
            frames_window: Window { warmup, measure: Duration::from_secs_f64(env_or("HOT_PATH_ROUND_S", 3.0)) },
            login_clients: env_or("HOT_PATH_LOGIN_CLIENTS", 50),
            login_window: Window { warmup, measure: Duration::from_secs_f64(env_or("HOT_PATH_LOGIN_S", 5.0)) },
            sessions: env_or("HOT_PATH_SESSIONS", 10_000),
            parts: env_or("HOT_PATH_PARTS", "frames,logins,idle".to_owned()).split(',').map(String::from).collect(),
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// The `name=value` lines printed at the end, in order.
type Figures = Vec<(&'static str, String)>;

/// The median of `values`: the middle one, or the mean of the two middle ones (NaN for
/// none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One round of `ping` on every socket: `answer` marks the reply; `pid` is the server's.
async fn ping_round(sockets: &mut [Socket], answer: &str, window: Window, pid: u32) -> Round {
    let frame = Utf8Bytes::from_static(PING);
    let frame = &frame;
    let clients: Vec<_> = sockets.iter_mut().map(|s| async move || load::exchange(s, frame, answer).await).collect();
    load::closed_loop(clients, window, pid).await
}

/// Prints one round for people.
fn print_round(label: &str, round: &Round) {
    let (others, steal) = round.others_and_steal();
    println!(
        "    {label:<6} {:>8.0} /s   p50 {:.3} ms   p99 {:.3} ms   server CPU {:.1} µs each   client busy {:.0}%   \
         others {:.0}%   steal {:.0}%",
        round.per_s(),
        round.round_trip_ms(0.5),
        round.round_trip_ms(0.99),
        round.server_us_per_exchange(),
        round.client_busy() * 100.0,
        others * 100.0,
        steal * 100.0
    );
}

/// Part 1: ping round trips, Warren against the echo server, rounds alternating.
fn frames(settings: &Settings, figures: &mut Figures) {
    let echo = servers::echo(SERVER_CORE);
    let dev = servers::dev("dev-frames", SERVER_CORE);
    let (echo_addr, echo_pid, dev_addr, dev_pid) = (echo.addr, echo.pid(), dev.addr, dev.pid());
    let (clients, rounds, window) = (settings.clients, settings.rounds, settings.frames_window);
    println!(
        "frames: {clients} clients in closed loops, {rounds} rounds each of {:?} after {:?}, echo and warren dev \
         alternating",
        window.measure, window.warmup
    );
    let (echo_rounds, warren_rounds) = load::on_core(CLIENT_CORE, move || async move {
        let mut echo_sockets = Vec::new();
        for _ in 0..clients {
            echo_sockets.push(load::connect(echo_addr).await);
        }
        let players = sessions::open_sessions(dev_addr, "pinger", clients).await;
        let mut players: Vec<Socket> = players.into_iter().map(|c| c.ws).collect();
        players.iter().for_each(load::no_delay);
        let (mut echoed, mut warren) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            println!("  round {}", r + 1);
            let round = ping_round(&mut echo_sockets, PING, window, echo_pid).await;
            print_round("echo", &round);
            echoed.push(round);
            let round = ping_round(&mut players, PONG, window, dev_pid).await;
            print_round("warren", &round);
            warren.push(round);
        }
        (echoed, warren)
    });
    let med = |rounds: &[Round], f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let (echo_per_s, ws_per_s) = (med(&echo_rounds, Round::per_s), med(&warren_rounds, Round::per_s));
    let ratios: Vec<String> =
        echo_rounds.iter().zip(&warren_rounds).map(|(e, w)| format!("{:.3}", w.per_s() / e.per_s())).collect();
    println!("  ratio of each pair of rounds: {}", ratios.join(" "));
    figures.push(("echo_frames_per_s", format!("{echo_per_s:.0}")));
    figures.push(("ws_frames_per_s", format!("{ws_per_s:.0}")));
    figures.push(("ws_vs_echo_ratio", format!("{:.3}", ws_per_s / echo_per_s)));
    figures.push(("ws_p50_ms", format!("{:.3}", med(&warren_rounds, |r| r.round_trip_ms(0.5)))));
    figures.push(("ws_p99_ms", format!("{:.3}", med(&warren_rounds, |r| r.round_trip_ms(0.99)))));
    figures.push(("echo_p50_ms", format!("{:.3}", med(&echo_rounds, |r| r.round_trip_ms(0.5)))));
    figures.push(("echo_p99_ms", format!("{:.3}", med(&echo_rounds, |r| r.round_trip_ms(0.99)))));
    figures.push(("ws_server_cpu_us_per_frame", format!("{:.1}", med(&warren_rounds, Round::server_us_per_exchange))));
    figures.push(("echo_server_cpu_us_per_frame", format!("{:.1}", med(&echo_rounds, Round::server_us_per_exchange))));
}

/// The login loop against the server at `addr` (process `pid`), printed for people.
fn login_run(label: &str, addr: SocketAddr, pid: u32, settings: &Settings) -> Round {
    let (clients, window) = (settings.login_clients, settings.login_window);
    let round = load::on_core(CLIENT_CORE, move || sessions::logins(addr, pid, clients, window, "fresh"));
    let (others, steal) = round.others_and_steal();
    println!(
        "  {label:<8} {:>7.0} logins/s   welcome p50 {:.2} ms   p99 {:.2} ms   server CPU {:.0} µs a login (and \
         its logout)   client busy {:.0}%   others {:.0}%   steal {:.0}%",
        round.per_s(),
        round.round_trip_ms(0.5),
        round.round_trip_ms(0.99),
        round.server_us_per_exchange(),
        round.client_busy() * 100.0,
        others * 100.0,
        steal * 100.0
    );
    round
}

/// Part 2: fresh players logging in, on `warren dev` and on a cluster baseapp.
fn logins(settings: &Settings, figures: &mut Figures) {
    let window = settings.login_window;
    println!(
        "logins: {} clients, each connect → login → welcome → close in a closed loop, {:?} after {:?}",
        settings.login_clients, window.measure, window.warmup
    );
    let dev = servers::dev("dev-logins", SERVER_CORE);
    let on_dev = login_run("dev", dev.addr, dev.pid(), settings);
    drop(dev);

    let redis = RedisServer::start();
    cluster::publish(&redis.url);
    let base = servers::baseapp(&redis.url, "hot-base", SERVER_CORE);
    let on_cluster = login_run("cluster", base.addr, base.pid(), settings);
    drop(base);

    figures.push(("logins_per_s_dev", format!("{:.0}", on_dev.per_s())));
    figures.push(("login_p50_ms", format!("{:.2}", on_dev.round_trip_ms(0.5))));
    figures.push(("login_p99_ms", format!("{:.2}", on_dev.round_trip_ms(0.99))));
    figures.push(("logins_per_s_cluster", format!("{:.0}", on_cluster.per_s())));
    figures.push(("login_cluster_p50_ms", format!("{:.2}", on_cluster.round_trip_ms(0.5))));
    figures.push(("login_cluster_p99_ms", format!("{:.2}", on_cluster.round_trip_ms(0.99))));
}

/// Part 3: what idle sockets and idle sessions hold of a fresh `warren dev`'s memory.
fn idle(settings: &Settings, figures: &mut Figures) {
    let count = settings.sessions;
    let needed = count as u64 + SPARE_FILES;
    let dev = servers::dev("dev-sockets", SERVER_CORE);
    let (soft, _) = servers::open_files_limit(dev.pid());
    println!("idle: {count} connections held at once; warren dev may open {soft} files");
    assert!(soft >= needed, "warren dev may open {soft} files, {needed} needed: lower HOT_PATH_SESSIONS");

    let (addr, pid) = (dev.addr, dev.pid());
    let sockets = load::on_core(CLIENT_CORE, move || sessions::idle_sockets(addr, pid, count));
    drop(dev);
    let dev = servers::dev("dev-sessions", SERVER_CORE);
    let (addr, pid) = (dev.addr, dev.pid());
    let sessions = load::on_core(CLIENT_CORE, move || sessions::idle_sessions(addr, pid, count));
    drop(dev);
    for (label, idle) in [("sockets not logged in", &sockets), ("sessions logged in", &sessions)] {
        println!(
            "  {label:<22} RSS {:.1} → {:.1} MiB: {:.1} KiB each (opened in {:.1} s)",
            idle.before_kib as f64 / 1024.0,
            idle.after_kib as f64 / 1024.0,
            idle.per_connection_kib(),
            idle.open_s
        );
    }
    figures.push(("idle_session_kib", format!("{:.1}", sessions.per_connection_kib())));
    figures.push(("idle_socket_kib", format!("{:.1}", sockets.per_connection_kib())));
}

fn main() {
    if std::env::args().any(|a| a == echo::FLAG) {
        echo::serve();
        return;
    }
    let settings = Settings::from_env();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    assert!(cores > CLIENT_CORE, "the bench pins servers to core {SERVER_CORE} and its client to {CLIENT_CORE}");
    // Before any server starts, so that each inherits it.
    let files = servers::raise_open_files(settings.sessions as u64 + SPARE_FILES);
    println!(
        "hot path: {cores} cores, servers on core {SERVER_CORE}, load client on core {CLIENT_CORE}, {files} files"
    );

    let mut figures = Figures::new();
    if settings.runs("frames") {
        frames(&settings, &mut figures);
    }
    if settings.runs("logins") {
        logins(&settings, &mut figures);
    }
    if settings.runs("idle") {
        idle(&settings, &mut figures);
    }
    for (name, value) in figures {
        println!("{name}={value}");
    }
}
