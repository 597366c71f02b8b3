//! The cluster as a client sees it, on real `warren` processes against a real
//! `redis-server` (each part on a fresh one, the shipped scripts published with
//! `warren publish`):
//!
//! 1. **Replies.** One client on one baseapp: the round trip of a frame answered with two
//!    frames (`shop.buy` of a potion, answered `bag` then `profile`, alternating with
//!    `item.sell` of one, answered the same way; timed until the second frame), beside
//!    `ping` → `pong`, interleaved in the same run. A buy costs 10 gold and a sale gives 4
//!    back, so the player's gold is topped up first with won battles (`battle.result`
//!    messages from rooms, 20 gold each) sent through the bus.
//! 2. **Guild chat.** One guild host, one baseapp, N members of one guild, each on its own
//!    socket; several members send `guild.chat` as fast as the cluster takes them (a few in
//!    flight each: a chat is done when its speaker hears it, or lost after 5 s). The figure
//!    is chats every member received, per second. Members acknowledge their pushes every 50.
//!    Run with the default limits (an entity sends at most 1000 messages a second, so a
//!    guild of N members at most 1000/N chats), and again with the send rate raised, to see
//!    what the hosts themselves take. A guild holds at most 50 members (the shipped
//!    script): N is 10 and 50; a 51st join is tried and its answer printed.
//! 3. **Fail-over.** Two baseapps; a player on A; A is killed (SIGKILL); the client logs
//!    in on B at once and pings: seconds from the kill to the `pong`, three fresh players,
//!    the median. Then two guild hosts and a member chatting every 50 ms; the host owning
//!    the guild's group (its lease holder) is killed: the longest gap between two chat
//!    events a listening member received around the kill.
//!
//! `cargo bench -p warren --bench edge`; ends with `name=value` lines.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use warren_bus::{Address, Bus, Outbound, group_of};
use warren_testkit::RedisServer;

#[path = "edge/cluster.rs"]
mod cluster;
use cluster::*;

/// Guild groups of every cluster here.
const GROUPS: u32 = 16;
/// How long a host may take to start, and a frame to come, before the bench fails.
const WAIT: Duration = Duration::from_secs(60);
/// Samples of each round trip.
const SAMPLES: usize = 1000;
/// A chat not heard by its speaker within this is counted lost.
const LOST_AFTER: Duration = Duration::from_secs(5);
/// Chats in flight per sending member.
const IN_FLIGHT: usize = 4;
/// Members that send.
const SENDERS: usize = 10;
/// Pushes between two acknowledgements.
const ACK_EVERY: u64 = 50;

/// What part 1 measured, ms.
struct Replies {
    reply1: Vec<f64>,
    reply2: Vec<f64>,
}

