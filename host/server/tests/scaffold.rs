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
        serde_json::from_str(&self.recv_text().await).expect("JSON")
    }

    /// The next frame as the server wrote it.
    async fn recv_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(FRAME_WAIT, self.0.next()).await.expect("a frame in time");
            if let Message::Text(text) = msg.expect("open").expect("a frame") {
                return text.to_string();
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
        ["dev", "--name-login", "--listen", "127.0.0.1:0", "--modules", &modules.display().to_string()]
            .map(String::from)
            .to_vec();
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
    let (mut dev, addr) = dev_process(&game.join("modules"));
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

    drop(c);

    // Then docs/first-mod.md, step by step, on the same server: play, change the script
    // while the client stays connected, break it on purpose, read the fault.
    follow_the_guide(&game, &mut dev, addr).await;
}

/// The fenced blocks of `lang` in `markdown`, in order.
fn fenced(markdown: &str, lang: &str) -> Vec<String> {
    let open = format!("```{lang}");
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() == open {
            blocks.push(lines.by_ref().take_while(|l| l.trim() != "```").map(|l| format!("{l}\n")).collect());
        }
    }
    blocks
}

/// Applies a diff block as the guide shows it (` ` context, `-` removed, `+` added, `@@`
/// between hunks) to `text`: each hunk's old lines must be in the text exactly once.
fn apply_diff(text: &str, diff: &str) -> String {
    let mut text = text.to_owned();
    for hunk in diff.split("@@\n") {
        let (mut old, mut new) = (String::new(), String::new());
        for line in hunk.lines() {
            let (mark, rest) = line.split_at(1.min(line.len()));
            match mark {
                " " | "" => {
                    old.push_str(rest);
                    old.push('\n');
                    new.push_str(rest);
                    new.push('\n');
                }
                "-" => {
                    old.push_str(rest);
                    old.push('\n');
                }
                "+" => {
                    new.push_str(rest);
                    new.push('\n');
                }
                _ => panic!("not a diff line: {line}"),
            }
        }
        assert_eq!(text.matches(&old).count(), 1, "the guide's hunk is in the script once:\n{old}");
        text = text.replacen(&old, &new, 1);
    }
    text
}

/// Waits until the dev log has said `what` `n` times.
fn wait_for_log(dev: &mut warren_testkit::Process, what: &str, n: usize) {
    let started = std::time::Instant::now();
    while dev.log().matches(what).count() < n {
        assert!(started.elapsed() < FRAME_WAIT, "`{what}` not logged {n} times:\n{}", dev.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Plays one of the guide's `warren play` blocks: sends its typed line (as `warren play`
/// makes it a frame) and checks the answer is the frame the guide shows, as written.
async fn play_block(c: &mut Client, block: &str) {
    let mut lines = block.lines();
    let (typed, shown) = (lines.next().unwrap(), lines.next().unwrap());
    c.send(warren::tools::play::frame_of(typed).unwrap()).await;
    let kind = serde_json::from_str::<Value>(shown).unwrap()["type"].clone();
    loop {
        let text = c.recv_text().await;
        if serde_json::from_str::<Value>(&text).unwrap()["type"] == kind {
            let (got, want): (Value, Value) =
                (serde_json::from_str(&text).unwrap(), serde_json::from_str(shown).unwrap());
            assert_eq!(got, want, "`{typed}` is answered as the guide shows");
            return;
        }
    }
}

async fn follow_the_guide(game: &Path, dev: &mut warren_testkit::Process, addr: std::net::SocketAddr) {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/first-mod.md")).unwrap();
    let diffs = fenced(&guide, "diff");
    let texts = fenced(&guide, "text");
    let plays: Vec<&String> = texts.iter().filter(|b| !b.starts_with("built ") && !b.starts_with("WARN ")).collect();
    let fault = texts.iter().find(|b| b.starts_with("WARN ")).expect("the guide shows the fault's line");
    assert_eq!((diffs.len(), plays.len()), (2, 3), "the guide's steps: two edits, three plays");
    for command in ["warren new greeter --standalone", "cargo test\n", "warren build\n", "warren dev --modules modules"]
    {
        assert!(guide.contains(command), "the guide says `{command}`");
    }
    let lib = game.join("scripts/greeter/src/lib.rs");
    let warren = env!("CARGO_BIN_EXE_warren");
    let build = move |game: &Path| {
        let mut cmd = Command::new(warren);
        cmd.args(["build", "--workspace", &game.display().to_string()]).arg("--out").arg(game.join("modules"));
        run("warren build", &mut cmd)
    };

    // 4. Play.
    let mut c = Client::connect(addr).await;
    c.send(json!({"type": "login", "name": "ann"})).await;
    c.recv_type("hello").await;
    play_block(&mut c, plays[0]).await;

    // 5. Change it while you play: test, build, and the same client gets the new answer.
    let swaps = dev.log().matches("module swapped").count();
    std::fs::write(&lib, apply_diff(&std::fs::read_to_string(&lib).unwrap(), &diffs[0])).unwrap();
    let game_c = game.to_owned();
    let tests = tokio::task::spawn_blocking(move || {
        let tests = run(
            "cargo test",
            Command::new(env!("CARGO")).arg("test").current_dir(&game_c).env_remove("CARGO_TARGET_DIR"),
        );
        build(&game_c);
        tests
    })
    .await
    .unwrap();
    assert!(tests.contains("waves_add_up_and_bad_waves_change_nothing ... ok"), "{tests}");
    wait_for_log(dev, "module swapped", swaps + 1);
    play_block(&mut c, plays[1]).await;

    // 6. Break it on purpose: the player is told it failed, and nothing of it was kept.
    std::fs::write(&lib, apply_diff(&std::fs::read_to_string(&lib).unwrap(), &diffs[1])).unwrap();
    let game_c = game.to_owned();
    tokio::task::spawn_blocking(move || build(&game_c)).await.unwrap();
    wait_for_log(dev, "module swapped", swaps + 2);
    play_block(&mut c, plays[2]).await;
    c.send(json!({"type": "wave", "times": 1})).await;
    assert_eq!(c.recv_type("waved").await["total"], 6, "the failed wave kept nothing");

    // 7. Read the fault: the log's line is the guide's, but for the module's digest, the
    // player's id (bob came first here) and the panic's line and column.
    wait_for_log(dev, "client frame failed", 1);
    let log = dev.log();
    let line = log.lines().find(|l| l.contains("client frame failed")).unwrap();
    let logged = &line[line.find("WARN ").expect("a WARN line")..];
    let normalize = |text: &str| -> String {
        let text = text.trim();
        let module = text.find("module=").unwrap() + "module=".len();
        let end = module + text[module..].find(' ').unwrap();
        let text = format!("{}MODULE{}", &text[..module], &text[end..]);
        let player = text.find("player=").unwrap() + "player=".len();
        let end = player + text[player..].find(' ').unwrap();
        let text = format!("{}ID{}", &text[..player], &text[end..]);
        let place = text.find("lib.rs:").unwrap() + "lib.rs:".len();
        let end = place + text[place..].find(": ").unwrap();
        format!("{}LINE{}", &text[..place], &text[end..])
    };
    assert_eq!(normalize(logged), normalize(fault), "the guide shows the fault's line as it is logged");
}
