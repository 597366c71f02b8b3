//! A player's session on a baseapp: the client's WebSocket and the player's queue, served
//! one at a time, so the player's handlers see every earlier commit.
//!
//! The baseapp holding the session owns the player by lease; every commit carries its
//! fencing token. A login on another baseapp asks this one to let go with a `$kick`
//! message through the player's queue, naming the lease token it saw; this session ends
//! (logout committed, lease released) and the new one takes the player over.

use crate::battle::{BattleHost, RoomError};
use crate::deliver::{self, Verdict};
use crate::inbox::{Doorbells, Sweep, Watch};
use crate::lease::Held;
use crate::logic::{CLIENT_FRAME, LogicPool, emit_logs, fresh_env, from_bus, outbound};
use crate::protocol::{self, ClientFrame};
use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedMutexGuard, oneshot, watch};
use warren_bus::{Address, Bus, BusError, Commit, Delivery, EntityState, MessageId, Outbound};
use warren_runtime::{Baseapp, CallEnv, CallError, CallResult, Instance, Message};

/// Most messages taken from the player's queue in one read.
const BATCH: usize = 32;
/// The message kind by which a new session elsewhere asks this one to end; its body is
/// the lease token of the session it means.
pub const KICK: &str = "$kick";

/// What a baseapp's sessions share.
pub struct PlayerHost {
    /// The message center.
    pub bus: Bus,
    /// The player logic.
    pub logic: Arc<LogicPool<Baseapp>>,
    /// Battle rooms (in this process).
    pub battles: BattleHost,
    /// Per player here: the lock a session holds while it owns the player, and the way to
    /// end that session when the player logs in again.
    pub sessions: Mutex<HashMap<u64, PlayerSlot>>,
    /// This host's name: the holder of its players' leases.
    pub holder: String,
    /// Wakes sessions when their queue has news.
    pub bells: Arc<Doorbells>,
    /// Lease time of a player.
    pub lease_ttl: Duration,
    /// Set when the host is stopping: every session ends.
    pub closing: watch::Sender<bool>,
}

impl PlayerHost {
    /// A baseapp's session host.
    pub fn new(
        bus: Bus,
        logic: Arc<LogicPool<Baseapp>>,
        battles: BattleHost,
        holder: String,
        bells: Arc<Doorbells>,
        lease_ttl: Duration,
    ) -> PlayerHost {
        PlayerHost {
            bus,
            logic,
            battles,
            sessions: Mutex::default(),
            holder,
            bells,
            lease_ttl,
            closing: watch::channel(false).0,
        }
    }

    /// How many sessions are open.
    pub fn open_sessions(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
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
    /// The lease this session owns the player by.
    held: &'h Held,
    /// The player's committed state, cached: this session owns the player. `None` after a
    /// commit whose outcome is unknown, until it is loaded again.
    state: Option<EntityState>,
    /// The battle room the player is in, if any.
    room: Option<u64>,
    /// Frames for the client, sent at the next flush.
    out: Vec<String>,
    /// Pushed frames to acknowledge once they are on the socket.
    sent_acks: Vec<MessageId>,
    /// Why the session must end, once the client has been told.
    ended: Option<&'static str>,
    /// Take the queue's pending messages (not only new ones) at the next read.
    claim: bool,
}

type Sink = SplitSink<WebSocket, WsMessage>;

/// Largest client frame taken, in bytes.
pub const MAX_FRAME: usize = 64 * 1024;

/// Takes a client's WebSocket upgrade and serves it as a session.
pub fn upgrade(ws: axum::extract::WebSocketUpgrade, players: Arc<PlayerHost>) -> axum::response::Response {
    // Client frames are small; a 64 KiB cap keeps a client from making the host parse
    // (and a guest copy) megabytes.
    ws.max_message_size(MAX_FRAME).max_frame_size(MAX_FRAME).on_upgrade(move |socket| serve(socket, players))
}

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
    let Some(held) = take_player(host, player).await? else {
        let busy = "this account is still playing on another server; try again in a few seconds";
        sink.send(WsMessage::Text(protocol::error(busy).into())).await?;
        release(host, player, session_id);
        return Ok(());
    };
    let watch = host.bells.watch(Address::Player(player));
    let mut s = Session {
        host,
        player,
        held: &held,
        state: None,
        room: None,
        out: vec![],
        sent_acks: vec![],
        ended: None,
        claim: true,
    };

