//! What the edge bench drives: real `warren` processes on a Redis, and a client that
//! speaks the protocol (pushes acknowledged).

use super::{GROUPS, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use warren_bus::{Address, Bus};
use warren_test_guests as guests;
use warren_testkit::Process;

/// The message centers of the cluster baseapps started, by the baseapps' addresses.
static CLUSTERS: std::sync::Mutex<Vec<(SocketAddr, String, Option<Bus>)>> = std::sync::Mutex::new(Vec::new());

/// Notes that the baseapp at `addr` is on the Redis at `url`: its clients log in with
/// session tokens.
pub(crate) fn on_cluster(addr: SocketAddr, url: &str) {
    CLUSTERS.lock().unwrap().push((addr, url.to_owned(), None));
}

/// A session token for `name` if `addr` is a cluster baseapp.
async fn session_token(addr: SocketAddr, name: &str) -> Option<String> {
    use warren::mechanics::auth::{Auth, tokens};
    let (url, bus) = CLUSTERS.lock().unwrap().iter().find(|c| c.0 == addr).map(|c| (c.1.clone(), c.2.clone()))?;
    let bus = match bus {
        Some(bus) => bus,
        None => {
            let bus = warren_bus::Bus::redis_with(&url, warren_bus::RedisOptions { groups: 0, ..Default::default() })
                .await
                .expect("the bench's Redis");
            for c in CLUSTERS.lock().unwrap().iter_mut().filter(|c| c.1 == url) {
                c.2 = Some(bus.clone());
            }
            bus
        }
    };
    let keys = tokens::Keys::new(warren_testkit::TEST_AUTH_KEY.as_bytes()).expect("the tests' key");
    let auth = Auth::new(bus, keys.clone(), &warren::config::AuthConfig::default());
    let player = auth.by_name(name).await.expect("an account").player;
    Some(keys.sign(player, 0, tokens::Use::Session, None, tokens::now_s(), 3600))
}

pub(crate) fn warren() -> &'static str {
    env!("CARGO_BIN_EXE_warren")
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A game client on the WebSocket.
pub(crate) struct Client {
    pub(crate) ws: Ws,
    pub(crate) player: u64,
    /// The newest push seen.
    pub(crate) seq: u64,
}

impl Client {
    /// Connects and logs in as `name`; waits (up to `wait`) for the welcome. A cluster
    /// baseapp ([`on_cluster`]) takes a session token: the bench makes the player's account
    /// in the message center and signs its token with the cluster's key, as a login
    /// server would; `warren dev --name-login` takes the name.
    pub(crate) async fn login(addr: SocketAddr, name: &str, wait: Duration) -> Client {
        let url = format!("ws://{addr}/ws");
        let ws = match session_token(addr, name).await {
            Some(token) => warren::tools::play::connect_with_token(&url, &token).await.expect("connect"),
            None => tokio_tungstenite::connect_async(url).await.expect("connect").0,
        };
        let mut c = Client { ws, player: 0, seq: 0 };
        c.send(json!({"type": "login", "name": name})).await;
        loop {
            let f = c.recv_within(wait).await;
            if f["type"] == "welcome" {
                c.player = f["player"].as_u64().expect("a player id");
                return c;
            }
            assert_ne!(f["type"], "error", "login of {name}: {f}");
        }
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        self.ws.send(Message::text(frame.to_string())).await.expect("send");
    }

    pub(crate) async fn recv(&mut self) -> Value {
        self.recv_within(WAIT).await
    }

    pub(crate) async fn recv_within(&mut self, wait: Duration) -> Value {
        self.try_recv(wait).await.expect("a frame within the wait")
    }

    /// The next frame within `wait`, noting its `seq`.
    pub(crate) async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            match msg.expect("the connection stays open").expect("a frame, not an error") {
                Message::Text(text) => {
                    let f: Value = serde_json::from_str(&text).expect("frames are JSON");
                    if let Some(seq) = f["seq"].as_u64() {
                        self.seq = self.seq.max(seq);
                    }
                    return Some(f);
                }
                Message::Close(c) => panic!("connection closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Reads until nothing comes for `quiet`, then acknowledges every push seen.
    pub(crate) async fn drain(&mut self, quiet: Duration) {
        while self.try_recv(quiet).await.is_some() {}
        if self.seq > 0 {
            let seq = self.seq;
            self.send(json!({"type": "ack", "seq": seq})).await;
        }
    }

    /// The next `guild.event` of kind `event` (about `player`, if given).
    pub(crate) async fn guild_event(&mut self, event: &str, player: Option<u64>) -> Value {
        loop {
            let f = self.recv().await;
            if f["type"] == "guild.event"
                && f["event"] == event
                && player.is_none_or(|p| f["player"].as_u64() == Some(p))
            {
                return f;
            }
            if f["type"] == "guild.event" && f["event"] == "refused" {
                return f;
            }
        }
    }
}

/// A folder holding the shipped baseapp, battle and guild scripts as `<role>.wasm`, what
/// `warren publish --modules` and `warren dev --modules` take.
pub(crate) fn shipped_modules() -> tempfile::TempDir {
    let modules = tempfile::tempdir().expect("temp dir");
    for (role, path) in
        [("baseapp", guests::SCRIPT_BASEAPP), ("battle", guests::SCRIPT_BATTLE), ("guild", guests::SCRIPT_GUILD)]
    {
        std::fs::copy(path, modules.path().join(format!("{role}.wasm"))).expect("copy module");
    }
    modules
}

/// Publishes the shipped baseapp, battle and guild scripts to the message center at `url`.
pub(crate) fn publish(url: &str) {
    let modules = shipped_modules();
    let out = std::process::Command::new(warren())
        .args(["publish", "--redis", url, "--modules"])
        .arg(modules.path())
        .output()
        .expect("run warren publish");
    assert!(out.status.success(), "publish: {}", String::from_utf8_lossy(&out.stderr));
}

pub(crate) fn host_args(role: &str, url: &str, name: &str, config: Option<&str>) -> Vec<String> {
    let mut args = vec![role.to_owned()];
    if let Some(c) = config {
        args.extend(["--config".to_owned(), c.to_owned()]);
    }
    args.extend(["--redis", url, "--groups", &GROUPS.to_string(), "--name", name].map(String::from));
    args
}

/// Starts `warren guild` and waits until it serves.
pub(crate) fn guild_host(url: &str, name: &str, config: Option<&str>) -> Process {
    let mut p = Process::start(name, warren(), &host_args("guild", url, name, config));
    p.wait_for_line("serving", WAIT);
    p
}

/// Starts `warren baseapp` on a free port.
pub(crate) fn baseapp(url: &str, name: &str, config: Option<&str>) -> (Process, SocketAddr) {
    let mut args = host_args("baseapp", url, name, config);
    args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
    let mut p = Process::start(name, warren(), &args);
    let addr = p.listening_address(WAIT);
    on_cluster(addr, url);
    (p, addr)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) async fn gold(bus: &Bus, player: u64) -> u64 {
    let state = bus.load_state(&Address::Player(player)).await.expect("state");
    let profile: Value = serde_json::from_slice(state.get("profile").expect("a profile")).expect("JSON profile");
    profile["gold"].as_u64().expect("gold")
}
