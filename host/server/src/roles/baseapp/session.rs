//! A player's session on a baseapp: the client's WebSocket and the player's queue, served
//! one at a time, so the player's handlers see every earlier commit.
//!
//! The baseapp holding the session owns the player by lease; every commit carries its
//! fencing token. A login on another baseapp asks this one to let go with a `$kick`
//! message through the player's queue, naming the lease token it saw; this session ends
//! (logout committed, lease released) and the new one takes the player over. A lease whose
//! holder is no longer a live baseapp (it died) is taken over at once.
//!
//! What reaches the screen, exactly once (docs/protocol.md, *Delivery*): frames for the
//! client that come through the player's queue (`$frame` messages, and the replies of the
//! handlers of its messages) are committed to the player's push log with a sequence number
//! before they are sent; the client acknowledges what it showed, and a session resumes
//! from the client's last acknowledgement — so a push is sent again only until it is
//! acknowledged, and never lost with a socket. A client's frame may carry a key: its
//! commit records it, so a retry is answered with the first answer and applied once, and
//! a commit whose answer was lost is found out ([`warren_bus::Bus::resolve`]) rather than
//! reported as failed.

use super::edge::{Requests, Screen, decode_outcome, encode_outcome};
use crate::mechanics::doorbell::Doorbells;
use crate::mechanics::lease::Held;
use crate::mechanics::logic::{CLIENT_FRAME, LogicPool, fresh_env};
use crate::mechanics::owner::{Control, Ended, Occupant, OwnedQueue, Routed, Settled, Target, occupy, screen_frames};
use crate::protocol::{self, ClientFrame, Meta};
use crate::roles::battleapp::place_room;
use crate::roles::battleapp::room::INPUT;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use warren_bus::{Address, Bus, BusError, Delivery, MessageId, Outbound, Push, Request};
use warren_runtime::{Baseapp, CallError, Effects};

/// Most messages taken from the player's queue in one read.
const BATCH: usize = 32;
/// The message kind by which a new session elsewhere asks this one to end; its body is
/// the lease token of the session it means.
pub const KICK: &str = "$kick";
/// How long an ending session waits for the client's side of the close handshake (it
/// reads and drops the client's frames meanwhile, so the kernel never resets the
/// connection over unread bytes and the last frames arrive).
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The role whose live members may hold players' leases.
const MEMBERS: &str = "baseapp";

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
    /// Client sockets open, those closing included: a stopping host waits for them, so
    /// every socket gets its last frames and its close handshake.
    sockets: AtomicUsize,
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
            sockets: AtomicUsize::new(0),
        }
    }

    /// How many sessions are open.
    pub fn open_sessions(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// How many client sockets are open (sessions, logins, sockets closing).
    pub fn open_sockets(&self) -> usize {
        self.sockets.load(Ordering::Acquire)
    }
}

/// Counts a socket open while it lives.
struct SocketCount<'h>(&'h AtomicUsize);

impl<'h> SocketCount<'h> {
    fn new(n: &'h AtomicUsize) -> SocketCount<'h> {
        n.fetch_add(1, Ordering::AcqRel);
        SocketCount(n)
    }
}

impl Drop for SocketCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
    /// What of the push log this socket was sent and the client acknowledged.
    screen: Screen,
    /// The player's requests known applied, and those whose outcome is unknown.
    requests: Requests,
    /// Pushes read at login, sent after the login's answers.
    unsent_pushes: Option<Vec<Push>>,
    /// Why the session must end, once the client has been told.
    ended: Option<Ending>,
    /// The client's socket, both ways.
    sink: Sink,
    stream: SplitStream<WebSocket>,
    /// Fires when a newer session of the player on this host wants it; `None` once fired.
    kicked: Option<oneshot::Receiver<()>>,
    /// The host is stopping.
    closing: watch::Receiver<bool>,
}

/// Why the host ends a session: the reason the client reads and the close code.
#[derive(Debug, Clone, Copy)]
struct Ending {
    reason: &'static str,
    code: u16,
}

/// A newer login took the player.
const KICKED: Ending = Ending { reason: "logged in elsewhere", code: 4001 };
/// The lease is gone.
const MOVED: Ending = Ending { reason: "this session moved to another server; log in again", code: 4002 };
/// The host is stopping (RFC 6455's 1012, service restart).
const RESTARTING: Ending =
    Ending { reason: "the server is restarting; log in again to resume where you were", code: 1012 };

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
    let _open = SocketCount::new(&host.sockets);
    let Some((name, ack)) = await_login(&mut socket).await else { return };
    if let Err(e) = run(socket, &host, &name, ack).await {
        tracing::warn!(player = %name, error = %e, "session ended with an error");
    }
}

