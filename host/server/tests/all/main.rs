//! The server's integration tests, in one test binary: `warren dev` started in-process on
//! port 0, driven through its WebSocket like a game client.

mod auth;
mod bad_clients;
mod battleapp;
mod cluster;
mod config;
mod dev;
pub(crate) mod edge;
mod edge_client;
mod faults;
mod game;
mod gateway;
mod player_queues;
mod sandbox;
mod screen;
mod tls;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use warren::config::DevConfig;
use warren_bus::Bus;

/// How long a test waits for a frame before it fails.
pub const FRAME_WAIT: Duration = Duration::from_secs(20);

/// A `warren dev` serving from a temporary modules folder.
pub struct Dev {
    /// The modules folder.
    pub dir: tempfile::TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Dev {
    /// Starts with the given module files as `baseapp.wasm` and `battle.wasm`, and the
    /// shipped guild script, on a fresh embedded bus.
    pub async fn start(baseapp: &str, battle: &str) -> Dev {
        Dev::start_on(baseapp, battle, Bus::embedded_with_groups(16)).await
    }

    /// As [`Dev::start`], on `bus`.
    pub async fn start_on(baseapp: &str, battle: &str, bus: Bus) -> Dev {
        Dev::start_limited(baseapp, battle, bus, warren::config::LimitsConfig::default()).await
    }

    /// As [`Dev::start_on`], with `limits`.
    pub async fn start_limited(baseapp: &str, battle: &str, bus: Bus, limits: warren::config::LimitsConfig) -> Dev {
        Dev::start_with(baseapp, battle, bus, DevConfig { limits, ..dev_config() }).await
    }

    /// As [`Dev::start_on`], with `config` but for where it listens, its modules folder and
    /// its battles' ticks (the tests').
    pub async fn start_with(baseapp: &str, battle: &str, bus: Bus, config: DevConfig) -> Dev {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(baseapp, dir.path().join("baseapp.wasm")).expect("copy baseapp");
        std::fs::copy(battle, dir.path().join("battle.wasm")).expect("copy battle");
        std::fs::copy(warren_test_guests::SCRIPT_GUILD, dir.path().join("guild.wasm")).expect("copy guild");
        let config = DevConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            modules: dir.path().to_owned(),
            // Fast ticks, so a battle ends within a test.
            battle: warren::config::BattleConfig { tick_hz: 200 },
            ..config
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = warren::roles::dev::start_on(config, bus, async {
            let _ = stopped.await;
        })
        .await
        .expect("warren dev starts");
        Dev { dir, addr: server.addr, _stop: stop }
    }

    /// The path of a module file in the watched folder.
    pub fn module_path(&self, role: &str) -> PathBuf {
        self.dir.path().join(format!("{role}.wasm"))
    }

    /// `GET /modules`.
    pub async fn modules(&self) -> Value {
        http_get_json(self.addr, "/modules").await
    }

    /// Connects a client and logs in as `name`; returns the client and the welcome frame.
    pub async fn login(&self, name: &str) -> (Client, Value) {
        let mut c = Client::connect(self.addr).await;
        c.send(json!({"type": "login", "name": name})).await;
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (c, welcome)
    }
}

/// The configuration the tests' `warren dev` starts from: players log in by name, and the
/// pace a host holds a bad client to (docs/limits.md, *Clients*) is out of the way of the
/// tests' clients, which send in closed loops (bad_clients.rs sets its own).
pub fn dev_config() -> DevConfig {
    let net = warren::config::NetConfig { frames_per_s: 1_000_000, frames_burst: 1_000_000, ..Default::default() };
    DevConfig { name_login: true, net, ..DevConfig::default() }
}

/// A game client on the WebSocket.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects to `/ws`.
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::connect_url(&format!("ws://{addr}/ws")).await
    }

    /// Connects to the baseapp at `addr` as the account `name` (registered the first time;
    /// see [`token`]): the session token goes with the upgrade.
    pub async fn connect_as(addr: SocketAddr, name: &str) -> Client {
        Client::connect_with(addr, &token(addr, name).await).await
    }

    /// Connects to `/ws` with a session token (over TLS to a gateway, see [`tls`]).
    pub async fn connect_with(addr: SocketAddr, token: &str) -> Client {
        let Some(config) = tls::config_for(addr) else {
            let url = format!("ws://{addr}/ws");
            return Client { ws: warren::tools::play::connect_with_token(&url, token).await.expect("connect") };
        };
        Client::connect_tls(&format!("wss://{addr}/ws"), Some(token), config).await
    }

    /// Connects to a `wss://` URL with `config`'s trust, with a session token if given.
    pub async fn connect_tls(url: &str, token: Option<&str>, config: std::sync::Arc<rustls::ClientConfig>) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = token {
            request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let connector = tokio_tungstenite::Connector::Rustls(config);
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        Client { ws }
    }

    /// Connects to a WebSocket URL (a battleapp's, as `battle.started` names it).
    pub async fn connect_url(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        Client { ws }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::text(frame.to_string())).await.expect("send");
    }

    /// The next JSON frame; fails the test if none comes or the connection closes.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(FRAME_WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")
                .expect("the connection stays open")
                .expect("a frame, not an error");
            match msg {
                Message::Text(text) => return serde_json::from_str(&text).expect("frames are JSON"),
                Message::Close(c) => panic!("connection closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next JSON frame if one comes within `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            match msg.expect("the connection stays open").expect("a frame, not an error") {
                Message::Text(text) => return Some(serde_json::from_str(&text).expect("frames are JSON")),
                Message::Close(c) => panic!("connection closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Frames until one of type `kind`, which is returned (the others are dropped).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }
}

/// A session token for the account `name` (its password made from the name) from the
/// host at `addr`: logged in over HTTP, registered the first time, as a game client does.
pub async fn token(addr: SocketAddr, name: &str) -> String {
    let password = format!("{name}-password");
    if let Some(config) = tls::config_for(addr) {
        let body = json!({"username": name, "password": password});
        let (status, issued) = tls::post(addr, config.clone(), "/auth/login", &body).await;
        let (status, issued) =
            if status == 401 { tls::post(addr, config, "/auth/register", &body).await } else { (status, issued) };
        assert!(status < 300, "a session token from the gateway {addr}: {status} {issued}");
        return issued["token"].as_str().expect("a token").to_owned();
    }
    let (base, name) = (format!("http://{addr}"), name.to_owned());
    tokio::task::spawn_blocking(move || warren::tools::play::account_token(&base, &name, &password))
        .await
        .expect("the login does not panic")
        .unwrap_or_else(|e| panic!("a session token from {addr}: {e:#}"))
}

/// The `[auth]` and `[net]` sections of the baseapps tests start (see [`baseapp_config`]).
pub const TEST_LIMITS: &str = "[auth]\nlogins_per_minute_per_address = 1000000\nlogins_per_minute_per_account = 1000000\n\
     [net]\nframes_per_s = 1000000\nframes_burst = 1000000\n";

/// The configuration file of the baseapps tests start: login attempts are not limited,
/// as a suite logs hundreds of players in from one address (the limits are tested in
/// `auth`), nor is a client's pace, as the tests' clients send in closed loops, faster
/// than a person (the pace is tested in `bad_clients`).
pub fn baseapp_config() -> &'static str {
    static FILE: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("baseapp.toml");
            std::fs::write(&path, TEST_LIMITS).expect("write config");
            let path = path.display().to_string();
            (dir, path)
        })
        .1
}

