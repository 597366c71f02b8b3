//! A player's session on a baseapp: the client's WebSocket and the player's queue, served
//! one at a time, so the player's handlers see every earlier commit.

use crate::battle::{BattleHost, RoomError};
use crate::logic::{CLIENT_FRAME, LogicPool, emit_logs, fresh_env, from_bus, outbound};
use crate::protocol::{self, ClientFrame};
use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use warren_bus::{Address, Bus, Commit, Delivery, EntityState};
use warren_runtime::{Baseapp, CallEnv, CallError, CallResult, Instance, Message};

/// How long one read of the player's queue waits before the session looks around again.
const INBOX_WAIT: Duration = Duration::from_millis(500);

/// What a baseapp's sessions share.
pub struct PlayerHost {
    /// The message center.
    pub bus: Bus,
    /// The player logic.
    pub logic: Arc<LogicPool<Baseapp>>,
    /// Battle rooms (in `warren dev`, in the same process).
    pub battles: BattleHost,
    /// The live session of each player here, to end it when the player logs in again.
    pub sessions: Mutex<HashMap<u64, (u64, oneshot::Sender<()>)>>,
}

/// One player's session state.
struct Session {
    player: u64,
    /// The player's committed state, cached: this session owns the player.
    state: EntityState,
    /// The battle room the player is in, if any.
    room: Option<u64>,
}

type Ws = WebSocket;

/// Serves one WebSocket until it closes.
pub async fn serve(mut socket: Ws, host: Arc<PlayerHost>) {
    let Some(name) = await_login(&mut socket).await else { return };
    if let Err(e) = run(socket, &host, &name).await {
        tracing::warn!(player = %name, error = %e, "session ended with an error");
    }
}

/// Waits for a valid login frame, answering anything else with an error.
async fn await_login(socket: &mut Ws) -> Option<String> {
    while let Some(Ok(msg)) = socket.recv().await {
        let WsMessage::Text(text) = msg else {
            if matches!(msg, WsMessage::Close(_)) {
                return None;
            }
            continue;
        };
        match protocol::parse(text.as_bytes()) {
            Ok(ClientFrame::Login { name }) => return Some(name),
            Ok(_) => send(socket, protocol::error("log in first: {\"type\":\"login\",\"name\":\"...\"}")).await.ok()?,
            Err(reason) => send(socket, protocol::error(&reason)).await.ok()?,
        }
    }
    None
}

async fn send(socket: &mut Ws, frame: String) -> Result<(), axum::Error> {
    socket.send(WsMessage::Text(frame.into())).await
}

async fn run(socket: Ws, host: &PlayerHost, name: &str) -> anyhow::Result<()> {
    let player = host.bus.account(name).await?;
    let queue = Address::Player(player);
    let (session_id, mut kicked) = claim(host, player);
    let (mut sink, mut stream) = socket.split();
    let mut out = Vec::new();
    let mut s = Session { player, state: host.bus.load_state(&queue).await?, room: None };

    out.push(protocol::welcome(player, name));
    let name = name.to_owned();
    let login = host.logic.run_on(&mut s, move |i, st, env, p| i.on_login(st, env, p, &name)).await;
    s.finish(host, login, None, &mut out).await?;
    // Messages a previous session took but did not finish come first.
    for d in host.bus.read_pending(&queue).await? {
        s.delivery(host, d, &mut out).await?;
    }

    let result = loop {
        for frame in out.drain(..) {
            sink.send(WsMessage::Text(frame.into())).await?;
        }
        tokio::select! {
            _ = &mut kicked => {
                out.push(protocol::error("logged in elsewhere"));
                for frame in out.drain(..) {
                    sink.send(WsMessage::Text(frame.into())).await?;
                }
                break Ok(());
            }
            msg = stream.next() => match msg {
                Some(Ok(WsMessage::Text(text))) => s.client(host, text.as_bytes(), &mut out).await?,
                Some(Ok(WsMessage::Binary(_))) => out.push(protocol::error("frames are JSON text")),
                Some(Ok(WsMessage::Close(_))) | None => break Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.into()),
            },
            delivered = host.bus.read(&queue, 32, INBOX_WAIT) => {
                for d in delivered? {
                    s.delivery(host, d, &mut out).await?;
                }
            }
        }
    };
    let logout = host.logic.run_on(&mut s, |i, st, env, p| i.on_logout(st, env, p)).await;
    s.finish(host, logout, None, &mut Vec::new()).await?;
    release(host, player, session_id);
    result
}

/// Makes this the player's one session here, ending an older one.
fn claim(host: &PlayerHost, player: u64) -> (u64, oneshot::Receiver<()>) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (kick, kicked) = oneshot::channel();
    let old = host.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(player, (id, kick));
    if let Some((_, old_kick)) = old {
        let _ = old_kick.send(());
    }
    (id, kicked)
}

