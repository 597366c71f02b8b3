//! What every socket server of a host does alike, written once: the door of the host
//! ([`Door`]: the caps on connections, per host and per address, and the host's ping
//! clock), the accept loop that applies them with a header-read timeout ([`serve`]), and a
//! client socket's bounds ([`socket`]: frame size and pace, login and idle timeouts,
//! pings, a write timeout, and the close code and reason of each refusal).

mod serve;
pub mod socket;

pub use serve::{Admitted, ClientUpgrade, serve};
pub use socket::{Heard, Inbound, close, refuse, send_within};

use axum::extract::WebSocketUpgrade;
use axum::serve::{Listener, ListenerExt};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use tokio::sync::watch;

/// Largest client frame taken, in bytes: client frames are small, and a 64 KiB cap keeps a
/// client from making the host parse (and a guest copy) megabytes.
pub const MAX_FRAME: usize = 64 * 1024;

/// The read buffer a client socket starts with. The WebSocket library's default (128
/// KiB, allocated at the upgrade) would be most of an idle session's memory; client frames
/// are a few hundred bytes, and the buffer grows for a larger one (up to [`MAX_FRAME`]).
const READ_BUFFER: usize = 2 * 1024;

/// A client WebSocket upgrade with the host's bounds and buffer sizes.
pub fn client_socket(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(MAX_FRAME).max_frame_size(MAX_FRAME).read_buffer_size(READ_BUFFER)
}

/// A listener whose accepted sockets send small frames at once: `TCP_NODELAY`, so the
/// second of two frames written back to back does not wait ~40 ms for the client's
/// delayed ack (Nagle's algorithm). For a server outside [`serve`] (the hot-path bench's
/// echo server), which sets it itself.
pub fn without_delay(listener: tokio::net::TcpListener) -> impl Listener<Addr = std::net::SocketAddr> {
    listener.tap_io(|socket| {
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a client socket");
        }
    })
}

/// The bounds a host holds its clients to (the `[net]` section, docs/limits.md).
#[derive(Debug, Clone, PartialEq)]
pub struct NetLimits {
    /// How long a client may take to send an HTTP request's headers.
    pub header_timeout: Duration,
    /// How long an upgraded socket may stay open without logging in.
    pub login_timeout: Duration,
    /// Most connections open on the host at once.
    pub max_connections: usize,
    /// Most connections open at once from one address.
    pub max_per_address: usize,
    /// Most connections from one address not logged in yet.
    pub max_pending_per_address: usize,
    /// Addresses counted against the host's cap only (a gateway's).
    pub uncapped_addresses: Vec<IpAddr>,
    /// Frames one connection may send a second, on average...
    pub frames_per_s: u32,
    /// ...and at once.
    pub frames_burst: u32,
    /// How long one write to a client may wait for the client.
    pub write_timeout: Duration,
    /// How often a client that has sent nothing since is pinged.
    pub ping_interval: Duration,
    /// How long a client may send nothing before it is closed.
    pub idle_timeout: Duration,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            header_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(30),
            max_connections: NetLimits::connections_for_open_files(),
            max_per_address: 256,
            max_pending_per_address: 32,
            uncapped_addresses: vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)],
            frames_per_s: 100,
            frames_burst: 500,
            write_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Open files a host keeps for itself beyond its client connections: Redis connections,
/// modules, logs, the connections turned away.
const OWN_FILES: usize = 256;

