//! The hot path as players load it, on real processes, the server pinned to core 0 and
//! the load client (one runtime thread, [`load`]) to core 1:
//!
//! 1. **Frames.** N clients (each a closed loop) send the shipped baseapp script's `ping`
//!    to `warren dev` and wait for its `pong`; the same clients, on the same cores, send
//!    the same frame to a plain WebSocket echo server on Warren's stack ([`echo`]), a
//!    process too. Rounds alternate (echo, warren, echo, warren, ...); the figures are
//!    the medians of the rounds, and `ws_vs_echo_ratio` is Warren's share of the echo's
//!    round trips per second.
//! 2. **Writes.** The same players, on the same `warren dev`, send frames that change
//!    their state ([`writes`]: the wooden sword's `equip` and `unequip`, alternating), so
//!    each goes through a commit, which `ping` does not. Their rounds join the rotation
//!    (echo, ping, write, echo, ...), so both are set against the same echo rounds;
//!    `ws_write_vs_echo_ratio` is their share of the echo's round trips per second.
//! 3. **Whispers.** N clients in pairs whisper to their partners in closed loops
//!    ([`whispers`]), a round trip ending when the whisper shows on the partner's socket:
//!    a player-to-player message through real sessions, on a fresh `warren dev`, then on
//!    one `warren baseapp` of a cluster on a fresh `redis-server`.
//! 4. **Logins.** C clients each log in fresh players in a closed loop (connect, login,
//!    `welcome`, close) on a fresh `warren dev`, then on one `warren baseapp` of a cluster
//!    on a fresh `redis-server`.
//! 5. **Idle memory.** A fresh `warren dev`'s resident memory before and after S
//!    upgraded sockets that never log in, then (on another fresh one) S sessions logged in
//!    and left idle: KiB per socket and per session.
//!
//! `cargo bench -p warren --bench hot_path`; ends with `name=value` lines. Settings from
//! the environment (defaults in brackets): `HOT_PATH_CLIENTS` [50], `HOT_PATH_ROUNDS` [5
//! per server], `HOT_PATH_WARMUP_S` [1], `HOT_PATH_ROUND_S` [3], `HOT_PATH_LOGIN_CLIENTS`
//! [50], `HOT_PATH_LOGIN_S` [5], `HOT_PATH_SESSIONS` [10000], `HOT_PATH_PARTS`
//! [`frames,writes,whispers,logins,idle`].

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
#[path = "hot_path/whispers.rs"]
mod whispers;
#[path = "hot_path/writes.rs"]
mod writes;

use load::{Round, Socket, Window};
use whispers::Pairs;
use writes::Writers;

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
/// The configuration of the frames part's server: the defaults but for the pace of a
/// client's frames (100 a second, bursts of 500: docs/limits.md, *Clients*), raised out
/// of the way. A client in a closed loop sends thousands a second; the bound is on a bad
/// client, not part of the path measured.
const LOAD: &str = "[net]\nframes_per_s = 1000000\nframes_burst = 1000000\n";
/// The configuration of the whispers part's servers: the defaults but for the pace of a
/// client's frames ([`LOAD`]) and the send quota
/// (1000 messages a second a player, bursts of 2000), raised out of the way. A whisper
/// costs its sender one send and its partner one push, so a player whispering in a closed
/// loop spends two a round trip and reaches the quota at 500 whispers a second, below
/// what the servers carry: with the quota on, the figures would measure the quota (as the
/// edge bench's guild chat does with `_rate_raised`). The quota is a bound on a module
/// gone wrong, not part of the path measured.
const UNTHROTTLED: &str =
    "[limits]\nsends_per_s = 1000000\nsends_burst = 1000000\n[net]\nframes_per_s = 1000000\nframes_burst = 1000000\n";
/// Open files this process and its servers need beyond the idle connections.
const SPARE_FILES: u64 = 1024;

