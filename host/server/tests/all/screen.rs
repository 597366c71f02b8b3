//! Exactly once at the player's screen, in `warren dev` (the embedded bus): pushes are
//! numbered and resumed from the client's acknowledgement, keyed frames are applied once,
//! a commit whose answer is lost is found out, and a session the host ends gets its last
//! frames and a close handshake. The same on real Redis and processes: `edge`.

use crate::{Client, Dev, FRAME_WAIT, embedded};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use warren_bus::{Bus, Op};
use warren_test_guests::{SCRIPT_BASEAPP, SCRIPT_BATTLE};

/// Logs in as `name`, resuming after push `ack`; returns the client and the welcome.
async fn resume(dev: &Dev, name: &str, ack: u64) -> (Client, Value) {
    let mut c = Client::connect(dev.addr).await;
    c.send(json!({"type": "login", "name": name, "ack": ack})).await;
    let welcome = c.recv().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (c, welcome)
}

/// The frames answering one keyed frame, up to its `done` (included) or `unknown`.
async fn answer(c: &mut Client, req: &str) -> Vec<Value> {
    let mut frames = vec![];
    loop {
        let f = c.recv().await;
        let end = (f["type"] == "done" || f["type"] == "unknown") && f["req"] == req;
        frames.push(f);
        if end {
            return frames;
        }
    }
}

/// The pushes (frames with a `seq`) among the next frames, until `n` have come.
async fn pushes(c: &mut Client, n: usize) -> Vec<Value> {
    let mut got = vec![];
    while got.len() < n {
        let f = c.recv().await;
        if f.get("seq").is_some() {
            got.push(f);
        }
    }
    got
}

