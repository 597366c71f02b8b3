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

use crate::log::Level;
use crate::{Address, Group, Matchmaker, Message, Outcome, Player, PlayerId, Reject, Room, RoomStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

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

/// The host's side of one call in progress.
struct Call {
    state: BTreeMap<String, Vec<u8>>,
    now_ms: u64,
    rng: u64,
    effects: Effects,
}

thread_local! {
    static CALL: RefCell<Option<Call>> = const { RefCell::new(None) };
}

fn with_call<R>(f: impl FnOnce(&mut Call) -> R) -> R {
    CALL.with(|c| {
        let mut c = c.borrow_mut();
        let call =
            c.as_mut().expect("a host capability was used outside a harness call: wrap the handler in Harness::call");
        f(call)
    })
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The capabilities as the SDK's host module calls them on the host target.
pub(crate) mod raw {
    use super::{Sent, json, with_call};
    use crate::Address;
    use crate::log::Level;

    pub fn log(level: Level, text: &str) {
        with_call(|c| c.effects.logs.push((level, text.to_owned())));
    }
    pub fn send(to: &Address, kind: &str, body: &[u8]) {
        with_call(|c| c.effects.sends.push(Sent { to: to.clone(), kind: kind.to_owned(), body: json(body) }));
    }
    pub fn reply(frame: &[u8]) {
        with_call(|c| c.effects.replies.push(json(frame)));
    }
    pub fn push(player: u64, frame: &[u8]) {
        with_call(|c| c.effects.pushes.push((player, json(frame))));
    }
    pub fn get(key: &str) -> Option<Vec<u8>> {
        with_call(|c| c.state.get(key).cloned())
    }
    pub fn set(key: &str, value: &[u8]) {
        with_call(|c| c.state.insert(key.to_owned(), value.to_vec()));
    }
    pub fn remove(key: &str) {
        with_call(|c| c.state.remove(key));
    }
    pub fn keys() -> Vec<String> {
        with_call(|c| c.state.keys().cloned().collect())
    }
    pub fn now_ms() -> u64 {
        with_call(|c| c.now_ms)
    }
    pub fn random() -> u64 {
        with_call(|c| super::splitmix64(&mut c.rng))
    }
}

/// The host's random sequence: SplitMix64 over the per-message seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One entity's committed state, a clock and a seed: runs calls as the host would.
#[derive(Debug, Clone)]
pub struct Harness {
    state: BTreeMap<String, Vec<u8>>,
    now_ms: u64,
    seed: u64,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An entity with no state, at time 1 000 000 ms, seed 1.
    pub fn new() -> Self {
        Harness { state: BTreeMap::new(), now_ms: 1_000_000, seed: 1 }
    }

    /// Sets the clock the next calls see.
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// Sets the random seed of the next call. Each call — a rejected one too — then takes
    /// the next seed, as each message on the host carries its own.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Runs `f` as one handler call: its state writes and effects are kept only on `Ok`.
    pub fn call<R>(&mut self, f: impl FnOnce() -> Outcome<R>) -> Outcome<(R, Effects)> {
        let call = Call { state: self.state.clone(), now_ms: self.now_ms, rng: self.seed, effects: Effects::default() };
        self.seed = self.seed.wrapping_add(1);
        CALL.with(|c| {
            let prev = c.borrow_mut().replace(call);
            assert!(prev.is_none(), "harness calls do not nest");
        });
        let result = f();
        let call = CALL.with(|c| c.borrow_mut().take()).expect("call state present");
        let value = result?;
        self.state = call.state;
        Ok((value, call.effects))
    }

    /// Reads a committed state value.
    pub fn state<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.state.get(key).map(|b| serde_json::from_slice(b).expect("state value is JSON of this type"))
    }

    /// Sets a committed state value, as if an earlier call had written it.
    pub fn set_state<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.state.insert(key.to_owned(), crate::encode(value));
    }

    /// The committed state's keys.
    pub fn keys(&self) -> Vec<String> {
        self.state.keys().cloned().collect()
    }
}

/// Drives a [`Player`] implementation for one player.
pub struct PlayerHarness<P: Player> {
    /// The player's state, clock and seed.
    pub host: Harness,
    player: PlayerId,
    _logic: PhantomData<P>,
}

