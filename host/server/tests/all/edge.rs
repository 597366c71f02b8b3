//! Exactly once at the player's screen on the cluster (docs/protocol.md, *Delivery*):
//! baseapps and guild hosts as processes on a durable Redis, one killed (-9) or stopped
//! (TERM) under a load of keyed whispers and guild chats; a commit delayed past the host's
//! Redis timeout; a keyed frame sent again on another baseapp. The clients are
//! [`Player`]s, which keep the client's side of the contract and check the host's.
//! (The same contract in `warren dev`, with faults injected: `screen`.)

use crate::cluster::{SETTLE, baseapp, guild_host, host_args, warren};
use crate::edge_client::{Outcome, Player};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use warren_bus::{Address, Bus, group_of};
use warren_test_guests as guests;
use warren_testkit::{Process, RedisServer};

const GROUPS: u32 = 16;
/// Leases far longer than the fail-over bound: a fail-over within the bound shows the
/// dead host's membership lapsing (2.5 s), not its leases expiring.
const LEASE_MS: u64 = 20_000;
/// How long a fail-over (baseapp or guild host) may take.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);
const PLAYERS: usize = 6;
/// Frames each player gets answered before the fault, and after it.
const BEFORE_FAULT: u64 = 10;
const AFTER_FAULT: u64 = 20;

pub(crate) async fn publish(bus: &Bus) {
    for (role, path) in
        [("baseapp", guests::SCRIPT_BASEAPP), ("battle", guests::SCRIPT_BATTLE), ("guild", guests::SCRIPT_GUILD)]
    {
        bus.publish_module(role, guests::read(path)).await.unwrap();
    }
}

/// A keyed frame the load sent, and what came of it.
pub(crate) struct Sent {
    /// The whisper's receiver; `None` for a guild chat.
    to: Option<u64>,
    text: String,
    first_sent: Instant,
    outcome: Outcome,
    unknown_once: bool,
}

/// One player's load until `stop`: keyed whispers to each peer in turn and, every third
/// frame, a keyed guild chat, each sent until answered for sure (logging in again on
/// `fallback` if the socket ends); `count` counts the frames answered.
async fn load(
    mut p: Player,
    peers: Vec<u64>,
    fallback: SocketAddr,
    stop: Arc<AtomicBool>,
    count: Arc<Vec<AtomicU64>>,
    me: usize,
) -> (Player, Vec<Sent>) {
    let mut sent = vec![];
    for i in 0.. {
        if stop.load(Relaxed) {
            break;
        }
        let (to, text) = match i % 3 {
            2 => (None, format!("c-{}-{i}", p.name)),
            _ => (Some(peers[i % peers.len()]), format!("w-{}-{i}", p.name)),
        };
        let frame = match to {
            Some(to) => json!({"type": "whisper", "to": to, "text": text, "req": text}),
            None => json!({"type": "guild.chat", "text": text, "req": text}),
        };
        let first_sent = Instant::now();
        let (outcome, unknown_once) = p.settle(&frame, fallback).await;
        sent.push(Sent { to, text, first_sent, outcome, unknown_once });
        count[me].fetch_add(1, Relaxed);
    }
    p.ack().await;
    (p, sent)
}

/// Every player's [`load`], running: how many frames each got answered, and the way to
/// stop them all.
pub(crate) struct Loads {
    stop: Arc<AtomicBool>,
    count: Arc<Vec<AtomicU64>>,
    tasks: Vec<tokio::task::JoinHandle<(Player, Vec<Sent>)>>,
}

impl Loads {
    /// Starts a load per player, each whispering to all the others; a player whose socket
    /// ends logs in again on `fallback`.
    pub(crate) fn start(players: Vec<Player>, fallback: SocketAddr) -> Loads {
        let ids: Vec<u64> = players.iter().map(|p| p.id).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let count: Arc<Vec<AtomicU64>> = Arc::new(ids.iter().map(|_| AtomicU64::new(0)).collect());
        let tasks = players
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let peers = ids.iter().copied().filter(|id| *id != p.id).collect();
                tokio::spawn(load(p, peers, fallback, stop.clone(), count.clone(), i))
            })
            .collect();
        Loads { stop, count, tasks }
    }

    /// Frames answered so far, per player.
    pub(crate) fn counts(&self) -> Vec<u64> {
        self.count.iter().map(|c| c.load(Relaxed)).collect()
    }

    /// Stops every load: the players, and every keyed frame they sent with its outcome.
    pub(crate) async fn finish(self) -> (Vec<Player>, Vec<Sent>) {
        self.stop.store(true, Relaxed);
        let (mut players, mut sent) = (vec![], vec![]);
        for t in self.tasks {
            let (p, s) = t.await.expect("a player's load ran through");
            players.push(p);
            sent.extend(s);
        }
        (players, sent)
    }
}