async fn replies() -> Replies {
    let redis = RedisServer::start();
    publish(&redis.url);
    let bus = Bus::redis_with_groups(&redis.url, GROUPS).await.expect("bus");
    // A client in a closed loop sends thousands of frames a second: the pace a host holds
    // a bad client to (docs/limits.md, *Clients*) is raised out of the way.
    let load = tempfile::tempdir().expect("temp dir");
    let config = load.path().join("load.toml");
    std::fs::write(&config, "[net]\nframes_per_s = 1000000\nframes_burst = 1000000\n").expect("write config");
    let (_base, addr) = baseapp(&redis.url, "edge-base", Some(&config.display().to_string()));
    let mut c = Client::login(addr, "shopper", WAIT).await;
    c.drain(Duration::from_millis(300)).await;

    // Gold for every buy: each pair of buy and sale costs 6; 20 a won battle.
    let pairs = (SAMPLES / 2 + 50) as u64;
    let wins = (pairs * 6).div_ceil(20) + 5;
    let target = gold(&bus, c.player).await + 20 * wins;
    for room in 0..wins {
        let body = json!({"room": room, "winner": c.player, "winners": [c.player], "practice": false});
        let msg = Outbound {
            to: Address::Player(c.player),
            sender: Some(Address::Battle(room)),
            kind: "battle.result".into(),
            body: body.to_string().into_bytes(),
            hops: 0,
        };
        bus.send(msg).await.expect("send a battle result");
    }
    let started = Instant::now();
    while gold(&bus, c.player).await < target {
        assert!(started.elapsed() < WAIT, "the battle results were never applied");
        c.drain(Duration::from_millis(20)).await;
    }
    c.drain(Duration::from_millis(500)).await;

    let buy = json!({"type": "shop.buy", "item": "potion", "count": 1});
    let sell = json!({"type": "item.sell", "slot": 0, "count": 1});
    let mut out = Replies { reply1: Vec::new(), reply2: Vec::new() };
    // 50 pairs of warm-up, then the samples.
    for i in 0..SAMPLES + 100 {
        let t = Instant::now();
        c.send(json!({"type": "ping"})).await;
        let pong = c.recv().await;
        let one = t.elapsed();
        assert_eq!(pong["type"], "pong", "{pong}");

        let frame = if i % 2 == 0 { &buy } else { &sell };
        let t = Instant::now();
        c.send(frame.clone()).await;
        let bag = c.recv().await;
        let profile = c.recv().await;
        let two = t.elapsed();
        assert_eq!((&bag["type"], &profile["type"]), (&json!("bag"), &json!("profile")), "{frame}: {bag} {profile}");
        if i >= 100 {
            out.reply1.push(ms(one));
            out.reply2.push(ms(two));
        }
    }
    out.reply1.sort_by(f64::total_cmp);
    out.reply2.sort_by(f64::total_cmp);
    out
}

/// What one guild chat run measured.
struct ChatRun {
    members: usize,
    sent: u64,
    delivered: u64,
    lost: u64,
    errors: u64,
    first_error: Option<String>,
    per_s: f64,
    /// Chat events the members received, per second.
    events_per_s: f64,
    /// Enqueue → every member has it, ms: p50 and p99 of the chats fully delivered.
    full_p50_ms: f64,
    full_p99_ms: f64,
    /// The answer to a join past the member cap, if one was tried.
    overfull: Option<String>,
    /// Lines of the guild host's log that refuse a message for its send rate, and the first.
    too_fast: usize,
    too_fast_line: Option<String>,
}

/// Shared counts of a chat run.
struct Tally {
    start: Instant,
    members: u32,
    /// Per chat: members that received it.
    heard: Vec<AtomicU32>,
    /// Per chat: when it was sent, µs after `start`.
    sent_at: Vec<AtomicU64>,
    /// Per fully delivered chat: send → last member, µs.
    full: std::sync::Mutex<Vec<u64>>,
    delivered: AtomicU64,
    events: AtomicU64,
    /// When the last chat was fully delivered, µs after `start`.
    last_full_us: AtomicU64,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

/// A member's socket in the load: a writer task owning the sink, and a reader that counts
/// chat events, acknowledges pushes and tells its sender which of its chats came back.
fn run_member(
    c: Client,
    tally: Arc<Tally>,
    own: Option<tokio::sync::mpsc::UnboundedSender<usize>>,
) -> tokio::sync::mpsc::UnboundedSender<Value> {
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (mut sink, mut stream) = c.ws.split();
    tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::text(frame.to_string())).await.is_err() {
                break;
            }
        }
    });
    let acks = out_tx.clone();
    let me = c.player;
    let mut acked = c.seq;
    tokio::spawn(async move {
        let mut seq = acked;
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(text) = msg else { continue };
            let f: Value = serde_json::from_str(&text).expect("frames are JSON");
            if let Some(s) = f["seq"].as_u64() {
                seq = seq.max(s);
                if seq >= acked + ACK_EVERY {
                    acked = seq;
                    let _ = acks.send(json!({"type": "ack", "seq": seq}));
                }
            }
            if f["type"] == "error" || (f["type"] == "guild.event" && f["event"] == "refused") {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                tally.first_error.lock().unwrap().get_or_insert_with(|| f.to_string());
                continue;
            }
            if f["type"] != "guild.event" || f["event"] != "chat" {
                continue;
            }
            let Some(id) = f["text"].as_str().and_then(|t| t.strip_prefix('c')).and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            tally.events.fetch_add(1, Ordering::Relaxed);
            if tally.heard[id].fetch_add(1, Ordering::Relaxed) + 1 == tally.members {
                let now = tally.start.elapsed().as_micros() as u64;
                tally.full.lock().unwrap().push(now.saturating_sub(tally.sent_at[id].load(Ordering::Relaxed)));
                tally.delivered.fetch_add(1, Ordering::Relaxed);
                tally.last_full_us.fetch_max(now, Ordering::Relaxed);
            }
            if f["from"].as_u64() == Some(me)
                && let Some(own) = &own
            {
                let _ = own.send(id);
            }
        }
    });
    out_tx
}

