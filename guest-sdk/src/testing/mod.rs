//! A native stand-in for the Warren host, so a script's handlers are unit-tested with
//! plain `cargo test`, no wasm build needed.
//!
//! It keeps the host's rules: a call's state writes and emitted messages are buffered and
//! kept only if the handler returns `Ok`; time and randomness come from the harness.
//!
//! ```
//! use warren_guest::prelude::*;
//! use warren_guest::testing::PlayerHarness;
//!
//! struct Echo;
//! impl Player for Echo {
//!     fn on_login(_: PlayerId, _: &str) -> Outcome { Ok(()) }
//!     fn on_client(_: PlayerId, frame: &[u8]) -> Outcome {
//!         let v: serde_json::Value = decode_frame(frame)?;
//!         msg::reply(&v);
//!         Ok(())
//!     }
//! }
//!
//! let mut p = PlayerHarness::<Echo>::new(7);
//! p.login("ann").unwrap();
//! let out = p.client(serde_json::json!({"hi": 1})).unwrap();
//! assert_eq!(out.replies, vec![serde_json::json!({"hi": 1})]);
//! ```
//!
//! # Limits
//!
//! Every call runs under the caps the host enforces live (docs/limits.md), with the host's
//! defaults unless a test sets others ([`Caps`], [`Harness::with_caps`], `set_caps` on
//! each role's harness): items and bytes per call (a refusal reason's bytes included), one
//! frame, one sent message, one log line, one refusal reason, one state key, one state
//! value, the entity's state bytes for its role and its keys, and the message kinds
//! reserved to the host (`$...`). They are counted as the host counts them: a send, reply,
//! push, log line or state removal is one item, a state set two (its key and its value);
//! an item over its own cap or over the call's stops the handler where it emitted it, as
//! the trap does live; the state quota is checked only when a call returns `Ok` and only
//! if it grows the state, so an entity over a lowered quota can still shrink.
//!
//! A call that breaks a cap fails like a failed call live: nothing of it is kept (the
//! state as it was, a room rolled back) and the test gets an `Err(Reject)` whose text
//! starts with the cause word the client would read in
//! `the server could not handle that (emit)` — `(emit)`, `(quota)` or `(reserved)` —,
//! followed by what broke which cap and the config key that sets it:
//! ``(emit) a reply of 70000 bytes, over the cap of 65536 on one frame (`max_frame_bytes`)``.
//!
//! A room's snapshot is held to the battle quota after every call: live a room that grew
//! past it goes on playing, but no checkpoint of it can be taken any more, so it can no
//! longer move to a new module, be taken over by another battleapp, or store its result.
//! The harness fails each call that leaves the snapshot over the quota (and rolls the
//! room back), so the test sees the call that grew it.
//!
//! Not enforced natively: the CPU deadline and the memory cap (native code runs without
//! the host's epochs and outside a linear memory: a runaway handler hangs or exhausts the
//! test instead), and the traffic quotas — queue lengths, send rates and the hop limit —,
//! which depend on other entities' queues and are the host's to apply when it commits.
//! Run those paths under `warren dev`.

mod call;
mod caps;
mod harness;
mod roles;
mod room;
#[cfg(test)]
mod tests;

pub(crate) use call::raw;
pub use caps::{Caps, Role, StateQuota};
pub use harness::Harness;
pub use roles::{GroupHarness, MatchHarness, PlayerHarness};
pub use room::{RoomHarness, restore_each_snapshot_in};

use crate::Address;
use crate::PlayerId;
use crate::log::Level;
use serde_json::Value;

/// A message a handler sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// Its destination.
    pub to: Address,
    /// Its kind.
    pub kind: String,
    /// Its payload, decoded from JSON.
    pub body: Value,
}

/// What one committed call emitted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Messages to other entities.
    pub sends: Vec<Sent>,
    /// Frames answered to the calling client.
    pub replies: Vec<Value>,
    /// Frames pushed to players' clients.
    pub pushes: Vec<(PlayerId, Value)>,
    /// Log lines.
    pub logs: Vec<(Level, String)>,
}