    s.out.push(protocol::welcome(player, name));
    let name = name.to_owned();
    let login = s.call(fresh_env(), move |i, st, env, p| i.on_login(st, env, p, &name)).await;
    let served = match login {
        Ok(effects) => match s.commit(effects, None).await {
            Ok(()) => s.serve(&mut sink, stream, kicked, &watch).await,
            Err(e) => {
                s.out.push(protocol::error(&format!("login failed: {e}")));
                s.flush(&mut sink).await
            }
        },
        // The script refused the login: say why and end the session.
        Err(e) => {
            s.out.push(protocol::error(&login_refusal(&e)));
            s.flush(&mut sink).await
        }
    };
    // Whatever ended the session, the player logs out and the ownership is released —
    // unless the lease is gone, and with it the right to write the player.
    if !held.is_lost() {
        let logout = s.call(fresh_env(), |i, st, env, p| i.on_logout(st, env, p)).await;
        if let Ok(effects) = logout
            && let Err(e) = s.commit(effects, None).await
        {
            tracing::warn!(player, error = %e, "logout not committed");
        }
    }
    drop(watch);
    held.release(&host.bus).await;
    release(host, player, session_id);
    let _ = sink.close().await;
    served
}

/// Takes the player's lease for this host. If another host holds it, asks that session to
/// end (a `$kick` naming its token) and waits for the lease — at most a lease time and a
/// bit, after which the other host must be gone or stuck.
async fn take_player(host: &PlayerHost, player: u64) -> Result<Option<Held>, BusError> {
    let owner = Address::Player(player);
    let deadline = tokio::time::Instant::now() + host.lease_ttl + Duration::from_secs(2);
    let mut kicked = None;
    loop {
        if let Some(held) = Held::acquire(&host.bus, &owner, &host.holder, host.lease_ttl).await? {
            return Ok(Some(held));
        }
        if let Some((_, token)) = host.bus.lease_holder(&owner).await?
            && kicked != Some(token)
        {
            let kick = Outbound { to: owner.clone(), sender: None, kind: KICK.into(), body: token.to_string().into() };
            host.bus.send(kick).await?;
            kicked = Some(token);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    /// The session's loop: client frames and the player's queue, one at a time. Queue
    /// reads happen outside the `select!`, so none is ever dropped half-done.
    async fn serve(
        &mut self,
        sink: &mut Sink,
        mut stream: SplitStream<WebSocket>,
        mut kicked: oneshot::Receiver<()>,
        watch: &Watch,
    ) -> anyhow::Result<()> {
        let mut closing = self.host.closing.subscribe();
        let mut sweep = Sweep::new();
        // Messages a previous session took but did not finish come first.
        let mut inbox_due = true;
        loop {
            self.flush(sink).await?;
            if let Some(reason) = self.ended.take() {
                self.out.push(protocol::error(reason));
                return self.flush(sink).await;
            }
            if *closing.borrow_and_update() {
                self.ended = Some("the server is restarting; log in again");
                continue;
            }
            if inbox_due {
                inbox_due = self.read_inbox().await;
                continue;
            }
            tokio::select! {
                _ = &mut kicked => self.ended = Some("logged in elsewhere"),
                _ = self.held.lost() => self.ended = Some("this session moved to another server; log in again"),
                _ = closing.changed() => {}
                msg = stream.next() => match msg {
                    Some(Ok(WsMessage::Text(text))) => self.client(text.as_bytes()).await,
                    Some(Ok(WsMessage::Binary(_))) => self.out.push(protocol::error("frames are JSON text")),
                    Some(Ok(WsMessage::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                },
                _ = watch.rung() => inbox_due = true,
                claim = sweep.tick() => {
                    inbox_due = true;
                    self.claim |= claim;
                }
            }
        }
    }

    /// Reads and handles a batch of the player's queue; `true` if there may be more.
    async fn read_inbox(&mut self) -> bool {
        let queue = Address::Player(self.player);
        let bus = &self.host.bus;
        let batch =
            if self.claim { bus.read_pending(&queue).await } else { bus.read(&queue, BATCH, Duration::ZERO).await };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(player = self.player, error = %e, "cannot read the player's queue");
                self.claim = true;
                return false;
            }
        };
        let more = self.claim || batch.len() >= BATCH;
        self.claim = false;
        for d in batch {
            self.delivery(d).await;
            if self.ended.is_some() || self.claim {
                return false;
            }
        }
        more
    }

    /// Sends the queued frames, then acknowledges the pushed frames among them.
    async fn flush(&mut self, sink: &mut Sink) -> anyhow::Result<()> {
        for frame in self.out.drain(..) {
            sink.send(WsMessage::Text(frame.into())).await?;
        }
        for id in std::mem::take(&mut self.sent_acks) {
            if let Err(e) = self.ack(id).await {
                // Left pending: the frame is sent again later (frames are at-least-once).
                tracing::warn!(player = self.player, error = %e, "pushed frame not acknowledged");
                self.claim = true;
            }
        }
        Ok(())
    }

    async fn ack(&self, id: MessageId) -> Result<(), BusError> {
        let owner = Address::Player(self.player);
        let ack = Commit { fence: Some(self.held.token()), ..Commit::ack_only(owner, id) };
        self.host.bus.commit(ack).await
    }

    /// Runs a player handler over the session's state (loaded first if need be).
    async fn call(
        &mut self,
        env: CallEnv,
        call: impl FnOnce(&mut Instance<Baseapp>, &mut EntityState, CallEnv, u64) -> CallResult + Send + 'static,
    ) -> CallResult {
        let mut state = match self.state.take() {
            Some(state) => state,
            None => match self.host.bus.load_state(&Address::Player(self.player)).await {
                Ok(state) => state,
                Err(e) => return Err(CallError::Rejected(format!("the server is busy, try again ({e})"))),
            },
        };
        let player = self.player;
        let (state, result) = self
            .host
            .logic
            .run(move |inst| {
                let r = call(inst, &mut state, env, player);
                (state, r)
            })
            .await;
        self.state = Some(state);
        result
    }

    /// A frame from the client.
    async fn client(&mut self, text: &[u8]) {
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
                    Ok(effects) => {
                        if let Err(e) = self.commit(effects, None).await {
                            self.out.push(protocol::error(&format!("not saved, try again: {e}")));
                        }
                    }
                    Err(CallError::Rejected(reason)) => self.out.push(protocol::error(&reason)),
                    Err(fault) => {
                        tracing::warn!(player = self.player, cause = fault.cause(), error = %fault, "client frame failed");
                        let reason = format!("the server could not handle that ({})", fault.cause());
                        self.out.push(protocol::error(&reason));
                    }
                }
            }
        }
    }

    /// A message from the player's queue: a frame for the client, a kick, or a message
    /// for the player's logic (see [`deliver::handle`]).
    async fn delivery(&mut self, d: Delivery) {
        match d.envelope.kind.as_str() {
            CLIENT_FRAME => {
                self.out.push(String::from_utf8_lossy(&d.envelope.body).into_owned());
                self.sent_acks.push(d.id);
                return;
            }
            KICK => {
                let meant = String::from_utf8_lossy(&d.envelope.body).parse::<u64>().ok();
                if meant == Some(self.held.token()) {
                    self.ended = Some("logged in elsewhere");
                }
                // A kick meant for an earlier session is done with.
                if let Err(e) = self.ack(d.id).await {
                    tracing::warn!(player = self.player, error = %e, "kick not acknowledged");
                }
                return;
            }
            _ => {}
        }
        let env = CallEnv { now_ms: d.envelope.now_ms, seed: d.envelope.seed };
        let msg = Message {
            sender: d.envelope.sender.as_ref().and_then(from_bus),
            kind: d.envelope.kind.clone(),
            body: d.envelope.body.clone(),
        };
        let what = format!("{} for player {}", msg.kind, self.player);
        // The session's state is borrowed by each try; `deliver::handle` wants a closure
        // per try, so tries run through a cell.
        let session = tokio::sync::Mutex::new(&mut *self);
        let verdict = deliver::handle(&what, d.attempts, || async {
            let m = msg.clone();
            session.lock().await.call(env, move |i, st, env, p| i.on_message(st, env, p, &m)).await
        })
        .await;
        let result = match verdict {
            Verdict::Done(effects) => self.commit(effects, Some(d.id.clone())).await,
            Verdict::Refused(_) => self.ack(d.id.clone()).await,
            Verdict::Dead(error) => match self.host.bus.dead_letter(&Address::Player(self.player), &d, &error).await {
                Err(BusError::NotPending { .. }) => Ok(()),
                other => other,
            },
        };
        if let Err(e) = result {
            // Left pending, taken again at the next read; the state is loaded again.
            tracing::warn!(player = self.player, id = %d.id, error = %e, "message not committed");
            self.claim = true;
        }
    }

    /// Stores a call's effects (and acks its message) in one step, then queues its
    /// replies for the client: nothing is said to the client before it is stored. On a
    /// failure nothing is known of the outcome: the cached state is dropped and loaded
    /// again before the next call.
    async fn commit(&mut self, effects: warren_runtime::Effects, ack: Option<MessageId>) -> Result<(), BusError> {
        let owner = Address::Player(self.player);
        let sends = outbound(&owner, &effects);
        let commit =
            Commit { owner: owner.clone(), writes: effects.writes.clone(), sends, ack, fence: Some(self.held.token()) };
        match self.host.bus.commit(commit).await {
            Ok(()) => {}
            Err(e) => {
                self.state = None;
                if matches!(e, BusError::StaleOwner { .. }) {
                    self.ended = Some("this session moved to another server; log in again");
                }
                return Err(e);
            }
        }
        if let Some(state) = self.state.as_mut() {
            effects.apply_to(state);
        }
        emit_logs(&owner, &effects);
        self.out.extend(effects.replies.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
        Ok(())
    }
}
