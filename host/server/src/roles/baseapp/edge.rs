//! The session's side of exactly-once at the player's screen: which pushes the client has
//! been sent and has acknowledged ([`Screen`]), and which of its requests were applied
//! ([`Requests`]). The message center keeps the pushes (the player's push log) and the
//! requests' outcomes; these are the session's view of them.

use crate::protocol;
use std::collections::{HashMap, HashSet, VecDeque};
use warren_bus::{MAX_REQUESTS, Push, PushLog};

/// The pushes of this session's socket.
#[derive(Debug, Default)]
pub struct Screen {
    /// The newest push queued for the socket (or shown by the client before it resumed):
    /// pushes go out in order, each once.
    pub sent: u64,
    /// The newest push the client acknowledged.
    pub acked: u64,
    /// The newest acknowledgement handed to the message center.
    pub trimmed: u64,
    /// The push log may hold pushes this session has not seen (a commit whose answer was
    /// lost, a gap in the numbers): read it again before sending more.
    pub stale: bool,
}

impl Screen {
    /// The screen of a session resuming from the client's `ack` over the player's `log`
    /// (the pushes after `ack`): where it starts, and how many pushes the client will
    /// never get because a full log dropped them.
    pub fn resume(log: &PushLog, ack: u64) -> (Screen, u64) {
        let ack = ack.min(log.last);
        // Pushes up to `acked` were acknowledged, by this client or another one.
        let seen = ack.max(log.acked);
        let next = log.pushes.first().map(|p| p.seq).unwrap_or(log.last + 1);
        let missed = next.saturating_sub(seen + 1);
        let screen = Screen { sent: next - 1, acked: ack, trimmed: log.acked, stale: false };
        (screen, missed)
    }

    /// Queues `push` for the socket if it is the next one; one already sent is skipped;
    /// one past a gap marks the screen stale (the log is read again).
    pub fn show(&mut self, push: &Push, out: &mut Vec<String>) {
        if push.seq <= self.sent {
            return;
        }
        if push.seq > self.sent + 1 {
            self.stale = true;
            return;
        }
        out.push(protocol::numbered(push.seq, &push.frame));
        self.sent = push.seq;
    }

    /// Sends what the log holds after the screen: the log read again after a gap or a
    /// lost answer. Pushes the log no longer holds (dropped from a full log) are skipped,
    /// and counted: the rest still goes out, in order. Returns how many were skipped.
    pub fn reload(&mut self, log: &PushLog, out: &mut Vec<String>) -> u64 {
        self.stale = false;
        let skipped = match log.pushes.first() {
            Some(first) if first.seq > self.sent + 1 => first.seq - self.sent - 1,
            _ => 0,
        };
        self.sent += skipped;
        for p in &log.pushes {
            self.show(p, out);
        }
        skipped
    }

    /// The client acknowledged every push up to `seq` (never past what it was sent).
    pub fn ack(&mut self, seq: u64) {
        self.acked = self.acked.max(seq.min(self.sent));
    }

    /// An acknowledgement the message center has not been given yet.
    pub fn to_trim(&mut self) -> Option<u64> {
        (self.acked > self.trimmed).then(|| {
            self.trimmed = self.acked;
            self.acked
        })
    }
}

/// The requests of the player this session knows of.
#[derive(Debug, Default)]
pub struct Requests {
    /// Keys recorded as applied, the newest [`MAX_REQUESTS`] (the message center's window).
    applied: HashSet<String>,
    order: VecDeque<String>,
    /// Keys whose commit's outcome could not be found out, with that attempt: resolved
    /// before the key is tried again.
    pub unresolved: HashMap<String, u64>,
}

impl Requests {
    /// The keys the message center holds as applied.
    pub fn of(keys: Vec<String>) -> Requests {
        let mut r = Requests::default();
        for k in keys {
            r.applied(k);
        }
        r
    }

