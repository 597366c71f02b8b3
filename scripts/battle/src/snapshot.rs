//! Snapshot versions. A module swap moves a running battle through `snapshot` and
//! `restore`; the new module may be newer than the one that took the snapshot, so every
//! snapshot carries a `version`, and `restore` upgrades older ones step by step.
//!
//! - Version 1 — the first format, kept so the upgrade path is exercised: no `version`
//!   field, no teams (every fighter fought alone), a heal cooldown counted down per
//!   fighter (`heal_cooldown`, ticks left) and the tick cap fixed at 600.
//! - Version 2 — this one: `version`, per-fighter `team`, `heal_ready_at` as an absolute
//!   room tick, `max_ticks` per room.
//!
//! To change the format: bump [`VERSION`], add an `upgrade_vN` for the previous version
//! and a test that restores a snapshot of it.

use serde_json::{Value, json};
use warren_guest::{Outcome, Reject};

/// The snapshot version this module writes.
pub const VERSION: u32 = 2;

/// The tick cap of version-1 rooms.
const V1_MAX_TICKS: u64 = 600;

/// Brings a snapshot of any earlier version up to [`VERSION`]. Refuses one from a newer
/// module, which would lose what this one does not know about.
pub fn upgrade(mut snapshot: Value) -> Outcome<Value> {
    let version = match snapshot.get("version") {
        None => 1,
        Some(v) => v.as_u64().ok_or_else(|| Reject::new(format!("cannot restore: bad version {v}")))?,
    };
    if version > u64::from(VERSION) {
        return Err(Reject::new(format!(
            "cannot restore: snapshot version {version} is newer than this module's {VERSION}"
        )));
    }
    if version < 2 {
        upgrade_v1(&mut snapshot)?;
    }
    Ok(snapshot)
}

/// Version 1 to 2.
fn upgrade_v1(snapshot: &mut Value) -> Outcome {
    let room = snapshot.as_object_mut().ok_or_else(|| Reject::new("cannot restore: snapshot is not an object"))?;
    let ticks = room.get("ticks").and_then(Value::as_u64).unwrap_or(0);
    let fighters = room
        .get_mut("fighters")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Reject::new("cannot restore: version 1 snapshot has no fighters"))?;
    for (i, fighter) in fighters.iter_mut().enumerate() {
        let fighter =
            fighter.as_object_mut().ok_or_else(|| Reject::new("cannot restore: a fighter is not an object"))?;
        let cooldown = fighter.remove("heal_cooldown").and_then(|v| v.as_u64()).unwrap_or(0);
        fighter.insert("heal_ready_at".into(), json!(ticks + cooldown));
        fighter.insert("team".into(), json!(i));
    }
    room.insert("max_ticks".into(), json!(V1_MAX_TICKS));
    room.insert("version".into(), json!(2));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_snapshots_pass_unchanged() {
        let snap = json!({"version": VERSION, "fighters": []});
        assert_eq!(upgrade(snap.clone()), Ok(snap));
    }

    #[test]
    fn newer_or_bad_versions_are_refused() {
        assert_eq!(
            upgrade(json!({"version": 3})),
            Err(Reject::new("cannot restore: snapshot version 3 is newer than this module's 2"))
        );
        assert_eq!(upgrade(json!({"version": "two"})), Err(Reject::new("cannot restore: bad version \"two\"")));
    }

    #[test]
    fn version_1_gets_teams_and_absolute_cooldowns() {
        let v1 = json!({
            "ticks": 10,
            "fighters": [
                {"id": 5, "heal_cooldown": 3},
                {"id": 0, "heal_cooldown": 0},
            ],
        });
        assert_eq!(
            upgrade(v1),
            Ok(json!({
                "version": 2,
                "ticks": 10,
                "max_ticks": 600,
                "fighters": [
                    {"id": 5, "heal_ready_at": 13, "team": 0},
                    {"id": 0, "heal_ready_at": 10, "team": 1},
                ],
            }))
        );
    }
}
