//! The typed handler calls of each stateless role: thin wrappers over
//! [`Instance::call`](crate::Instance).

use crate::bindings::Message;
use crate::call::{CallEnv, Effects, EntityState};
use crate::instance::Instance;
use crate::limits::CallError;
use crate::world::{Baseapp, Guild, Matchmaker, Team};

/// The result of a handler call: its effects to commit, or why it failed.
pub type CallResult = Result<Effects, CallError>;

impl Instance<Baseapp> {
    /// The player's session started.
    pub fn on_login(&mut self, state: &mut EntityState, env: CallEnv, player: u64, name: &str) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_player().call_on_login(s, player, name)).map(|(_, e)| e)
    }

    /// A frame from the player's client.
    pub fn on_client(&mut self, state: &mut EntityState, env: CallEnv, player: u64, frame: &[u8]) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_player().call_on_client(s, player, frame)).map(|(_, e)| e)
    }

    /// A message from the player's queue.
    pub fn on_message(&mut self, state: &mut EntityState, env: CallEnv, player: u64, msg: &Message) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_player().call_on_message(s, player, msg)).map(|(_, e)| e)
    }

    /// The player's session ended.
    pub fn on_logout(&mut self, state: &mut EntityState, env: CallEnv, player: u64) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_player().call_on_logout(s, player)).map(|(_, e)| e)
    }
}

impl Instance<Guild> {
    /// A message for guild `id`.
    pub fn on_message(&mut self, state: &mut EntityState, env: CallEnv, id: u64, msg: &Message) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_group().call_on_message(s, id, msg)).map(|(_, e)| e)
    }
}

impl Instance<Team> {
    /// A message for team `id`.
    pub fn on_message(&mut self, state: &mut EntityState, env: CallEnv, id: u64, msg: &Message) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_group().call_on_message(s, id, msg)).map(|(_, e)| e)
    }
}

impl Instance<Matchmaker> {
    /// A message to matchmaking queue `queue`.
    pub fn on_message(&mut self, state: &mut EntityState, env: CallEnv, queue: &str, msg: &Message) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_matchmaking().call_on_message(s, queue, msg)).map(|(_, e)| e)
    }

    /// A matchmaking tick of queue `queue`.
    pub fn on_tick(&mut self, state: &mut EntityState, env: CallEnv, queue: &str) -> CallResult {
        self.call(state, env, |g, s| g.warren_game_matchmaking().call_on_tick(s, queue)).map(|(_, e)| e)
    }
}