/// One sender: `ids` chats, at most [`IN_FLIGHT`] not yet heard back at once.
async fn send_chats(
    out: tokio::sync::mpsc::UnboundedSender<Value>,
    mut own: tokio::sync::mpsc::UnboundedReceiver<usize>,
    ids: std::ops::Range<usize>,
    tally: Arc<Tally>,
) -> u64 {
    let mut in_flight: std::collections::HashMap<usize, Instant> = std::collections::HashMap::new();
    let mut lost = 0;
    let mut next = ids.start;
    while next < ids.end || !in_flight.is_empty() {
        if next < ids.end && in_flight.len() < IN_FLIGHT {
            tally.sent_at[next].store(tally.start.elapsed().as_micros() as u64, Ordering::Relaxed);
            in_flight.insert(next, Instant::now());
            let _ = out.send(json!({"type": "guild.chat", "text": format!("c{next}")}));
            next += 1;
            continue;
        }
        let oldest = in_flight.values().min().copied().expect("one in flight");
        match tokio::time::timeout_at((oldest + LOST_AFTER).into(), own.recv()).await {
            Ok(Some(id)) => {
                in_flight.remove(&id);
            }
            Ok(None) => break,
            Err(_) => {
                let before = in_flight.len();
                in_flight.retain(|_, at| at.elapsed() < LOST_AFTER);
                lost += (before - in_flight.len()) as u64;
            }
        }
    }
    lost
}

