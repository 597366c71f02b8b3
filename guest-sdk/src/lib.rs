//! The guest SDK for Warren: write a role's game logic in safe Rust, build it to a
//! WebAssembly component, unit-test it natively with `cargo test`.
//!
//! Layers, from the bottom:
//! - [`bindings`]: raw bindings of the WIT contract (`guest-sdk/wit`), generated once.
//! - the safe API: [`state`], [`msg`], [`env`], [`log`] — host capabilities with serde
//!   encoding — and the handler traits [`Player`], [`Group`], [`Matchmaker`], [`Room`].
//! - macros: [`export_player!`], [`export_room!`], [`export_group!`],
//!   [`export_matchmaker!`] wire a type implementing a trait to its world's exports.
//!
//! On the host target (not wasm32) the capabilities talk to [`testing`], an in-process
//! stand-in for the host with the same transaction rules, so a script's tests need no
//! wasm build at all.
//!
//! Every handler is a transaction: state writes, messages and frames are buffered by the
//! host and committed only when the handler returns `Ok`. Returning `Err(Reject)` commits
//! nothing; for a client frame the reason is sent back to the client.

pub mod bindings;
mod export;
mod host;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use host::{env, log, msg, state};

pub use export::PANIC_PREFIX;
#[doc(hidden)]
pub use export::hook_panics as __hook_panics;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use export::message_from_wit as __message_from_wit;
#[doc(hidden)]
pub use export::room_cell as __room_cell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A player's id, unique across the cluster.
pub type PlayerId = u64;

/// Where a message can be sent: each address is one queue of the message center.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "to", content = "id")]
pub enum Address {
    /// A player's queue.
    Player(PlayerId),
    /// A guild's queue.
    Guild(u64),
    /// A team's queue.
    Team(u64),
    /// A battle room's queue.
    Battle(u64),
    /// A named matchmaking queue.
    MatchQueue(String),
}

/// A message from a queue, as a handler receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it, when the sender was an addressable entity.
    pub sender: Option<Address>,
    /// What the message is (for example `guild.chat`).
    pub kind: String,
    /// The JSON payload.
    pub body: Vec<u8>,
}

impl Message {
    /// Decodes the JSON payload, with the message kind in the error.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Reject> {
        serde_json::from_slice(&self.body).map_err(|e| Reject::new(format!("bad `{}` message: {e}", self.kind)))
    }
}

/// Why a handler refused its input. Nothing the handler did is committed; a client frame
/// gets the reason back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject(pub String);

impl Reject {
    /// A rejection with a reason a player can read.
    pub fn new(reason: impl Into<String>) -> Self {
        Reject(reason.into())
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Reject {
    fn from(reason: &str) -> Self {
        Reject(reason.to_owned())
    }
}

impl From<String> for Reject {
    fn from(reason: String) -> Self {
        Reject(reason)
    }
}

/// A handler's result.
pub type Outcome<T = ()> = Result<T, Reject>;

/// Decodes a client frame (JSON), turning a malformed frame into a readable rejection.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Outcome<T> {
    serde_json::from_slice(frame).map_err(|e| Reject::new(format!("bad frame: {e}")))
}

/// Encodes a value as JSON for a message, frame or state value.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing plain data structures to JSON cannot fail: failures come only from maps
    // with non-string keys or from hand-written Serialize impls that error.
    serde_json::to_vec(value).expect("value serializes to JSON")
}

/// A player's logic, run by a baseapp (world `baseapp`). The entity is the player; use
/// [`state`] for the player's data.
pub trait Player {
    /// Checks the module can serve; an error rejects the upload.
    fn init() -> Outcome {
        Ok(())
    }
    /// The player's session started; `name` is the name the player logged in with.
    fn on_login(player: PlayerId, name: &str) -> Outcome;
    /// A frame from the player's client.
    fn on_client(player: PlayerId, frame: &[u8]) -> Outcome;
    /// A message from another entity.
    fn on_message(player: PlayerId, msg: Message) -> Outcome {
        let _ = (player, msg);
        Ok(())
    }
    /// The player's session ended.
    fn on_logout(player: PlayerId) -> Outcome {
        let _ = player;
        Ok(())
    }
}

/// A guild's or a team's logic (worlds `guild` and `team`).
pub trait Group {
    /// Checks the module can serve; an error rejects the upload.
    fn init() -> Outcome {
        Ok(())
    }
    /// A message for guild or team `id`.
    fn on_message(id: u64, msg: Message) -> Outcome;
}

/// Matchmaking logic (world `matchmaker`).
pub trait Matchmaker {
    /// Checks the module can serve; an error rejects the upload.
    fn init() -> Outcome {
        Ok(())
    }
    /// A message to matchmaking queue `queue`.
    fn on_message(queue: &str, msg: Message) -> Outcome;
    /// A periodic call in which matches are formed.
    fn on_tick(queue: &str) -> Outcome;
}

/// Whether a room goes on after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStatus {
    /// The room keeps ticking.
    Running,
    /// The battle is over; the host closes the room.
    Finished,
}

/// A battle room (world `battle`). The room lives in guest memory between calls; the host
/// moves it to a new module with [`Room::snapshot`] and [`Room::restore`], which by
/// default are the room's JSON form.
pub trait Room: Sized + Serialize + DeserializeOwned {
    /// Checks the module can serve; an error rejects the upload.
    fn init() -> Outcome {
        Ok(())
    }
    /// Sets up room `room` from `setup` (JSON).
    fn create(room: u64, setup: &[u8]) -> Outcome<Self>;
    /// A player's input.
    fn input(&mut self, player: PlayerId, input: &[u8]) -> Outcome;
    /// One fixed step of the battle.
    fn tick(&mut self, tick: u64) -> Outcome<RoomStatus>;
    /// The room's whole state.
    fn snapshot(&self) -> Vec<u8> {
        encode(self)
    }
    /// Rebuilds a room from a snapshot of this or an earlier version.
    fn restore(snapshot: &[u8]) -> Outcome<Self> {
        serde_json::from_slice(snapshot).map_err(|e| Reject::new(format!("cannot restore: {e}")))
    }
}

/// What scripts usually import.
pub mod prelude {
    pub use crate::{
        Address, Group, Matchmaker, Message, Outcome, Player, PlayerId, Reject, Room, RoomStatus, decode_frame, env,
        log, msg, state,
    };
    pub use serde::{Deserialize, Serialize};
}