/// Waits for a valid login frame, answering anything else with an error: the name and
/// the last push the client showed.
async fn await_login(socket: &mut WebSocket) -> Option<(String, u64)> {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            WsMessage::Text(text) => match protocol::parse(text.as_bytes()) {
                Ok((ClientFrame::Login { name }, meta)) => return Some((name, meta.ack.unwrap_or(0))),
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

async fn run(socket: WebSocket, host: &PlayerHost, name: &str, ack: u64) -> anyhow::Result<()> {
    let player = host.bus.account(name).await?;
    let (mut sink, stream) = socket.split();
    let (session_id, kicked, owner) = claim(host, player).await;
    let Some(held) = take_player(host, player).await? else {
        let busy = "this account is still playing on another server; try again in a few seconds";
        sink.send(WsMessage::Text(protocol::error(busy).into())).await?;
        release(host, player, session_id);
        drop(owner);
        close(sink, stream, 1013, "try again later").await;
        return Ok(());
    };
    let me = Target::whole(Address::Player(player));
    let mut q =
        OwnedQueue::new(host.bus.clone(), Address::Player(player), held, host.logic.clone(), &host.bells, BATCH);
    q.log_replies();
    let mut s = Session {
        host,
        player,
        room: None,
        out: vec![],
        screen: Screen::default(),
        requests: Requests::default(),
        unsent_pushes: None,
        ended: None,
        sink,
        stream,
        kicked: Some(kicked),
        closing: host.closing.subscribe(),
    };

    let served = match s.resume(name, ack).await {
        Ok(welcome) => {
            s.out.push(welcome);
            let name = name.to_owned();
            let login = q.call(&me, fresh_env(), move |i, st, env| i.on_login(st, env, player, &name)).await;
            match login {
                Ok(Ok(effects)) => match q.commit(&me, &effects, None).await {
                    Ok(_) => {
                        s.replies(&effects);
                        s.unsent_pushes.take().into_iter().flatten().for_each(|p| s.screen.show(&p, &mut s.out));
                        if occupy(&mut q, &mut s).await == Ended::Lost {
                            s.ended = Some(MOVED);
                        }
                        s.say_goodbye().await
                    }
                    Err(e) => s.fail(format!("login failed: {e}")).await,
                },
                // The script refused the login: say why and end the session.
                Ok(Err(e)) => s.fail(login_refusal(&e)).await,
                Err(e) => s.fail(format!("login failed: the server is busy, try again ({e})")).await,
            }
        }
        Err(e) => s.fail(format!("login failed: the server is busy, try again ({e})")).await,
    };
    // Whatever ended the session, the player logs out and the ownership is released —
    // unless the lease is gone, and with it the right to write the player.
    if !q.held().is_lost() {
        if let Some(upto) = s.screen.to_trim()
            && let Err(e) = host.bus.trim_pushes(q.queue(), upto).await
        {
            tracing::debug!(player, error = %e, "last acknowledgement not stored; those pushes are sent again");
        }
        let logout = q.call(&me, fresh_env(), move |i, st, env| i.on_logout(st, env, player)).await;
        if let Ok(Ok(effects)) = logout
            && let Err(e) = q.commit(&me, &effects, None).await
        {
            tracing::warn!(player, error = %e, "logout not committed");
        }
    }
    q.release().await;
    release(host, player, session_id);
    // A newer session of the player may go on; this socket still closes cleanly.
    drop(owner);
    let ending = s.ended.unwrap_or(Ending { reason: "", code: 1000 });
    close(s.sink, s.stream, ending.code, ending.reason).await;
    served
}

/// Ends the WebSocket cleanly: the close frame, then the client's frames read and dropped
/// until its close (or [`CLOSE_WAIT`]), so nothing sent is lost to a reset.
async fn close(mut sink: Sink, mut stream: SplitStream<WebSocket>, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: reason.to_owned().into() };
    if sink.send(WsMessage::Close(Some(frame))).await.is_err() {
        return;
    }
    let drained = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, WsMessage::Close(_)) {
                break;
            }
        }
    });
    let _ = drained.await;
    let _ = sink.close().await;
}

