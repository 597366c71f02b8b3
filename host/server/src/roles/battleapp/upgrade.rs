//! Room upgrades: a battle module may serve only if it can take over the rooms running
//! now. Rooms keep their state in guest memory and move to a new module by snapshot and
//! restore; a new module whose `restore` refuses today's snapshots would leave every
//! running room pinned to the old module (or, restored wrongly, lose what it dropped). So
//! before a battle module is published — by `warren publish`, an upload, or a file in
//! `warren dev`'s `modules/` — each running room's last checkpoint is restored on it, and
//! snapshotted again, off the serving path. One refusal refuses the module; the old one
//! keeps serving.

use super::REGISTRY;
use std::sync::Arc;
use warren_bus::{Address, Bus, BusError};
use warren_runtime::{Battle, CallError, Module, Room};

/// The state key under which a room's last checkpoint is stored.
pub const SNAPSHOT_KEY: &str = "snapshot";
/// The state key set when a room has ended.
pub const FINISHED_KEY: &str = "finished";

/// A running room's last stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSnapshot {
    /// The room's id.
    pub room: u64,
    /// Its snapshot, as its module wrote it.
    pub snapshot: Vec<u8>,
}

/// The last checkpoint of every room running in the cluster (registered and not ended), as
/// stored on the bus: what a new battle module must be able to restore.
pub async fn running_rooms(bus: &Bus) -> Result<Vec<RoomSnapshot>, BusError> {
    let mut rooms = Vec::new();
    for (room, _) in bus.registered(REGISTRY).await? {
        let state = bus.load_state(&Address::Battle(room)).await?;
        if state.contains_key(FINISHED_KEY) {
            continue;
        }
        // A room placed but not created yet has no snapshot: nothing to move.
        if let Some(snapshot) = state.get(SNAPSHOT_KEY).filter(|s| !s.is_empty()) {
            rooms.push(RoomSnapshot { room, snapshot: snapshot.clone() });
        }
    }
    Ok(rooms)
}

/// Rooms a module cannot take over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "it cannot take over {} of the {checked} battle rooms running now ({}); they would stay on the module they run. \
     Make `restore` read the snapshots the serving module writes (guest-sdk/README.md, *Room upgrades*), \
     or publish it again once those rooms have ended",
    broken.len(),
    list(broken)
)]
pub struct RoomsBroken {
    /// How many rooms were checked.
    pub checked: usize,
    /// The rooms it cannot restore, and why.
    pub broken: Vec<(u64, CallError)>,
}

fn list(broken: &[(u64, CallError)]) -> String {
    const SHOWN: usize = 3;
    let mut text: Vec<String> = broken.iter().take(SHOWN).map(|(room, e)| format!("room {room}: {e}")).collect();
    if broken.len() > SHOWN {
        text.push(format!("and {} more", broken.len() - SHOWN));
    }
    text.join("; ")
}

/// Restores each of `rooms` on `module` (and snapshots it again); `Ok` with how many were
/// checked if every one moves. Slow (an instance per room): call off the serving path.
pub fn check_rooms(module: &Arc<Module<Battle>>, rooms: &[RoomSnapshot]) -> Result<usize, RoomsBroken> {
    let broken: Vec<(u64, CallError)> = rooms
        .iter()
        .filter_map(|r| Room::check_restore(module.clone(), &r.snapshot).err().map(|e| (r.room, e)))
        .collect();
    match broken.is_empty() {
        true => Ok(rooms.len()),
        false => Err(RoomsBroken { checked: rooms.len(), broken }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_rooms_and_says_what_to_do() {
        let broken = (1..=5).map(|room| (room, CallError::Rejected("missing field `shield`".into()))).collect();
        let text = RoomsBroken { checked: 7, broken }.to_string();
        assert!(text.starts_with("it cannot take over 5 of the 7 battle rooms running now (room 1: "), "{text}");
        assert!(text.contains("missing field `shield`; room 2") && text.contains("and 2 more"), "{text}");
        assert!(text.contains("publish it again once those rooms have ended"), "{text}");
    }
}
