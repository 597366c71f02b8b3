//! The role's side of an owned queue ([`Occupant`]) and what it tells the owner loop
//! ([`Routed`], [`Control`]); how the loop ended ([`Ended`]).

use super::owner::{OwnedQueue, Settled, Target};
use std::future::Future;
use warren_bus::{BusError, Delivery};
use warren_runtime::World;

/// What the role does with a queue message before any handler sees it.
pub enum Routed {
    /// Settle it by the policy, as a message for this target.
    Handle(Target),
    /// The role took care of it (a message of the host's own, `$frame`, `$kick`).
    Done,
    /// No entity of the role can take it (misaddressed): set it aside with this error.
    Misaddressed(String),
    /// The role settled it itself (a room's input, journaled by the room): go on as the
    /// policy would with this outcome.
    Outcome(Settled),
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// End the loop and release the queue (a drain, a session that ended).
    Stop,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The occupant asked to stop: give the lease back.
    Stopped,
    /// The lease is gone (taken or expired): write nothing more.
    Lost,
}

/// The role's side of an owned queue: only what differs between roles.
pub trait Occupant<W: World>: Send {
    /// An event of the role's own (a client frame, a drain, a tick).
    type Event: Send;

    /// Settles what it can of a batch just read, all at once, before the policy takes the
    /// rest one by one (a session moves the frames for its client to the push log in one
    /// step). What it settled it removes from `batch`; an error is the policy's to handle
    /// (the whole batch stays pending).
    fn taken(
        &mut self,
        batch: &mut Vec<Delivery>,
        q: &mut OwnedQueue<W>,
    ) -> impl Future<Output = Result<(), BusError>> + Send {
        let _ = (batch, q);
        async { Ok(()) }
    }

    /// Maps a message to its target, or handles a host message itself.
    fn route(&mut self, d: &Delivery, q: &mut OwnedQueue<W>) -> impl Future<Output = Routed> + Send;

    /// What to do once a message is settled (tell a client, count it).
    fn settled(&mut self, d: &Delivery, outcome: Settled) -> impl Future<Output = ()> + Send;

    /// The next event of the role's own; must be cancel-safe (it races queue news).
    fn event(&mut self) -> impl Future<Output = Self::Event> + Send;

    /// Handles an event of the role's own.
    fn on_event(&mut self, event: Self::Event, q: &mut OwnedQueue<W>) -> impl Future<Output = Control> + Send;

    /// Between two messages and before every wait: flush what is due, and say whether to
    /// go on. A drain stops here, after a commit, never in the middle of a message.
    fn idle(&mut self, q: &mut OwnedQueue<W>) -> impl Future<Output = Control> + Send;
}
