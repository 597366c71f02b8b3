//! A client socket's bounds, the same for a player's session and a battle socket: what
//! each frame from the client comes to ([`Inbound::judge`]: its pace, its kind, a frame
//! too big or not UTF-8), the client's silence at each beat of the host's ping clock, and
//! writes that give up on a client that does not take them ([`send_within`]). A socket
//! the host ends gets an error frame with the reason, then a close frame with the code
//! ([`refuse`], [`close`]).

use super::{BINARY, Ending, NOT_UTF8, NetLimits, TOO_BIG};
use crate::protocol;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::time::{Duration, Instant};

/// What a socket keeps of its client: the budget of its frames (a token bucket, filled at
/// `frames_per_s` up to `frames_burst`) and when it was last heard. 24 bytes, in every
/// idle session.
#[derive(Debug)]
pub struct Inbound {
    /// Frames the client may send now.
    tokens: f32,
    /// When the last frame came (or the socket opened).
    heard: Instant,
}

/// What a frame from the client comes to.
#[derive(Debug)]
pub enum Heard {
    /// A text frame, for the socket's protocol.
    Text(Utf8Bytes),
    /// Nothing to handle: a ping (answered by the WebSocket library) or a pong.
    Nothing,
    /// The client closed the socket, or the connection dropped.
    Gone,
    /// The socket must end: the client is told why.
    Refused(Ending),
}

impl Inbound {
    /// A socket's budget, full, its client heard now.
    pub fn new(limits: &NetLimits) -> Inbound {
        Inbound { tokens: limits.frames_burst as f32, heard: Instant::now() }
    }

    /// Judges what the socket's stream gave: every frame counts against the budget,
    /// control frames too (a flood of pings costs the host pongs); a binary frame, a frame
    /// over the size cap, a text frame that is not UTF-8 and a protocol error end the
    /// socket with their close code.
    pub fn judge(&mut self, limits: &NetLimits, next: Option<Result<Message, axum::Error>>) -> Heard {
        let msg = match next {
            None => return Heard::Gone,
            Some(Err(e)) => return refusal(e).map_or(Heard::Gone, Heard::Refused),
            Some(Ok(msg)) => msg,
        };
        let now = Instant::now();
        let refill = now.duration_since(self.heard).as_secs_f32() * limits.frames_per_s as f32;
        self.tokens = (self.tokens + refill).min(limits.frames_burst as f32);
        self.heard = now;
        if matches!(msg, Message::Close(_)) {
            return Heard::Gone;
        }
        if self.tokens < 1.0 {
            return Heard::Refused(limits.too_fast());
        }
        self.tokens -= 1.0;
        match msg {
            Message::Text(text) => Heard::Text(text),
            Message::Binary(_) => Heard::Refused(BINARY),
            _ => Heard::Nothing,
        }
    }

    /// What a beat of the host's ping clock asks of the socket: `Err` ends a client
    /// silent for the idle timeout; `Ok(true)` pings one silent for half a ping interval
    /// (a client that sent something meanwhile needs no ping).
    pub fn at_beat(&self, limits: &NetLimits) -> Result<bool, Ending> {
        let silent = self.heard.elapsed();
        if silent >= limits.idle_timeout {
            return Err(limits.silent());
        }
        Ok(silent >= limits.ping_interval / 2)
    }
}

/// The ending a failed read calls for: `None` when the client simply went away.
fn refusal(e: axum::Error) -> Option<Ending> {
    use tungstenite::error::{Error, ProtocolError};
    let e = e.into_inner().downcast::<Error>().ok()?;
    match *e {
        Error::Utf8(_) => Some(NOT_UTF8),
        Error::Capacity(_) => Some(TOO_BIG),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        // RFC 6455's 1002: protocol error.
        Error::Protocol(p) => Some(Ending::new(1002, format!("protocol error: {p}"))),
        _ => None,
    }
}

/// Why frames did not reach a client.
#[derive(Debug, thiserror::Error)]
pub enum Unsent {
    /// The client did not take them within the write timeout: it stopped reading, or
    /// cannot keep up. Nothing more is written to the socket.
    #[error("the client did not take its frames in time")]
    Stuck,
    /// The socket failed.
    #[error("the client socket failed: {0}")]
    Failed(#[from] axum::Error),
}

/// Sends `frames` to the client and flushes them, within `wait`. The frames wait in the
/// WebSocket's write buffer only while the client takes them: one that stops reading
/// holds the writer for `wait` at most, and nothing more is queued for it.
pub async fn send_within<S>(
    sink: &mut S,
    frames: impl IntoIterator<Item = Message>,
    wait: Duration,
) -> Result<(), Unsent>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let write = async {
        for frame in frames {
            sink.feed(frame).await?;
        }
        sink.flush().await
    };
    match tokio::time::timeout(wait, write).await {
        Ok(sent) => Ok(sent?),
        Err(_) => Err(Unsent::Stuck),
    }
}

/// How long an ending socket waits for the client's side of the close handshake (and
/// for each of its last writes).
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Longest close reason: a close frame's payload is at most 125 bytes, its code included.
const MAX_CLOSE_REASON: usize = 123;

/// Ends a client socket cleanly: the close frame with `ending`, then the client's frames
/// read and dropped until its close (or `wait`), so that nothing sent is lost to a reset
/// over unread bytes. A client that does not take the close frame within `wait` is
/// dropped without it.
pub async fn close<S, R>(mut sink: S, mut stream: R, ending: &Ending, wait: Duration)
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mut reason: &str = &ending.reason;
    if reason.len() > MAX_CLOSE_REASON {
        let cut = (0..=MAX_CLOSE_REASON).rev().find(|i| reason.is_char_boundary(*i)).unwrap_or(0);
        reason = &reason[..cut];
    }
    let frame = CloseFrame { code: ending.code, reason: reason.into() };
    if send_within(&mut sink, [Message::Close(Some(frame))], wait).await.is_err() {
        return;
    }
    let drained = tokio::time::timeout(wait, async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    });
    let _ = drained.await;
    let _ = tokio::time::timeout(wait, sink.close()).await;
}

/// Ends a client socket with an error frame saying why, then the close frame
/// ([`close`]).
pub async fn refuse<S, R>(mut sink: S, stream: R, ending: &Ending, wait: Duration)
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let error = Message::Text(protocol::error(&ending.reason).into());
    if send_within(&mut sink, [error], wait).await.is_ok() {
        close(sink, stream, ending, wait).await;
    }
}