impl<P: Player> PlayerHarness<P> {
    /// A new player with no state.
    pub fn new(player: PlayerId) -> Self {
        PlayerHarness { host: Harness::new(), player, _logic: PhantomData }
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
    /// The group's state, clock and seed.
    pub host: Harness,
    id: u64,
    _logic: PhantomData<G>,
}

impl<G: Group> GroupHarness<G> {
    /// Guild or team `id` with no state.
    pub fn new(id: u64) -> Self {
        GroupHarness { host: Harness::new(), id, _logic: PhantomData }
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
    /// The queue's state, clock and seed.
    pub host: Harness,
    queue: String,
    _logic: PhantomData<M>,
}

impl<M: Matchmaker> MatchHarness<M> {
    /// Matchmaking queue `queue` with no state.
    pub fn new(queue: &str) -> Self {
        MatchHarness { host: Harness::new(), queue: queue.to_owned(), _logic: PhantomData }
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

/// Drives a [`Room`]. Like the host, a call that fails leaves the room as it was before
/// the call.
pub struct RoomHarness<R: Room> {
    /// Clock and seed (rooms keep their state in the room value, not in host state).
    pub host: Harness,
    room: Option<R>,
    next_tick: u64,
}

impl<R: Room> Default for RoomHarness<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Room> RoomHarness<R> {
    /// No room yet: call [`RoomHarness::create`].
    pub fn new() -> Self {
        RoomHarness { host: Harness::new(), room: None, next_tick: 0 }
    }

    /// Creates room `id` from `setup`.
    pub fn create(&mut self, id: u64, setup: Value) -> Outcome<Effects> {
        let bytes = crate::encode(&setup);
        let (room, effects) = self.host.call(|| R::create(id, &bytes))?;
        self.room = Some(room);
        Ok(effects)
    }

    fn room_call<T>(&mut self, f: impl FnOnce(&mut R) -> Outcome<T>) -> Outcome<(T, Effects)> {
        let room = self.room.as_mut().ok_or_else(|| Reject::new("no room: call create first"))?;
        let before = room.snapshot();
        let result = self.host.call(|| f(room));
        if result.is_err() {
            // Like the host: a failed call leaves the room as its snapshot before the call.
            self.room = Some(R::restore(&before).map_err(|e| Reject::new(format!("room cannot restore itself: {e}")))?);
        }
        result
    }

    /// Sends a player's input.
    pub fn input(&mut self, player: PlayerId, input: Value) -> Outcome<Effects> {
        let bytes = crate::encode(&input);
        self.room_call(|r| r.input(player, &bytes)).map(|(_, e)| e)
    }

    /// Runs the next tick.
    pub fn tick(&mut self) -> Outcome<(RoomStatus, Effects)> {
        let t = self.next_tick;
        let out = self.room_call(|r| r.tick(t))?;
        self.next_tick += 1;
        Ok(out)
    }

    /// Moves the room through `snapshot` and `restore`, as a module swap does.
    pub fn migrate(&mut self) -> Outcome {
        let room = self.room.as_ref().ok_or_else(|| Reject::new("no room: call create first"))?;
        let snap = room.snapshot();
        self.room = Some(R::restore(&snap)?);
        Ok(())
    }

    /// Puts a prepared room in place (as if created and played to this point).
    pub fn set_room(&mut self, room: R) {
        self.room = Some(room);
    }

    /// The room.
    pub fn room(&self) -> &R {
        self.room.as_ref().expect("no room: call create first")
    }
}

#[cfg(test)]
mod tests {
    use super::Harness;

    #[test]
    fn the_random_sequence_is_the_hosts() {
        // The host's `random` is SplitMix64 over the message's seed; these are its first
        // two numbers for seed 5 (host/runtime/tests/all/calls.rs checks the same).
        let mut h = Harness::new();
        h.set_seed(5);
        let ((a, b), _) = h.call(|| Ok((crate::env::random(), crate::env::random()))).unwrap();
        assert_eq!((a, b), (7134611160154358618, 13877614986023876344));
    }
}