/// A guild of `members` on one guild host and one baseapp, `chats` chats; `config`, a
/// host config file for both, or the defaults.
async fn guild_chat(members: usize, chats: usize, config: Option<&str>, try_overfull: bool) -> ChatRun {
    let redis = RedisServer::start();
    publish(&redis.url);
    let guild = guild_host(&redis.url, "edge-guild", config);
    let (_base, addr) = baseapp(&redis.url, "edge-base", config);
    let mut clients = Vec::new();
    for i in 0..members {
        clients.push(Client::login(addr, &format!("m{i}"), WAIT).await);
    }
    let name = format!("Chat {members}");
    clients[0].send(json!({"type": "guild.create", "name": name})).await;
    let created = clients[0].guild_event("created", None).await;
    assert_eq!(created["event"], "created", "{created}");
    for c in clients.iter_mut().skip(1) {
        c.send(json!({"type": "guild.join", "name": name})).await;
        let player = c.player;
        let joined = c.guild_event("joined", Some(player)).await;
        assert_eq!(joined["event"], "joined", "{joined}");
    }
    let overfull = if try_overfull {
        let mut extra = Client::login(addr, "one-too-many", WAIT).await;
        extra.send(json!({"type": "guild.join", "name": name})).await;
        let answer = extra.guild_event("joined", Some(extra.player)).await;
        Some(answer.to_string())
    } else {
        None
    };
    for c in &mut clients {
        c.drain(Duration::from_millis(200)).await;
    }

    let tally = Arc::new(Tally {
        start: Instant::now(),
        members: members as u32,
        heard: (0..chats).map(|_| AtomicU32::new(0)).collect(),
        sent_at: (0..chats).map(|_| AtomicU64::new(0)).collect(),
        full: std::sync::Mutex::new(Vec::with_capacity(chats)),
        delivered: AtomicU64::new(0),
        events: AtomicU64::new(0),
        last_full_us: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let senders = SENDERS.min(members);
    let per_sender = chats / senders;
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        if i < senders {
            let (own_tx, own_rx) = tokio::sync::mpsc::unbounded_channel();
            let out = run_member(c, tally.clone(), Some(own_tx));
            let ids = i * per_sender..(i + 1) * per_sender;
            tasks.push(tokio::spawn(send_chats(out, own_rx, ids, tally.clone())));
        } else {
            // The reader keeps its own handle on the writer, for its acks.
            drop(run_member(c, tally.clone(), None));
        }
    }
    let mut lost = 0;
    for t in tasks {
        lost += t.await.expect("sender");
    }
    let sent = (senders * per_sender) as u64;
    // Stragglers: every member hears a chat its speaker heard, shortly after.
    let started = Instant::now();
    while tally.delivered.load(Ordering::Relaxed) + lost < sent && started.elapsed() < LOST_AFTER {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let secs = tally.last_full_us.load(Ordering::Relaxed) as f64 / 1e6;
    let mut full: Vec<f64> = tally.full.lock().unwrap().iter().map(|us| *us as f64 / 1000.0).collect();
    full.sort_by(f64::total_cmp);
    let p = |q| if full.is_empty() { f64::NAN } else { percentile(&full, q) };
    let log = guild.log();
    let too_fast: Vec<&str> = log.lines().filter(|l| l.contains("sending too fast")).collect();
    ChatRun {
        too_fast: too_fast.len(),
        too_fast_line: too_fast.first().map(|l| l.to_string()),
        members,
        sent,
        delivered,
        lost,
        errors: tally.errors.load(Ordering::Relaxed),
        first_error: tally.first_error.lock().unwrap().clone(),
        per_s: delivered as f64 / secs,
        events_per_s: tally.events.load(Ordering::Relaxed) as f64 / secs,
        full_p50_ms: p(0.5),
        full_p99_ms: p(0.99),
        overfull,
    }
}

/// A client's socket as two channels: frames to send, and frames received with when they
/// came. Pushes are acknowledged every [`ACK_EVERY`].
fn split(
    c: Client,
) -> (tokio::sync::mpsc::UnboundedSender<Value>, tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>) {
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut sink, mut stream) = c.ws.split();
    tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::text(frame.to_string())).await.is_err() {
                break;
            }
        }
    });
    let acks = out_tx.clone();
    let mut acked = c.seq;
    tokio::spawn(async move {
        let mut seq = acked;
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(text) = msg else { continue };
            let at = Instant::now();
            let f: Value = serde_json::from_str(&text).expect("frames are JSON");
            if let Some(s) = f["seq"].as_u64() {
                seq = seq.max(s);
                if seq >= acked + ACK_EVERY {
                    acked = seq;
                    let _ = acks.send(json!({"type": "ack", "seq": seq}));
                }
            }
            let _ = in_tx.send((at, f));
        }
    });
    (out_tx, in_rx)
}

/// Seconds from killing a player's baseapp to the `pong` of its next session, on the other
/// baseapp: one per round, each with a fresh player and a fresh baseapp A.
async fn failover_player(rounds: usize) -> Vec<f64> {
    let redis = RedisServer::start();
    publish(&redis.url);
    let (_b, addr_b) = baseapp(&redis.url, "edge-base-b", None);
    let mut out = Vec::new();
    for round in 0..rounds {
        let (a, addr_a) = baseapp(&redis.url, &format!("edge-base-a{round}"), None);
        let name = format!("runner{round}");
        let mut on_a = Client::login(addr_a, &name, WAIT).await;
        on_a.send(json!({"type": "ping"})).await;
        while on_a.recv().await["type"] != "pong" {}
        let killed = Instant::now();
        a.signal("KILL");
        let mut on_b = Client::login(addr_b, &name, WAIT).await;
        let welcome_s = killed.elapsed().as_secs_f64();
        on_b.send(json!({"type": "ping"})).await;
        while on_b.recv().await["type"] != "pong" {}
        let s = killed.elapsed().as_secs_f64();
        println!("  round {round}: welcome on B after {welcome_s:.3} s, pong after {s:.3} s");
        out.push(s);
        drop(on_a);
        drop(a);
    }
    out
}

