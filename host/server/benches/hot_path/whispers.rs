//! Whispers: player-to-player messages through real sessions. The clients are in pairs;
//! each sends the shipped baseapp script's `whisper` to its partner in a closed loop, and
//! a round trip ends when the partner's socket shows the `whisper` push. On the way the
//! whisper is a commit of the sender's frame with a message to the partner's queue, a
//! call of the partner's handler, which pushes it, a commit of that push to the partner's
//! push log, and the push sent on the partner's socket.
//!
//! Every socket is both a sender (its own whispers, answered with `whisper.sent`, which
//! does not count) and a receiver (its partner's), so each is split: a reader that runs
//! through the whole round, noting every push's `seq` and handing each whisper's arrival
//! to the loop that sent it, and a writing half driven by the socket's own closed loop.
//! The loop also acknowledges the pushes its reader saw, every [`ACK_EVERY`] of them, as a
//! client should: a push stays in the player's push log until acknowledged, and a log of
//! 1000 drops its oldest (the `missed` count a later login is told), so a client that
//! never acknowledged would be measured against a log that is always full.

use super::WAIT;
use super::cluster::Client;
use super::load::{self, Round, Socket, Window};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// What the whispers say (the protocol document's example: short, as chat is).
const TEXT: &str = "meet at the well";
/// What marks a whisper push. The sender's answer, `whisper.sent`, does not match it.
const WHISPER_PUSH: &str = r#""type":"whisper""#;
/// How every push starts: the host puts its `seq` first.
const SEQ_PREFIX: &str = r#"{"seq":"#;
/// A client acknowledges the pushes it saw once it has seen this many more.
const ACK_EVERY: u64 = 50;

/// A push's `seq`, for a frame that is a push.
fn push_seq(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(SEQ_PREFIX)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// The `whisper` frame from a player to `to`.
fn whisper_to(to: u64) -> Utf8Bytes {
    serde_json::json!({"type": "whisper", "to": to, "text": TEXT}).to_string().into()
}

/// The sending half of one player's socket: its closed loop.
struct Sender {
    sink: SplitSink<Socket, Message>,
    /// The player's whisper to its partner.
    whisper: Utf8Bytes,
    /// The partner, for messages.
    to: u64,
    /// The newest push this socket's reader saw, and the one last acknowledged.
    seen: Rc<Cell<u64>>,
    acked: u64,
    /// When each of this player's whispers showed on the partner's socket, from the
    /// partner's reader.
    arrivals: mpsc::UnboundedReceiver<Instant>,
}

impl Sender {
    /// One whisper to the partner; returns when it showed on the partner's socket. The
    /// acknowledgement, when one is due, goes in the same write, before it.
    async fn whisper(&mut self) -> Instant {
        let seen = self.seen.get();
        if seen >= self.acked + ACK_EVERY {
            let ack = serde_json::json!({"type": "ack", "seq": seen}).to_string();
            self.sink.feed(Message::text(ack)).await.expect("send an ack");
            self.acked = seen;
        }
        self.sink.send(Message::Text(self.whisper.clone())).await.expect("send a whisper");
        match tokio::time::timeout(WAIT, self.arrivals.recv()).await {
            Ok(Some(arrived)) => arrived,
            Ok(None) => unreachable!("the readers outlive the senders"),
            Err(_) => panic!("a whisper to player {} did not show within {WAIT:?}", self.to),
        }
    }
}

/// The receiving half of one player's socket.
struct Receiver {
    stream: SplitStream<Socket>,
    /// Shared with the socket's [`Sender`], which acknowledges what this saw.
    seen: Rc<Cell<u64>>,
    /// To the partner's [`Sender`]: when each of its whispers showed here.
    arrivals: mpsc::UnboundedSender<Instant>,
}

impl Receiver {
    /// Reads the socket until it fails (it never ends otherwise): the rounds drop it
    /// when their loops are done.
    async fn read(&mut self) {
        loop {
            let text = match self.stream.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(c))) => panic!("the server closed the socket: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("the socket ended"),
            };
            let now = Instant::now();
            if let Some(seq) = push_seq(&text) {
                self.seen.set(self.seen.get().max(seq));
            }
            if text.contains(WHISPER_PUSH) {
                // Only the partner whispers to this player, one whisper at a time.
                let _ = self.arrivals.send(now);
            } else if text.contains(load::ERROR) {
                panic!("refused: {text}");
            }
        }
    }
}

