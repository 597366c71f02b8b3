//! A game client for the `edge` tests that keeps the delivery contract's client side
//! (docs/protocol.md, *Delivery*): it shows every push once, in `seq` order, acknowledges
//! what it showed (on every frame it sends, and at least every few pushes), logs in again
//! with `ack` when its socket ends, and sends keyed frames again until they are answered
//! for sure. It also checks the host's side: pushes on one socket are contiguous and never
//! at or below the ack the socket resumed from; what breaks that is recorded as a
//! violation, for the test to fail on with every instance listed.

use crate::{Client, FRAME_WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The client acknowledges at least every this many pushes.
const ACK_EVERY: usize = 4;
/// How long a login may keep being refused (the player still held elsewhere) before the
/// test fails.
const LOGIN_WAIT: Duration = Duration::from_secs(60);
/// Pause between two tries of a frame whose outcome is unknown, or two refused logins.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// A frame still `unknown` after this many tries is left unknown.
const MAX_UNKNOWNS: u32 = 50;

/// A push the client showed.
pub struct Shown {
    pub seq: u64,
    pub frame: Value,
    pub at: Instant,
}

/// How one socket ended.
#[derive(Debug, Clone)]
pub struct Ending {
    /// The close frame's code, if a close frame came.
    pub code: Option<u16>,
    /// The last `error` frame without `req` on that socket (a session's goodbye).
    pub error: Option<String>,
    /// Set when the socket ended without a close frame: what the client saw instead.
    pub reset: Option<String>,
    pub at: Instant,
}

/// A log-in again after a socket ended.
#[derive(Debug, Clone)]
pub struct Failover {
    pub ended: Ending,
    /// From the new login's connect to its welcome.
    pub to_welcome: Duration,
    /// From the new login's connect to the `pong` answering the first `ping`.
    pub to_pong: Duration,
    pub pong_at: Instant,
}

/// What a keyed frame came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `done`, with no error among its answers.
    Applied,
    /// `done` after an error (other than "not saved"): nothing was applied.
    Refused(String),
    /// Still `unknown` after [`MAX_UNKNOWNS`] tries.
    Unknown,
}

/// What came on the socket, pushes aside.
pub enum Got {
    Frame(Value),
    Ended(Ending),
}

impl Got {
    fn frame(self) -> Result<Value, Ending> {
        match self {
            Got::Frame(f) => Ok(f),
            Got::Ended(e) => Err(e),
        }
    }
}

/// One player's client.
pub struct Player {
    pub name: String,
    pub id: u64,
    /// The highest push shown.
    pub last: u64,
    /// Every push shown, in order.
    pub shown: Vec<Shown>,
    /// How each earlier socket ended.
    pub endings: Vec<Ending>,
    pub failovers: Vec<Failover>,
    /// Breaches of the delivery contract seen.
    pub violations: Vec<String>,
    /// Keyed frames sent again after their socket ended before their answer.
    pub resent: usize,
    c: Option<Client>,
    /// The ack the current socket logged in with.
    resumed_from: u64,
    /// The last push on the current socket.
    socket_prev: u64,
    unacked: usize,
    last_error: Option<String>,
    /// The session token, from the first login (good on every baseapp of the cluster).
    token: Option<String>,
}

impl Player {
    /// Logs `name` in on `addr` for the first time (with `ack: 0`).
    pub async fn login(addr: SocketAddr, name: &str) -> Player {
        let mut p = Player {
            name: name.to_owned(),
            id: 0,
            last: 0,
            shown: vec![],
            endings: vec![],
            failovers: vec![],
            violations: vec![],
            resent: 0,
            c: None,
            resumed_from: 0,
            socket_prev: 0,
            unacked: 0,
            last_error: None,
            token: None,
        };
        p.relogin(addr).await;
        p
    }