/// What to run, from the environment.
struct Settings {
    /// Clients of the frames, writes and whispers parts (the whispers pair them).
    clients: usize,
    /// Rounds per server (and per kind of frame) in those parts.
    rounds: usize,
    /// One round of those parts.
    frames_window: Window,
    /// Clients logging in at once.
    login_clients: usize,
    /// The login loop's run on each server.
    login_window: Window,
    /// Idle sockets, and idle sessions, held at once.
    sessions: usize,
    /// The parts to run (`frames`, `writes`, `whispers`, `logins`, `idle`).
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
            parts: env_or("HOT_PATH_PARTS", "frames,writes,whispers,logins,idle".to_owned())
                .split(',')
                .map(String::from)
                .collect(),
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

/// The median over `rounds` of what `f` says of each.
fn median_of(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    median(rounds.iter().map(f).collect())
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
    println!("    {label:<7} {:>8.0} /s   {}", round.per_s(), round_detail(round, "each"));
}

/// What a round's line says after its rate: latency, CPU per exchange (`what` names it),
/// and how busy the machine was.
fn round_detail(round: &Round, what: &str) -> String {
    let (others, steal) = round.others_and_steal();
    format!(
        "p50 {:.3} ms   p99 {:.3} ms   server CPU {:.1} µs {what}   client busy {:.0}%   others {:.0}%   steal {:.0}%",
        round.round_trip_ms(0.5),
        round.round_trip_ms(0.99),
        round.server_us_per_exchange(),
        round.client_busy() * 100.0,
        others * 100.0,
        steal * 100.0
    )
}

/// Parts 1 and 2: ping and write round trips on `warren dev` against the echo server's,
/// rounds interleaved (echo, ping, write, echo, ...; echo and the one chosen if only one
/// is), so that drift in the machine over the run falls on every kind of round alike and
/// each warren round has an echo round beside it to be set against.
fn frames(settings: &Settings, figures: &mut Figures) {
    let (pings, writes) = (settings.runs("frames"), settings.runs("writes"));
    let echo = servers::echo(SERVER_CORE);
    let configs = tempfile::tempdir().expect("temp dir");
    let config = configs.path().join("load.toml");
    std::fs::write(&config, LOAD).expect("write the server's configuration");
    let dev = servers::dev("dev-frames", SERVER_CORE, Some(&config));
    let (echo_addr, echo_pid, dev_addr, dev_pid) = (echo.addr, echo.pid(), dev.addr, dev.pid());
    let (clients, rounds, window) = (settings.clients, settings.rounds, settings.frames_window);
    let kinds = match (pings, writes) {
        (true, true) => "echo, warren ping and warren writes",
        (true, false) => "echo and warren ping",
        _ => "echo and warren writes",
    };
    println!(
        "frames: {clients} clients in closed loops, {rounds} rounds each of {:?} after {:?}, {kinds} alternating",
        window.measure, window.warmup
    );
    let (echo_rounds, ping_rounds, write_rounds) = load::on_core(CLIENT_CORE, move || async move {
        let mut echo_sockets = Vec::new();
        for _ in 0..clients {
            echo_sockets.push(load::connect(echo_addr).await);
        }
        let players = sessions::open_sessions(dev_addr, "pinger", clients).await;
        let mut players: Vec<Socket> = players.into_iter().map(|c| c.ws).collect();
        players.iter().for_each(load::no_delay);
        let mut writers = if writes { Some(Writers::check(&mut players).await) } else { None };
        let (mut echoed, mut pinged, mut written) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            println!("  round {}", r + 1);
            let round = ping_round(&mut echo_sockets, PING, window, echo_pid).await;
            print_round("echo", &round);
            echoed.push(round);
            if pings {
                let round = ping_round(&mut players, PONG, window, dev_pid).await;
                print_round("warren", &round);
                pinged.push(round);
            }
            if let Some(writers) = &mut writers {
                let round = writers.round(&mut players, window, dev_pid).await;
                print_round("write", &round);
                written.push(round);
            }
        }
        (echoed, pinged, written)
    });
    let ratios = |warren: &[Round]| -> String {
        let each = echo_rounds.iter().zip(warren).map(|(e, w)| format!("{:.3}", w.per_s() / e.per_s()));
        each.collect::<Vec<_>>().join(" ")
    };
    let echo_per_s = median_of(&echo_rounds, Round::per_s);
    let echo_figures = [
        ("echo_p50_ms", format!("{:.3}", median_of(&echo_rounds, |r| r.round_trip_ms(0.5)))),
        ("echo_p99_ms", format!("{:.3}", median_of(&echo_rounds, |r| r.round_trip_ms(0.99)))),
    ];
    let echo_cpu =
        ("echo_server_cpu_us_per_frame", format!("{:.1}", median_of(&echo_rounds, Round::server_us_per_exchange)));
    figures.push(("echo_frames_per_s", format!("{echo_per_s:.0}")));
    if pings {
        println!("  ratio of each pair of rounds: {}", ratios(&ping_rounds));
        let ws_per_s = median_of(&ping_rounds, Round::per_s);
        figures.push(("ws_frames_per_s", format!("{ws_per_s:.0}")));
        figures.push(("ws_vs_echo_ratio", format!("{:.3}", ws_per_s / echo_per_s)));
        figures.push(("ws_p50_ms", format!("{:.3}", median_of(&ping_rounds, |r| r.round_trip_ms(0.5)))));
        figures.push(("ws_p99_ms", format!("{:.3}", median_of(&ping_rounds, |r| r.round_trip_ms(0.99)))));
        figures.extend(echo_figures);
        figures.push((
            "ws_server_cpu_us_per_frame",
            format!("{:.1}", median_of(&ping_rounds, Round::server_us_per_exchange)),
        ));
        figures.push(echo_cpu);
    } else {
        // The echo's figures are still what the writes are set against.
        figures.extend(echo_figures);
        figures.push(echo_cpu);
    }
    if writes {
        println!("  write ratio of each pair of rounds: {}", ratios(&write_rounds));
        let write_per_s = median_of(&write_rounds, Round::per_s);
        figures.push(("ws_write_frames_per_s", format!("{write_per_s:.0}")));
        figures.push(("ws_write_vs_echo_ratio", format!("{:.3}", write_per_s / echo_per_s)));
        figures.push(("ws_write_p50_ms", format!("{:.3}", median_of(&write_rounds, |r| r.round_trip_ms(0.5)))));
        figures.push(("ws_write_p99_ms", format!("{:.3}", median_of(&write_rounds, |r| r.round_trip_ms(0.99)))));
        figures.push((
            "ws_write_server_cpu_us_per_frame",
            format!("{:.1}", median_of(&write_rounds, Round::server_us_per_exchange)),
        ));
    }
}

