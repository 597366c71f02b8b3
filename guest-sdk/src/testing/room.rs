//! [`RoomHarness`], and the check that a folder of room snapshots still restores.

use super::{Caps, Effects, Harness, Role};
use crate::{Outcome, PlayerId, Reject, Room, RoomStatus};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Drives a [`Room`]. Like the host, a call that fails leaves the room as it was before
/// the call; the room's snapshot is held to the battle quota (see the module's *Limits*).
pub struct RoomHarness<R: Room> {
    /// Clock, seed and caps (rooms keep their state in the room value, not in host state).
    pub host: Harness,
    /// The room, once created or restored.
    room: Option<R>,
    /// The room's snapshot after its last kept call — what a failed call rolls it back
    /// to, as the host's checkpoint —, or `None` when it is still to be taken (a room put
    /// in place by [`RoomHarness::set_room`]).
    checkpoint: Option<Vec<u8>>,
    /// The number the next tick is told.
    next_tick: u64,
}

impl<R: Room> Default for RoomHarness<R> {
    fn default() -> Self {
        Self::new()
    }
}

// What a live host does with a room whose snapshot is over the battle quota, by when the
// snapshot was taken: the end of the error that says so.
/// Its first snapshot, taken right after `create`.
const LIVE_AFTER_CREATE: &str = "live the room is not created";
/// A snapshot after an input or a tick (a checkpoint).
const LIVE_AFTER_CALL: &str = "live the call goes through, but the room can no longer be checkpointed: it cannot move \
                               to a new module, be taken over by another battleapp, or store its result";
/// The snapshot of a room just restored (its next checkpoint).
const LIVE_AFTER_RESTORE: &str = "live the new module cannot checkpoint the room it took over";
/// The snapshot a module swap moves the room with.
const LIVE_BEFORE_SWAP: &str = "live the room stays on its old module";

impl<R: Room> RoomHarness<R> {
    /// No room yet: call [`RoomHarness::create`] or [`RoomHarness::restore`].
    pub fn new() -> Self {
        RoomHarness { host: Harness::for_role(Role::Battle), room: None, checkpoint: None, next_tick: 0 }
    }

    /// A harness whose room was restored from `snapshot`, taken by this or an earlier
    /// version of the module — as a module swap, or another battleapp taking the room
    /// over, brings it back live. Fails as [`RoomHarness::restore`] does.
    pub fn from_snapshot(snapshot: &[u8]) -> Outcome<Self> {
        let mut harness = Self::new();
        harness.restore(snapshot)?;
        Ok(harness)
    }

    /// Sets the caps the next calls run under (the battleapp's `[limits]`; the room's
    /// snapshot is held to `state_bytes.battle`).
    pub fn set_caps(&mut self, caps: Caps) {
        self.host.set_caps(caps);
    }

    /// Creates room `id` from `setup`. Fails, with no room made, if `create` refuses,
    /// breaks a cap, or makes a room whose snapshot is over the battle quota.
    pub fn create(&mut self, id: u64, setup: Value) -> Outcome<Effects> {
        let bytes = crate::encode(&setup);
        let seed = self.host.take_seed();
        let returned = self.host.attempt(seed, || R::create(id, &bytes))?;
        let snapshot =
            Self::quota_checked_snapshot(&mut self.host, &returned.value, "the new room's", LIVE_AFTER_CREATE)?;
        let (room, effects) = self.host.keep(returned);
        self.room = Some(room);
        self.checkpoint = Some(snapshot);
        Ok(effects)
    }

    /// Replaces the room with one restored from `snapshot` (taken by this or an earlier
    /// version of the module), as a module swap does live. The restore is a call of its own
    /// under the caps, not a message: it sees the harness's clock and random seed 0, and
    /// takes no seed from the sequence. Fails, keeping the room there was, if `restore`
    /// refuses, breaks a cap, or the restored room's snapshot — its next checkpoint — is
    /// over the battle quota.
    ///
    /// The next tick is told 0: a snapshot does not hold the host's tick count; set it
    /// with [`RoomHarness::set_next_tick`] if the room reads it.
    pub fn restore(&mut self, snapshot: &[u8]) -> Outcome<Effects> {
        let returned = self.host.attempt(0, || R::restore(snapshot))?;
        let again =
            Self::quota_checked_snapshot(&mut self.host, &returned.value, "the restored room's", LIVE_AFTER_RESTORE)?;
        let (room, effects) = self.host.keep(returned);
        self.room = Some(room);
        self.checkpoint = Some(again);
        self.next_tick = 0;
        Ok(effects)
    }

    /// The room's snapshot, taken as the host takes it: a call of its own, whose effects
    /// are dropped.
    fn snapshot_of(host: &mut Harness, room: &R) -> Outcome<Vec<u8>> {
        host.attempt(0, || Ok(room.snapshot())).map(|returned| returned.value)
    }

    /// The room's snapshot, refused if it is over the battle quota; `whose` and `live` say
    /// which snapshot it was and what a host would do with it.
    fn quota_checked_snapshot(host: &mut Harness, room: &R, whose: &str, live: &str) -> Outcome<Vec<u8>> {
        let snapshot = Self::snapshot_of(host, room)?;
        let quota = host.caps.state_bytes.battle;
        if snapshot.len() > quota {
            return Err(Reject(format!(
                "(quota) {whose} snapshot is {} bytes, over its quota of {quota} (`state_kib.battle`): {live}",
                snapshot.len()
            )));
        }
        Ok(snapshot)
    }