impl NetLimits {
    /// The connections a host may hold when none is configured: the process's limit on
    /// open files less [`OWN_FILES`] (at least 64), so that a flood runs into the cap, and
    /// is turned away with a status, before the host runs out of files for its players.
    /// 10 000 where the limit cannot be read.
    pub fn connections_for_open_files() -> usize {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let soft = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<usize>().ok());
        match soft {
            Some(files) => files.saturating_sub(OWN_FILES).max(64),
            None => 10_000,
        }
    }

    /// The reason a client that sends too many frames is closed with.
    pub fn too_fast(&self) -> Ending {
        Ending::new(
            POLICY,
            format!("too many frames: at most {} a second (bursts of {})", self.frames_per_s, self.frames_burst),
        )
    }

    /// The reason a socket that did not log in in time is closed with.
    pub fn login_late(&self) -> Ending {
        Ending::new(POLICY, format!("log in within {}", seconds(self.login_timeout)))
    }

    /// The reason a client that stopped reading is closed with.
    pub fn too_slow(&self) -> Ending {
        Ending::new(
            POLICY,
            format!("the connection did not take the server's frames for {}", seconds(self.write_timeout)),
        )
    }

    /// The reason a client that answered nothing, pings included, is closed with.
    pub fn silent(&self) -> Ending {
        Ending::new(GOING_AWAY, format!("nothing heard for {}", seconds(self.idle_timeout)))
    }
}

/// A duration as a client reads it: `30 s`, `0.5 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// RFC 6455's 1001: going away.
const GOING_AWAY: u16 = 1001;
/// RFC 6455's 1008: policy violation.
const POLICY: u16 = 1008;

/// Why the host ends a client socket: the close code and the reason the client reads (in
/// an error frame, then in the close frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The close code (RFC 6455, section 7.4, and the 4000s of docs/protocol.md).
    pub code: u16,
    /// What the client is told.
    pub reason: Cow<'static, str>,
}

impl Ending {
    /// An ending with a reason of its own.
    pub fn new(code: u16, reason: String) -> Ending {
        Ending { code, reason: Cow::Owned(reason) }
    }

    /// An ending with a fixed reason.
    pub const fn fixed(code: u16, reason: &'static str) -> Ending {
        Ending { code, reason: Cow::Borrowed(reason) }
    }
}

/// A text frame that is not UTF-8 (RFC 6455's 1007: invalid frame payload data).
pub const NOT_UTF8: Ending = Ending::fixed(1007, "frames must be UTF-8 text");
/// A frame over [`MAX_FRAME`] (1009: message too big).
pub const TOO_BIG: Ending = Ending::fixed(1009, "frames are at most 65536 bytes");
/// A binary frame (1003: unsupported data).
pub const BINARY: Ending = Ending::fixed(1003, "frames are JSON text: binary frames are refused");

/// The host's door: the limits it holds clients to, the connections open (per address),
/// and the ping clock its sockets share. One per host process, shared by its listeners.
#[derive(Debug)]
pub struct Door {
    /// The bounds every connection and socket is held to.
    pub limits: NetLimits,
    /// Connections open, in all and per address.
    counts: Mutex<Counts>,
    /// Connections being turned away with a status, which are not counted: their own
    /// cap keeps a flood of them from taking the host's files.
    turning_away: AtomicUsize,
    /// Ticks every ping interval: each socket looks at its client's silence then, so an
    /// idle socket holds no timer of its own.
    beat: watch::Sender<()>,
    /// The clock's task starts with the first socket that listens to it.
    beating: Once,
}

/// Connections open, in all and per address.
#[derive(Debug, Default)]
struct Counts {
    open: usize,
    by_address: HashMap<IpAddr, AddressCount>,
}

/// One address's connections.
#[derive(Debug, Default, Clone, Copy)]
struct AddressCount {
    open: usize,
    /// Those not logged in yet.
    pending: usize,
}

impl Door {
    /// A door holding clients to `limits`.
    pub fn new(limits: NetLimits) -> Arc<Door> {
        Arc::new(Door {
            limits,
            counts: Mutex::default(),
            turning_away: AtomicUsize::new(0),
            beat: watch::channel(()).0,
            beating: Once::new(),
        })
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).open
    }

    /// The host's ping clock: changes every ping interval. The clock runs for as long as
    /// the door lives.
    pub fn pulse(self: &Arc<Self>) -> watch::Receiver<()> {
        self.beating.call_once(|| {
            let door = Arc::downgrade(self);
            let every = self.limits.ping_interval;
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    match door.upgrade() {
                        Some(door) => door.beat.send_replace(()),
                        None => return,
                    }
                }
            });
        });
        self.beat.subscribe()
    }
}