/// Player 0 founds a guild and the others join it (each one's own `joined` shown);
/// returns the guild's id.
pub(crate) async fn found_guild(players: &mut [Player]) -> u64 {
    let created = players[0].ask(&json!({"type": "guild.create", "name": "Foxes", "req": "found"})).await.unwrap();
    let guild = created.iter().find_map(|f| f["guild"].as_u64()).unwrap_or_else(|| panic!("{created:?}"));
    let founded = |p: &Player| p.shown.iter().any(|s| s.frame["event"] == "created");
    assert!(players[0].read_until(SETTLE, founded).await, "the guild was never founded");
    for p in &mut players[1..] {
        p.ask(&json!({"type": "guild.join", "name": "Foxes", "req": "join"})).await.unwrap();
        let id = p.id;
        let joined = move |p: &Player| p.shown.iter().any(|s| s.frame["event"] == "joined" && s.frame["player"] == id);
        assert!(p.read_until(SETTLE, joined).await, "{} never joined", p.name);
    }
    guild
}

/// Waits until `done` holds, failing the test with `what` after [`SETTLE`].
pub(crate) async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < SETTLE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    KillBaseapp,
    StopBaseapp,
    KillGuildHost,
    StopGuildHost,
}

/// Two guild hosts and two baseapps on a durable Redis, [`PLAYERS`] players split over
/// the baseapps in one guild, whispering and chatting; `fault` strikes mid-load. Then
/// every applied whisper and chat is shown exactly once to each of its receivers.
async fn exactly_once_through(fault: Fault) {
    let redis = RedisServer::start_durable();
    let bus = Bus::redis_with_groups(&redis.url, GROUPS).await.unwrap();
    publish(&bus).await;
    let mut guild_hosts =
        [guild_host(&redis.url, GROUPS, "guild-1", LEASE_MS), guild_host(&redis.url, GROUPS, "guild-2", LEASE_MS)];
    let (mut b1, addr1) = baseapp(&redis.url, GROUPS, "base-1", LEASE_MS);
    let (b2, addr2) = baseapp(&redis.url, GROUPS, "base-2", LEASE_MS);
    let mut players = vec![];
    for i in 0..PLAYERS {
        players.push(Player::login(if i % 2 == 0 { addr1 } else { addr2 }, &format!("p{i}")).await);
    }
    // Players 0, 2, 4 are on base-1, the one a baseapp fault strikes.
    let on_b1 = |i: usize| i.is_multiple_of(2);
    let guild = found_guild(&mut players).await;
    let ids: Vec<u64> = players.iter().map(|p| p.id).collect();

    let loads = Loads::start(players, addr2);
    let counts = || loads.counts();
    wait_until("the load to get going", || counts().iter().all(|n| *n >= BEFORE_FAULT)).await;

    let before = counts();
    let fault_at = Instant::now();
    let mut killed_guild_host = None;
    match fault {
        Fault::KillBaseapp => b1.signal("KILL"),
        Fault::StopBaseapp => b1.signal("TERM"),
        Fault::KillGuildHost | Fault::StopGuildHost => {
            let group = Address::GuildGroup(group_of(guild, GROUPS));
            let (holder, _) = bus.lease_holder(&group).await.unwrap().expect("the guild's group is held");
            let host = guild_hosts.iter().position(|h| h.name == holder).expect("a guild host holds it");
            guild_hosts[host].signal(if fault == Fault::StopGuildHost { "TERM" } else { "KILL" });
            killed_guild_host = Some(host);
        }
    }
    let after = || counts().iter().zip(&before).all(|(n, b)| *n >= b + AFTER_FAULT);
    wait_until("every player to go on after the fault", after).await;
    let (mut players, sent) = loads.finish().await;
    if fault == Fault::StopBaseapp {
        assert!(b1.wait(SETTLE).success(), "base-1 stops cleanly; its log:\n{}", b1.log());
    }
    if let (Fault::StopGuildHost, Some(host)) = (fault, killed_guild_host) {
        let h = &mut guild_hosts[host];
        assert!(h.wait(SETTLE).success(), "the guild host stops cleanly; its log:\n{}", h.log());
    }

    let mut violations = check_exactly_once(&mut players, &sent, &ids).await;
    // How each player's sockets ended: only base-1's, once each (a stop: told why, closed
    // cleanly with 1012).
    for (i, p) in players.iter().enumerate() {
        let struck = on_b1(i) && matches!(fault, Fault::KillBaseapp | Fault::StopBaseapp);
        if p.endings.len() != usize::from(struck) {
            violations.push(format!(
                "{}: {} socket ends, expected {}: {:?}",
                p.name,
                p.endings.len(),
                u8::from(struck),
                p.endings
            ));
        }
        if let (Fault::StopBaseapp, true, Some(e)) = (fault, struck, p.endings.first()) {
            let told = e.error.as_deref().is_some_and(|r| r.contains("restarting"));
            if e.code != Some(1012) || e.reset.is_some() || !told {
                violations.push(format!("{}: base-1 stopped: its socket ended {e:?}", p.name));
            }
        }
    }
    let failovers: Vec<_> = players.iter().flat_map(|p| p.failovers.iter().map(move |f| (&p.name, f))).collect();
    for (name, f) in &failovers {
        println!(
            "{fault:?}: {name} failover_s={:.2} (welcome {:.2} s; socket ended {:.2} s and served again {:.2} s after the fault; {:?})",
            f.to_pong.as_secs_f64(),
            f.to_welcome.as_secs_f64(),
            (f.ended.at - fault_at).as_secs_f64(),
            (f.pong_at - fault_at).as_secs_f64(),
            f.ended
        );
        if f.to_pong > FAILOVER_BOUND {
            violations.push(format!("{name}: fail-over took {:?}", f.to_pong));
        }
    }
    if let Some(host) = killed_guild_host {
        // Chats flow again when one sent after the kill reaches a member.
        let sent_after: BTreeSet<&str> =
            sent.iter().filter(|s| s.to.is_none() && s.first_sent > fault_at).map(|s| s.text.as_str()).collect();
        let resumed = players
            .iter()
            .flat_map(|p| p.shown.iter())
            .filter(|s| s.frame["text"].as_str().is_some_and(|t| sent_after.contains(t)))
            .map(|s| s.at - fault_at)
            .min()
            .expect("a chat sent after the kill was shown");
        println!("{fault:?}: {} killed; chats_resumed_s={:.2}", guild_hosts[host].name, resumed.as_secs_f64());
        if resumed > FAILOVER_BOUND {
            violations.push(format!("chats flowed again {resumed:?} after the guild host's death"));
        }
    }
    let of = |o: fn(&Sent) -> bool| sent.iter().filter(|s| o(s)).count();
    println!(
        "{fault:?}: {} whispers and {} chats applied, {} unknown, {} refused, {} unknown once then settled, {} sent again after a socket ended; max failover_s={:.2}",
        of(|s| s.to.is_some() && s.outcome == Outcome::Applied),
        of(|s| s.to.is_none() && s.outcome == Outcome::Applied),
        of(|s| s.outcome == Outcome::Unknown),
        of(|s| matches!(s.outcome, Outcome::Refused(_))),
        of(|s| s.unknown_once),
        players.iter().map(|p| p.resent).sum::<usize>(),
        failovers.iter().map(|(_, f)| f.to_pong.as_secs_f64()).fold(0.0, f64::max),
    );
    let logs = || {
        let hosts = guild_hosts.iter().chain([&b1, &b2]);
        hosts.map(|h| format!("--- {}:\n{}", h.name, h.log())).collect::<Vec<_>>().join("\n")
    };
    assert!(
        violations.is_empty(),
        "{} violations:\n{}\nhost logs:\n{}",
        violations.len(),
        violations.iter().take(40).cloned().collect::<Vec<_>>().join("\n"),
        logs()
    );
}