/// Takes the player's lease for this host. If another host holds it, asks that session to
/// end (a `$kick` naming its token) and waits for the lease — taken over at once from a
/// holder that is no longer a live baseapp, else at most a lease time and a bit, after
/// which the other host must be gone or stuck.
async fn take_player(host: &PlayerHost, player: u64) -> Result<Option<Held>, BusError> {
    let owner = Address::Player(player);
    let deadline = tokio::time::Instant::now() + host.lease_ttl + Duration::from_secs(2);
    let mut kicked = None;
    loop {
        let members = host.bus.members(MEMBERS).await?;
        if let Some(held) =
            Held::acquire_or_take_over(&host.bus, &owner, &host.holder, host.lease_ttl, &members).await?
        {
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
async fn claim(host: &PlayerHost, player: u64) -> (u64, oneshot::Receiver<()>, tokio::sync::OwnedMutexGuard<()>) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
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

/// A fresh random number (request keys and attempts of frames without a key).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
    );
    h.finish()
}

impl Session<'_> {
    fn owner(&self) -> Address {
        Address::Player(self.player)
    }

    /// Reads where the client resumes: the pushes after its `ack` (queued to follow the
    /// login's answers) and the requests applied. Returns the welcome frame.
    async fn resume(&mut self, name: &str, ack: u64) -> Result<String, BusError> {
        let owner = self.owner();
        let log = self.host.bus.pushes(&owner, ack).await?;
        self.requests = Requests::of(self.host.bus.requests(&owner).await?);
        let (screen, missed) = Screen::resume(&log, ack);
        let acked = screen.acked.max(log.acked);
        self.screen = screen;
        self.unsent_pushes = Some(log.pushes);
        Ok(protocol::welcome(self.player, name, log.last, acked, missed))
    }

    /// Sends the queued frames in one write, after reading the push log again if the
    /// screen may lag behind it, and hands the client's acknowledgements on.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.screen.stale {
            let owner = self.owner();
            match self.host.bus.pushes(&owner, self.screen.sent).await {
                Ok(log) => {
                    self.screen.stale = false;
                    for p in &log.pushes {
                        self.screen.show(p, &mut self.out);
                    }
                }
                // Read again at the next flush; nothing is lost meanwhile.
                Err(e) => tracing::debug!(player = self.player, error = %e, "push log not read yet"),
            }
        }
        if let Some(upto) = self.screen.to_trim() {
            // Order does not matter (a trim never moves back), and the session need not
            // wait: an acknowledgement lost is a push sent again, which the client skips.
            let (bus, owner) = (self.host.bus.clone(), self.owner());
            tokio::spawn(async move {
                if let Err(e) = bus.trim_pushes(&owner, upto).await {
                    tracing::debug!(owner = %owner.tag(), error = %e, "acknowledgement not stored yet");
                }
            });
        }
        if self.out.is_empty() {
            return Ok(());
        }
        for frame in self.out.drain(..) {
            self.sink.feed(WsMessage::Text(frame.into())).await?;
        }
        self.sink.flush().await?;
        Ok(())
    }

    /// Tells the client why the session ends, if it must, after everything queued.
    async fn say_goodbye(&mut self) -> anyhow::Result<()> {
        if let Some(ending) = self.ended {
            self.out.push(protocol::error(ending.reason));
        }
        self.flush().await
    }

    /// Ends the session before it served: says why.
    async fn fail(&mut self, reason: String) -> anyhow::Result<()> {
        self.out.push(protocol::error(&reason));
        self.flush().await
    }

    /// Queues a committed call's replies for the client.
    fn replies(&mut self, effects: &Effects) {
        self.out.extend(effects.replies.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
    }

    /// Queues the end of the answer to a frame with `key`.
    fn done(&mut self, key: Option<&str>) {
        if let Some(key) = key {
            self.out.push(protocol::done(key));
        }
    }

    /// Answers a frame whose key was applied before with the first answer.
    async fn answer_again(&mut self, key: &str) {
        match self.host.bus.request_outcome(&self.owner(), key).await {
            Ok(Some(outcome)) => {
                self.out.extend(decode_outcome(&outcome));
                self.done(Some(key));
            }
            Ok(None) => {
                self.out.push(protocol::error("that request was applied before; its answer is no longer kept"));
                self.done(Some(key));
            }
            Err(e) => self.out.push(protocol::unknown(Some(key), &format!("the server is busy: {e}"))),
        }
    }

    /// A frame from the client.
    async fn client(&mut self, text: &[u8], q: &mut OwnedQueue<Baseapp>) {
        let host = self.host;
        let (frame, meta) = match protocol::parse(text) {
            Ok(parsed) => parsed,
            Err(reason) => return self.out.push(protocol::error(&reason)),
        };
        if let Some(ack) = meta.ack {
            self.screen.ack(ack);
        }
        let key = meta.key.as_deref();
        match frame {
            ClientFrame::Ack => {}
            ClientFrame::Login { .. } => {
                self.out.push(protocol::error("already logged in"));
                self.done(key);
            }
            ClientFrame::BattleStart => {
                match place_room(&host.bus, self.player, protocol::practice_setup(self.player)).await {
                    Ok(placed) => {
                        self.room = Some(placed.room);
                        self.out.push(protocol::battle_started(placed.room, &placed.url, &placed.ticket));
                    }
                    Err(e) => self.out.push(protocol::error(&format!("cannot start a battle: {e}"))),
                }
                self.done(key);
            }
            // A client without a battle socket plays through its session: the input goes
            // to the room's queue as the player's, the room's frames come back through the
            // player's queue.
            ClientFrame::BattleInput => {
                match self.room {
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
                }
                self.done(key);
            }
            ClientFrame::Game => self.game(text, meta, q).await,
        }
    }

    /// A frame for the baseapp module: called, committed with its request's record, and
    /// answered with the truth — applied, refused, not saved, or (when even that cannot
    /// be found out) unknown, to be sent again with the same key.
    async fn game(&mut self, text: &[u8], meta: Meta, q: &mut OwnedQueue<Baseapp>) {
        let key = meta.key.as_deref();
        if let Some(key) = key {
            if self.requests.was_applied(key) {
                return self.answer_again(key).await;
            }
            if let Some(&attempt) = self.requests.unresolved.get(key) {
                match self.host.bus.resolve(&self.owner(), key, attempt).await {
                    Ok(Some(_)) => {
                        self.requests.applied(key.to_owned());
                        return self.answer_again(key).await;
                    }
                    // That attempt never applies now: this one goes ahead.
                    Ok(None) => {
                        self.requests.unresolved.remove(key);
                    }
                    Err(e) => {
                        let reason = format!("the server cannot tell yet whether it was saved: {e}");
                        return self.out.push(protocol::unknown(Some(key), &reason));
                    }
                }
            }
        }
        let (frame, player) = (text.to_vec(), self.player);
        let me = Target::whole(Address::Player(player));
        let effects = match q.call(&me, fresh_env(), move |i, st, env| i.on_client(st, env, player, &frame)).await {
            Ok(Ok(effects)) => effects,
            Ok(Err(CallError::Rejected(reason))) => {
                self.out.push(protocol::error(&reason));
                return self.done(key);
            }
            Ok(Err(fault)) => {
                tracing::warn!(player = self.player, cause = fault.cause(), error = %fault, "client frame failed");
                self.out.push(protocol::error(&format!("the server could not handle that ({})", fault.cause())));
                return self.done(key);
            }
            // Nothing ran: the player's state could not be read.
            Err(e) => {
                self.out.push(protocol::error(&format!("the server is busy, try again ({e})")));
                return self.done(key);
            }
        };
        // A frame without a key still gets one, so that a lost answer can be found out.
        let request_key = key.map(str::to_owned).unwrap_or_else(|| format!("h/{:016x}", random_u64()));
        let outcome = if key.is_some() { encode_outcome(&effects.replies) } else { Vec::new() };
        let attempt = random_u64();
        let request = Request { key: request_key.clone(), attempt, outcome };
        let failure = match q.commit_request(&me, &effects, request).await {
            Ok(_) => None,
            Err(BusError::RequestDecided { applied: true, .. }) => {
                if let Some(key) = key {
                    self.requests.applied(key.to_owned());
                    return self.answer_again(key).await;
                }
                None
            }
            Err(e @ BusError::StaleOwner { .. }) => {
                self.ended = Some(MOVED);
                self.out.push(protocol::error(&format!("not saved: {e}")));
                return self.done(key);
            }
            Err(e) => Some(e),
        };
        let applied = match failure {
            None => true,
            // The answer was lost (a timeout, a dropped connection): find out.
            Some(e) => match self.host.bus.resolve(&self.owner(), &request_key, attempt).await {
                Ok(found) => found.is_some(),
                Err(again) => {
                    tracing::warn!(player, error = %e, then = %again, "commit outcome unknown");
                    if let Some(key) = key {
                        self.requests.unresolved.insert(key.to_owned(), attempt);
                    }
                    let reason = match key {
                        Some(_) => format!(
                            "the server cannot tell yet whether it was saved ({e}): send it again with the same key"
                        ),
                        None => {
                            format!("the server cannot tell yet whether it was saved ({e}): look before you try again")
                        }
                    };
                    return self.out.push(protocol::unknown(key, &reason));
                }
            },
        };
        if applied {
            if let Some(key) = key {
                self.requests.applied(key.to_owned());
            }
            self.replies(&effects);
        } else {
            self.out.push(protocol::error("not saved, try again"));
        }
        self.done(key);
    }

    /// Moves frames for the client from the queue to the push log and queues them.
    async fn log_frames(&mut self, ids: &[MessageId], q: &OwnedQueue<Baseapp>) -> Result<(), BusError> {
        match q.bus().take_pushes(q.queue(), q.held().token(), ids).await {
            Ok(pushes) => {
                for p in &pushes {
                    self.screen.show(p, &mut self.out);
                }
                Ok(())
            }
            Err(e) => {
                // They may have been logged: the log is read again before more is sent.
                self.screen.stale = true;
                Err(e)
            }
        }
    }
}

