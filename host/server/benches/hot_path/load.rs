//! The load client: many WebSocket clients, each a closed loop (one exchange at a time:
//! send, wait for the answer, again), all on one runtime thread pinned to its own core, so
//! the client's CPU never competes with the server it measures. Reusable by any bench that
//! drives a WebSocket server: an exchange is any async closure that ends with its answer.

use super::cluster::{ms, percentile};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client's WebSocket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a closing client waits for the server's side of the close handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What every error frame contains (`{"type":"error",...}`): a refused frame. A closed
/// loop that is refused gets no answer it waits for, so it fails the bench on this rather
/// than hanging the round.
pub(crate) const ERROR: &str = r#""type":"error""#;

/// Pins the calling thread (only it: threads it starts later inherit the pin, other
/// threads of the process and processes it spawns from other threads do not) to `core`.
///
/// `taskset -p` on the thread's id, rather than `sched_setaffinity` from libc, which is
/// not a dependency of this crate.
pub(crate) fn pin_this_thread(core: usize) {
    let me = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = me.file_name().and_then(|t| t.to_str()).expect("a thread id").to_owned();
    let out = std::process::Command::new("taskset")
        .args(["-p", "-c", &core.to_string(), &tid])
        .output()
        .expect("taskset (util-linux) must be installed");
    assert!(out.status.success(), "taskset -p -c {core} {tid}: {}", String::from_utf8_lossy(&out.stderr));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    assert_eq!(cores, 1, "the load thread runs on core {core} alone");
}

/// Runs `work` to completion on a new thread pinned to `core`, on a current-thread tokio
/// runtime of its own: the load client's one core. Returns what `work` returns.
pub(crate) fn on_core<W, F, T>(core: usize, work: W) -> T
where
    W: FnOnce() -> F + Send + 'static,
    F: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("load-core-{core}"))
        .spawn(move || {
            pin_this_thread(core);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
            rt.block_on(work())
        })
        .expect("start the load thread")
        .join()
        .expect("the load thread panicked")
}

/// Connects a WebSocket to `ws://{addr}/ws` as the load's clients do: `TCP_NODELAY` (as
/// the servers set on their side) and a 4 KiB read buffer, so ten thousand clients stay
/// small.
pub(crate) async fn connect(addr: SocketAddr) -> Socket {
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/ws"), Some(config), true)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    socket
}

/// Sets `TCP_NODELAY` on a socket connected elsewhere (the edge bench's `Client::login`).
pub(crate) fn no_delay(socket: &Socket) {
    if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
        tcp.set_nodelay(true).expect("TCP_NODELAY");
    }
}

/// Ends a client's socket cleanly: its close frame, then the server's frames read until
/// the server's close (or [`CLOSE_WAIT`]), so neither side sees a reset.
pub(crate) async fn close(mut socket: Socket) {
    if socket.close(None).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = socket.next().await {} }).await;
}

/// The next text frame on `ws` (control frames are skipped), for the checks a part runs
/// before its rounds. Fails the bench, saying why, if none comes within `wait` or the
/// socket closes: a check that waited forever would hang the bench without a word.
pub(crate) async fn next_text(ws: &mut Socket, wait: Duration) -> String {
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Close(c))) => panic!("the server closed the socket: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("the socket ended"),
            }
        }
    };
    tokio::time::timeout(wait, next).await.unwrap_or_else(|_| panic!("no text frame came within {wait:?}"))
}

/// Sends `frame` on `socket` and reads until a text frame containing `answer` comes
/// (other frames, such as pushes, are skipped); returns when it came. Fails the bench if
/// the socket closes, or with the frame if an [`ERROR`] frame comes instead: a refused
/// frame is never answered, so the loop would otherwise wait forever. Only frames that
/// are not the answer are looked at for it, so the answer's own path costs what it did.
pub(crate) async fn exchange(socket: &mut Socket, frame: &Utf8Bytes, answer: &str) -> Instant {
    socket.send(Message::Text(frame.clone())).await.expect("send a frame");
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains(answer) => return Instant::now(),
            Some(Ok(Message::Text(text))) if text.contains(ERROR) => panic!("{frame} was refused: {text}"),
            Some(Ok(Message::Close(c))) => panic!("the server closed the socket: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error: {e}"),
            None => panic!("the socket ended"),
        }
    }
}

/// How a round runs: exchanges during `warmup` are not counted, those answered within
/// `measure` after it are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
}

