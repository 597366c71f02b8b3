//! A modder's first ten minutes, run as a modder would: `warren new` a standalone project
//! against this checkout's guest SDK, a battle script added to it, their native tests,
//! `warren build`, and the modules serving in `warren dev` — the baseapp one alone, then
//! with the battle room.
//!
//! A test binary of its own: it builds crates (all cores for a minute or two), and cargo
//! runs test binaries one after the other, so no timing-sensitive test runs beside it.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for a frame or a process line before it fails.
const FRAME_WAIT: Duration = Duration::from_secs(20);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A game client on a WebSocket.
struct Client(Socket);

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        Client(tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("connect").0)
    }

    async fn send(&mut self, frame: Value) {
        self.0.send(Message::text(frame.to_string())).await.expect("send");
    }

    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(FRAME_WAIT, self.0.next()).await.expect("a frame in time");
            if let Message::Text(text) = msg.expect("open").expect("a frame") {
                return serde_json::from_str(&text).expect("JSON");
            }
        }
    }

    async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let f = self.recv().await;
            if f["type"] == kind {
                return f;
            }
        }
    }
}

/// `warren dev` as a process serving `modules`, on a free port.
fn dev_process(modules: &Path) -> (warren_testkit::Process, std::net::SocketAddr) {
    let args: Vec<String> =
        ["dev", "--listen", "127.0.0.1:0", "--modules", &modules.display().to_string()].map(String::from).to_vec();
    let mut dev = warren_testkit::Process::start("dev", env!("CARGO_BIN_EXE_warren"), &args);
    let addr = dev.listening_address(FRAME_WAIT);
    (dev, addr)
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_new_makes_scripts_that_test_build_and_serve_as_they_are() {
    let warren = env!("CARGO_BIN_EXE_warren");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
    let tmp = tempfile::tempdir().unwrap();
    let game = tmp.path().join("game");
    let game_s = game.display().to_string();
    run(
        "warren new",
        Command::new(warren)
            .args(["new", "greeter", "--role", "baseapp", "--standalone", &game_s, "--sdk-path"])
            .arg(&sdk),
    );
    // A second script of the same name is refused.
    let again = Command::new(warren).args(["new", "greeter", "--workspace", &game_s]).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"));
    // A battle script joins it in the same project (and its members); a role `warren new`
    // has no script for is refused, naming those it has.
    run(
        "warren new --role battle",
        Command::new(warren).args(["new", "tapper", "--role", "battle", "--workspace", &game_s]),
    );
    let queue =
        Command::new(warren).args(["new", "queue", "--role", "matchmaker", "--workspace", &game_s]).output().unwrap();
    let refused = String::from_utf8_lossy(&queue.stderr);
    assert!(!queue.status.success() && refused.contains("it knows baseapp, battle, guild"), "{refused}");

    let game_c = game.clone();
    let tested = tokio::task::spawn_blocking(move || {
        let tests = run(
            "cargo test",
            Command::new(env!("CARGO")).arg("test").current_dir(&game_c).env_remove("CARGO_TARGET_DIR"),
        );
        let built = run(
            "warren build",
            Command::new(warren)
                .args(["build", "--workspace", &game_c.display().to_string()])
                .arg("--out")
                .arg(game_c.join("modules")),
        );
        (tests, built)
    });
    let (tests, built) =
        tokio::time::timeout(std::time::Duration::from_secs(900), tested).await.expect("in time").unwrap();
    for test in ["waves_add_up_and_bad_waves_change_nothing", "the_first_to_the_target_wins_and_a_module_swap"] {
        assert!(tests.contains(test), "{test} did not run:\n{tests}");
    }
    assert!(built.contains("built greeter") && built.contains("built tapper"), "{built}");

    // `warren dev` on the baseapp module and nothing else: battles are off, and the
    // client is told so.
    let alone = tmp.path().join("baseapp-alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(game.join("modules/baseapp.wasm"), alone.join("baseapp.wasm")).unwrap();
    let (dev, addr) = dev_process(&alone);
    let mut c = Client::connect(addr).await;
    c.send(json!({"type": "login", "name": "ann"})).await;
    assert_eq!(c.recv().await["type"], "welcome");
    assert_eq!(c.recv().await["type"], "hello");
    c.send(json!({"type": "wave", "times": 3, "req": "w1"})).await;
    let waved = tokio::time::timeout(FRAME_WAIT, c.recv_type("waved")).await.unwrap();
    assert_eq!(waved["total"], 3);
    c.send(json!({"type": "battle.start"})).await;
    let off = c.recv_type("error").await;
    assert!(off["reason"].as_str().unwrap().starts_with("cannot start a battle"), "{off}");
    assert!(dev.log().contains("battle.wasm is missing: the battle role is off"), "{}", dev.log());
    drop((c, dev));

    // The project's modules: a player starts a battle in the scaffolded room and taps it
    // through to its end.
    let (_dev, addr) = dev_process(&game.join("modules"));
    let mut c = Client::connect(addr).await;
    c.send(json!({"type": "login", "name": "bob"})).await;
    let me = c.recv_type("welcome").await["player"].to_string();
    c.send(json!({"type": "battle.start"})).await;
    // The host's answer and the room's first push, in either order.
    let (mut room, mut start) = (Value::Null, Value::Null);
    while room.is_null() || start.is_null() {
        let frame = c.recv().await;
        match frame["type"].as_str() {
            Some("battle.started") => room = frame["room"].clone(),
            Some("battle.start") => start = frame,
            _ => {}
        }
    }
    assert_eq!((&start["room"], &start["scores"][&me]), (&room, &json!(0)), "{start}");
    let target = start["target"].as_u64().unwrap();
    for _ in 0..target {
        c.send(json!({"type": "battle.input", "action": "tap"})).await;
    }
    let end = loop {
        let frame = c.recv().await;
        match frame["type"].as_str() {
            Some("battle.end") => break frame,
            Some("battle.state") => assert!(frame["scores"][&me].as_u64() <= Some(target), "{frame}"),
            _ => {}
        }
    };
    assert_eq!((&end["room"], &end["scores"][&me], end["winner"].to_string()), (&room, &json!(target), me), "{end}");
}
