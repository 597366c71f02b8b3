//! `warren dev` end to end: login, the module folder watched, modules swapped live under a
//! connected client.

use crate::{Client, Dev, FRAME_WAIT, replace_file};
use serde_json::json;
use std::time::Instant;
use warren_test_guests::{PLAYER_BAD_INIT, PLAYER_V1, PLAYER_V2, SCRIPT_BATTLE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_written_to_the_folder_is_swapped_live_without_dropping_the_client() {
    let dev = Dev::start(PLAYER_V1, SCRIPT_BATTLE).await;
    let (mut c, _) = dev.login("ann").await;
    assert_eq!(c.recv().await["version"], 1, "the login reply comes from v1");

    c.send(json!({"type": "count"})).await;
    let first = c.recv().await;
    assert_eq!((first["count"].as_u64(), first["version"].as_u64()), (Some(1), Some(1)));

    replace_file(&dev.module_path("baseapp"), PLAYER_V2);

    // Play on, on the same connection, until the new module answers.
    let started = Instant::now();
    let mut expected = 2;
    loop {
        c.send(json!({"type": "count"})).await;
        let reply = c.recv().await;
        assert_eq!(reply["count"], expected, "no frame lost, no state lost across the swap: {reply}");
        expected += 1;
        if reply["version"] == 2 {
            break;
        }
        assert!(started.elapsed() < FRAME_WAIT, "the new module never answered");
    }
    let serving = dev.modules().await;
    let v2 = warren_runtime::digest(&warren_test_guests::read(PLAYER_V2));
    assert_eq!(serving["serving"]["baseapp"], v2.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_module_in_the_folder_is_refused_and_the_old_one_keeps_serving() {
    let dev = Dev::start(PLAYER_V1, SCRIPT_BATTLE).await;
    let (mut c, _) = dev.login("bob").await;
    c.recv().await;
    let v1 = warren_runtime::digest(&warren_test_guests::read(PLAYER_V1));

    replace_file(&dev.module_path("baseapp"), PLAYER_BAD_INIT);
    let started = Instant::now();
    let refusal = loop {
        let modules = dev.modules().await;
        if let Some(why) = modules["refused"]["baseapp"].as_str() {
            break why.to_owned();
        }
        assert!(started.elapsed() < FRAME_WAIT, "the bad module was never judged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(refusal.contains("init refused: this build refuses to start"), "{refusal}");
    assert_eq!(dev.modules().await["serving"]["baseapp"], v1.as_str());

    c.send(json!({"type": "count"})).await;
    let reply = c.recv().await;
    assert_eq!((reply["count"].as_u64(), reply["version"].as_u64()), (Some(1), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_login_and_bad_names_are_answered_with_a_reason() {
    let dev = Dev::start(PLAYER_V1, SCRIPT_BATTLE).await;
    let mut c = Client::connect(dev.addr).await;
    c.send(json!({"type": "count"})).await;
    assert!(c.recv().await["reason"].as_str().unwrap().contains("log in first"));
    c.send(json!({"type": "login", "name": "no spaces"})).await;
    assert_eq!(c.recv().await["type"], "error");
    c.send(json!({"type": "login", "name": "carol"})).await;
    assert_eq!(c.recv().await["type"], "welcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_ends_the_first_session_and_keeps_the_state() {
    let dev = Dev::start(PLAYER_V1, SCRIPT_BATTLE).await;
    let (mut first, welcome) = dev.login("dan").await;
    first.recv().await;
    first.send(json!({"type": "count"})).await;
    assert_eq!(first.recv().await["count"], 1);

    let (mut second, again) = dev.login("dan").await;
    assert_eq!(welcome["player"], again["player"]);
    assert!(first.recv().await["reason"].as_str().unwrap().contains("logged in elsewhere"));
    second.recv().await;
    second.send(json!({"type": "count"})).await;
    assert_eq!(second.recv().await["count"], 2, "the player's state followed them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_set_aside_and_the_queue_moves_on() {
    let dev = Dev::start(PLAYER_V1, SCRIPT_BATTLE).await;
    let (mut ann, _) = dev.login("ann").await;
    ann.recv().await;
    let (mut bob, bob_welcome) = dev.login("bob").await;
    bob.recv().await;
    let bob_id = bob_welcome["player"].clone();

    ann.send(json!({"type": "send", "to": bob_id, "kind": "trap"})).await;
    ann.send(json!({"type": "send", "to": bob_id, "kind": "hello"})).await;
    let got = bob.recv_type("got").await;
    assert_eq!(got["kind"], "hello", "the poison message never reached a commit: {got}");
    assert_eq!(got["count"], 1, "no try of the failing message committed anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_play_plays_its_input_waits_for_the_answers_and_leaves() {
    let dev = Dev::start(warren_test_guests::SCRIPT_BASEAPP, SCRIPT_BATTLE).await;
    let url = format!("ws://{}/ws", dev.addr);
    let run = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["play", "--name", "scripted", "--json", "--wait-ms", "2000", "--url", &url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("warren play starts");
        // The whole input at once, then its end: the answers come after it.
        child.stdin.take().unwrap().write_all(b"ping\nshop.buy item=potion count=2\n").unwrap();
        child.wait_with_output().unwrap()
    });
    let out = tokio::time::timeout(FRAME_WAIT, run).await.expect("warren play leaves by itself").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frames: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("--json prints only frames: {l:?}: {e}")))
        .collect();
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["welcome", "profile", "pong", "bag", "profile"], "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_handler_is_one_log_line_with_its_message_place_module_and_frame() {
    let dir = crate::modules_with(PLAYER_V1);
    let (dev, addr) = crate::dev_process(dir.path());
    let mut c = Client::connect(addr).await;
    c.send(json!({"type": "login", "name": "oops"})).await;
    c.recv_type("welcome").await;
    c.send(json!({"type": "trap"})).await;
    assert_eq!(c.recv_type("error").await["reason"], "the server could not handle that (trap)");
    // Logs go to stderr, which the process's log holds.
    let started = Instant::now();
    let failed = loop {
        if let Some(line) = dev.log().lines().find(|l| l.contains("client frame failed")) {
            break line.to_owned();
        }
        assert!(started.elapsed() < FRAME_WAIT, "no fault line; log:\n{}", dev.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for part in ["panicked at", "src/lib.rs:", "asked to trap", "frame=trap", "module=", "handler=\"on_client\""] {
        assert!(failed.contains(part), "`{part}` in the fault's line: {failed}");
    }
    let log = dev.log();
    assert!(!log.contains("wasm backtrace"), "no backtrace at the default level:\n{log}");
}

/// Polls `/modules` until `done` accepts it.
async fn modules_until(dev: &Dev, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let modules = dev.modules().await;
        if done(&modules) {
            return modules;
        }
        assert!(started.elapsed() < FRAME_WAIT, "{what}: {modules}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_battle_module_that_cannot_restore_the_running_rooms_is_refused_before_it_serves() {
    use warren_test_guests::{ROOM_BAD_RESTORE, ROOM_V1, ROOM_V2, read};
    let bus = warren_bus::Bus::embedded_with_groups(16);
    let dev = Dev::start_on(PLAYER_V1, ROOM_V1, bus.clone()).await;
    let started = Instant::now();
    // The ticket is not used: any key signs it.
    let keys = warren::mechanics::auth::tokens::Keys::random();
    let room = loop {
        // The battleapp takes rooms once it has reported itself.
        match warren::roles::battleapp::place_room(&bus, &keys, 1, b"{}".to_vec()).await {
            Ok(placed) => break placed.room,
            Err(warren::roles::battleapp::PlaceError::NoBattleapp) if started.elapsed() < FRAME_WAIT => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("no room: {e}"),
        }
    };
    let (v1, v2) = (warren_runtime::digest(&read(ROOM_V1)), warren_runtime::digest(&read(ROOM_V2)));
    let started = Instant::now();
    let listed = loop {
        let rooms = crate::http_get_json(dev.addr, "/rooms").await;
        // Listed once its first snapshot is stored, with its module once it runs.
        if rooms["rooms"]
            .as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["module"].as_str().is_some_and(|m| !m.is_empty()))
        {
            break rooms["rooms"][0].clone();
        }
        assert!(started.elapsed() < FRAME_WAIT, "the room never ran: {rooms}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(listed["room"], room);
    assert_eq!(listed["module"], v1.as_str());
    let snapshot = hex::decode(listed["snapshot_hex"].as_str().unwrap()).unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&snapshot).unwrap()["id"], room, "the room's own snapshot");
    let raw = crate::http_get_json(dev.addr, &format!("/rooms/{room}/snapshot")).await;
    assert_eq!(
        raw,
        serde_json::from_slice::<serde_json::Value>(&snapshot).unwrap(),
        "the snapshot as its module wrote it"
    );

    // `warren build --check-rooms` against this server: the module that restores the room
    // passes, the one that cannot is named with the room and why.
    let url = format!("http://{}", dev.addr);
    let check = |guest: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let runtime = warren_runtime::Runtime::new(warren_runtime::Limits::default()).unwrap();
            warren::tools::build::check_against_dev(&url, &runtime, &read(guest)).map_err(|e| format!("{e:#}"))
        })
    };
    assert_eq!(check(ROOM_V2).await.unwrap(), Ok(1));
    let refused = check(ROOM_BAD_RESTORE).await.unwrap().unwrap_err();
    assert!(
        refused.contains(&format!("it cannot take over 1 of the 1 battle rooms running now (room {room}: rejected: this build cannot restore rooms)")),
        "{refused}"
    );

    // Dropped into the folder, it is refused before it serves: the room plays on v1.
    replace_file(&dev.module_path("battle"), ROOM_BAD_RESTORE);
    let modules = modules_until(&dev, "the module was never judged", |m| m["refused"]["battle"].is_string()).await;
    let why = modules["refused"]["battle"].as_str().unwrap();
    assert!(why.contains("battle module refused: it cannot take over 1 of the 1 battle rooms running now"), "{why}");
    assert_eq!(modules["serving"]["battle"], v1.as_str());
    assert_eq!(modules["rooms_by_module"], json!({ v1.as_str(): 1 }));
    assert_eq!(modules["pinned"], json!({}));

    // One that restores it serves, and the room moves to it.
    replace_file(&dev.module_path("battle"), ROOM_V2);
    let modules =
        modules_until(&dev, "the room never moved", |m| m["rooms_by_module"] == json!({ v2.as_str(): 1 })).await;
    assert_eq!(modules["serving"]["battle"], v2.as_str());
    assert!(modules["refused"].get("battle").is_none(), "{modules}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_ticks_keep_failing_logs_its_fault_once_then_closes() {
    let dir = crate::modules_with(PLAYER_V1);
    crate::replace_file(&dir.path().join("battle.wasm"), warren_test_guests::ROOM_V1);
    let (dev, addr) = crate::dev_process(dir.path());
    let mut c = Client::connect(addr).await;
    c.send(json!({"type": "login", "name": "tick"})).await;
    c.recv_type("welcome").await;
    c.send(json!({"type": "battle.start"})).await;
    let room = c.recv_type("battle.started").await["room"].as_u64().unwrap();
    c.send(json!({"type": "battle.input", "action": "break-ticks"})).await;
    let closed = c.recv_type("battle.closed").await;
    assert_eq!((closed["room"].as_u64(), closed["reason"].as_str()), (Some(room), Some("the battle failed: trap")));

    let started = Instant::now();
    while !dev.log().contains("room closed") {
        assert!(started.elapsed() < FRAME_WAIT, "the close was not logged:\n{}", dev.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = dev.log();
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("room tick failed")).collect();
    assert_eq!(failed.len(), 1, "one line for twenty failures of the same fault:\n{log}");
    for part in ["role=\"battle\"", "module=", "handler=\"tick\"", &format!("room={room}"), "asked to break every tick"]
    {
        assert!(failed[0].contains(part), "`{part}` in the fault's line: {}", failed[0]);
    }
    let closed: Vec<&str> = log.lines().filter(|l| l.contains("room closed")).collect();
    assert_eq!(closed.len(), 1, "{log}");
    assert!(closed[0].contains("its tick failed 20 times in a row"), "{}", closed[0]);
    assert!(!log.contains("wasm backtrace"), "no backtrace at the default level:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_a_baseapp_module_battles_and_guilds_answer_that_they_are_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(warren_test_guests::SCRIPT_BASEAPP, dir.path().join("baseapp.wasm")).unwrap();
    let config = warren::config::DevConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        modules: dir.path().to_owned(),
        name_login: true,
        ..warren::config::DevConfig::default()
    };
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = warren::roles::dev::start(config, async {
        let _ = stopped.await;
    })
    .await
    .expect("warren dev starts with a baseapp module alone");
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"type": "login", "name": "solo"})).await;
    c.recv_type("profile").await;
    c.send(json!({"type": "guild.create", "name": "Foxes"})).await;
    let off = c.recv_type("error").await;
    assert_eq!(off["reason"], "guilds are off on this server (it has no guild module)", "{off}");
    c.send(json!({"type": "battle.start"})).await;
    let off = c.recv_type("error").await;
    assert!(off["reason"].as_str().unwrap().starts_with("cannot start a battle"), "{off}");
    // The refused request changed nothing: the player is in no guild and plays on.
    c.send(json!({"type": "guild.info"})).await;
    let none = c.recv_type("error").await;
    assert!(!none["reason"].as_str().unwrap().contains("guilds are off"), "asked nothing of a guild: {none}");
    c.send(json!({"type": "ping"})).await;
    c.recv_type("pong").await;
}