    fn room_call<T>(&mut self, f: impl FnOnce(&mut R) -> Outcome<T>) -> Outcome<(T, Effects)> {
        let Some(room) = self.room.as_mut() else { return Err(Reject::new("no room: call create first")) };
        let before = match self.checkpoint.take() {
            Some(checkpoint) => checkpoint,
            None => Self::snapshot_of(&mut self.host, room)?,
        };
        let seed = self.host.take_seed();
        let result = match self.host.attempt(seed, || f(&mut *room)) {
            Ok(returned) => {
                Self::quota_checked_snapshot(&mut self.host, room, "after this call the room's", LIVE_AFTER_CALL)
                    .map(|after| (returned, after))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((returned, after)) => {
                self.checkpoint = Some(after);
                Ok(self.host.keep(returned))
            }
            Err(e) => {
                // Like the host: a failed call leaves the room as its snapshot before the call.
                let restored = self
                    .host
                    .attempt(0, || R::restore(&before))
                    .map_err(|e| Reject::new(format!("room cannot restore itself: {e}")))?;
                self.room = Some(restored.value);
                self.checkpoint = Some(before);
                Err(e)
            }
        }
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

    /// Sets the number the next tick is told (then one more each tick): after a restore,
    /// a host tells the room the tick count it stored beside the snapshot.
    pub fn set_next_tick(&mut self, tick: u64) {
        self.next_tick = tick;
    }

    /// Moves the room through `snapshot` and `restore`, as a module swap does. Fails,
    /// with the room as it was, if the snapshot is over the battle quota or `restore`
    /// refuses it.
    pub fn migrate(&mut self) -> Outcome {
        let room = self.room.as_ref().ok_or_else(|| Reject::new("no room: call create first"))?;
        let snapshot =
            Self::quota_checked_snapshot(&mut self.host, room, "for the module swap, the room's", LIVE_BEFORE_SWAP)?;
        let moved = self.host.attempt(0, || R::restore(&snapshot))?;
        self.room = Some(moved.value);
        self.checkpoint = Some(snapshot);
        Ok(())
    }

    /// Puts a prepared room in place (as if created and played to this point).
    pub fn set_room(&mut self, room: R) {
        self.room = Some(room);
        self.checkpoint = None;
    }

    /// The room.
    pub fn room(&self) -> &R {
        self.room.as_ref().expect("no room: call create first")
    }
}

/// Restores a room of type `R` from every snapshot file (`*.snap` or `*.json`) in `dir`,
/// as [`RoomHarness::from_snapshot`] does — the room's `restore`, then its snapshot again
/// under the battle quota, as a module swap and the next checkpoint would —, under the
/// host's default caps. Returns how many files were restored, or every file that was not,
/// each with why (a panic in `restore` is reported as the trap it is live). A folder that
/// cannot be read is one failure, named by the folder; files with other extensions are
/// skipped, and an empty folder restores 0.
///
/// Keep snapshots of rooms from a running server in a folder of the script's tests, so an
/// upgrade that cannot take them over fails `cargo test` before it is published:
///
/// ```sh
/// curl -o tests/snapshots/NAME.snap http://127.0.0.1:7700/rooms/ID/snapshot
/// ```
///
/// ```no_run
/// # use warren_guest::prelude::*;
/// # #[derive(Serialize, Deserialize)] struct Battle;
/// # impl Room for Battle {
/// #     fn create(_: u64, _: &[u8]) -> Outcome<Self> { Ok(Battle) }
/// #     fn input(&mut self, _: PlayerId, _: &[u8]) -> Outcome { Ok(()) }
/// #     fn tick(&mut self, _: u64) -> Outcome<RoomStatus> { Ok(RoomStatus::Running) }
/// # }
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");
/// if let Err(failed) = warren_guest::testing::restore_each_snapshot_in::<Battle>(dir) {
///     for (file, why) in &failed {
///         eprintln!("{}: {why}", file.display());
///     }
///     panic!("{} snapshots do not restore", failed.len());
/// }
/// ```
pub fn restore_each_snapshot_in<R: Room>(dir: impl AsRef<Path>) -> Result<usize, Vec<(PathBuf, Reject)>> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![(dir.to_path_buf(), Reject::new(format!("cannot read the folder of snapshots: {e}")))])?;
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => files.push(entry.path()),
            Err(e) => {
                failed.push((dir.to_path_buf(), Reject::new(format!("cannot list the folder of snapshots: {e}"))))
            }
        }
    }
    files.retain(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("snap" | "json")));
    files.sort();
    for path in &files {
        let restored = match std::fs::read(path) {
            Err(e) => Err(Reject::new(format!("cannot read the snapshot: {e}"))),
            Ok(bytes) => match std::panic::catch_unwind(|| RoomHarness::<R>::from_snapshot(&bytes).map(drop)) {
                Ok(restored) => restored,
                Err(panic) => {
                    Err(Reject::new(format!("(trap) the room panicked while restoring: {}", panic_text(&*panic))))
                }
            },
        };
        if let Err(why) = restored {
            failed.push((path.clone(), why));
        }
    }
    if failed.is_empty() { Ok(files.len()) } else { Err(failed) }
}

/// The message a panic carried.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
