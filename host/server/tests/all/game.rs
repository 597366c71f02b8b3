//! The shipped scripts, played through `warren dev`.

use crate::Dev;
use serde_json::json;
use warren_test_guests::{SCRIPT_BASEAPP, SCRIPT_BATTLE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_shops_and_is_refused_with_reasons() {
    let dev = Dev::start(SCRIPT_BASEAPP, SCRIPT_BATTLE).await;
    let (mut c, welcome) = dev.login("erin").await;
    let profile = c.recv_type("profile").await;
    assert_eq!(profile["name"], "erin");
    assert_eq!(profile["id"], welcome["player"]);
    let gold = profile["gold"].as_u64().unwrap();

    c.send(json!({"type": "shop.buy", "item": "potion", "count": 2})).await;
    let bag = c.recv_type("bag").await;
    let potions: u64 = bag["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["item"] == "potion")
        .map(|i| i["count"].as_u64().unwrap())
        .sum();
    assert_eq!(potions, 5, "3 starter potions and 2 bought: {bag}");
    let after = c.recv_type("profile").await;
    assert!(after["gold"].as_u64().unwrap() < gold);

    c.send(json!({"type": "shop.buy", "item": "iron-sword", "count": 50})).await;
    let refused = c.recv().await;
    assert_eq!(refused["type"], "error");
    assert!(refused["reason"].as_str().unwrap().contains("gold"), "{refused}");

    c.send(json!({"type": "profile"})).await;
    assert_eq!(c.recv().await["gold"], after["gold"], "a refused action changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_whisper_across_sessions_through_their_queues() {
    let dev = Dev::start(SCRIPT_BASEAPP, SCRIPT_BATTLE).await;
    let (mut ann, _) = dev.login("ann").await;
    ann.recv_type("profile").await;
    let (mut bob, bob_welcome) = dev.login("bob").await;
    bob.recv_type("profile").await;

    ann.send(json!({"type": "whisper", "to": bob_welcome["player"], "text": "hi bob"})).await;
    assert_eq!(ann.recv().await["type"], "whisper.sent");
    let heard = bob.recv_type("whisper").await;
    assert_eq!(heard["text"], "hi bob");
    assert_eq!(heard["from_name"], "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_battle_runs_to_a_winner_and_pays_the_reward() {
    let dev = Dev::start(SCRIPT_BASEAPP, SCRIPT_BATTLE).await;
    let (mut c, welcome) = dev.login("fay").await;
    c.recv_type("profile").await;

    c.send(json!({"type": "battle.input", "action": "attack"})).await;
    assert!(c.recv().await["reason"].as_str().unwrap().contains("not in a battle"));

    c.send(json!({"type": "battle.start"})).await;
    let started = c.recv_type("battle.started").await;
    let room = started["room"].clone();
    c.recv_type("battle.state").await;
    c.send(json!({"type": "battle.input", "action": "dance"})).await;
    assert_eq!(c.recv_type("error").await["type"], "error");

    // Attack until the battle ends (the bot fights back; either may win).
    let started = std::time::Instant::now();
    let end = loop {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the battle never ended");
        c.send(json!({"type": "battle.input", "action": "attack", "target": 0})).await;
        let frame = c.recv().await;
        if frame["type"] == "battle.end" {
            break frame;
        }
    };
    assert_eq!(end["room"], room);
    let reward = c.recv_type("battle.reward").await;
    assert_eq!(reward["room"], room);
    let won = end["winners"].as_array().unwrap().contains(&welcome["player"]);
    assert_eq!(reward["won"], won);
}

/// The next `guild.event` of kind `event`, skipping other frames.
async fn guild_event(c: &mut crate::Client, event: &str) -> serde_json::Value {
    loop {
        let frame = c.recv_type("guild.event").await;
        if frame["event"] == event {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_found_join_and_chat_in_a_guild_in_warren_dev() {
    let dev = Dev::start(SCRIPT_BASEAPP, SCRIPT_BATTLE).await;
    let (mut ann, ann_welcome) = dev.login("ann").await;
    ann.recv_type("profile").await;
    let (mut bob, bob_welcome) = dev.login("bob").await;
    bob.recv_type("profile").await;
    let (ann_id, bob_id) = (ann_welcome["player"].as_u64().unwrap(), bob_welcome["player"].as_u64().unwrap());

    ann.send(json!({"type": "guild.create", "name": "Foxes"})).await;
    assert_eq!(ann.recv_type("guild.requested").await["request"], "guild.create");
    let created = guild_event(&mut ann, "created").await;
    assert_eq!((created["name"].as_str(), created["leader"].as_u64()), (Some("Foxes"), Some(ann_id)), "{created}");

    bob.send(json!({"type": "guild.join", "name": "foxes"})).await;
    let joined = guild_event(&mut bob, "joined").await;
    assert_eq!((joined["player"].as_u64(), joined["members"].as_u64()), (Some(bob_id), Some(2)), "{joined}");
    assert_eq!(guild_event(&mut ann, "joined").await["player"].as_u64(), Some(bob_id), "members hear of it");

    bob.send(json!({"type": "guild.chat", "text": "hello foxes"})).await;
    for c in [&mut ann, &mut bob] {
        let chat = guild_event(c, "chat").await;
        assert_eq!((chat["text"].as_str(), chat["from"].as_u64()), (Some("hello foxes"), Some(bob_id)));
    }
    // A request the guild refuses comes back as an event too.
    bob.send(json!({"type": "guild.create", "name": "Foxes"})).await;
    let refused = bob.recv_type("error").await;
    assert!(refused["reason"].as_str().unwrap().contains("guild"), "{refused}");

    bob.send(json!({"type": "guild.leave"})).await;
    assert_eq!(guild_event(&mut bob, "left").await["player"].as_u64(), Some(bob_id));
    let left = guild_event(&mut ann, "left").await;
    assert_eq!(left["members"].as_u64(), Some(1), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_battle_is_played_on_the_battle_socket_with_a_ticket_and_bad_tickets_are_refused() {
    let dev = Dev::start(SCRIPT_BASEAPP, SCRIPT_BATTLE).await;
    let (mut c, welcome) = dev.login("ivy").await;
    let me = welcome["player"].as_u64().unwrap();
    let gold = c.recv_type("profile").await["gold"].as_u64().unwrap();
    c.send(json!({"type": "battle.start"})).await;
    let started = c.recv_type("battle.started").await;
    let (room, url, ticket) =
        (started["room"].as_u64().unwrap(), started["url"].as_str().unwrap(), started["ticket"].as_str().unwrap());
    assert!(url.starts_with("ws://") && url.ends_with("/battle"), "{started}");

    let mut b = crate::Client::connect_url(url).await;
    // Forged (another player's claims under this ticket's signature), for another room,
    // not a ticket at all: each refused with its reason.
    let claims = json!({"sub": (me + 1).to_string(), "exp": u64::MAX / 2, "iat": 0, "generation": 0, "use": "ticket", "room": room});
    let parts: Vec<&str> = ticket.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], base64url(claims.to_string().as_bytes()), parts[2]);
    let refusals = [
        (json!({"type": "battle.join", "room": room, "ticket": forged}), "forged"),
        (json!({"type": "battle.join", "room": room + 1, "ticket": ticket}), &format!("for room {room}") as &str),
        (json!({"type": "battle.join", "room": room, "ticket": "nonsense"}), "forged"),
        (json!({"type": "battle.input", "action": "attack"}), "join a battle first"),
    ];
    for (frame, why) in refusals {
        b.send(frame).await;
        let refused = b.recv_type("error").await;
        assert!(refused["reason"].as_str().unwrap().contains(why), "{why}: {refused}");
    }
    b.send(json!({"type": "battle.join", "room": room, "ticket": ticket})).await;
    assert_eq!(b.recv_type("battle.joined").await["player"].as_u64(), Some(me));

    // The battle's frames come on the battle socket; inputs go through it.
    let first = b.recv_type("battle.state").await;
    assert_eq!(first["room"].as_u64(), Some(room));
    b.send(json!({"type": "battle.input", "action": "dance"})).await;
    assert!(b.recv_type("error").await["reason"].as_str().unwrap().contains("dance"));
    let started_at = std::time::Instant::now();
    let mut last_tick = first["tick"].as_u64().unwrap();
    let end = loop {
        assert!(started_at.elapsed() < std::time::Duration::from_secs(60), "the battle never ended");
        b.send(json!({"type": "battle.input", "action": "attack", "target": 0})).await;
        let frame = b.recv().await;
        if frame["type"] == "battle.state" {
            let tick = frame["tick"].as_u64().unwrap();
            assert!(tick > last_tick, "ticks come in order, each once: {tick} after {last_tick}");
            last_tick = tick;
        }
        if frame["type"] == "battle.end" {
            break frame;
        }
    };
    // The reward comes through the baseapp session, once.
    let reward = c.recv_type("battle.reward").await;
    assert_eq!(reward["room"].as_u64(), Some(room));
    let won = end["winners"].as_array().unwrap().contains(&welcome["player"]);
    assert_eq!(reward["won"].as_bool(), Some(won));
    // Practice pays xp only: 20 for a win, 5 for a loss.
    assert_eq!(reward["xp"].as_u64(), Some(if won { 20 } else { 5 }), "{reward}");
    assert_eq!(c.recv_type("profile").await["gold"].as_u64(), Some(gold), "practice pays no gold");
}

/// `bytes` in unpadded base64url, as a token's parts are written.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