    /// Logs in on `addr` with `ack: last`, again while the player is still held elsewhere
    /// (an error and close 1013); returns the time from the first connect to the welcome.
    pub async fn relogin(&mut self, addr: SocketAddr) -> Duration {
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < LOGIN_WAIT, "{}: no welcome on {addr} within {LOGIN_WAIT:?}", self.name);
            if self.token.is_none() {
                self.token = Some(crate::token(addr, &self.name).await);
            }
            let mut c = Client::connect_with(addr, self.token.as_deref().expect("a token")).await;
            c.send(json!({"type": "login", "ack": self.last})).await;
            (self.c, self.resumed_from, self.socket_prev, self.unacked) = (Some(c), self.last, self.last, 0);
            self.last_error = None;
            // A refused login's socket end is no session's end.
            let sessions = self.endings.len();
            match self.next(FRAME_WAIT).await {
                Some(Got::Frame(w)) if w["type"] == "welcome" => {
                    self.id = w["player"].as_u64().expect("a player id");
                    // The login's answer (the shipped script's), before any push.
                    match self.next(FRAME_WAIT).await {
                        Some(Got::Frame(f)) if f["type"] == "profile" => {}
                        other => {
                            panic!("{}: after the welcome, not a profile: {:?}", self.name, other.map(|g| g.frame()))
                        }
                    }
                    if w["missed"].as_u64() != Some(0) || w["acked"].as_u64().is_none_or(|a| a > self.last) {
                        self.violations.push(format!("{}: resumed from {}: {w}", self.name, self.last));
                    }
                    return started.elapsed();
                }
                // Refused: read to the close, then try again.
                Some(Got::Frame(_)) => while let Some(Got::Frame(_)) = self.next(FRAME_WAIT).await {},
                Some(Got::Ended(_)) => {}
                None => panic!("{}: no answer to a login on {addr}", self.name),
            }
            self.endings.truncate(sessions);
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// After the socket ended: logs in again on `addr`, pings, and records the times.
    pub async fn failover(&mut self, ended: Ending, addr: SocketAddr) {
        let started = Instant::now();
        let to_welcome = self.relogin(addr).await;
        if let Err(e) = self.ping().await {
            panic!("{}: the session on {addr} after a fail-over ended at once: {e:?}", self.name);
        }
        let failover = Failover { ended, to_welcome, to_pong: started.elapsed(), pong_at: Instant::now() };
        self.failovers.push(failover);
    }

