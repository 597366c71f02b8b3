//! Where roles meet the runtime: a pool of instances that runs handler calls off the async
//! executor, and the translation of a call's effects into bus messages.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use warren_bus::{Address as BusAddress, Outbound};
use warren_runtime::{Address, CallEnv, Effects, Instance, RoleModule, World};

/// The message kind that carries a frame for a player's client through the player's queue.
/// The player's session forwards it to the socket instead of calling the guest.
pub const CLIENT_FRAME: &str = "$frame";

/// A role's instances, run on tokio's blocking threads. A wasm call is CPU work bounded by
/// its deadline; it must not stall the executor's threads.
pub struct LogicPool<W: World> {
    /// The role's module, followed by every instance.
    role: Arc<RoleModule<W>>,
    /// Instances not in use; one is made when none is idle.
    idle: Mutex<Vec<Instance<W>>>,
}

impl<W: World> LogicPool<W> {
    /// A pool over `role`.
    pub fn new(role: Arc<RoleModule<W>>) -> Arc<Self> {
        Arc::new(LogicPool { role, idle: Mutex::new(Vec::new()) })
    }

    /// Runs `f` on an instance, on a blocking thread.
    pub async fn run<R: Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&mut Instance<W>) -> R + Send + 'static) -> R {
        let pool = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let taken = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut instance = taken.unwrap_or_else(|| Instance::new(pool.role.clone()));
            let out = f(&mut instance);
            pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(instance);
            out
        });
        match task.await {
            Ok(out) => out,
            // A panic here is a host bug (guest faults are errors, not panics): surface it.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// The environment of a call that did not come from a queue (a client frame, a tick):
/// the time now and a fresh seed.
pub fn fresh_env() -> CallEnv {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    CallEnv { now_ms, seed: RandomState::new().hash_one(now_ms) }
}

/// The runtime's address as the bus names it.
pub fn to_bus(address: &Address) -> BusAddress {
    match address {
        Address::Player(id) => BusAddress::Player(*id),
        Address::Guild(id) => BusAddress::Guild(*id),
        Address::Team(id) => BusAddress::Team(*id),
        Address::Battle(id) => BusAddress::Battle(*id),
        Address::MatchQueue(name) => BusAddress::MatchQueue(name.clone()),
    }
}

/// The bus's address as the runtime names it; a guild group is no entity a guest sees.
pub fn from_bus(address: &BusAddress) -> Option<Address> {
    Some(match address {
        BusAddress::Player(id) => Address::Player(*id),
        BusAddress::Guild(id) => Address::Guild(*id),
        BusAddress::Team(id) => Address::Team(*id),
        BusAddress::Battle(id) => Address::Battle(*id),
        BusAddress::MatchQueue(name) => Address::MatchQueue(name.clone()),
        BusAddress::GuildGroup(_) => return None,
    })
}

/// The messages a call's effects put on the bus: its sends, and its pushes as client
/// frames through the players' queues.
pub fn outbound(sender: &BusAddress, effects: &Effects) -> Vec<Outbound> {
    let sends = effects.sends.iter().map(|s| Outbound {
        to: to_bus(&s.to),
        sender: Some(sender.clone()),
        kind: s.kind.clone(),
        body: s.body.clone(),
    });
    let pushes = effects.pushes.iter().map(|(player, frame)| Outbound {
        to: BusAddress::Player(*player),
        sender: Some(sender.clone()),
        kind: CLIENT_FRAME.to_owned(),
        body: frame.clone(),
    });
    sends.chain(pushes).collect()
}

/// Writes a call's log lines to the host log, tagged with the entity.
pub fn emit_logs(entity: &BusAddress, effects: &Effects) {
    use warren_runtime::Level;
    let entity = entity.tag();
    for (level, text) in &effects.logs {
        match level {
            Level::Trace => tracing::trace!(%entity, "{text}"),
            Level::Debug => tracing::debug!(%entity, "{text}"),
            Level::Info => tracing::info!(%entity, "{text}"),
            Level::Warn => tracing::warn!(%entity, "{text}"),
            Level::Error => tracing::error!(%entity, "{text}"),
        }
    }
}
