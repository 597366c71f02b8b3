//! A host for grouped entities — guilds today, teams next. Entities are split into
//! groups, each with one queue and one state; the live hosts of the role share the groups
//! evenly (every host computes the same spread from the member list,
//! [`assign_groups`]) and each owns its groups by lease.
//!
//! A group changes hands like this: the old owner sees it is no longer its own, stops
//! taking messages, finishes and commits the one in hand, and releases the lease; the new
//! owner, which has been trying to take the lease, gets it, claims whatever was delivered
//! but not committed, and goes on from the stream. A host that dies simply stops renewing:
//! its leases expire and are taken. Every commit carries the lease's fencing token, so an
//! owner that lost its lease without knowing cannot apply anything.
//!
//! A role supplies only what differs ([`Grouped`]): its world and typed call
//! ([`Handles`]), its membership role, the queue of a group and the entity a message is
//! for.

use crate::mechanics::cluster::Host;
use crate::mechanics::lease::Held;
use crate::mechanics::logic::CLIENT_FRAME;
use crate::mechanics::logic::LogicPool;
use crate::mechanics::owner::{Control, Ended, Handles, Occupant, OwnedQueue, Routed, Settled, Target, occupy};
use crate::role::Role;
use futures_util::future::join_all;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warren_bus::{Address, Bus, Delivery, Outbound, assign_groups};
use warren_runtime::{Guild, RoleModule};

/// How often a host looks at the membership and moves groups.
const BALANCE_EVERY: Duration = Duration::from_millis(500);
/// Most messages taken from a group's queue in one read.
const BATCH: usize = 64;

/// A role whose entities live in groups.
pub trait Grouped: Handles {
    /// The role whose hosts own the groups (and whose members share them).
    const ROLE: Role;
    /// The queue (and state owner) of group `n`.
    fn group(n: u32) -> Address;
    /// The entity a message in a group's queue is addressed to, if it is one of the role's.
    fn target(to: &Address) -> Option<Target>;
}

impl Grouped for Guild {
    const ROLE: Role = Role::Guild;

    fn group(n: u32) -> Address {
        Address::GuildGroup(n)
    }

    fn target(to: &Address) -> Option<Target> {
        match to {
            Address::Guild(id) => Some(Target::in_group(to.clone(), *id)),
            _ => None,
        }
    }
}

/// A group this host owns, being served.
struct Worker {
    /// Set to make the worker finish the message in hand and release the group.
    drain: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs `W`'s share of the groups on `host` until `stop` completes, then hands them over:
/// the host leaves the membership (the others start taking groups as they are released)
/// and drains every group.
pub async fn run<W: Grouped>(
    host: Arc<Host>,
    module: Arc<RoleModule<W>>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let logic = LogicPool::new(module, host.sandbox.clone());
    let role = W::ROLE.name();
    let heartbeat = host.heartbeat(role);
    let (bus, me) = (host.bus.clone(), host.instance.clone());
    let groups = bus.groups();
    let mut workers: HashMap<u32, Worker> = HashMap::new();
    let mut tick = tokio::time::interval(BALANCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    println!("warren {role} {me} serving");
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        workers.retain(|_, w| !w.task.is_finished());
        let members = match bus.members(role).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "membership unavailable; keeping the groups held");
                continue;
            }
        };
        let mine: BTreeSet<u32> = if members.contains(&me) {
            assign_groups(groups, &members).into_iter().filter(|(_, o)| *o == me).map(|(g, _)| g).collect()
        } else {
            BTreeSet::new()
        };
        for (group, w) in &workers {
            if !mine.contains(group) && !*w.drain.borrow() {
                tracing::info!(group, "group moves to another host: draining");
                let _ = w.drain.send(true);
            }
        }
        let wanted: Vec<u32> = mine.into_iter().filter(|g| !workers.contains_key(g)).collect();
        let owners: Vec<Address> = wanted.iter().map(|g| W::group(*g)).collect();
        // A group whose owner is no longer a member (a host that died) is taken over at
        // once rather than after its lease expires.
        let taken =
            join_all(owners.iter().map(|o| Held::acquire_or_take_over(&bus, o, &me, host.lease_ttl, &members))).await;
        for (group, held) in wanted.into_iter().zip(taken) {
            match held {
                Ok(Some(held)) => {
                    let (drain, drained) = watch::channel(false);
                    let q = OwnedQueue::new(bus.clone(), W::group(group), held, logic.clone(), &host.bells, BATCH);
                    let task = tokio::spawn(serve_group::<W>(q, drained));
                    workers.insert(group, Worker { drain, task });
                }
                // Its previous owner is still draining it, or its lease has not expired.
                Ok(None) => {}
                Err(e) => tracing::warn!(group, error = %e, "cannot take the group's lease yet"),
            }
        }
    }

    heartbeat.abort();
    host.leave(role).await;
    for w in workers.values() {
        let _ = w.drain.send(true);
    }
    let count = workers.len();
    join_all(workers.into_values().map(|w| w.task)).await;
    tracing::info!(groups = count, "every group handed over");
    Ok(())
}

