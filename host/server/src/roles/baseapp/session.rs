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
use super::players::{PlayerHost, Taken, claim, release, take_player};
use crate::mechanics::auth::kick::{KICK, Kick};
use crate::mechanics::auth::{AuthError, Identity};
use crate::mechanics::logic::{CLIENT_FRAME, fresh_env};
use crate::mechanics::net::socket::{CLOSE_WAIT, Unsent};
use crate::mechanics::net::{self, Ending, Heard, Inbound};
use crate::mechanics::owner::{Control, Ended, Occupant, OwnedQueue, Routed, Settled, Target, occupy, screen_frames};
use crate::protocol;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use warren_bus::{Address, BusError, Delivery, MessageId, Push};
use warren_runtime::{Baseapp, CallError, Effects};

/// Most messages taken from the player's queue in one read.
const BATCH: usize = 32;
/// How long a kicked session's write may still take before the session lets go of the
/// player: a client that takes its frames gets them and the reason; one that stopped
/// reading does not hold up the player's newer login.
const KICK_GRACE: Duration = Duration::from_millis(500);

/// One player's session: the role's side of the player's owned queue
/// ([`OwnedQueue`]), plus the client's socket.
pub(super) struct Session<'h> {
    pub(super) host: &'h PlayerHost,
    pub(super) player: u64,
    /// The account's token generation the session was let in at ([`Kick::Revoked`]).
    pub(super) generation: u64,
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
    /// The client's pace and silence (docs/limits.md, *Clients*).
    pub(super) inbound: Inbound,
    /// The host's ping clock.
    pub(super) pulse: watch::Receiver<()>,
    /// The client did not take a write in time: nothing more is written to the socket.
    pub(super) stuck: bool,
}

/// A newer login took the player.
const KICKED: Ending = Ending::fixed(4001, "logged in elsewhere");
/// The account's tokens were revoked (a 44xx code: the token is no good any more).
const REVOKED: Ending =
    Ending::fixed(4401, "signed out everywhere (a logout everywhere, or a new password): log in again");
/// The player cannot be taken now (RFC 6455's 1013, try again later).
const BUSY: Ending = Ending::fixed(1013, "try again later");
/// The lease is gone.
pub(super) const MOVED: Ending = Ending::fixed(4002, "this session moved to another server; log in again");
/// The host is stopping (RFC 6455's 1012, service restart).
pub(super) const RESTARTING: Ending =
    Ending::fixed(1012, "the server is restarting; log in again to resume where you were");

/// What the session waits for besides its queue.
pub(super) enum SessionEvent {
    /// A newer session of the player on this host.
    Kicked,
    /// The host is stopping (or its closing signal went away).
    Closing,
    /// A frame from the client, or the socket's end.
    Frame(Option<Result<WsMessage, axum::Error>>),
    /// A beat of the host's ping clock.
    Beat,
}

type Sink = SplitSink<WebSocket, WsMessage>;

