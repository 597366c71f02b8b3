//! The harnesses of the roles whose state is host state: players, groups, matchmakers.

use super::{Caps, Effects, Harness, Role};
use crate::{Address, Group, Matchmaker, Message, Outcome, Player, PlayerId};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::marker::PhantomData;

/// Drives a [`Player`] implementation for one player.
pub struct PlayerHarness<P: Player> {
    /// The player's state, clock, seed and caps.
    pub host: Harness,
    /// The player the calls are about.
    player: PlayerId,
    /// The logic under test.
    _logic: PhantomData<P>,
}

impl<P: Player> PlayerHarness<P> {
    /// A new player with no state, under the host's default caps.
    pub fn new(player: PlayerId) -> Self {
        PlayerHarness { host: Harness::for_role(Role::Baseapp), player, _logic: PhantomData }
    }

    /// Sets the caps the next calls run under (the baseapp's `[limits]`).
    pub fn set_caps(&mut self, caps: Caps) {
        self.host.set_caps(caps);
    }

    /// Runs `on_login` with the player's name.
    pub fn login(&mut self, name: &str) -> Outcome<Effects> {
        let p = self.player;
        self.host.call(|| P::on_login(p, name)).map(|(_, e)| e)
    }

    /// Sends a client frame.
    pub fn client(&mut self, frame: Value) -> Outcome<Effects> {
        let p = self.player;
        let bytes = crate::encode(&frame);
        self.host.call(|| P::on_client(p, &bytes)).map(|(_, e)| e)
    }

    /// Delivers a message from `sender`.
    pub fn message(&mut self, sender: Option<Address>, kind: &str, body: Value) -> Outcome<Effects> {
        let p = self.player;
        let msg = Message { sender, kind: kind.to_owned(), body: crate::encode(&body) };
        self.host.call(|| P::on_message(p, msg)).map(|(_, e)| e)
    }

    /// Runs `on_logout`.
    pub fn logout(&mut self) -> Outcome<Effects> {
        let p = self.player;
        self.host.call(|| P::on_logout(p)).map(|(_, e)| e)
    }

    /// Reads the player's committed state.
    pub fn state<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.host.state(key)
    }
}

/// Drives a [`Group`] implementation (a guild or a team).
pub struct GroupHarness<G: Group> {
    /// The group's state, clock, seed and caps.
    pub host: Harness,
    /// The guild or team the calls are about.
    id: u64,
    /// The logic under test.
    _logic: PhantomData<G>,
}

impl<G: Group> GroupHarness<G> {
    /// Guild `id` with no state, under the host's default caps (a guild's state quota).
    pub fn new(id: u64) -> Self {
        GroupHarness { host: Harness::for_role(Role::Guild), id, _logic: PhantomData }
    }

    /// Team `id` with no state, under the host's default caps (a team's state quota,
    /// smaller than a guild's).
    pub fn team(id: u64) -> Self {
        GroupHarness { host: Harness::for_role(Role::Team), id, _logic: PhantomData }
    }

    /// Sets the caps the next calls run under (the guild or team host's `[limits]`).
    pub fn set_caps(&mut self, caps: Caps) {
        self.host.set_caps(caps);
    }

    /// Delivers a message from `sender`.
    pub fn message(&mut self, sender: Option<Address>, kind: &str, body: Value) -> Outcome<Effects> {
        let id = self.id;
        let msg = Message { sender, kind: kind.to_owned(), body: crate::encode(&body) };
        self.host.call(|| G::on_message(id, msg)).map(|(_, e)| e)
    }
}

/// Drives a [`Matchmaker`] implementation for one queue.
pub struct MatchHarness<M: Matchmaker> {
    /// The queue's state, clock, seed and caps.
    pub host: Harness,
    /// The matchmaking queue the calls are about.
    queue: String,
    /// The logic under test.
    _logic: PhantomData<M>,
}

impl<M: Matchmaker> MatchHarness<M> {
    /// Matchmaking queue `queue` with no state, under the host's default caps.
    pub fn new(queue: &str) -> Self {
        MatchHarness { host: Harness::for_role(Role::Matchmaker), queue: queue.to_owned(), _logic: PhantomData }
    }

    /// Sets the caps the next calls run under (the matchmaker's `[limits]`).
    pub fn set_caps(&mut self, caps: Caps) {
        self.host.set_caps(caps);
    }

    /// Delivers a message from `sender`.
    pub fn message(&mut self, sender: Option<Address>, kind: &str, body: Value) -> Outcome<Effects> {
        let msg = Message { sender, kind: kind.to_owned(), body: crate::encode(&body) };
        let q = self.queue.clone();
        self.host.call(|| M::on_message(&q, msg)).map(|(_, e)| e)
    }

    /// Runs one matchmaking tick.
    pub fn tick(&mut self) -> Outcome<Effects> {
        let q = self.queue.clone();
        self.host.call(|| M::on_tick(&q)).map(|(_, e)| e)
    }
}