/// `warren dev` as a process serving `modules` (a folder), on a free port: the process
/// (its log is its stderr) and where it listens.
pub fn dev_process(modules: &Path) -> (warren_testkit::Process, SocketAddr) {
    let args: Vec<String> =
        ["dev", "--name-login", "--listen", "127.0.0.1:0", "--modules", &modules.display().to_string()]
            .map(String::from)
            .to_vec();
    let mut dev = warren_testkit::Process::start("dev", env!("CARGO_BIN_EXE_warren"), &args);
    let addr = dev.listening_address(FRAME_WAIT);
    (dev, addr)
}

/// A modules folder with `baseapp` as the baseapp module and the shipped battle and guild
/// scripts.
pub fn modules_with(baseapp: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, from) in [
        ("baseapp.wasm", baseapp),
        ("battle.wasm", warren_test_guests::SCRIPT_BATTLE),
        ("guild.wasm", warren_test_guests::SCRIPT_GUILD),
    ] {
        std::fs::copy(from, dir.path().join(file)).expect("copy module");
    }
    dir
}

/// The embedded bus behind `bus`, to inject faults into.
pub fn embedded(bus: &Bus) -> &warren_bus::EmbeddedBus {
    match bus {
        Bus::Embedded(b) => b,
        Bus::Redis(_) => unreachable!("these tests inject faults into an embedded bus"),
    }
}

/// The message a battle room sends `player` when the room's battle is over and `player`
/// won it (not a practice): 20 gold and 50 xp, paid by the baseapp module.
pub fn won_battle(room: u64, player: u64) -> warren_bus::Outbound {
    let body = serde_json::json!({"room": room, "winner": player, "winners": [player], "practice": false});
    warren_bus::Outbound {
        to: warren_bus::Address::Player(player),
        sender: Some(warren_bus::Address::Battle(room)),
        kind: "battle.result".into(),
        body: body.to_string().into_bytes(),
        hops: 0,
    }
}

/// A number in a player's stored profile (`gold`, `xp`, ...), as the message center holds it.
pub async fn stored(bus: &Bus, player: u64, field: &str) -> u64 {
    let state = bus.load_state(&warren_bus::Address::Player(player)).await.unwrap();
    let profile: Value = serde_json::from_slice(state.get("profile").expect("a profile")).unwrap();
    profile[field].as_u64().unwrap_or_else(|| panic!("{field} in {profile}"))
}

/// A minimal HTTP GET of a JSON page.
async fn http_get_json(addr: SocketAddr, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.expect("response");
    let body = resp.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("JSON body")
}

/// Replaces a file the way a build does: write beside, then rename.
pub fn replace_file(target: &Path, from: &str) {
    let partial = target.with_extension("partial");
    std::fs::copy(from, &partial).expect("copy");
    std::fs::rename(&partial, target).expect("rename");
}