/// Once the load stopped: waits until every player showed every whisper and chat applied
/// for it, then lists what was not exactly once — a text shown twice, an applied one
/// missing, a refused one shown, one shown to a player it was not for — and the
/// numbering breaches the clients saw.
pub(crate) async fn check_exactly_once(players: &mut [Player], sent: &[Sent], ids: &[u64]) -> Vec<String> {
    let receivers = |s: &Sent| s.to.map(|to| vec![to]).unwrap_or_else(|| ids.to_vec());
    let mut expected: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for s in sent.iter().filter(|s| s.outcome == Outcome::Applied) {
        for r in receivers(s) {
            expected.entry(r).or_default().insert(s.text.clone());
        }
    }
    let by_text: BTreeMap<&str, &Sent> = sent.iter().map(|s| (s.text.as_str(), s)).collect();
    let mut violations = vec![];
    for p in players.iter_mut() {
        let want = expected.remove(&p.id).unwrap_or_default();
        let all_shown = |p: &Player| {
            let texts = p.texts();
            want.iter().all(|t| texts.contains_key(t))
        };
        p.read_until(SETTLE, all_shown).await;
        // Whatever else is on its way comes before the pong.
        p.ping().await.unwrap_or_else(|e| panic!("{}: the socket ended draining: {e:?}", p.name));
        let texts = p.texts();
        for t in want.iter().filter(|t| !texts.contains_key(*t)) {
            violations.push(format!("{}: {t} was applied (its sender got done) but never shown", p.name));
        }
        for (text, seqs) in &texts {
            if seqs.len() > 1 {
                violations.push(format!("{}: {text} shown {} times, at seqs {seqs:?}", p.name, seqs.len()));
            }
            match by_text.get(text.as_str()) {
                None => violations.push(format!("{}: {text} shown, never sent", p.name)),
                Some(s) if !receivers(s).contains(&p.id) => {
                    violations.push(format!("{}: {text} shown, not meant for it", p.name))
                }
                Some(s) if matches!(s.outcome, Outcome::Refused(_)) => {
                    violations.push(format!("{}: {text} shown, though refused: {:?}", p.name, s.outcome))
                }
                Some(_) => {}
            }
        }
        violations.append(&mut p.violations);
    }
    for s in sent {
        if let Outcome::Refused(reason) = &s.outcome {
            violations.push(format!("{} refused: {reason}", s.text));
        }
    }
    violations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseapp_killed_mid_load_fails_over_and_every_whisper_and_chat_is_shown_once() {
    exactly_once_through(Fault::KillBaseapp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseapp_stopped_mid_load_says_so_closes_with_1012_and_every_whisper_and_chat_is_shown_once() {
    exactly_once_through(Fault::StopBaseapp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_host_killed_mid_chat_is_replaced_and_every_chat_is_shown_once_to_every_member() {
    exactly_once_through(Fault::KillGuildHost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_host_stopped_mid_chat_hands_its_groups_over_and_every_chat_is_shown_once_to_every_member() {
    exactly_once_through(Fault::StopGuildHost).await;
}

/// Starts `warren baseapp` with the config file `config` (its text).
fn baseapp_with(url: &str, name: &str, config: &str) -> (Process, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.toml");
    std::fs::write(&path, format!("{config}\n{}", crate::TEST_LIMITS)).unwrap();
    let mut args = vec!["baseapp".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(["--config".to_owned(), path.display().to_string()]);
    args.extend(host_args(url, GROUPS, name, 10_000));
    let mut p = Process::start(name, warren(), &args);
    let addr = p.listening_address(SETTLE);
    (p, addr, dir)
}

/// The price of `item`, from the `shop` frame.
async fn price(p: &mut Player, item: &str) -> u64 {
    let answer = p.ask(&json!({"type": "shop", "req": "look"})).await.unwrap();
    let shop = answer.iter().find(|f| f["type"] == "shop").unwrap_or_else(|| panic!("{answer:?}"));
    let items = shop["items"].as_array().unwrap();
    items.iter().find(|i| i["item"] == item).and_then(|i| i["price"].as_u64()).unwrap_or_else(|| panic!("{shop}"))
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap_or("?")).collect()
}

/// A redis command on a fresh blocking connection (one without a response timeout, so a
/// PING answers once a `CLIENT PAUSE` is over).
async fn redis_cmd(url: &str, args: &[&str]) -> String {
    let (url, args): (String, Vec<String>) = (url.to_owned(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let mut conn = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
        let mut cmd = redis::cmd(&args[0]);
        cmd.arg(&args[1..]);
        cmd.query::<String>(&mut conn).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_delayed_past_the_redis_timeout_is_never_called_not_saved_and_applies_once() {
    let redis = RedisServer::start();
    let bus = Bus::redis_with_groups(&redis.url, GROUPS).await.unwrap();
    publish(&bus).await;
    let (host, addr, _config) = baseapp_with(&redis.url, "base-1", "[bus]\nresponse_timeout_ms = 300\n");
    let mut p = Player::login(addr, "pat").await;
    let potion = price(&mut p, "potion").await;
    let before = crate::stored(&bus, p.id, "gold").await;

    // Redis holds every command for 1.5 s, five times the host's wait: the buy's commit
    // (and whatever the host does to find out about it) lands late, if at all.
    assert_eq!(redis_cmd(&redis.url, &["CLIENT", "PAUSE", "1500", "ALL"]).await, "OK");
    let buy = json!({"type": "shop.buy", "item": "potion", "count": 1, "req": "buy-1"});
    let first = p.ask(&buy).await.unwrap_or_else(|e| panic!("the session ended: {e:?}; log:\n{}", host.log()));
    assert_eq!(redis_cmd(&redis.url, &["PING"]).await, "PONG", "the pause is over");
    let after_first = crate::stored(&bus, p.id, "gold").await;
    println!("delayed commit: first answer {:?}, gold {before} -> {after_first}", types(&first));
    let not_saved = first.iter().any(|f| f["reason"].as_str().is_some_and(|r| r.contains("not saved")));
    assert!(!not_saved || after_first == before, "told \"not saved\" about a saved buy: {first:?}");
    if first.last().unwrap()["type"] == "done" && !not_saved {
        assert_eq!(types(&first), ["bag", "profile", "done"], "applied, so answered");
        assert_eq!(after_first, before - potion, "{first:?}");
    }

    // Sent again with its key until it is done: applied once, whatever the first answer.
    let started = Instant::now();
    let done = loop {
        let answer = p.ask(&buy).await.unwrap_or_else(|e| panic!("the session ended: {e:?}; log:\n{}", host.log()));
        let again = answer.iter().any(|f| f["reason"].as_str().is_some_and(|r| r.contains("not saved")));
        if answer.last().unwrap()["type"] == "done" && !again {
            break answer;
        }
        assert!(started.elapsed() < SETTLE, "never done: {answer:?}; log:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(types(&done), ["bag", "profile", "done"], "{done:?}");
    assert_eq!(done[1]["gold"].as_u64(), Some(before - potion), "{done:?}");
    assert_eq!(crate::stored(&bus, p.id, "gold").await, before - potion, "charged once");
    assert_eq!(p.ask(&buy).await.unwrap(), done, "answered alike once more");
    assert_eq!(crate::stored(&bus, p.id, "gold").await, before - potion, "still charged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_frame_sent_again_on_another_baseapp_is_answered_alike_and_applied_once() {
    let redis = RedisServer::start();
    let bus = Bus::redis_with_groups(&redis.url, GROUPS).await.unwrap();
    publish(&bus).await;
    let (_b1, addr1) = baseapp(&redis.url, GROUPS, "base-1", 10_000);
    let (_b2, addr2) = baseapp(&redis.url, GROUPS, "base-2", 10_000);
    let mut p = Player::login(addr1, "quinn").await;
    let potion = price(&mut p, "potion").await;
    let before = crate::stored(&bus, p.id, "gold").await;
    let buy = json!({"type": "shop.buy", "item": "potion", "count": 1, "req": "buy-1"});
    let first = p.ask(&buy).await.unwrap();
    assert_eq!(types(&first), ["bag", "profile", "done"], "{first:?}");
    assert_eq!(crate::stored(&bus, p.id, "gold").await, before - potion);

    // The network drops; the client logs in on the other baseapp and, not knowing the buy
    // was answered, sends it again.
    p.disconnect();
    let took = p.relogin(addr2).await;
    println!("moved to base-2 in {:.2} s", took.as_secs_f64());
    assert_eq!(p.ask(&buy).await.unwrap(), first, "the first answer, again");
    assert_eq!(p.ask(&buy).await.unwrap(), first, "and again");
    assert_eq!(crate::stored(&bus, p.id, "gold").await, before - potion, "charged once");
}