impl Occupant<Baseapp> for Session<'_> {
    type Event = SessionEvent;

    /// The frames for the client in a batch go to the push log in one step.
    async fn taken(&mut self, batch: &mut Vec<Delivery>, q: &mut OwnedQueue<Baseapp>) -> Result<(), BusError> {
        let ids: Vec<MessageId> =
            batch.iter().filter(|d| d.envelope.kind == CLIENT_FRAME).map(|d| d.id.clone()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.log_frames(&ids, q).await?;
        batch.retain(|d| d.envelope.kind != CLIENT_FRAME);
        Ok(())
    }

    /// Frames for the client and kicks are the host's own; everything else is the
    /// player's logic's.
    async fn route(&mut self, d: &Delivery, q: &mut OwnedQueue<Baseapp>) -> Routed {
        match d.envelope.kind.as_str() {
            CLIENT_FRAME => match self.log_frames(std::slice::from_ref(&d.id), q).await {
                Ok(()) => Routed::Done,
                Err(e) => Routed::Outcome(q.fail(e)),
            },
            // Only a host sends a kick: every message an entity's logic sends carries that
            // entity as its sender, recorded by the host that committed it (and no guest
            // may send a `$` kind at all). A kick with a sender is no kick.
            KICK if d.envelope.sender.is_some() => {
                Routed::Misaddressed(format!("a {KICK} from {:?}: only a host ends a session", d.envelope.sender))
            }
            KICK => {
                let meant = String::from_utf8_lossy(&d.envelope.body).parse::<u64>().ok();
                if meant == Some(q.held().token()) {
                    self.ended = Some(KICKED);
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
        match outcome {
            // The replies and pushes to the player were logged, numbered up to the receipt's.
            Settled::Done(effects, receipt) => {
                let frames = screen_frames(&self.owner(), &effects);
                let n = frames.len() as u64;
                if n > 0 && receipt.last_push < n {
                    self.screen.stale = true;
                    return;
                }
                for (i, frame) in frames.into_iter().enumerate() {
                    let push = Push { seq: receipt.last_push + 1 + i as u64 - n, frame };
                    self.screen.show(&push, &mut self.out);
                }
            }
            // Committed before, its replies perhaps logged then: read the log again.
            Settled::Duplicate => self.screen.stale = true,
            _ => {}
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
                self.ended = Some(KICKED);
            }
            SessionEvent::Closing => self.ended = Some(RESTARTING),
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

    async fn idle(&mut self, _: &mut OwnedQueue<Baseapp>) -> Control {
        if *self.closing.borrow() && self.ended.is_none() {
            self.ended = Some(RESTARTING);
        }
        if self.ended.is_some() {
            return Control::Stop;
        }
        match self.flush().await {
            Ok(()) => Control::Continue,
            Err(e) => {
                tracing::debug!(player = self.player, error = %e, "client socket failed");
                Control::Stop
            }
        }
    }
}
