//! The embedded backend's push logs and request windows, one of each per owner.

use crate::types::{Push, Request};
use std::collections::{HashMap, VecDeque};

/// An owner's push log.
#[derive(Default)]
pub(super) struct PushBook {
    /// Logged, not yet acknowledged, oldest first.
    pub(super) log: VecDeque<Push>,
    /// The newest sequence number logged.
    pub(super) last: u64,
    /// The highest acknowledged.
    pub(super) acked: u64,
}

impl PushBook {
    pub(super) fn append(&mut self, frame: Vec<u8>) -> Push {
        self.last += 1;
        let push = Push { seq: self.last, frame };
        self.log.push_back(push.clone());
        while self.log.len() > crate::MAX_UNACKED_PUSHES {
            self.log.pop_front();
        }
        push
    }
}

/// What became of a request.
pub(super) enum Decided {
    /// Applied, with its outcome.
    Applied(Vec<u8>),
    /// Not applied; these attempts never will be.
    Void(Vec<u64>),
}

/// An owner's requests: the newest [`crate::MAX_REQUESTS`] of the client's keys and the
/// newest [`crate::MAX_HOST_REQUESTS`] of the host's own (keys starting with a space).
#[derive(Default)]
pub(super) struct Requests {
    pub(super) by_key: HashMap<String, Decided>,
    pub(super) order: VecDeque<String>,
    pub(super) host_order: VecDeque<String>,
}

impl Requests {
    /// Records `key` as the newest of its window (moved there if it was in it already).
    pub(super) fn record(&mut self, key: &str, decided: Decided) {
        let (order, cap) = if key.starts_with(' ') {
            (&mut self.host_order, crate::MAX_HOST_REQUESTS)
        } else {
            (&mut self.order, crate::MAX_REQUESTS)
        };
        if self.by_key.insert(key.to_owned(), decided).is_some() {
            order.retain(|k| k != key);
        }
        order.push_back(key.to_owned());
        while order.len() > cap {
            if let Some(old) = order.pop_front() {
                self.by_key.remove(&old);
            }
        }
    }

    /// Whether a commit of `request` may go ahead; `Some(applied)` when it was decided.
    pub(super) fn decided(&self, request: &Request) -> Option<bool> {
        match self.by_key.get(&request.key)? {
            Decided::Applied(_) => Some(true),
            Decided::Void(attempts) if attempts.contains(&request.attempt) => Some(false),
            Decided::Void(_) => None,
        }
    }
}
