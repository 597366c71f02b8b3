//! `warren guild`: a guild host. Guilds are split into groups, each with one queue; the
//! live guild hosts share the groups evenly (every host computes the same spread from the
//! member list, [`assign_groups`]) and each owns its groups by lease.
//!
//! A group changes hands like this: the old owner sees it is no longer its own, stops
//! taking messages, finishes and commits the one in hand, and releases the lease; the new
//! owner, which has been trying to take the lease, gets it, claims whatever was delivered
//! but not committed, and goes on from the stream. A host that dies simply stops renewing:
//! its leases expire and are taken. Every commit carries the lease's fencing token, so an
//! owner that lost its lease without knowing cannot apply anything.

use crate::cluster::{Host, shutdown_signal};
use crate::deliver::{self, Verdict};
use crate::inbox::Sweep;
use crate::lease::Held;
use crate::logic::{LogicPool, emit_logs, from_bus, outbound};
use futures_util::future::join_all;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warren_bus::{Address, BusError, Commit, Delivery, EntityState, assign_groups};
use warren_runtime::{CallEnv, Guild, Message};

/// How often a host looks at the membership and moves groups.
const BALANCE_EVERY: Duration = Duration::from_millis(500);
/// Most messages taken from a group's queue in one read.
const BATCH: usize = 64;
/// The member role name of guild hosts.
pub const ROLE: &str = "guild";

/// What a host's group workers share.
struct Shared {
    host: Host,
    logic: Arc<LogicPool<Guild>>,
}