    /// The next frame that is not a push (pushes are shown and acknowledged on the way),
    /// or how the socket ended; `None` if neither comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Got> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let c = self.c.as_mut().expect("a socket");
            let msg = tokio::time::timeout_at(deadline, c.ws.next()).await.ok()?;
            let (code, reset) = match msg {
                Some(Ok(Message::Text(text))) => {
                    let f: Value = serde_json::from_str(&text).expect("frames are JSON");
                    if f.get("seq").is_some() {
                        self.show(f).await;
                        continue;
                    }
                    if f["type"] == "error" && f.get("req").is_none() {
                        self.last_error = f["reason"].as_str().map(str::to_owned);
                    }
                    return Some(Got::Frame(f));
                }
                Some(Ok(Message::Close(frame))) => {
                    // The client's side of the close handshake.
                    let _ = c.ws.close(None).await;
                    (frame.map(|f| u16::from(f.code)), None)
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => (None, Some(e.to_string())),
                None => (None, Some("the stream ended without a close frame".to_owned())),
            };
            let ending = Ending { code, error: self.last_error.take(), reset, at: Instant::now() };
            self.c = None;
            self.endings.push(ending.clone());
            return Some(Got::Ended(ending));
        }
    }

    /// Shows a push, once, checking its number.
    async fn show(&mut self, f: Value) {
        let seq = f["seq"].as_u64().unwrap_or_else(|| panic!("a push's seq is a number: {f}"));
        if seq <= self.resumed_from {
            self.violations
                .push(format!("{}: push {seq} at or below the ack {} resumed from: {f}", self.name, self.resumed_from));
        } else if seq != self.socket_prev + 1 {
            self.violations
                .push(format!("{}: push {seq} after push {} on one socket: {f}", self.name, self.socket_prev));
        }
        self.socket_prev = seq;
        if seq > self.last {
            self.last = seq;
            self.shown.push(Shown { seq, frame: f, at: Instant::now() });
            self.unacked += 1;
            if self.unacked >= ACK_EVERY {
                self.ack().await;
            }
        }
    }

    /// Acknowledges what was shown, if anything is unacknowledged.
    pub async fn ack(&mut self) {
        if self.unacked > 0 {
            self.send_raw(json!({"type": "ack", "seq": self.last})).await;
        }
    }

    /// Sends `frame` with the acknowledgement piggybacked. A socket that fails shows it
    /// on the next read.
    pub async fn send(&mut self, mut frame: Value) {
        frame["ack"] = json!(self.last);
        self.send_raw(frame).await;
    }

    async fn send_raw(&mut self, frame: Value) {
        self.unacked = 0;
        if let Some(c) = self.c.as_mut() {
            let _ = c.ws.send(Message::text(frame.to_string())).await;
        }
    }

    /// Sends a keyed frame and reads its answer: the frames up to its `done` or `unknown`
    /// (included), or how the socket ended first.
    pub async fn ask(&mut self, frame: &Value) -> Result<Vec<Value>, Ending> {
        let req = frame["req"].as_str().expect("a keyed frame").to_owned();
        self.send(frame.clone()).await;
        let mut frames = vec![];
        loop {
            match self.next(FRAME_WAIT).await {
                None => panic!("{}: no answer to {req} within {FRAME_WAIT:?} (so far {frames:?})", self.name),
                Some(Got::Ended(e)) => return Err(e),
                Some(Got::Frame(f)) => {
                    let end = (f["type"] == "done" || f["type"] == "unknown") && f["req"] == req.as_str();
                    frames.push(f);
                    if end {
                        self.ack().await;
                        return Ok(frames);
                    }
                }
            }
        }
    }

    /// Sends a keyed frame until it is answered for sure, logging in again on `fallback`
    /// whenever the socket ends; returns the outcome and whether it was `unknown` once.
    pub async fn settle(&mut self, frame: &Value, fallback: SocketAddr) -> (Outcome, bool) {
        let mut unknowns = 0;
        loop {
            match self.ask(frame).await {
                Ok(answer) if answer.last().unwrap()["type"] == "unknown" => {
                    unknowns += 1;
                    if unknowns >= MAX_UNKNOWNS {
                        return (Outcome::Unknown, true);
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(answer) => match answer.iter().find(|f| f["type"] == "error") {
                    None => return (Outcome::Applied, unknowns > 0),
                    Some(e) if e["reason"].as_str().unwrap_or("").contains("not saved") => {
                        tokio::time::sleep(RETRY_PAUSE).await
                    }
                    Some(e) => return (Outcome::Refused(e["reason"].to_string()), unknowns > 0),
                },
                Err(ending) => {
                    self.failover(ending, fallback).await;
                    self.resent += 1;
                }
            }
        }
    }

    /// A `ping` answered with `pong` (pushes shown on the way).
    pub async fn ping(&mut self) -> Result<(), Ending> {
        self.send(json!({"type": "ping"})).await;
        loop {
            match self.next(FRAME_WAIT).await {
                None => panic!("{}: no pong within {FRAME_WAIT:?}", self.name),
                Some(Got::Ended(e)) => return Err(e),
                Some(Got::Frame(f)) if f["type"] == "pong" => return Ok(()),
                Some(Got::Frame(_)) => {}
            }
        }
    }

    /// Reads (showing pushes) until `until` holds of the player, for `wait` at most;
    /// returns whether it came to hold.
    pub async fn read_until(&mut self, wait: Duration, until: impl Fn(&Player) -> bool) -> bool {
        let started = Instant::now();
        while !until(self) {
            if started.elapsed() >= wait {
                return false;
            }
            if let Some(Got::Ended(e)) = self.next(Duration::from_millis(200)).await {
                panic!("{}: the socket ended while reading: {e:?}", self.name);
            }
        }
        self.ack().await;
        true
    }

    /// Drops the socket without a close handshake, as a lost network does.
    pub fn disconnect(&mut self) {
        self.c = None;
    }

    /// The chat and whisper texts shown, each with the seqs that carried it.
    pub fn texts(&self) -> std::collections::BTreeMap<String, Vec<u64>> {
        let mut texts = std::collections::BTreeMap::<String, Vec<u64>>::new();
        for s in &self.shown {
            let f = &s.frame;
            let said = f["type"] == "whisper" || (f["type"] == "guild.event" && f["event"] == "chat");
            if let (true, Some(text)) = (said, f["text"].as_str()) {
                texts.entry(text.to_owned()).or_default().push(s.seq);
            }
        }
        texts
    }
}