/// What the guild fail-over measured.
struct GuildFailover {
    /// Longest gap between two chat events the listener received, around the kill, s.
    gap_s: f64,
    /// From the kill to the first chat event after it, s.
    kill_to_next_s: f64,
    sent: u64,
    heard: u64,
    owner: String,
    new_owner: String,
}

async fn failover_guild() -> GuildFailover {
    let redis = RedisServer::start();
    publish(&redis.url);
    let bus = Bus::redis_with_groups(&redis.url, GROUPS).await.expect("bus");
    let mut hosts = vec![
        ("edge-guild-1".to_owned(), Some(guild_host(&redis.url, "edge-guild-1", None))),
        ("edge-guild-2".to_owned(), Some(guild_host(&redis.url, "edge-guild-2", None))),
    ];
    // Until both hosts hold groups.
    let started = Instant::now();
    loop {
        let mut holders = std::collections::BTreeMap::new();
        for g in 0..GROUPS {
            if let Some((h, _)) = bus.lease_holder(&Address::GuildGroup(g)).await.expect("lease") {
                *holders.entry(h).or_insert(0) += 1;
            }
        }
        if holders.len() == 2 && holders.values().sum::<u32>() == GROUPS {
            break;
        }
        assert!(started.elapsed() < WAIT, "the groups never spread over both hosts: {holders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_base, addr) = baseapp(&redis.url, "edge-base", None);
    let mut speaker = Client::login(addr, "speaker", WAIT).await;
    let mut listener = Client::login(addr, "listener", WAIT).await;
    speaker.send(json!({"type": "guild.create", "name": "Failover"})).await;
    let created = speaker.guild_event("created", None).await;
    let guild = created["guild"].as_u64().expect("a guild id");
    listener.send(json!({"type": "guild.join", "name": "Failover"})).await;
    let player = listener.player;
    listener.guild_event("joined", Some(player)).await;
    speaker.drain(Duration::from_millis(200)).await;
    listener.drain(Duration::from_millis(200)).await;
    let group = Address::GuildGroup(group_of(guild, GROUPS));
    let owner = bus.lease_holder(&group).await.expect("lease").expect("an owner").0;

    // The speaker chats every 50 ms; the listener notes when each chat arrives.
    let (speak, _speaker_frames) = split(speaker);
    let (_listener_out, mut heard) = split(listener);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut n = 0u64;
        while !*stopped.borrow() {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = speak.send(json!({"type": "guild.chat", "text": format!("c{n}")}));
                    n += 1;
                }
                _ = stopped.changed() => {}
            }
        }
        n
    });
    let t0 = Instant::now();
    let mut arrivals: Vec<Duration> = Vec::new();
    let listen = async {
        while let Some((at, f)) = heard.recv().await {
            if f["type"] == "guild.event" && f["event"] == "chat" {
                arrivals.push(at.duration_since(t0));
            }
        }
    };
    let killed_at = Duration::from_secs(3);
    let kill = async {
        tokio::time::sleep(killed_at).await;
        let (_, p) = hosts.iter_mut().find(|(n, _)| *n == owner).expect("the owner is one of ours");
        p.as_ref().expect("running").signal("KILL");
        // Wait long enough for the take-over (membership 2.5 s) and a steady stream after.
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    tokio::select! {
        _ = listen => panic!("the listener's socket closed"),
        _ = kill => {}
    }
    let _ = stop.send(true);
    let sent = sender.await.expect("speaker");
    // The last chats sent are still on their way.
    while let Ok(Some((at, f))) = tokio::time::timeout(Duration::from_secs(1), heard.recv()).await {
        if f["type"] == "guild.event" && f["event"] == "chat" {
            arrivals.push(at.duration_since(t0));
        }
    }
    let new_owner = bus.lease_holder(&group).await.expect("lease").map(|(h, _)| h).unwrap_or_default();
    let gap = arrivals.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let next = arrivals.iter().find(|a| **a > killed_at).map(|a| *a - killed_at).unwrap_or_default();
    for (_, p) in &mut hosts {
        p.take();
    }
    GuildFailover {
        gap_s: gap.as_secs_f64(),
        kill_to_next_s: next.as_secs_f64(),
        sent,
        heard: arrivals.len() as u64,
        owner,
        new_owner,
    }
}