/// What one closed-loop round measured.
#[derive(Debug)]
pub(crate) struct Round {
    /// Exchanges answered within the measured window.
    pub(crate) exchanges: usize,
    /// The measured window, s.
    pub(crate) seconds: f64,
    /// Each counted exchange's round trip (its start to its answer), ms, sorted.
    pub(crate) round_trips_ms: Vec<f64>,
    /// CPU time of the load thread over the window, s: close to `seconds` means the client,
    /// not the server, set the pace.
    pub(crate) client_cpu_s: f64,
    /// CPU time of the server process (every thread) over the window, s.
    pub(crate) server_cpu_s: f64,
    /// CPU time of everything else on the machine over the window (every core busy, less
    /// the server and the load thread), s: near 0 on a quiet machine.
    pub(crate) others_cpu_s: f64,
    /// Time the hypervisor gave this machine's cores to others over the window, s.
    pub(crate) steal_s: f64,
}

impl Round {
    /// Exchanges answered per second.
    pub(crate) fn per_s(&self) -> f64 {
        self.exchanges as f64 / self.seconds
    }

    /// The `q` quantile of the round trips, ms (NaN for a round with none).
    pub(crate) fn round_trip_ms(&self, q: f64) -> f64 {
        if self.round_trips_ms.is_empty() { f64::NAN } else { percentile(&self.round_trips_ms, q) }
    }

    /// The server's CPU time per exchange, µs.
    pub(crate) fn server_us_per_exchange(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.exchanges as f64
    }

    /// The share of the window the load thread was on the CPU.
    pub(crate) fn client_busy(&self) -> f64 {
        self.client_cpu_s / self.seconds
    }

    /// What else ran, and was stolen, in cores (CPU seconds per second of the window).
    pub(crate) fn others_and_steal(&self) -> (f64, f64) {
        (self.others_cpu_s / self.seconds, self.steal_s / self.seconds)
    }
}

/// Runs every client's closed loop at once for `window`, on the calling runtime: each
/// call of an exchange does one exchange and returns when its answer came; the next call
/// starts when the previous one returned (so work an exchange does after its answer, such
/// as closing a socket, holds that client up but is not in its round trip). No exchange
/// starts after the window. `server_pid` is the process whose CPU time is reported.
pub(crate) async fn closed_loop<E>(clients: Vec<E>, window: Window, server_pid: u32) -> Round
where
    E: AsyncFnMut() -> Instant,
{
    let started = Instant::now();
    let counted_from = started + window.warmup;
    let until = counted_from + window.measure;
    let loops = clients.into_iter().map(|mut exchange| async move {
        let mut round_trips = Vec::new();
        loop {
            let sent = Instant::now();
            if sent >= until {
                return round_trips;
            }
            let answered = exchange().await;
            if answered >= counted_from && answered < until {
                round_trips.push(ms(answered - sent));
            }
        }
    });
    // The CPU clocks are read at the window's edges, beside the loops.
    let cpu = async {
        tokio::time::sleep_until(counted_from.into()).await;
        let (client, server, machine) = (thread_cpu_s(), process_cpu_s(server_pid), machine_cpu_s());
        tokio::time::sleep_until(until.into()).await;
        let (machine_busy, steal) = machine_cpu_s();
        (thread_cpu_s() - client, process_cpu_s(server_pid) - server, machine_busy - machine.0, steal - machine.1)
    };
    let (per_client, (client_cpu_s, server_cpu_s, machine_busy_s, steal_s)) =
        tokio::join!(futures_util::future::join_all(loops), cpu);
    let mut round_trips_ms: Vec<f64> = per_client.into_iter().flatten().collect();
    round_trips_ms.sort_by(f64::total_cmp);
    Round {
        exchanges: round_trips_ms.len(),
        seconds: window.measure.as_secs_f64(),
        round_trips_ms,
        client_cpu_s,
        server_cpu_s,
        others_cpu_s: machine_busy_s - client_cpu_s - server_cpu_s,
        steal_s,
    }
}

/// User + system CPU time in a `/proc/.../stat` file, s (clock ticks of 1/100 s).
fn stat_cpu_s(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The command name may hold spaces; the fields after it start with field 3 (state).
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15: utime and stime.
    (ticks(11) + ticks(12)) / 100.0
}

/// The calling thread's CPU time, s.
pub(crate) fn thread_cpu_s() -> f64 {
    stat_cpu_s("/proc/thread-self/stat")
}

/// A process's CPU time (all its threads), s.
pub(crate) fn process_cpu_s(pid: u32) -> f64 {
    stat_cpu_s(&format!("/proc/{pid}/stat"))
}

/// The machine's busy CPU time (every core, every process: user, nice, system, irq and
/// softirq) and its stolen time, s, from `/proc/stat`.
fn machine_cpu_s() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).map(|t| t.parse().unwrap_or(0.0)).collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0) / 100.0;
    // user nice system idle iowait irq softirq steal ...
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}