fn release(host: &PlayerHost, player: u64, session_id: u64) {
    let mut sessions = host.sessions.lock().unwrap_or_else(|e| e.into_inner());
    if sessions.get(&player).is_some_and(|(id, _)| *id == session_id) {
        sessions.remove(&player);
    }
}

impl LogicPool<Baseapp> {
    /// Runs a player handler over the session's state, with a fresh env.
    async fn run_on(
        self: &Arc<Self>,
        s: &mut Session,
        call: impl FnOnce(&mut Instance<Baseapp>, &mut EntityState, CallEnv, u64) -> CallResult + Send + 'static,
    ) -> CallResult {
        self.run_with_env(s, fresh_env(), call).await
    }

    async fn run_with_env(
        self: &Arc<Self>,
        s: &mut Session,
        env: CallEnv,
        call: impl FnOnce(&mut Instance<Baseapp>, &mut EntityState, CallEnv, u64) -> CallResult + Send + 'static,
    ) -> CallResult {
        let mut state = std::mem::take(&mut s.state);
        let player = s.player;
        let (state, result) = self
            .run(move |inst| {
                let r = call(inst, &mut state, env, player);
                (state, r)
            })
            .await;
        s.state = state;
        result
    }
}

impl Session {
    /// A frame from the client.
    async fn client(&mut self, host: &PlayerHost, text: &[u8], out: &mut Vec<String>) -> anyhow::Result<()> {
        match protocol::parse(text) {
            Err(reason) => out.push(protocol::error(&reason)),
            Ok(ClientFrame::Login { .. }) => out.push(protocol::error("already logged in")),
            Ok(ClientFrame::BattleStart) => match host.battles.create(protocol::practice_setup(self.player)).await {
                Ok(room) => {
                    self.room = Some(room);
                    out.push(protocol::battle_started(room));
                }
                Err(e) => out.push(protocol::error(&format!("cannot start a battle: {e}"))),
            },
            Ok(ClientFrame::BattleInput) => match self.room {
                None => out.push(protocol::error("not in a battle: send {\"type\":\"battle.start\"} first")),
                Some(room) => match host.battles.input(room, self.player, text.to_vec()).await {
                    Ok(()) => {}
                    Err(RoomError::Call(CallError::Rejected(reason))) => out.push(protocol::error(&reason)),
                    Err(e) => out.push(protocol::error(&e.to_string())),
                },
            },
            Ok(ClientFrame::Game) => {
                let frame = text.to_vec();
                let result = host.logic.run_on(self, move |i, st, env, p| i.on_client(st, env, p, &frame)).await;
                self.finish(host, result, None, out).await?;
            }
        }
        Ok(())
    }

    /// A message from the player's queue.
    async fn delivery(&mut self, host: &PlayerHost, d: Delivery, out: &mut Vec<String>) -> anyhow::Result<()> {
        if d.envelope.kind == CLIENT_FRAME {
            out.push(String::from_utf8_lossy(&d.envelope.body).into_owned());
            let ack = Commit { owner: Address::Player(self.player), writes: vec![], sends: vec![], ack: Some(d.id) };
            host.bus.commit(ack).await?;
            return Ok(());
        }
        let env = CallEnv { now_ms: d.envelope.now_ms, seed: d.envelope.seed };
        let msg = Message {
            sender: d.envelope.sender.as_ref().map(from_bus),
            kind: d.envelope.kind.clone(),
            body: d.envelope.body.clone(),
        };
        let result = host.logic.run_with_env(self, env, move |i, st, env, p| i.on_message(st, env, p, &msg)).await;
        self.finish(host, result, Some(d.id), out).await
    }

    /// Commits a call's effects (and acks its message), then queues its replies; or
    /// reports why it failed. A failed call commits nothing; a message that failed is
    /// acknowledged only when the handler rejected it (a fault leaves it pending, to be
    /// retried by the player's next session).
    async fn finish(
        &mut self,
        host: &PlayerHost,
        result: CallResult,
        ack: Option<String>,
        out: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let owner = Address::Player(self.player);
        match result {
            Ok(effects) => {
                let commit = Commit {
                    owner: owner.clone(),
                    writes: effects.writes.clone(),
                    sends: outbound(&owner, &effects),
                    ack,
                };
                host.bus.commit(commit).await?;
                effects.apply_to(&mut self.state);
                emit_logs(&owner, &effects);
                out.extend(effects.replies.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
            }
            Err(CallError::Rejected(reason)) => {
                if let Some(id) = ack {
                    host.bus.commit(Commit { owner, writes: vec![], sends: vec![], ack: Some(id) }).await?;
                }
                out.push(protocol::error(&reason));
            }
            Err(fault) => {
                tracing::warn!(player = self.player, cause = fault.cause(), error = %fault, "handler failed");
                if ack.is_none() {
                    out.push(protocol::error(&format!("the server could not handle that ({})", fault.cause())));
                }
            }
        }
        Ok(())
    }
}