/// The whisper rounds against the server at `addr` (process `pid`): `settings.clients`
/// fresh players in pairs, each round printed for people.
fn whisper_rounds(label: &'static str, addr: SocketAddr, pid: u32, settings: &Settings) -> Vec<Round> {
    let (clients, rounds, window) = (settings.clients, settings.rounds, settings.frames_window);
    load::on_core(CLIENT_CORE, move || async move {
        let mut players = sessions::open_sessions(addr, "whisperer", clients).await;
        players.iter_mut().for_each(|c| load::no_delay(&c.ws));
        let mut pairs = Pairs::new(players).await;
        println!("  {label}");
        let mut done = Vec::new();
        for r in 0..rounds {
            let round = pairs.round(window, pid).await;
            print_round(&format!("round {}", r + 1), &round);
            done.push(round);
        }
        done
    })
}

/// Part 3: whispers between pairs of players, on a fresh `warren dev`, then on one
/// `warren baseapp` of a cluster on a fresh `redis-server` (its bus, which every whisper
/// then goes through, as the logins part starts one); both with the send quota raised
/// ([`UNTHROTTLED`]).
fn whispers(settings: &Settings, figures: &mut Figures) {
    let window = settings.frames_window;
    println!(
        "whispers: {} pairs, each player whispering to its partner in a closed loop, {} rounds each of {:?} after \
         {:?}, on warren dev then on a cluster baseapp",
        settings.clients / 2,
        settings.rounds,
        window.measure,
        window.warmup
    );
    let configs = tempfile::tempdir().expect("temp dir");
    let config = configs.path().join("unthrottled.toml");
    std::fs::write(&config, UNTHROTTLED).expect("write the servers' configuration");
    let dev = servers::dev("dev-whispers", SERVER_CORE, Some(&config));
    let on_dev = whisper_rounds("dev", dev.addr, dev.pid(), settings);
    drop(dev);

    let redis = RedisServer::start();
    cluster::publish(&redis.url);
    let base = servers::baseapp(&redis.url, "hot-whispers", SERVER_CORE, Some(&config));
    let on_cluster = whisper_rounds("cluster", base.addr, base.pid(), settings);
    drop(base);

    figures.push(("whispers_per_s", format!("{:.0}", median_of(&on_dev, Round::per_s))));
    figures.push(("whisper_p50_ms", format!("{:.3}", median_of(&on_dev, |r| r.round_trip_ms(0.5)))));
    figures.push(("whisper_p99_ms", format!("{:.3}", median_of(&on_dev, |r| r.round_trip_ms(0.99)))));
    figures.push(("whispers_per_s_cluster", format!("{:.0}", median_of(&on_cluster, Round::per_s))));
    figures.push(("whisper_cluster_p50_ms", format!("{:.3}", median_of(&on_cluster, |r| r.round_trip_ms(0.5)))));
    figures.push(("whisper_cluster_p99_ms", format!("{:.3}", median_of(&on_cluster, |r| r.round_trip_ms(0.99)))));
}