/// A group this host owns, being served.
struct Worker {
    drain: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs a guild host until `stop` completes, then hands its groups over.
pub async fn run(host: Host, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let logic = LogicPool::new(host.role::<Guild>().await?);
    let heartbeat = host.heartbeat(ROLE);
    let shared = Arc::new(Shared { host, logic });
    let (bus, me) = (shared.host.bus.clone(), shared.host.instance.clone());
    let groups = bus.groups();
    let mut workers: HashMap<u32, Worker> = HashMap::new();
    let mut tick = tokio::time::interval(BALANCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    println!("warren guild {me} serving");
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        workers.retain(|_, w| !w.task.is_finished());
        let members = match bus.members(ROLE).await {
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
        let owners: Vec<Address> = wanted.iter().map(|g| Address::GuildGroup(*g)).collect();
        let taken = join_all(owners.iter().map(|o| Held::acquire(&bus, o, &me, shared.host.lease_ttl))).await;
        for (group, held) in wanted.into_iter().zip(taken) {
            match held {
                Ok(Some(held)) => {
                    let (drain, drained) = watch::channel(false);
                    let task = tokio::spawn(serve_group(shared.clone(), group, held, drained));
                    workers.insert(group, Worker { drain, task });
                }
                // Its previous owner is still draining it, or its lease has not expired.
                Ok(None) => {}
                Err(e) => tracing::warn!(group, error = %e, "cannot take the group's lease yet"),
            }
        }
    }

    // Hand everything over: stop saying we are alive, leave (the others start taking
    // groups as we release them), and drain every group.
    heartbeat.abort();
    if let Err(e) = bus.leave(ROLE, &me).await {
        tracing::warn!(error = %e, "could not leave the membership; it expires by itself");
    }
    for w in workers.values() {
        let _ = w.drain.send(true);
    }
    let count = workers.len();
    join_all(workers.into_values().map(|w| w.task)).await;
    tracing::info!(groups = count, "every group handed over");
    Ok(())
}

/// Runs `warren guild` until Ctrl-C or SIGTERM.
pub async fn main(host: Host) -> anyhow::Result<()> {
    run(host, shutdown_signal()).await
}

/// What to do after a message.
enum Flow {
    /// Go on.
    Next,
    /// The lease is gone: stop at once, release nothing.
    Lost,
    /// The message center failed: wait, reload, take the pending messages again.
    Retry,
}

/// One owned group.
struct Group {
    shared: Arc<Shared>,
    queue: Address,
    held: Held,
    /// The committed state of the group's guilds, by guild; loaded on first use and
    /// dropped whenever a commit's outcome is unknown.
    guilds: Option<HashMap<u64, EntityState>>,
}

async fn serve_group(shared: Arc<Shared>, group: u32, held: Held, mut drain: watch::Receiver<bool>) {
    let queue = Address::GuildGroup(group);
    let watch = shared.host.bells.watch(queue.clone());
    let bus = shared.host.bus.clone();
    let mut g = Group { shared, queue: queue.clone(), held, guilds: None };
    let mut sweep = Sweep::new();
    // First the messages the previous owner took but did not commit.
    let mut claim = true;
    let mut backoff = Duration::from_millis(100);
    tracing::debug!(group, token = g.held.token(), "group taken");
    let lost = 'serve: loop {
        if *drain.borrow() {
            break false;
        }
        if g.held.is_lost() {
            break true;
        }
        let taken = if claim { bus.read_pending(&queue).await } else { bus.read(&queue, BATCH, Duration::ZERO).await };
        let mut retry = false;
        let mut full = false;
        match taken {
            Ok(batch) => {
                full = batch.len() >= BATCH;
                claim = false;
                for d in batch {
                    match g.handle(d).await {
                        Flow::Next => {}
                        Flow::Lost => break 'serve true,
                        Flow::Retry => {
                            retry = true;
                            break;
                        }
                    }
                    // Between messages: a drain stops here, after a commit.
                    if *drain.borrow() {
                        break 'serve false;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(group, error = %e, "cannot read the group's queue");
                retry = true;
            }
        }
        if retry {
            g.guilds = None;
            claim = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        if full {
            continue;
        }
        tokio::select! {
            _ = drain.changed() => {}
            _ = g.held.lost() => {}
            _ = watch.rung() => {}
            // Now and then: messages whose ring was lost, and now and then messages left
            // pending.
            pending = sweep.tick() => claim |= pending,
        }
    };
    drop(watch);
    if lost {
        tracing::warn!(group, "group lost: its lease was taken or expired");
    } else {
        g.held.release(&bus).await;
        tracing::debug!(group, "group released");
    }
}

impl Group {
    async fn handle(&mut self, d: Delivery) -> Flow {
        let bus = self.shared.host.bus.clone();
        let Address::Guild(guild) = d.envelope.to else {
            return self.dead_letter(&d, &format!("not addressed to a guild: {}", d.envelope.to.tag())).await;
        };
        if self.guilds.is_none() {
            match bus.load_state(&self.queue).await {
                Ok(state) => self.guilds = Some(split_guilds(state)),
                Err(e) => {
                    tracing::warn!(group = %self.queue.tag(), error = %e, "cannot load the group's state");
                    return Flow::Retry;
                }
            }
        }
        let state = self.guilds.as_ref().and_then(|g| g.get(&guild)).cloned().unwrap_or_default();
        let env = CallEnv { now_ms: d.envelope.now_ms, seed: d.envelope.seed };
        let msg = Message {
            sender: d.envelope.sender.as_ref().and_then(from_bus),
            kind: d.envelope.kind.clone(),
            body: d.envelope.body.clone(),
        };
        let logic = self.shared.logic.clone();
        let what = format!("{} for guild {guild}", msg.kind);
        let verdict = deliver::handle(&what, d.attempts, || {
            let (logic, mut state, msg) = (logic.clone(), state.clone(), msg.clone());
            async move { logic.run(move |i| i.on_message(&mut state, env, guild, &msg)).await }
        })
        .await;
        let owner = Address::Guild(guild);
        let commit = |writes, sends| Commit {
            owner: self.queue.clone(),
            writes,
            sends,
            ack: Some(d.id.clone()),
            fence: Some(self.held.token()),
        };
        let (c, effects) = match verdict {
            Verdict::Done(effects) => {
                let writes = effects.writes.iter().map(|(k, v)| (guild_key(guild, k), v.clone())).collect();
                (commit(writes, outbound(&owner, &effects)), Some(effects))
            }
            Verdict::Refused(_) => (commit(Vec::new(), Vec::new()), None),
            Verdict::Dead(error) => return self.dead_letter(&d, &error).await,
        };
        match bus.commit(c).await {
            Ok(()) => {
                if let Some(effects) = effects {
                    emit_logs(&owner, &effects);
                    if let Some(guilds) = self.guilds.as_mut() {
                        effects.apply_to(guilds.entry(guild).or_default());
                    }
                }
                Flow::Next
            }
            Err(BusError::StaleOwner { .. }) => Flow::Lost,
            Err(BusError::NotPending { .. }) => {
                // Committed already (a reply lost on the way): nothing to apply again.
                tracing::warn!(group = %self.queue.tag(), id = %d.id, "message already committed");
                self.guilds = None;
                Flow::Next
            }
            Err(e) => {
                tracing::warn!(group = %self.queue.tag(), error = %e, "commit failed; the message stays pending");
                Flow::Retry
            }
        }
    }

    async fn dead_letter(&mut self, d: &Delivery, error: &str) -> Flow {
        match self.shared.host.bus.dead_letter(&self.queue, d, error).await {
            Ok(()) | Err(BusError::NotPending { .. }) => Flow::Next,
            Err(e) => {
                tracing::warn!(group = %self.queue.tag(), error = %e, "cannot set a dead letter aside");
                Flow::Retry
            }
        }
    }
}

/// Where a guild's state key lives in its group's state.
fn guild_key(guild: u64, key: &str) -> String {
    format!("{guild}/{key}")
}

/// A group's state split by guild (`<guild>/<key>` → guild, key).
fn split_guilds(state: EntityState) -> HashMap<u64, EntityState> {
    let mut guilds: HashMap<u64, EntityState> = HashMap::new();
    for (key, value) in state {
        if let Some((id, k)) = key.split_once('/')
            && let Ok(id) = id.parse()
        {
            guilds.entry(id).or_default().insert(k.to_owned(), value);
        }
    }
    guilds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_state_splits_by_guild() {
        let state: EntityState = [
            (guild_key(7, "guild"), b"a".to_vec()),
            (guild_key(7, "applied"), b"2".to_vec()),
            (guild_key(4103, "applied"), b"1".to_vec()),
            (guild_key(7, "x/y"), b"z".to_vec()),
        ]
        .into_iter()
        .collect();
        let guilds = split_guilds(state);
        assert_eq!(guilds.len(), 2);
        assert_eq!(guilds[&7].get("x/y").map(Vec::as_slice), Some(&b"z"[..]));
        assert_eq!(guilds[&7].len(), 3);
        assert_eq!(guilds[&4103].get("applied").map(Vec::as_slice), Some(&b"1"[..]));
    }
}