fn print_chat(run: &ChatRun, label: &str) {
    println!(
        "  {label}{} members: {:.0} chats/s fully delivered ({:.0} chat events/s received); sent {}, delivered {}, \
         lost {}, errors {}; send → last member p50 {:.1} ms, p99 {:.1} ms",
        run.members,
        run.per_s,
        run.events_per_s,
        run.sent,
        run.delivered,
        run.lost,
        run.errors,
        run.full_p50_ms,
        run.full_p99_ms
    );
    if let Some(e) = &run.first_error {
        println!("    first error: {e}");
    }
    if let Some(l) = &run.too_fast_line {
        println!("    guild host log: {} messages refused for the send rate; the first: {l}", run.too_fast);
    }
    if let Some(o) = &run.overfull {
        println!("    a 51st member's join: {o}");
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");

    let r = rt.block_on(replies());
    let (r1, r2) = (percentile(&r.reply1, 0.5), percentile(&r.reply2, 0.5));
    println!("replies: one client, one baseapp, {SAMPLES} samples each, interleaved");
    println!("  ping → pong           p50 {r1:.3} ms  p99 {:.3} ms", percentile(&r.reply1, 0.99));
    println!("  buy/sell → bag,profile p50 {r2:.3} ms  p99 {:.3} ms", percentile(&r.reply2, 0.99));

    let unthrottled = tempfile::tempdir().expect("temp dir");
    let config = unthrottled.path().join("fast.toml");
    std::fs::write(&config, "[limits]\nsends_per_s = 1000000\nsends_burst = 1000000\n").expect("write config");
    let config = config.display().to_string();
    println!("guild chat: one guild host, one baseapp, {SENDERS} members sending, {IN_FLIGHT} in flight each");
    let c10 = rt.block_on(guild_chat(10, 1000, None, false));
    print_chat(&c10, "default limits, ");
    let c50 = rt.block_on(guild_chat(50, 400, None, true));
    print_chat(&c50, "default limits, ");
    let f10 = rt.block_on(guild_chat(10, 4000, Some(&config), false));
    print_chat(&f10, "sends_per_s raised, ");
    let f50 = rt.block_on(guild_chat(50, 2000, Some(&config), false));
    print_chat(&f50, "sends_per_s raised, ");

    println!("fail-over: player (kill -9 its baseapp, log in on the other)");
    let mut p = rt.block_on(failover_player(3));
    p.sort_by(f64::total_cmp);
    let g = rt.block_on(failover_guild());
    println!(
        "fail-over: guild (kill -9 {}, the owner of the guild's group; now held by {}): longest gap {:.3} s, kill → \
         next chat {:.3} s; chats sent {}, heard {}",
        g.owner, g.new_owner, g.gap_s, g.kill_to_next_s, g.sent, g.heard
    );

    println!("reply1_p50_ms={r1:.3}");
    println!("reply2_p50_ms={r2:.3}");
    println!("reply2_p99_ms={:.3}", percentile(&r.reply2, 0.99));
    println!("reply2_vs_reply1_p50_ratio={:.2}", r2 / r1);
    println!("guild_chats_per_s_10={:.0}", c10.per_s);
    println!("guild_chats_per_s_50={:.0}", c50.per_s);
    println!("guild_chats_lost_10={}", c10.lost);
    println!("guild_chats_lost_50={}", c50.lost);
    println!("guild_chats_per_s_10_rate_raised={:.0}", f10.per_s);
    println!("guild_chats_per_s_50_rate_raised={:.0}", f50.per_s);
    println!("failover_player_s={:.3}", p[p.len() / 2]);
    println!("failover_guild_s={:.3}", g.gap_s);
}