/// One owned group: the role's side of its queue.
struct GroupWorker {
    /// Set when the group must be handed over.
    drain: watch::Receiver<bool>,
    /// Tells a player whose message was refused why.
    bus: Bus,
}

async fn serve_group<W: Grouped>(mut q: OwnedQueue<W>, drain: watch::Receiver<bool>) {
    let group = q.queue().tag();
    tracing::debug!(%group, token = q.held().token(), "group taken");
    let mut worker = GroupWorker { drain, bus: q.bus().clone() };
    match occupy(&mut q, &mut worker).await {
        Ended::Lost => tracing::warn!(%group, "group lost: its lease was taken or expired"),
        Ended::Stopped => tracing::debug!(%group, "group released"),
    }
    q.release().await;
}

impl<W: Grouped> Occupant<W> for GroupWorker {
    type Event = ();

    fn target(&self, d: &Delivery) -> Option<Target> {
        W::target(&d.envelope.to)
    }

    async fn route(&mut self, d: &Delivery, _: &mut OwnedQueue<W>) -> Routed {
        match W::target(&d.envelope.to) {
            Some(target) => Routed::Handle(target),
            None => Routed::Misaddressed(format!("not addressed to a {}: {}", W::ROLE, d.envelope.to.tag())),
        }
    }

    /// A message refused (by the script, or by a quota its effects broke) is answered to
    /// the player who sent it, as an error frame naming what was refused: nothing of it
    /// was applied, and the player is not left waiting.
    async fn settled(&mut self, d: &Delivery, outcome: Settled) {
        let (Settled::Refused(reason), Some(Address::Player(player))) = (outcome, &d.envelope.sender) else { return };
        let frame = serde_json::json!({"type": "error", "reason": reason, "refused": d.envelope.kind});
        let told = Outbound {
            to: Address::Player(*player),
            sender: None,
            kind: CLIENT_FRAME.to_owned(),
            body: frame.to_string().into_bytes(),
            hops: 0,
        };
        if let Err(e) = self.bus.send(told).await {
            tracing::warn!(player, error = %e, "a refusal not told to its player");
        }
    }

    async fn event(&mut self) {
        if self.drain.changed().await.is_err() {
            // The host dropped the worker's handle: only the lease or the queue matter now.
            std::future::pending::<()>().await;
        }
    }

    async fn on_event(&mut self, _: (), _: &mut OwnedQueue<W>) -> Control {
        Control::Continue
    }

    async fn idle(&mut self, _: &mut OwnedQueue<W>) -> Control {
        if *self.drain.borrow() { Control::Stop } else { Control::Continue }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guild_message_targets_the_guild_under_its_id() {
        let t = Guild::target(&Address::Guild(4103)).unwrap();
        assert_eq!((t.entity, t.prefix.as_str()), (Address::Guild(4103), "4103/"));
        assert!(Guild::target(&Address::Player(1)).is_none());
        assert_eq!(Guild::group(17), Address::GuildGroup(17));
    }
}
