//! A player's session on a baseapp: the client's WebSocket and the player's queue, served
//! one at a time, so the player's handlers see every earlier commit.
//!
//! The baseapp holding the session owns the player by lease; every commit carries its
//! fencing token. A login on another baseapp asks this one to let go with a `$kick`
//! message through the player's queue, naming the lease token it saw; this session ends
//! (logout committed, lease released) and the new one takes the player over.

use crate::mechanics::doorbell::Doorbells;
use crate::mechanics::lease::Held;
use crate::mechanics::logic::{CLIENT_FRAME, LogicPool, fresh_env};
use crate::mechanics::owner::{Control, Ended, Occupant, OwnedQueue, Routed, Settled, Target, occupy};
use crate::protocol::{self, ClientFrame};
use crate::roles::battleapp::place_room;
use crate::roles::battleapp::room::INPUT;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedMutexGuard, oneshot, watch};
use warren_bus::{Address, Bus, BusError, Delivery, MessageId, Outbound};
use warren_runtime::{Baseapp, CallError, Effects};

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
        holder: String,
        bells: Arc<Doorbells>,
        lease_ttl: Duration,
    ) -> PlayerHost {
        PlayerHost {
            bus,
            logic,
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

/// One player's session: the role's side of the player's owned queue
/// ([`OwnedQueue`]), plus the client's socket.
struct Session<'h> {
    host: &'h PlayerHost,
    player: u64,
    /// The battle room the player is in, if any.
    room: Option<u64>,
    /// Frames for the client, sent at the next flush.
    out: Vec<String>,
    /// Pushed frames to acknowledge once they are on the socket.
    sent_acks: Vec<MessageId>,
    /// Why the session must end, once the client has been told.
    ended: Option<&'static str>,
    /// The client's socket, both ways.
    sink: Sink,
    stream: SplitStream<WebSocket>,
    /// Fires when a newer session of the player on this host wants it; `None` once fired.
    kicked: Option<oneshot::Receiver<()>>,
    /// The host is stopping.
    closing: watch::Receiver<bool>,
}

/// What the session waits for besides its queue.
enum SessionEvent {
    /// A newer session of the player on this host.
    Kicked,
    /// The host is stopping (or its closing signal went away).
    Closing,
    /// A frame from the client, or the socket's end.
    Frame(Option<Result<WsMessage, axum::Error>>),
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
    let me = Target::whole(Address::Player(player));
    let mut q =
        OwnedQueue::new(host.bus.clone(), Address::Player(player), held, host.logic.clone(), &host.bells, BATCH);
    let mut s = Session {
        host,
        player,
        room: None,
        out: vec![],
        sent_acks: vec![],
        ended: None,
        sink,
        stream,
        kicked: Some(kicked),
        closing: host.closing.subscribe(),
    };

    s.out.push(protocol::welcome(player, name));
    let name = name.to_owned();
    let login = q.call(&me, fresh_env(), move |i, st, env| i.on_login(st, env, player, &name)).await;
    let served = match login {
        Ok(Ok(effects)) => match q.commit(&me, &effects, None).await {
            Ok(()) => {
                s.replies(&effects);
                if occupy(&mut q, &mut s).await == Ended::Lost {
                    s.ended = Some(MOVED);
                }
                s.say_goodbye(&mut q).await
            }
            Err(e) => s.fail(&mut q, format!("login failed: {e}")).await,
        },
        // The script refused the login: say why and end the session.
        Ok(Err(e)) => s.fail(&mut q, login_refusal(&e)).await,
        Err(e) => s.fail(&mut q, format!("login failed: the server is busy, try again ({e})")).await,
    };
    // Whatever ended the session, the player logs out and the ownership is released —
    // unless the lease is gone, and with it the right to write the player.
    if !q.held().is_lost() {
        let logout = q.call(&me, fresh_env(), move |i, st, env| i.on_logout(st, env, player)).await;
        if let Ok(Ok(effects)) = logout
            && let Err(e) = q.commit(&me, &effects, None).await
        {
            tracing::warn!(player, error = %e, "logout not committed");
        }
    }
    q.release().await;
    release(host, player, session_id);
    let _ = s.sink.close().await;
    served
}

/// Why a session ends when its lease is gone.
const MOVED: &str = "this session moved to another server; log in again";

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
            let kick = Outbound {
                to: owner.clone(),
                sender: None,
                kind: KICK.into(),
                body: token.to_string().into(),
                hops: 0,
            };
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
    /// Sends the queued frames, then acknowledges the pushed frames among them.
    async fn flush(&mut self, q: &mut OwnedQueue<Baseapp>) -> anyhow::Result<()> {
        for frame in self.out.drain(..) {
            self.sink.send(WsMessage::Text(frame.into())).await?;
        }
        for id in std::mem::take(&mut self.sent_acks) {
            if let Err(e) = q.ack(id).await {
                // Left pending: the frame is sent again later (frames are at-least-once).
                tracing::warn!(player = self.player, error = %e, "pushed frame not acknowledged");
                q.reclaim();
            }
        }
        Ok(())
    }

    /// Tells the client why the session ends, if it must.
    async fn say_goodbye(&mut self, q: &mut OwnedQueue<Baseapp>) -> anyhow::Result<()> {
        if let Some(reason) = self.ended.take() {
            self.out.push(protocol::error(reason));
        }
        self.flush(q).await
    }

    /// Ends the session before it served: says why.
    async fn fail(&mut self, q: &mut OwnedQueue<Baseapp>, reason: String) -> anyhow::Result<()> {
        self.out.push(protocol::error(&reason));
        self.flush(q).await
    }

    /// Queues a committed call's replies for the client.
    fn replies(&mut self, effects: &Effects) {
        self.out.extend(effects.replies.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
    }

    /// A frame from the client.
    async fn client(&mut self, text: &[u8], q: &mut OwnedQueue<Baseapp>) {
        let host = self.host;
        match protocol::parse(text) {
            Err(reason) => self.out.push(protocol::error(&reason)),
            Ok(ClientFrame::Login { .. }) => self.out.push(protocol::error("already logged in")),
            Ok(ClientFrame::BattleStart) => {
                match place_room(&host.bus, self.player, protocol::practice_setup(self.player)).await {
                    Ok(placed) => {
                        self.room = Some(placed.room);
                        self.out.push(protocol::battle_started(placed.room, &placed.url, &placed.ticket));
                    }
                    Err(e) => self.out.push(protocol::error(&format!("cannot start a battle: {e}"))),
                }
            }
            // A client without a battle socket plays through its session: the input goes
            // to the room's queue as the player's, the room's frames come back through the
            // player's queue.
            Ok(ClientFrame::BattleInput) => match self.room {
                None => self.out.push(protocol::error("not in a battle: send {\"type\":\"battle.start\"} first")),
                Some(room) => {
                    let input = Outbound {
                        to: Address::Battle(room),
                        sender: Some(Address::Player(self.player)),
                        kind: INPUT.into(),
                        body: text.to_vec(),
                        hops: 0,
                    };
                    if let Err(e) = host.bus.send(input).await {
                        self.out.push(protocol::error(&format!("input not taken, send it again: {e}")));
                    }
                }
            },
            Ok(ClientFrame::Game) => {
                let (frame, player) = (text.to_vec(), self.player);
                let me = Target::whole(Address::Player(player));
                match q.call(&me, fresh_env(), move |i, st, env| i.on_client(st, env, player, &frame)).await {
                    Ok(Ok(effects)) => match q.commit(&me, &effects, None).await {
                        Ok(()) => self.replies(&effects),
                        Err(e) => {
                            if matches!(e, BusError::StaleOwner { .. }) {
                                self.ended = Some(MOVED);
                            }
                            self.out.push(protocol::error(&format!("not saved, try again: {e}")));
                        }
                    },
                    Ok(Err(CallError::Rejected(reason))) => self.out.push(protocol::error(&reason)),
                    Ok(Err(fault)) => {
                        tracing::warn!(player = self.player, cause = fault.cause(), error = %fault, "client frame failed");
                        let reason = format!("the server could not handle that ({})", fault.cause());
                        self.out.push(protocol::error(&reason));
                    }
                    // Nothing ran: the player's state could not be read.
                    Err(e) => self.out.push(protocol::error(&format!("the server is busy, try again ({e})"))),
                }
            }
        }
    }
}

impl Occupant<Baseapp> for Session<'_> {
    type Event = SessionEvent;

    /// Frames for the client and kicks are the host's own; everything else is the
    /// player's logic's.
    async fn route(&mut self, d: &Delivery, q: &mut OwnedQueue<Baseapp>) -> Routed {
        match d.envelope.kind.as_str() {
            CLIENT_FRAME => {
                self.out.push(String::from_utf8_lossy(&d.envelope.body).into_owned());
                self.sent_acks.push(d.id.clone());
                Routed::Done
            }
            // Only a host sends a kick: every message an entity's logic sends carries that
            // entity as its sender, recorded by the host that committed it (and no guest
            // may send a `$` kind at all). A kick with a sender is no kick.
            KICK if d.envelope.sender.is_some() => {
                Routed::Misaddressed(format!("a {KICK} from {:?}: only a host ends a session", d.envelope.sender))
            }
            KICK => {
                let meant = String::from_utf8_lossy(&d.envelope.body).parse::<u64>().ok();
                if meant == Some(q.held().token()) {
                    self.ended = Some("logged in elsewhere");
                }
                // A kick meant for an earlier session is done with.
                if let Err(e) = q.ack(d.id.clone()).await {
                    tracing::warn!(player = self.player, error = %e, "kick not acknowledged");
                    q.reclaim();
                }
                Routed::Done
            }
            _ => Routed::Handle(Target::whole(Address::Player(self.player))),
        }
    }

    async fn settled(&mut self, _: &Delivery, outcome: Settled) {
        if let Settled::Done(effects) = outcome {
            self.replies(&effects);
        }
    }

    async fn event(&mut self) -> SessionEvent {
        let kicked = async {
            match self.kicked.as_mut() {
                Some(k) => {
                    let _ = k.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = kicked => SessionEvent::Kicked,
            changed = self.closing.changed() => match changed {
                Ok(()) => SessionEvent::Closing,
                // The host is gone altogether.
                Err(_) => SessionEvent::Closing,
            },
            msg = self.stream.next() => SessionEvent::Frame(msg),
        }
    }

    async fn on_event(&mut self, event: SessionEvent, q: &mut OwnedQueue<Baseapp>) -> Control {
        match event {
            SessionEvent::Kicked => {
                self.kicked = None;
                self.ended = Some("logged in elsewhere");
            }
            SessionEvent::Closing => self.ended = Some("the server is restarting; log in again"),
            SessionEvent::Frame(Some(Ok(WsMessage::Text(text)))) => self.client(text.as_bytes(), q).await,
            SessionEvent::Frame(Some(Ok(WsMessage::Binary(_)))) => {
                self.out.push(protocol::error("frames are JSON text"))
            }
            SessionEvent::Frame(Some(Ok(WsMessage::Close(_))) | None) => return Control::Stop,
            SessionEvent::Frame(Some(Ok(_))) => {}
            SessionEvent::Frame(Some(Err(e))) => {
                tracing::debug!(player = self.player, error = %e, "client socket failed");
                return Control::Stop;
            }
        }
        Control::Continue
    }

    async fn idle(&mut self, q: &mut OwnedQueue<Baseapp>) -> Control {
        if *self.closing.borrow() && self.ended.is_none() {
            self.ended = Some("the server is restarting; log in again");
        }
        if self.ended.is_some() {
            return Control::Stop;
        }
        match self.flush(q).await {
            Ok(()) => Control::Continue,
            Err(e) => {
                tracing::debug!(player = self.player, error = %e, "client socket failed");
                Control::Stop
            }
        }
    }
}
