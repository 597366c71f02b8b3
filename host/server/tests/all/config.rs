//! Cluster hosts configured by file: `warren guild --config FILE` refuses a file with a
//! typo before doing anything, and serves from a good one.

use std::time::Duration;
use warren_bus::Bus;
use warren_test_guests as guests;
use warren_testkit::{Process, RedisServer};

/// How long a host may take to start serving before the test fails.
const START: Duration = Duration::from_secs(60);

fn warren() -> &'static str {
    env!("CARGO_BIN_EXE_warren")
}

/// Writes `text` as a config file in `dir`.
fn config_file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("guild.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_guild_host_refuses_a_config_file_with_a_typo_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the host must refuse the file before it connects.
    let path = config_file(&dir, "redis = \"redis://127.0.0.1:1\"\nlease_ttl = 5000\n");
    let out = std::process::Command::new(warren()).arg("guild").arg("--config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a typo is an error; stderr:\n{stderr}");
    assert!(stderr.contains("lease_ttl"), "the message names the bad key:\n{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "the message names the file:\n{stderr}");
}

#[test]
fn a_guild_host_without_a_message_center_says_how_to_give_one() {
    let out = std::process::Command::new(warren()).args(["guild", "--name", "nowhere"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no redis is an error; stderr:\n{stderr}");
    assert!(stderr.contains("--redis") && stderr.contains("--config"), "names both ways:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_host_serves_from_a_config_file() {
    let redis = RedisServer::start();
    let groups = 8;
    let bus = Bus::redis_with_groups(&redis.url, groups).await.unwrap();
    bus.publish_module("guild", guests::read(guests::SCRIPT_GUILD)).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "redis = \"{url}\"\nname = \"guild-from-file\"\ngroups = {groups}\nlease_ttl_ms = 2000\n\
         [limits]\ndeadline_ms = 100\n",
        url = redis.url
    );
    let path = config_file(&dir, &text);
    let args = ["guild".to_owned(), "--config".to_owned(), path.display().to_string()];
    let mut host = Process::start("guild-from-file", warren(), &args);
    let line = host.wait_for_line("serving", START);
    assert!(line.contains("guild-from-file"), "the name comes from the file: {line}");
    // It joined the cluster under that name, with the file's group count.
    let started = std::time::Instant::now();
    while !bus.members("guild").await.unwrap().iter().any(|m| m == "guild-from-file") {
        assert!(started.elapsed() < START, "never became a member; its log:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseapp_and_a_battleapp_without_a_signing_key_refuse_to_start_and_say_how() {
    let redis = RedisServer::start();
    let bus = Bus::redis_with_groups(&redis.url, 8).await.unwrap();
    for (role, module) in [("baseapp", guests::SCRIPT_BASEAPP), ("battle", guests::SCRIPT_BATTLE)] {
        bus.publish_module(role, guests::read(module)).await.unwrap();
    }
    for role in ["baseapp", "battleapp"] {
        let args: Vec<String> =
            [role, "--redis", &redis.url, "--groups", "8", "--listen", "127.0.0.1:0"].map(String::from).to_vec();
        let mut host = Process::start_env(role, warren(), &args, &[("WARREN_AUTH_KEY", None)]);
        let status = host.wait(START);
        let log = host.log();
        assert!(!status.success(), "{role} started without a key; its log:\n{log}");
        assert!(log.contains("WARREN_AUTH_KEY") && log.contains("key_file"), "{role} says how:\n{log}");
    }
    // A key too short to sign with is refused too, naming where it came from.
    let args: Vec<String> =
        ["baseapp", "--redis", &redis.url, "--groups", "8", "--listen", "127.0.0.1:0"].map(String::from).to_vec();
    let mut host = Process::start_env("short-key", warren(), &args, &[("WARREN_AUTH_KEY", Some("short"))]);
    assert!(!host.wait(START).success());
    assert!(host.log().contains("at least 32"), "{}", host.log());
}
