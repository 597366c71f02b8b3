//! A player's session on a baseapp: the client's WebSocket and the player's queue, served
//! one at a time, so the player's handlers see every earlier commit.

use crate::battle::{BattleHost, RoomError};
use crate::logic::{CLIENT_FRAME, LogicPool, emit_logs, fresh_env, from_bus, outbound};
use crate::protocol::{self, ClientFrame};
use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedMutexGuard, oneshot};
use warren_bus::{Address, Bus, Commit, Delivery, EntityState, MessageId};
use warren_runtime::{Baseapp, CallEnv, CallError, CallResult, Instance, Message};

/// How long one read of the player's queue waits before the session looks around again.
const INBOX_WAIT: Duration = Duration::from_millis(500);
/// How many times a queue message is tried before it is set aside as a dead letter.
pub const MAX_ATTEMPTS: u32 = 3;

/// What a baseapp's sessions share.
pub struct PlayerHost {
    /// The message center.
    pub bus: Bus,
    /// The player logic.
    pub logic: Arc<LogicPool<Baseapp>>,
    /// Battle rooms (in `warren dev`, in the same process).
    pub battles: BattleHost,
    /// Per player here: the lock a session holds while it owns the player, and the way to
    /// end that session when the player logs in again.
    pub sessions: Mutex<HashMap<u64, PlayerSlot>>,
}

/// A player's ownership on this host.
#[derive(Default)]
pub struct PlayerSlot {
    /// Held by the session that owns the player; the next session waits for it, so two
    /// sessions never hold the player's state at once.
    owner: Arc<tokio::sync::Mutex<()>>,
    /// The newest session's id and the sender that ends it.
    newest: Option<(u64, oneshot::Sender<()>)>,
}

/// One player's session state.
struct Session<'h> {
    host: &'h PlayerHost,
    player: u64,
    /// The player's committed state, cached: this session owns the player.
    state: EntityState,
    /// The battle room the player is in, if any.
    room: Option<u64>,
    /// Frames for the client, sent at the next flush.
    out: Vec<String>,
    /// Pushed frames to acknowledge once they are on the socket.
    sent_acks: Vec<MessageId>,
}

type Sink = SplitSink<WebSocket, WsMessage>;

/// Serves one WebSocket until it closes.
pub async fn serve(mut socket: WebSocket, host: Arc<PlayerHost>) {
    let Some(name) = await_login(&mut socket).await else { return };
    if let Err(e) = run(socket, &host, &name).await {
        tracing::warn!(player = %name, error = %e, "session ended with an error");
    }
}

/// Waits for a valid login frame, answering anything else with an error.
async fn await_login(socket: &mut WebSocket) -> Option<String> {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            WsMessage::Text(text) => match protocol::parse(text.as_bytes()) {
                Ok(ClientFrame::Login { name }) => return Some(name),
                Ok(_) => protocol::error("log in first: {\"type\":\"login\",\"name\":\"...\"}"),
                Err(reason) => protocol::error(&reason),
            },
            WsMessage::Close(_) => return None,
            _ => continue,
        };
        socket.send(WsMessage::Text(reply.into())).await.ok()?;
    }
    None
}

async fn run(socket: WebSocket, host: &PlayerHost, name: &str) -> anyhow::Result<()> {
    let player = host.bus.account(name).await?;
    let (session_id, kicked, _owner) = claim(host, player).await;
    let (mut sink, stream) = socket.split();
    let mut s = Session {
        host,
        player,
        state: host.bus.load_state(&Address::Player(player)).await?,
        room: None,
        out: vec![],
        sent_acks: vec![],
    };

    s.out.push(protocol::welcome(player, name));
    let name = name.to_owned();
    let login = s.call(fresh_env(), move |i, st, env, p| i.on_login(st, env, p, &name)).await;
    let served = match login {
        Ok(effects) => {
            s.commit(effects, None).await?;
            s.serve(&mut sink, stream, kicked).await
        }
        // The script refused the login: say why and end the session.
        Err(e) => {
            s.out.push(protocol::error(&login_refusal(&e)));
            s.flush(&mut sink).await
        }
    };
    // Whatever ended the session, the player logs out and the ownership is released.
    let logout = s.call(fresh_env(), |i, st, env, p| i.on_logout(st, env, p)).await;
    if let Ok(effects) = logout {
        s.commit(effects, None).await?;
    }
    release(host, player, session_id);
    let _ = sink.close().await;
    served
}