/// Players in pairs, each whispering to its partner, their sockets split.
pub(crate) struct Pairs {
    senders: Vec<Sender>,
    receivers: Vec<Receiver>,
}

/// Checks that a whisper from `from` to `to` is answered as the rounds expect: a push on
/// `to`'s socket, `seq` first, that matches [`WHISPER_PUSH`] and names `from`; and on
/// `from`'s socket a `whisper.sent` that does not match it. So a script that answers
/// otherwise fails the bench here rather than hanging or miscounting a round.
async fn check(from: &mut Client, to: &mut Client) {
    from.ws.send(Message::Text(whisper_to(to.player))).await.expect("send a whisper");
    let push = load::next_text(&mut to.ws, WAIT).await;
    let fields: Value = serde_json::from_str(&push).expect("frames are JSON");
    assert!(
        push.contains(WHISPER_PUSH)
            && push_seq(&push).is_some()
            && fields["from"] == from.player
            && fields["text"] == TEXT,
        "a whisper from player {} shows as a numbered `whisper` push, not {push}",
        from.player
    );
    to.seq = to.seq.max(push_seq(&push).unwrap_or(0));
    let sent = load::next_text(&mut from.ws, WAIT).await;
    let fields: Value = serde_json::from_str(&sent).expect("frames are JSON");
    assert!(
        fields["type"] == "whisper.sent" && !sent.contains(WHISPER_PUSH) && push_seq(&sent).is_none(),
        "a whisper is answered with `whisper.sent`, not {sent}"
    );
}

impl Pairs {
    /// Pairs `clients` (logged in, drained of their login replies: an even number) in
    /// order, checks one whisper each way in every pair ([`check`]), acknowledges it, and
    /// splits the sockets.
    pub(crate) async fn new(mut clients: Vec<Client>) -> Pairs {
        assert!(
            clients.len() >= 2 && clients.len().is_multiple_of(2),
            "whispers need pairs: {} clients",
            clients.len()
        );
        let checks = clients.chunks_mut(2).map(|pair| async move {
            let [a, b] = pair else { unreachable!("chunks of two") };
            check(a, b).await;
            check(b, a).await;
        });
        futures_util::future::join_all(checks).await;
        let ids: Vec<u64> = clients.iter().map(|c| c.player).collect();
        // One channel a player, from its partner's reader to its own loop.
        let (txs, rxs): (Vec<_>, Vec<_>) = clients.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let mut txs: Vec<_> = txs.into_iter().map(Some).collect();
        let (mut senders, mut receivers) = (Vec::new(), Vec::new());
        for (i, (mut client, arrivals)) in clients.into_iter().zip(rxs).enumerate() {
            let partner = i ^ 1;
            let ack = serde_json::json!({"type": "ack", "seq": client.seq}).to_string();
            client.ws.send(Message::text(ack)).await.expect("send an ack");
            let seen = Rc::new(Cell::new(client.seq));
            let (sink, stream) = client.ws.split();
            let whisper = whisper_to(ids[partner]);
            senders.push(Sender { sink, whisper, to: ids[partner], seen: seen.clone(), acked: client.seq, arrivals });
            let arrivals = txs[partner].take().expect("one reader a channel");
            receivers.push(Receiver { stream, seen, arrivals });
        }
        Pairs { senders, receivers }
    }

    /// One round: every player's closed loop of whispers for `window`, the readers
    /// beside them (`pid` is the server's).
    pub(crate) async fn round(&mut self, window: Window, pid: u32) -> Round {
        let readers = futures_util::future::join_all(self.receivers.iter_mut().map(Receiver::read));
        let loops: Vec<_> = self.senders.iter_mut().map(|s| async move || s.whisper().await).collect();
        tokio::select! {
            round = load::closed_loop(loops, window, pid) => round,
            _ = readers => unreachable!("the readers end only by failing"),
        }
    }
}
