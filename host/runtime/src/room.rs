//! Battle rooms: the one kind of entity that keeps its state in guest memory. A room
//! stays transactional by checkpoint and journal — a snapshot, taken when asked for
//! ([`Room::checkpoint`]) or when the room moves, and the inputs and ticks since, which
//! replay exactly (each with the time and seed it first ran with) — and moves to a new
//! module by snapshot and restore.

use crate::bindings::battle::exports::warren::game::room::RoomStatus as WitStatus;
use crate::call::{CallEnv, Effects};
use crate::instance::Live;
use crate::limits::CallError;
use crate::module::RoleModule;
use crate::world::Battle;
use std::sync::Arc;

/// Most calls kept since the last snapshot before the room takes one by itself.
const MAX_JOURNAL: usize = 512;

/// Whether a room goes on after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStatus {
    /// The room keeps ticking.
    Running,
    /// The battle is over: close the room.
    Finished,
}

/// A call since the last checkpoint, kept to rebuild the room after a fault.
enum JournalEntry {
    /// A player's input.
    Input { player: u64, input: Vec<u8>, env: CallEnv },
    /// A tick.
    Tick { tick: u64, env: CallEnv },
}

/// One battle room on its own instance.
pub struct Room {
    /// The room's id.
    id: u64,
    /// The battle role's module slot, followed between calls.
    role: Arc<RoleModule<Battle>>,
    /// The instance holding the room.
    live: Live<Battle>,
    /// The role generation the room last followed (or declined to follow).
    generation: u64,
    /// The room's snapshot after its last successful tick (or its creation).
    checkpoint: Vec<u8>,
    /// The inputs and ticks applied since the checkpoint, in order.
    journal: Vec<JournalEntry>,
    /// Why the room stayed on its module when the role's current one could not restore
    /// it: shown to operators (a room pinned to an old module is a failed upgrade).
    pinned: Option<String>,
}

impl Room {
    /// Creates room `id` on `role`'s current module.
    pub fn create(
        role: Arc<RoleModule<Battle>>,
        id: u64,
        setup: &[u8],
        env: CallEnv,
    ) -> Result<(Room, Effects), CallError> {
        let generation = role.generation();
        let mut live = Live::new(role.current())?;
        let (_, effects) =
            live.call(&mut Default::default(), env, |g, s| g.warren_game_room().call_create(s, id, setup))?;
        let checkpoint = snapshot(&mut live, env)?;
        Ok((Room { id, role, live, generation, checkpoint, journal: Vec::new(), pinned: None }, effects))
    }

    /// Brings room `id` back from a snapshot taken by [`Room::checkpoint`] — on another
    /// host, after its owner died or handed it over — on `role`'s current module.
    pub fn restore(role: Arc<RoleModule<Battle>>, id: u64, snapshot: &[u8]) -> Result<Room, CallError> {
        let generation = role.generation();
        let env = CallEnv { now_ms: 0, seed: 0 };
        let live = restore_on(role.current(), snapshot, env)?;
        Ok(Room { id, role, live, generation, checkpoint: snapshot.to_vec(), journal: Vec::new(), pinned: None })
    }

    /// The room's snapshot now — every input and tick applied so far in it —, taken if
    /// anything happened since the last one: what a host stores to bring the room back.
    pub fn checkpoint(&mut self) -> Result<&[u8], CallError> {
        if !self.journal.is_empty() {
            let env = CallEnv { now_ms: 0, seed: 0 };
            match snapshot(&mut self.live, env) {
                Ok(snap) => {
                    self.checkpoint = snap;
                    self.journal.clear();
                }
                Err(e) => {
                    self.rebuild()?;
                    return Err(e);
                }
            }
        }
        Ok(&self.checkpoint)
    }

    /// The room's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The version of the module the room runs on.
    pub fn module_digest(&self) -> &str {
        self.live.module().digest()
    }

