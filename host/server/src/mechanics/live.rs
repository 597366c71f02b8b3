//! Live updates: a module upload is validated, stored on the bus and announced; every
//! host of the role loads it off the serving path and swaps it in between calls. A module
//! that fails anywhere before the swap changes nothing: the old one keeps serving.

use crate::role::Role;
use crate::roles::battleapp::upgrade::{self, RoomsBroken};
use std::sync::Arc;
use warren_bus::{Bus, BusError};
use warren_runtime::{Battle, LoadError, RoleModule, Runtime, World};

/// Why a deploy was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// No such role.
    #[error("unknown role `{0}` (roles: {roles})", roles = Role::world_names())]
    UnknownRole(String),
    /// The module is not fit for the role; nothing was changed.
    #[error("{role} module refused: {source}")]
    Invalid {
        /// The role.
        role: String,
        /// Why.
        source: LoadError,
    },
    /// A battle module that cannot take over the rooms running now; nothing was changed.
    #[error("battle module refused: {0}")]
    Rooms(#[from] RoomsBroken),
    /// The bus did not take it.
    #[error("could not store the module: {0}")]
    Bus(#[from] BusError),
}

/// The last module refused per role, with why (a file in `modules/`, or a published
/// module a host could not load): shown by `GET /modules`, since a refused module changes
/// nothing else an operator or developer could see.
#[derive(Default)]
pub struct Refusals(std::sync::Mutex<std::collections::BTreeMap<String, String>>);

impl Refusals {
    /// The last refusal of each role since its last good deploy.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records (or, with `None`, clears) a role's refusal.
    pub fn set(&self, role: &str, reason: Option<String>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(r) => map.insert(role.to_owned(), r),
            None => map.remove(role),
        };
    }
}

/// Checks `bytes` as a module of `role` (compiling it: call off the serving path).
pub fn validate(runtime: &Runtime, role: &str, bytes: &[u8]) -> Result<(), DeployError> {
    let known = Role::of_world(role).ok_or_else(|| DeployError::UnknownRole(role.to_owned()))?;
    known.validate(runtime, bytes).map_err(|source| DeployError::Invalid { role: role.to_owned(), source })
}

/// Validates a module, then stores it and makes it the role's current one. Returns its
/// digest. A battle module must also take over every room running now (see
/// [`crate::roles::battleapp::upgrade`]).
pub async fn deploy(bus: &Bus, runtime: &Runtime, role: &str, bytes: Vec<u8>) -> Result<String, DeployError> {
    let (rt, r) = (runtime.clone(), role.to_owned());
    let (checked, bytes) = tokio::task::spawn_blocking(move || (validate(&rt, &r, &bytes), bytes))
        .await
        .expect("validation does not panic");
    checked?;
    let bytes = match Role::of_world(role) {
        Some(Role::Battleapp) => check_rooms(bus, runtime, bytes).await?,
        _ => bytes,
    };
    Ok(bus.publish_module(role, bytes).await?)
}

/// Checks a battle module (already validated) against the rooms running now; hands its
/// bytes back if it can take every one over.
async fn check_rooms(bus: &Bus, runtime: &Runtime, bytes: Vec<u8>) -> Result<Vec<u8>, DeployError> {
    let rooms = upgrade::running_rooms(bus).await?;
    if rooms.is_empty() {
        return Ok(bytes);
    }
    let rt = runtime.clone();
    tokio::task::spawn_blocking(move || {
        let module = Arc::new(
            rt.load::<Battle>(&bytes)
                .map_err(|source| DeployError::Invalid { role: Battle::NAME.to_owned(), source })?,
        );
        let checked = upgrade::check_rooms(&module, &rooms)?;
        tracing::info!(rooms = checked, digest = %short(module.digest()), "battle module restores every running room");
        Ok(bytes)
    })
    .await
    .expect("the room check does not panic")
}

/// Follows the role's announcements: loads each new current module and swaps it into
/// `slot`; a module that fails to load here is recorded in `refusals`. Runs as long as
/// the bus's announcements do.
pub fn follow<W: World>(
    bus: Bus,
    runtime: Runtime,
    slot: Arc<RoleModule<W>>,
    refusals: Arc<Refusals>,
) -> tokio::task::JoinHandle<()> {
    let mut announcements = bus.module_announcements();
    tokio::spawn(async move {
        loop {
            let announced = match announcements.recv().await {
                Ok(a) => a,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "module announcements missed; reading the current pointer");
                    match bus.current_module(W::NAME).await {
                        Ok(Some(digest)) => warren_bus::ModuleAnnouncement { role: W::NAME.into(), digest },
                        _ => continue,
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if announced.role != W::NAME || slot.current().digest() == announced.digest {
                continue;
            }
            if let Err(e) = swap_in(&bus, &runtime, &slot, &announced.digest).await {
                tracing::error!(role = W::NAME, digest = %announced.digest, error = %e, "module not swapped; the old one keeps serving");
                refusals.set(W::NAME, Some(format!("module {} not swapped in: {e:#}", short(&announced.digest))));
            }
        }
    })
}

/// Loads module `digest` from the bus and swaps it into `slot`.
async fn swap_in<W: World>(bus: &Bus, runtime: &Runtime, slot: &RoleModule<W>, digest: &str) -> anyhow::Result<()> {
    let bytes = bus.module(digest).await?;
    let rt = runtime.clone();
    let module = tokio::task::spawn_blocking(move || rt.load::<W>(&bytes)).await??;
    let old = slot.swap(module);
    tracing::info!(role = W::NAME, from = %short(old.digest()), to = %short(digest), "module swapped");
    Ok(())
}

/// The first 12 hex digits of a digest, for logs.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}