/// Serves the session of `identity`, let in on `socket`, resuming its pushes after `ack`.
pub(super) async fn run(socket: WebSocket, host: &PlayerHost, identity: &Identity, ack: u64) -> anyhow::Result<()> {
    let (player, name) = (identity.player, identity.name.as_str());
    let (sink, stream) = socket.split();
    // A logout everywhere since the token was checked: the client is not let in, nor is
    // the player's open session pushed out for it.
    match host.auth.still_current(identity).await {
        Ok(true) => {}
        not => {
            refuse(sink, stream, not.map(|_| Taken::Revoked)).await;
            return Ok(());
        }
    }
    let (session_id, kicked, owner) = claim(host, player).await;
    let held = match take_player(host, identity).await {
        Ok(Taken::Held(held)) => held,
        not => {
            release(host, player, session_id);
            drop(owner);
            refuse(sink, stream, not).await;
            return Ok(());
        }
    };
    let me = Target::whole(Address::Player(player));
    let mut q =
        OwnedQueue::new(host.bus.clone(), Address::Player(player), held, host.logic.clone(), &host.bells, BATCH);
    q.log_replies();
    let mut s = Session {
        host,
        player,
        generation: identity.generation,
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
        inbound: Inbound::new(&host.net.limits),
        pulse: host.net.pulse(),
        stuck: false,
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
    // A client that stopped reading gets no close frame: it would not take it.
    if !s.stuck {
        let ending = s.ended.take().unwrap_or(Ending::fixed(1000, ""));
        net::close(s.sink, s.stream, &ending, CLOSE_WAIT).await;
    }
    served
}

/// Tells a client let in by its token why it gets no session after all (`not`: what came
/// of taking its player, or why that could not be known), and closes.
async fn refuse(mut sink: Sink, stream: SplitStream<WebSocket>, not: Result<Taken, AuthError>) {
    let (reason, ending) = match not {
        Ok(Taken::Revoked) => (REVOKED.reason.to_string(), REVOKED),
        Ok(_) => ("this account is still playing on another server; try again in a few seconds".into(), BUSY),
        Err(e) => (format!("login failed: the server is busy, try again ({e})"), BUSY),
    };
    let told = net::send_within(&mut sink, [WsMessage::Text(protocol::error(&reason).into())], CLOSE_WAIT).await;
    if told.is_ok() {
        net::close(sink, stream, &ending, CLOSE_WAIT).await;
    }
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
        if self.stuck {
            self.out.clear();
        }
        if self.out.is_empty() {
            return Ok(());
        }
        // The queue's buffer is kept (and its room) for the next frames.
        let mut out = std::mem::take(&mut self.out);
        let written = self.write(out.drain(..).map(|frame| WsMessage::Text(frame.into()))).await;
        self.out = out;
        written
    }

    /// Writes `frames` to the client within the write timeout. A kick meanwhile gives the
    /// write [`KICK_GRACE`] more, so that a client that stopped reading never holds up the
    /// player's newer login. A client that does not take them in time is stuck: nothing
    /// more is written to it, and the session ends.
    async fn write(&mut self, frames: impl IntoIterator<Item = WsMessage>) -> anyhow::Result<()> {
        let written = {
            let Session { sink, kicked, ended, host, .. } = self;
            let mut write = std::pin::pin!(net::send_within(sink, frames, host.net.limits.write_timeout));
            let kick = async {
                match kicked.as_mut() {
                    Some(k) => {
                        let _ = k.await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                written = &mut write => written,
                // A newer login of the player waits for this session to end.
                _ = kick => {
                    *kicked = None;
                    *ended = Some(KICKED);
                    tokio::time::timeout(KICK_GRACE, write).await.unwrap_or(Err(Unsent::Stuck))
                }
            }
        };
        match written {
            Ok(()) => Ok(()),
            Err(Unsent::Stuck) => {
                self.stuck = true;
                self.ended.get_or_insert_with(|| self.host.net.limits.too_slow());
                anyhow::bail!("the client did not take its frames in time")
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Tells the client why the session ends, if it must, after everything queued.
    async fn say_goodbye(&mut self) -> anyhow::Result<()> {
        if let Some(ending) = &self.ended {
            self.out.push(protocol::error(&ending.reason));
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

    /// Every message of a kind not the host's own is the player's logic's.
    fn target(&self, d: &Delivery) -> Option<Target> {
        let host_kind = d.envelope.kind == CLIENT_FRAME || d.envelope.kind == KICK;
        (!host_kind).then(|| Target::whole(Address::Player(self.player)))
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
                if let Some(kick) = Kick::parse(&d.envelope.body)
                    && kick.ends(q.held().token(), self.generation)
                {
                    self.ended = Some(if matches!(kick, Kick::Revoked(_)) { REVOKED } else { KICKED });
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
            Ok(()) = self.pulse.changed() => SessionEvent::Beat,
        }
    }

    async fn on_event(&mut self, event: SessionEvent, q: &mut OwnedQueue<Baseapp>) -> Control {
        match event {
            SessionEvent::Kicked => {
                self.kicked = None;
                self.ended = Some(KICKED);
            }
            SessionEvent::Closing => self.ended = Some(RESTARTING),
            SessionEvent::Frame(next) => match self.inbound.judge(&self.host.net.limits, next) {
                Heard::Text(text) => self.client(text.as_bytes(), q).await,
                Heard::Nothing => {}
                Heard::Gone => return Control::Stop,
                Heard::Refused(ending) => self.ended = Some(ending),
            },
            SessionEvent::Beat => match self.inbound.at_beat(&self.host.net.limits) {
                Ok(false) => {}
                Ok(true) => {
                    if let Err(e) = self.write([WsMessage::Ping(Default::default())]).await {
                        tracing::debug!(player = self.player, error = %e, "client not pinged");
                        return Control::Stop;
                    }
                }
                Err(silent) => self.ended = Some(silent),
            },
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
            // A kick that came during the write ends the session now.
            Ok(()) if self.ended.is_none() => Control::Continue,
            Ok(()) => Control::Stop,
            Err(e) => {
                tracing::debug!(player = self.player, error = %e, "client socket failed");
                Control::Stop
            }
        }
    }
}