    /// Whether `key` was applied.
    pub fn was_applied(&self, key: &str) -> bool {
        self.applied.contains(key)
    }

    /// `key` was applied.
    pub fn applied(&mut self, key: String) {
        self.unresolved.remove(&key);
        if self.applied.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_REQUESTS {
            if let Some(old) = self.order.pop_front() {
                self.applied.remove(&old);
            }
        }
    }
}

/// A request's outcome as stored: its reply frames, each length-prefixed.
pub fn encode_outcome(replies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(replies.iter().map(|r| r.len() + 4).sum());
    for r in replies {
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// The reply frames of a stored outcome (what does not decode is dropped).
pub fn decode_outcome(mut bytes: &[u8]) -> Vec<String> {
    let mut frames = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let Some(frame) = bytes.get(4..4 + len) else { break };
        frames.push(String::from_utf8_lossy(frame).into_owned());
        bytes = &bytes[4 + len..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(seq: u64) -> Push {
        Push { seq, frame: format!(r#"{{"type":"p","n":{seq}}}"#).into_bytes() }
    }

    #[test]
    fn a_resumed_screen_starts_after_what_the_client_showed() {
        let log = PushLog { pushes: vec![push(4), push(5)], last: 5, acked: 2 };
        let (mut s, missed) = Screen::resume(&log, 3);
        assert_eq!((s.sent, s.acked, missed), (3, 3, 0));
        let mut out = vec![];
        for p in &log.pushes {
            s.show(p, &mut out);
        }
        s.show(&push(5), &mut out);
        assert_eq!(out, [r#"{"seq":4,"type":"p","n":4}"#, r#"{"seq":5,"type":"p","n":5}"#]);
        s.show(&push(7), &mut out);
        assert!(s.stale, "a gap makes the screen read the log again");
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn pushes_dropped_from_a_full_log_are_counted() {
        let log = PushLog { pushes: vec![push(11)], last: 11, acked: 2 };
        let (s, missed) = Screen::resume(&log, 0);
        assert_eq!((s.sent, missed), (10, 8));
        let empty = PushLog { pushes: vec![], last: 9, acked: 9 };
        assert_eq!(Screen::resume(&empty, 0).1, 0, "acknowledged by another client: not missed");
        let ahead = Screen::resume(&empty, 50).0;
        assert_eq!(ahead.acked, 9, "an ack past the log counts up to its end");
    }

    #[test]
    fn a_reload_past_a_gap_goes_on_after_it() {
        let mut s = Screen { sent: 3, stale: true, ..Screen::default() };
        let log = PushLog { pushes: vec![push(7), push(8)], last: 8, acked: 0 };
        let mut out = vec![];
        assert_eq!(s.reload(&log, &mut out), 3);
        assert_eq!((s.sent, s.stale, out.len()), (8, false, 2));
    }

    #[test]
    fn acks_never_pass_what_was_sent_and_are_trimmed_once() {
        let mut s = Screen { sent: 5, ..Screen::default() };
        s.ack(9);
        assert_eq!(s.acked, 5);
        assert_eq!(s.to_trim(), Some(5));
        assert_eq!(s.to_trim(), None);
        s.ack(3);
        assert_eq!(s.acked, 5);
    }

    #[test]
    fn outcomes_round_trip_and_the_window_is_bounded() {
        let replies = vec![b"{\"a\":1}".to_vec(), Vec::new(), b"x\ny".to_vec()];
        assert_eq!(decode_outcome(&encode_outcome(&replies)), ["{\"a\":1}", "", "x\ny"]);
        let mut r = Requests::of((0..MAX_REQUESTS + 5).map(|i| i.to_string()).collect());
        assert!(!r.was_applied("0") && r.was_applied(&(MAX_REQUESTS + 4).to_string()));
        r.unresolved.insert("k".into(), 7);
        r.applied("k".into());
        assert!(r.was_applied("k") && r.unresolved.is_empty());
    }
}
