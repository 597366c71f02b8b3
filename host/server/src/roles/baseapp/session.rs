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

use super::edge::{Requests, Screen};
use super::players::{PlayerHost, SocketCount, claim, release, take_player};
use crate::mechanics::logic::{CLIENT_FRAME, fresh_env};
use crate::mechanics::owner::{Control, Ended, Occupant, OwnedQueue, Routed, Settled, Target, occupy, screen_frames};
use crate::protocol::{self, ClientFrame};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use warren_bus::{Address, BusError, Delivery, MessageId, Push};
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

/// One player's session: the role's side of the player's owned queue
/// ([`OwnedQueue`]), plus the client's socket.
pub(super) struct Session<'h> {
    pub(super) host: &'h PlayerHost,
    pub(super) player: u64,
    /// The battle room the player is in, if any.
    pub(super) room: Option<u64>,
    /// Frames for the client, sent at the next flush.
    pub(super) out: Vec<String>,
    /// What of the push log this socket was sent and the client acknowledged.
    pub(super) screen: Screen,
    /// The player's requests known applied, and those whose outcome is unknown.
    pub(super) requests: Requests,
    /// Pushes read at login, sent after the login's answers.
    pub(super) unsent_pushes: Option<Vec<Push>>,
    /// Why the session must end, once the client has been told.
    pub(super) ended: Option<Ending>,
    /// The client's socket, both ways.
    pub(super) sink: Sink,
    pub(super) stream: SplitStream<WebSocket>,
    /// Fires when a newer session of the player on this host wants it; `None` once fired.
    pub(super) kicked: Option<oneshot::Receiver<()>>,
    /// The host is stopping.
    pub(super) closing: watch::Receiver<bool>,
}

/// Why the host ends a session: the reason the client reads and the close code.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ending {
    reason: &'static str,
    code: u16,
}

/// A newer login took the player.
const KICKED: Ending = Ending { reason: "logged in elsewhere", code: 4001 };
/// The lease is gone.
pub(super) const MOVED: Ending = Ending { reason: "this session moved to another server; log in again", code: 4002 };
/// The host is stopping (RFC 6455's 1012, service restart).
const RESTARTING: Ending =
    Ending { reason: "the server is restarting; log in again to resume where you were", code: 1012 };

/// What the session waits for besides its queue.
pub(super) enum SessionEvent {
    /// A newer session of the player on this host.
    Kicked,
    /// The host is stopping (or its closing signal went away).
    Closing,
    /// A frame from the client, or the socket's end.
    Frame(Option<Result<WsMessage, axum::Error>>),
}

type Sink = SplitSink<WebSocket, WsMessage>;

/// How long a socket may stay open without logging in.
const LOGIN_WAIT: Duration = Duration::from_secs(30);

/// Takes a client's WebSocket upgrade and serves it as a session.
pub fn upgrade(ws: axum::extract::WebSocketUpgrade, players: Arc<PlayerHost>) -> axum::response::Response {
    crate::mechanics::net::client_socket(ws).on_upgrade(move |socket| serve(socket, players))
}

/// Serves one WebSocket until it closes.
pub async fn serve(mut socket: WebSocket, host: Arc<PlayerHost>) {
    let _open = SocketCount::new(&host.sockets);
    // A socket that does not log in is not kept open, nor does it hold up a stopping host.
    let mut closing = host.closing.subscribe();
    let login = tokio::select! {
        login = tokio::time::timeout(LOGIN_WAIT, await_login(&mut socket)) => login.ok().flatten(),
        _ = closing.wait_for(|c| *c) => None,
    };
    let Some((name, ack)) = login else {
        let _ = socket.send(WsMessage::Close(Some(CloseFrame { code: 1001, reason: "log in first".into() }))).await;
        return;
    };
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

fn login_refusal(e: &CallError) -> String {
    match e {
        CallError::Rejected(reason) => format!("login refused: {reason}"),
        fault => format!("login failed: the server could not handle it ({})", fault.cause()),
    }
}

impl Session<'_> {
    pub(super) fn owner(&self) -> Address {
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
                    let skipped = self.screen.reload(&log, &mut self.out);
                    if skipped > 0 {
                        tracing::warn!(
                            player = self.player,
                            skipped,
                            "pushes dropped from a full log before they were sent"
                        );
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
    pub(super) fn replies(&mut self, effects: &Effects) {
        self.out.extend(effects.replies.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
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

    /// The frames for the client at the head of a batch go to the push log in one step
    /// (those behind a message for the logic, one by one, so that the screen shows them
    /// in the queue's order).
    async fn taken(&mut self, batch: &mut Vec<Delivery>, q: &mut OwnedQueue<Baseapp>) -> Result<(), BusError> {
        let max_hops = q.quotas().max_hops;
        let run = batch.iter().take_while(|d| d.envelope.kind == CLIENT_FRAME && d.envelope.hops < max_hops).count();
        if run == 0 {
            return Ok(());
        }
        let ids: Vec<MessageId> = batch[..run].iter().map(|d| d.id.clone()).collect();
        self.log_frames(&ids, q).await?;
        batch.drain(..run);
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

    async fn idle(&mut self, q: &mut OwnedQueue<Baseapp>) -> Control {
        if q.take_unsure() {
            self.screen.stale = true;
        }
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