/// The login loop against the server at `addr` (process `pid`), printed for people.
fn login_run(label: &str, addr: SocketAddr, pid: u32, settings: &Settings) -> Round {
    let (clients, window) = (settings.login_clients, settings.login_window);
    let round = load::on_core(CLIENT_CORE, move || sessions::logins(addr, pid, clients, window, "fresh"));
    println!(
        "  {label:<8} {:>7.0} logins/s   welcome {}",
        round.per_s(),
        round_detail(&round, "a login (and its logout)")
    );
    round
}

/// Part 4: fresh players logging in, on `warren dev` and on a cluster baseapp.
fn logins(settings: &Settings, figures: &mut Figures) {
    let window = settings.login_window;
    println!(
        "logins: {} clients, each connect → login → welcome → close in a closed loop, {:?} after {:?}",
        settings.login_clients, window.measure, window.warmup
    );
    let dev = servers::dev("dev-logins", SERVER_CORE, None);
    let on_dev = login_run("dev", dev.addr, dev.pid(), settings);
    drop(dev);

    let redis = RedisServer::start();
    cluster::publish(&redis.url);
    let base = servers::baseapp(&redis.url, "hot-base", SERVER_CORE, None);
    let on_cluster = login_run("cluster", base.addr, base.pid(), settings);
    drop(base);

    figures.push(("logins_per_s_dev", format!("{:.0}", on_dev.per_s())));
    figures.push(("login_p50_ms", format!("{:.2}", on_dev.round_trip_ms(0.5))));
    figures.push(("login_p99_ms", format!("{:.2}", on_dev.round_trip_ms(0.99))));
    figures.push(("logins_per_s_cluster", format!("{:.0}", on_cluster.per_s())));
    figures.push(("login_cluster_p50_ms", format!("{:.2}", on_cluster.round_trip_ms(0.5))));
    figures.push(("login_cluster_p99_ms", format!("{:.2}", on_cluster.round_trip_ms(0.99))));
}

/// Part 5: what idle sockets and idle sessions hold of a fresh `warren dev`'s memory.
fn idle(settings: &Settings, figures: &mut Figures) {
    let count = settings.sessions;
    let needed = count as u64 + SPARE_FILES;
    let dev = servers::dev("dev-sockets", SERVER_CORE, None);
    let (soft, _) = servers::open_files_limit(dev.pid());
    println!("idle: {count} connections held at once; warren dev may open {soft} files");
    assert!(soft >= needed, "warren dev may open {soft} files, {needed} needed: lower HOT_PATH_SESSIONS");

    let (addr, pid) = (dev.addr, dev.pid());
    let sockets = load::on_core(CLIENT_CORE, move || sessions::idle_sockets(addr, pid, count));
    drop(dev);
    let dev = servers::dev("dev-sessions", SERVER_CORE, None);
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
    if settings.runs("frames") || settings.runs("writes") {
        frames(&settings, &mut figures);
    }
    if settings.runs("whispers") {
        whispers(&settings, &mut figures);
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