fn login_refusal(e: &CallError) -> String {
    match e {
        CallError::Rejected(reason) => format!("login refused: {reason}"),
        fault => format!("login failed: the server could not handle it ({})", fault.cause()),
    }
}

/// Makes this the player's newest session here, ends the older one, and waits until the
/// older one has finished (logout and last commit included) before taking the player.
async fn claim(host: &PlayerHost, player: u64) -> (u64, oneshot::Receiver<()>, OwnedMutexGuard<()>) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (kick, kicked) = oneshot::channel();
    let owner = {
        let mut sessions = host.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let slot = sessions.entry(player).or_default();
        if let Some((_, older)) = slot.newest.replace((id, kick)) {
            let _ = older.send(());
        }
        slot.owner.clone()
    };
    (id, kicked, owner.lock_owned().await)
}

fn release(host: &PlayerHost, player: u64, session_id: u64) {
    let mut sessions = host.sessions.lock().unwrap_or_else(|e| e.into_inner());
    // Only the newest session removes the slot: a newer one may be waiting on its lock.
    if sessions.get(&player).and_then(|s| s.newest.as_ref()).is_some_and(|(id, _)| *id == session_id) {
        sessions.remove(&player);
    }
}

impl Session<'_> {
    /// The session's loop: client frames and the player's queue, one at a time.
    async fn serve(
        &mut self,
        sink: &mut Sink,
        mut stream: SplitStream<WebSocket>,
        mut kicked: oneshot::Receiver<()>,
    ) -> anyhow::Result<()> {
        let queue = Address::Player(self.player);
        // Messages a previous session took but did not finish come first.
        for d in self.host.bus.read_pending(&queue).await? {
            self.delivery(d).await?;
        }
        loop {
            self.flush(sink).await?;
            tokio::select! {
                _ = &mut kicked => {
                    self.out.push(protocol::error("logged in elsewhere"));
                    return self.flush(sink).await;
                }
                msg = stream.next() => match msg {
                    Some(Ok(WsMessage::Text(text))) => self.client(text.as_bytes()).await?,
                    Some(Ok(WsMessage::Binary(_))) => self.out.push(protocol::error("frames are JSON text")),
                    Some(Ok(WsMessage::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                },
                // Dropping this read when a client frame wins is safe on the embedded bus,
                // whose read takes messages only as it returns. A Redis read in flight may
                // have taken some: sessions on Redis must read through a task of their own.
                delivered = self.host.bus.read(&queue, 32, INBOX_WAIT) => {
                    for d in delivered? {
                        self.delivery(d).await?;
                    }
                }
            }
        }
    }

    /// Sends the queued frames, then acknowledges the pushed frames among them.
    async fn flush(&mut self, sink: &mut Sink) -> anyhow::Result<()> {
        for frame in self.out.drain(..) {
            sink.send(WsMessage::Text(frame.into())).await?;
        }
        for id in self.sent_acks.drain(..) {
            self.host.bus.commit(Commit::ack_only(Address::Player(self.player), id)).await?;
        }
        Ok(())
    }

    /// Runs a player handler over the session's state.
    async fn call(
        &mut self,
        env: CallEnv,
        call: impl FnOnce(&mut Instance<Baseapp>, &mut EntityState, CallEnv, u64) -> CallResult + Send + 'static,
    ) -> CallResult {
        let mut state = std::mem::take(&mut self.state);
        let player = self.player;
        let (state, result) = self
            .host
            .logic
            .run(move |inst| {
                let r = call(inst, &mut state, env, player);
                (state, r)
            })
            .await;
        self.state = state;
        result
    }

    /// A frame from the client.
    async fn client(&mut self, text: &[u8]) -> anyhow::Result<()> {
        let host = self.host;
        match protocol::parse(text) {
            Err(reason) => self.out.push(protocol::error(&reason)),
            Ok(ClientFrame::Login { .. }) => self.out.push(protocol::error("already logged in")),
            Ok(ClientFrame::BattleStart) => match host.battles.create(protocol::practice_setup(self.player)).await {
                Ok(room) => {
                    self.room = Some(room);
                    self.out.push(protocol::battle_started(room));
                }
                Err(e) => self.out.push(protocol::error(&format!("cannot start a battle: {e}"))),
            },
            Ok(ClientFrame::BattleInput) => match self.room {
                None => self.out.push(protocol::error("not in a battle: send {\"type\":\"battle.start\"} first")),
                Some(room) => match host.battles.input(room, self.player, text.to_vec()).await {
                    Ok(replies) => self.out.extend(replies),
                    Err(RoomError::Call(CallError::Rejected(reason))) => self.out.push(protocol::error(&reason)),
                    Err(e) => self.out.push(protocol::error(&e.to_string())),
                },
            },
            Ok(ClientFrame::Game) => {
                let frame = text.to_vec();
                match self.call(fresh_env(), move |i, st, env, p| i.on_client(st, env, p, &frame)).await {
                    Ok(effects) => self.commit(effects, None).await?,
                    Err(CallError::Rejected(reason)) => self.out.push(protocol::error(&reason)),
                    Err(fault) => {
                        tracing::warn!(player = self.player, cause = fault.cause(), error = %fault, "client frame failed");
                        let reason = format!("the server could not handle that ({})", fault.cause());
                        self.out.push(protocol::error(&reason));
                    }
                }
            }
        }
        Ok(())
    }

    /// A message from the player's queue. A handler fault is retried (each try on a fresh
    /// instance) up to [`MAX_ATTEMPTS`] in all, then the message is set aside as a dead
    /// letter, so one bad message never blocks the player's queue.
    async fn delivery(&mut self, d: Delivery) -> anyhow::Result<()> {
        if d.envelope.kind == CLIENT_FRAME {
            self.out.push(String::from_utf8_lossy(&d.envelope.body).into_owned());
            self.sent_acks.push(d.id);
            return Ok(());
        }
        let env = CallEnv { now_ms: d.envelope.now_ms, seed: d.envelope.seed };
        let msg = Message {
            sender: d.envelope.sender.as_ref().and_then(from_bus),
            kind: d.envelope.kind.clone(),
            body: d.envelope.body.clone(),
        };
        let mut attempts = d.attempts;
        loop {
            let m = msg.clone();
            match self.call(env, move |i, st, env, p| i.on_message(st, env, p, &m)).await {
                Ok(effects) => return self.commit(effects, Some(d.id)).await,
                Err(CallError::Rejected(reason)) => {
                    // A refusal is an answer: the message is done with, nothing changes.
                    tracing::info!(player = self.player, kind = %msg.kind, %reason, "message refused by the script");
                    return Ok(self.host.bus.commit(Commit::ack_only(Address::Player(self.player), d.id)).await?);
                }
                Err(fault) if attempts >= MAX_ATTEMPTS => {
                    tracing::error!(player = self.player, kind = %msg.kind, error = %fault, attempts, "message dead-lettered");
                    let queue = Address::Player(self.player);
                    return Ok(self.host.bus.dead_letter(&queue, &d, &fault.to_string()).await?);
                }
                Err(fault) => {
                    tracing::warn!(player = self.player, kind = %msg.kind, error = %fault, attempts, "message failed; retrying");
                    attempts += 1;
                }
            }
        }
    }

    /// Stores a call's effects (and acks its message) in one step, then queues its
    /// replies for the client: nothing is said to the client before it is stored.
    async fn commit(&mut self, effects: warren_runtime::Effects, ack: Option<MessageId>) -> anyhow::Result<()> {
        let owner = Address::Player(self.player);
        let sends = outbound(&owner, &effects);
        let commit = Commit { owner: owner.clone(), writes: effects.writes.clone(), sends, ack, fence: None };
        self.host.bus.commit(commit).await?;
        effects.apply_to(&mut self.state);
        emit_logs(&owner, &effects);
        self.out.extend(effects.replies.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
        Ok(())
    }
}