fn seq(f: &Value) -> u64 {
    f["seq"].as_u64().unwrap_or_else(|| panic!("a push has a seq: {f}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_numbered_and_a_resumed_session_gets_exactly_the_unacknowledged_ones() {
    let dev = Dev::start(SCRIPT_BASEAPP, SCRIPT_BATTLE).await;
    let (mut ann, welcome) = dev.login("ann").await;
    let ann_id = welcome["player"].as_u64().unwrap();
    let (mut bob, _) = dev.login("bob").await;
    let whisper = |i: u32| json!({"type": "whisper", "to": ann_id, "text": format!("w{i}"), "req": format!("w{i}")});
    for i in 0..5 {
        bob.send(whisper(i)).await;
        answer(&mut bob, &format!("w{i}")).await;
    }
    let first = pushes(&mut ann, 5).await;
    let seqs: Vec<u64> = first.iter().map(seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "contiguous: {seqs:?}");
    let texts: Vec<&str> = first.iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["w0", "w1", "w2", "w3", "w4"]);

    // Ann showed three, acknowledged them, and her network dropped.
    ann.send(json!({"type": "ack", "seq": seqs[2]})).await;
    ann.send(json!({"type": "ping"})).await;
    ann.recv_type("pong").await;
    drop(ann);
    for i in 5..7 {
        bob.send(whisper(i)).await;
        answer(&mut bob, &format!("w{i}")).await;
    }

    // Back with her acknowledgement: exactly the four she did not acknowledge, in order.
    let (mut ann, welcome) = resume(&dev, "ann", seqs[2]).await;
    assert_eq!(welcome["acked"].as_u64(), Some(seqs[2]), "{welcome}");
    assert_eq!(welcome["missed"].as_u64(), Some(0), "{welcome}");
    let again = pushes(&mut ann, 4).await;
    let texts: Vec<&str> = again.iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["w3", "w4", "w5", "w6"]);
    assert_eq!(again.iter().map(seq).collect::<Vec<_>>(), (seqs[2] + 1..=seqs[2] + 4).collect::<Vec<_>>());
    let last = seq(&again[3]);

    // Acknowledged (piggybacked on a frame), never sent again: not on this socket, not on
    // a new one, not to another client of the same player.
    ann.send(json!({"type": "ping", "ack": last})).await;
    ann.recv_type("pong").await;
    drop(ann);
    for ack in [last, 0] {
        let (mut ann, welcome) = resume(&dev, "ann", ack).await;
        assert_eq!((welcome["acked"].as_u64(), welcome["last_push"].as_u64()), (Some(last), Some(last)));
        ann.send(json!({"type": "ping"})).await;
        loop {
            let f = ann.recv().await;
            assert!(f.get("seq").is_none(), "an acknowledged push came again: {f}");
            if f["type"] == "pong" {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_frame_sent_again_is_applied_once_and_answered_alike() {
    let bus = Bus::embedded_with_groups(16);
    let dev = Dev::start_on(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus.clone()).await;
    let (mut c, welcome) = dev.login("cid").await;
    let player = welcome["player"].as_u64().unwrap();
    c.recv_type("profile").await;
    let before = crate::stored(&bus, player, "gold").await;
    let buy = json!({"type": "shop.buy", "item": "potion", "count": 2, "req": "buy-1"});
    c.send(buy.clone()).await;
    let first = answer(&mut c, "buy-1").await;
    assert_eq!(first.iter().map(|f| f["type"].as_str().unwrap()).collect::<Vec<_>>(), ["bag", "profile", "done"]);
    c.send(buy.clone()).await;
    assert_eq!(answer(&mut c, "buy-1").await, first, "the same answer");
    drop(c);
    let (mut c, _) = dev.login("cid").await;
    c.recv_type("profile").await;
    c.send(buy).await;
    assert_eq!(answer(&mut c, "buy-1").await, first, "the same answer after a new login");
    assert_eq!(crate::stored(&bus, player, "gold").await, before - 20, "charged once");
    // Another key is another purchase.
    c.send(json!({"type": "shop.buy", "item": "potion", "count": 2, "req": "buy-2"})).await;
    answer(&mut c, "buy-2").await;
    assert_eq!(crate::stored(&bus, player, "gold").await, before - 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_found_out_and_the_player_told_the_truth() {
    let bus = Bus::embedded_with_groups(16);
    let dev = Dev::start_on(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus.clone()).await;
    let (mut c, welcome) = dev.login("dot").await;
    let player = welcome["player"].as_u64().unwrap();
    c.recv_type("profile").await;
    let before = crate::stored(&bus, player, "gold").await;
    let buy = |req: &str| json!({"type": "shop.buy", "item": "potion", "count": 1, "req": req});

    // The commit fails and the host finds out it was not applied: "not saved" is the truth.
    embedded(&bus).fail_next(Op::Commit, 1);
    c.send(buy("a")).await;
    let a = answer(&mut c, "a").await;
    assert_eq!(a[0]["reason"], "not saved, try again", "{a:?}");
    assert_eq!(a[1]["type"], "done");
    assert_eq!(crate::stored(&bus, player, "gold").await, before);

    // The commit fails and so does finding out: the host says it does not know.
    embedded(&bus).fail_next(Op::Commit, 2);
    c.send(buy("b")).await;
    let b = answer(&mut c, "b").await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["type"], "unknown", "{b:?}");
    assert!(b.iter().all(|f| !f["reason"].as_str().unwrap_or("").contains("not saved")), "{b:?}");
    // Sent again with its key: found out, then applied, once.
    c.send(buy("b")).await;
    let b = answer(&mut c, "b").await;
    assert_eq!(b.last().unwrap()["type"], "done", "{b:?}");
    c.send(buy("b")).await;
    answer(&mut c, "b").await;
    assert_eq!(crate::stored(&bus, player, "gold").await, before - 10, "applied once");
}

/// Reads a socket to its close: the text frames, and the close code.
async fn to_close(c: &mut Client) -> (Vec<Value>, Option<u16>) {
    let mut frames = vec![];
    loop {
        let msg = tokio::time::timeout(FRAME_WAIT, c.ws.next()).await.expect("the socket closes within the wait");
        match msg {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                // The client's side of the handshake.
                let _ = c.ws.close(None).await;
                return (frames, frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the socket failed instead of closing: {e} (after {frames:?})"),
            None => return (frames, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_a_new_login_gets_every_saved_answer_then_the_reason_and_a_close() {
    let bus = Bus::embedded_with_groups(16);
    let dev = Dev::start_on(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus.clone()).await;
    let (mut old, welcome) = dev.login("eve").await;
    let player = welcome["player"].as_u64().unwrap();
    old.recv_type("profile").await;
    let start = crate::stored(&bus, player, "gold").await;
    // Pipelined buys, more than the gold pays for; the other login comes mid-way.
    for i in 0..15 {
        old.ws
            .feed(Message::text(json!({"type": "shop.buy", "item": "potion", "req": format!("b{i}")}).to_string()))
            .await
            .unwrap();
    }
    old.ws.flush().await.unwrap();
    answer(&mut old, "b0").await;
    let (mut new, _) = dev.login("eve").await;
    let (frames, code) = to_close(&mut old).await;
    assert_eq!(code, Some(4001), "{frames:?}");
    let last = frames.last().unwrap();
    assert_eq!((last["type"].as_str(), last["reason"].as_str()), (Some("error"), Some("logged in elsewhere")));
    // Every buy that was saved was answered on the old socket: the gold it last saw is
    // what is stored, and the new session sees the same.
    let profiles: Vec<u64> =
        frames.iter().filter(|f| f["type"] == "profile").map(|f| f["gold"].as_u64().unwrap()).collect();
    let seen = profiles.last().copied().unwrap_or(start - 10);
    let stored = crate::stored(&bus, player, "gold").await;
    assert_eq!(stored, seen, "every saved buy's answer reached the old socket: {frames:?}");
    assert_eq!(new.recv_type("profile").await["gold"].as_u64(), Some(stored));
}

/// The next frame of `kind` with `field` equal to `value`, skipping others.
async fn frame_where(c: &mut Client, kind: &str, field: &str, value: &str) -> Value {
    loop {
        let f = c.recv_type(kind).await;
        if f[field] == value {
            return f;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_message_refused_by_a_quota_is_told_to_its_player() {
    let bus = Bus::embedded_with_groups(16);
    // Every entity may send 4 messages at once, then one a second: the guild spends three
    // on the news of its founding and of bob joining, so the chat to its two members that
    // follows at once is refused by the host, not by the script (ann has sent two).
    let limits = warren::config::LimitsConfig { sends_per_s: 1, sends_burst: 4, ..Default::default() };
    let dev = Dev::start_limited(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus, limits).await;
    let (mut ann, _) = dev.login("gil").await;
    let (mut bob, _) = dev.login("hob").await;
    ann.send(json!({"type": "guild.create", "name": "Quiet"})).await;
    frame_where(&mut ann, "guild.event", "event", "created").await;
    bob.send(json!({"type": "guild.join", "name": "Quiet"})).await;
    frame_where(&mut bob, "guild.event", "event", "joined").await;
    let mut refused = None;
    ann.send(json!({"type": "guild.chat", "text": "hello"})).await;
    while refused.is_none() {
        let f = ann.recv().await;
        if f["type"] == "error" && f["refused"] == "guild.chat" {
            refused = Some(f);
        }
    }
    let refused = refused.unwrap();
    assert!(refused["reason"].as_str().unwrap().contains("sending too fast"), "{refused}");
    assert!(refused.get("seq").is_some(), "told as a push, numbered: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_beyond_a_players_send_rate_wait_their_turn_and_each_reaches_the_screen_once() {
    let bus = Bus::embedded_with_groups(16);
    // Each reward pushes its player two frames. At 20 a second, 10 at once, the 30
    // rewards sent below are 60 frames, 50 past the burst: most of them wait in the
    // player's queue for the rate (nothing sends them again), none is refused.
    let limits = warren::config::LimitsConfig { sends_per_s: 20, sends_burst: 10, ..Default::default() };
    let dev = Dev::start_limited(SCRIPT_BASEAPP, SCRIPT_BATTLE, bus.clone(), limits).await;
    let (mut ria, welcome) = dev.login("ria").await;
    let ria_id = welcome["player"].as_u64().unwrap();
    let gold = crate::stored(&bus, ria_id, "gold").await;
    let rewards = 30u64;
    for room in 0..rewards {
        bus.send(crate::won_battle(room, ria_id)).await.unwrap();
    }
    // In the queue's order, each once.
    let mut shown = vec![];
    let mut last_seq = 0;
    while shown.len() < rewards as usize {
        let f = ria.recv().await;
        assert_ne!(f["type"], "error", "nothing is refused: {f}");
        if let Some(s) = f.get("seq") {
            let s = s.as_u64().unwrap();
            assert!(last_seq == 0 || s == last_seq + 1, "pushes in order, none missing: {f} after {last_seq}");
            last_seq = s;
        }
        if f["type"] == "battle.reward" {
            shown.push(f["room"].as_u64().unwrap());
        }
    }
    // The last reward's profile frame, then nothing more: no reward came twice.
    ria.send(json!({"type": "ping"})).await;
    loop {
        let f = ria.recv().await;
        assert_ne!(f["type"], "battle.reward", "a reward came twice: {f}");
        if f["type"] == "pong" {
            break;
        }
    }
    assert_eq!(shown, (0..rewards).collect::<Vec<_>>(), "each reward shown once, in order");
    assert_eq!(crate::stored(&bus, ria_id, "gold").await, gold + 20 * rewards, "each reward paid once");
}