    /// Why the room runs on an older module than its role's current one, if it does: the
    /// current module's `restore` refused (or failed on) the room's snapshot.
    pub fn pinned(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// Checks that `module` can take over a room from `snapshot` (taken by the module the
    /// room runs on now): restores it on a fresh instance, then snapshots it again, as a
    /// move and the next checkpoint would. Run before a battle module may serve, so a
    /// snapshot format change that breaks running rooms is found before any room moves.
    pub fn check_restore(module: Arc<crate::module::Module<Battle>>, snap: &[u8]) -> Result<(), CallError> {
        let env = CallEnv { now_ms: 0, seed: 0 };
        let mut live = restore_on(module, snap, env)?;
        let again = snapshot(&mut live, env);
        live.retire();
        again.map(drop)
    }

    /// Applies a player's input. On failure the room is as it was before the call.
    pub fn input(&mut self, player: u64, input: &[u8], env: CallEnv) -> Result<Effects, CallError> {
        self.follow_swap(env);
        let result =
            self.live.call(&mut Default::default(), env, |g, s| g.warren_game_room().call_input(s, player, input));
        match result {
            Ok((_, effects)) => {
                self.journal.push(JournalEntry::Input { player, input: input.to_vec(), env });
                Ok(effects)
            }
            Err(e) => {
                self.rebuild()?;
                Err(e)
            }
        }
    }

    /// Advances the room one tick. On failure the room is as it was before the call.
    pub fn tick(&mut self, tick: u64, env: CallEnv) -> Result<(RoomStatus, Effects), CallError> {
        self.follow_swap(env);
        let result = self.live.call(&mut Default::default(), env, |g, s| g.warren_game_room().call_tick(s, tick));
        match result {
            Ok((status, effects)) => {
                self.journal.push(JournalEntry::Tick { tick, env });
                if self.journal.len() >= MAX_JOURNAL {
                    // Bounds the replay after a fault, and the memory, for hosts that do
                    // not ask for checkpoints often; a failed snapshot rebuilds the room.
                    let _ = self.checkpoint();
                }
                let status = match status {
                    WitStatus::Running => RoomStatus::Running,
                    WitStatus::Finished => RoomStatus::Finished,
                };
                Ok((status, effects))
            }
            Err(e) => {
                self.rebuild()?;
                Err(e)
            }
        }
    }

    /// Moves the room to the role's current module if it changed. If the new module cannot
    /// restore the room, the room stays on its module (and does not try that one again).
    fn follow_swap(&mut self, env: CallEnv) {
        let generation = self.role.generation();
        if generation == self.generation {
            return;
        }
        let target = self.role.current();
        if target.digest() == self.live.module().digest() {
            self.generation = generation;
            return;
        }
        let from = self.live.module().digest().to_owned();
        let snap = match snapshot(&mut self.live, env) {
            Ok(snap) => snap,
            Err(e) => {
                // The old instance failed, not the new module: rebuild it from the
                // checkpoint and try the move again at the next call.
                tracing::warn!(room = self.id, %from, error = %e, "snapshot for a module move failed");
                if let Err(e) = self.rebuild() {
                    tracing::error!(room = self.id, error = %e, "room could not be rebuilt");
                }
                return;
            }
        };
        // From here a failure is the new module's: the room will not try it again.
        self.generation = generation;
        let target_digest = target.digest().to_owned();
        match restore_on(target, &snap, env) {
            Ok(moved) => {
                let old = std::mem::replace(&mut self.live, moved);
                old.retire();
                self.checkpoint = snap;
                self.journal.clear();
                self.pinned = None;
                tracing::info!(room = self.id, %from, to = self.live.module().digest(), "room moved to new module");
            }
            Err(e) => {
                tracing::warn!(
                    room = self.id,
                    %from,
                    to = target_digest,
                    error = %e,
                    "room kept its module: the new one cannot restore it"
                );
                self.pinned =
                    Some(format!("module {} cannot restore it: {e}", &target_digest[..12.min(target_digest.len())]));
            }
        }
    }

    /// Replaces a faulted instance: a fresh instance of the same module, restored from the
    /// checkpoint, with the journal replayed (the replay is deterministic: each input runs
    /// with the time and seed it first ran with).
    fn rebuild(&mut self) -> Result<(), CallError> {
        let mut fresh = Live::new(self.live.module().clone())?;
        let checkpoint = &self.checkpoint;
        fresh.call(&mut Default::default(), CallEnv { now_ms: 0, seed: 0 }, |g, s| {
            g.warren_game_room().call_restore(s, checkpoint)
        })?;
        for entry in &self.journal {
            match entry {
                JournalEntry::Input { player, input, env } => fresh
                    .call(&mut Default::default(), *env, |g, s| g.warren_game_room().call_input(s, *player, input))
                    .map(drop)?,
                JournalEntry::Tick { tick, env } => fresh
                    .call(&mut Default::default(), *env, |g, s| {
                        g.warren_game_room().call_tick(s, *tick).map(|r| r.map(drop))
                    })
                    .map(drop)?,
            }
        }
        let broken = std::mem::replace(&mut self.live, fresh);
        broken.retire();
        Ok(())
    }
}

/// Takes the room's snapshot: the room's stored state, so bounded by the battle role's
/// state quota.
fn snapshot(live: &mut Live<Battle>, env: CallEnv) -> Result<Vec<u8>, CallError> {
    let (snap, _) = live.call(&mut Default::default(), env, |g, s| g.warren_game_room().call_snapshot(s).map(Ok))?;
    let cap = live.state_quota();
    if snap.len() > cap {
        return Err(CallError::Quota(crate::limits::Quota::StateBytes { bytes: snap.len(), cap }));
    }
    Ok(snap)
}

/// Restores a room from `snap` on a fresh instance of `target`.
fn restore_on(
    target: Arc<crate::module::Module<Battle>>,
    snap: &[u8],
    env: CallEnv,
) -> Result<Live<Battle>, CallError> {
    let mut moved = Live::new(target)?;
    moved.call(&mut Default::default(), env, |g, s| g.warren_game_room().call_restore(s, snap))?;
    Ok(moved)
}
