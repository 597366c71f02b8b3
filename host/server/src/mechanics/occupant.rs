//! The role's side of an owned queue ([`Occupant`]) and what it and the owner loop tell
//! each other: the entity a message is for ([`Target`]), what became of it ([`Settled`]),
//! [`Routed`], [`Control`]; how the loop ended ([`Ended`]).

use super::owner::OwnedQueue;
use std::future::Future;
use warren_bus::{Address, BusError, Delivery, Receipt};
use warren_runtime::{Effects, World};

/// The entity a queue message is for, and where its state sits in the state of the queue's
/// owner. A player owns its queue (`prefix` empty); a guild shares its group's queue and
/// state, its keys prefixed with `<guild>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The entity: the handler is called for it, and what it emits is sent as from it.
    pub entity: Address,
    /// The prefix of the entity's keys in the queue owner's state.
    pub prefix: String,
}

impl Target {
    /// An entity that owns its queue and state.
    pub fn whole(entity: Address) -> Target {
        Target { entity, prefix: String::new() }
    }

    /// An entity whose keys sit under `<id>/` in its group's state.
    pub fn in_group(entity: Address, id: u64) -> Target {
        Target { entity, prefix: format!("{id}/") }
    }
}

/// What became of one queue message.
#[derive(Debug)]
pub enum Settled {
    /// Its effects were committed with its ack (the receipt numbers its replies, when the
    /// queue logs them as pushes: [`OwnedQueue::log_replies`]).
    Done(Effects, Receipt),
    /// The script refused it: acknowledged, nothing changed.
    Refused(String),
    /// It kept failing and was set aside as a dead letter.
    Dead,
    /// It had been committed before (a commit whose reply was lost, or a message relayed
    /// twice): nothing was applied again.
    Duplicate,
    /// The message center failed: it stays pending and is taken again after a backoff.
    Retry,
    /// The lease is gone: another owner has the queue now.
    Lost,
}

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

    /// The target of a message the occupant has nothing to do with itself, known from the
    /// message alone (a message for a player's or a guild's logic); `None` sends it to
    /// [`Occupant::route`]. The policy settles such messages one after another and commits
    /// them together, before it tells the occupant of any ([`Occupant::settled`]).
    fn target(&self, d: &Delivery) -> Option<Target> {
        let _ = d;
        None
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
