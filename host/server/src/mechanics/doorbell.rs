//! A host's doorbell: one task waits on the bus for news of every queue this host owns
//! and wakes the session or group worker that reads that queue. Owners read their queue
//! without blocking when woken (and now and then regardless, see [`SWEEP`]), so no read is
//! ever cancelled half-done and no host holds a blocked connection per queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use warren_bus::{Address, Bus};

/// How long one doorbell read waits.
const RING_WAIT: Duration = Duration::from_secs(1);
/// How often an owner looks at its queue even without a ring: a sender that died between
/// appending a message and ringing leaves that message unannounced for at most this long.
pub const SWEEP: Duration = Duration::from_secs(3);

/// Every how many sweeps an owner also takes back its queue's pending messages: those a
/// failed commit left (owners also do it at once then) or that an owner which lost its
/// lease without knowing took after the new owner had claimed the rest.
const CLAIM_EVERY: u32 = 10;

/// An owner's periodic look at its queue (see [`SWEEP`]).
pub struct Sweep {
    every: tokio::time::Interval,
    count: u32,
}

impl Sweep {
    /// The first tick comes one period from now.
    pub fn new() -> Sweep {
        let start = tokio::time::Instant::now() + SWEEP;
        let mut every = tokio::time::interval_at(start, SWEEP);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Sweep { every, count: 0 }
    }

    /// Resolves at the next sweep (cancel-safe); `true` when this sweep should also take
    /// back pending messages.
    pub async fn tick(&mut self) -> bool {
        self.every.tick().await;
        self.count = self.count.wrapping_add(1);
        self.count.is_multiple_of(CLAIM_EVERY)
    }
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep::new()
    }
}

/// The doorbell of one lease holder (a host instance).
pub struct Doorbells {
    waiting: Mutex<HashMap<Address, Arc<Notify>>>,
    /// Where news of a queue nobody here watches goes, if someone asked
    /// ([`Doorbells::unclaimed`]): a battleapp learns of a new room this way.
    unclaimed: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Address>>>,
}

/// A queue being watched; dropping it stops the watch.
pub struct Watch {
    bells: Arc<Doorbells>,
    queue: Address,
    notify: Arc<Notify>,
}

impl Doorbells {
    /// Starts listening for `holder`'s doorbell. The listening task ends when the returned
    /// value is dropped.
    pub fn start(bus: Bus, holder: String) -> Arc<Doorbells> {
        let bells = Arc::new(Doorbells { waiting: Mutex::new(HashMap::new()), unclaimed: Mutex::new(None) });
        tokio::spawn(listen(bus, holder, Arc::downgrade(&bells)));
        bells
    }

    /// Wakes whoever watches `queue` (a local message, or a test).
    pub fn ring(&self, queue: &Address) {
        if let Some(n) = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).get(queue) {
            n.notify_one();
            return;
        }
        if let Some(tx) = self.unclaimed.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(queue.clone());
        }
    }

    /// News of queues nobody on this host watches, from now on (the last caller gets it).
    pub fn unclaimed(&self) -> tokio::sync::mpsc::UnboundedReceiver<Address> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.unclaimed.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Watches `queue`: [`Watch::rung`] resolves after news of it.
    pub fn watch(self: &Arc<Self>, queue: Address) -> Watch {
        let notify = Arc::new(Notify::new());
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(queue.clone(), notify.clone());
        Watch { bells: self.clone(), queue, notify }
    }
}

impl Watch {
    /// Resolves when the queue had news since the last call (cancel-safe).
    pub async fn rung(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.bells.waiting.lock().unwrap_or_else(|e| e.into_inner());
        // A newer watch of the same queue (a new session) keeps its entry.
        if waiting.get(&self.queue).is_some_and(|n| Arc::ptr_eq(n, &self.notify)) {
            waiting.remove(&self.queue);
        }
    }
}

async fn listen(bus: Bus, holder: String, bells: Weak<Doorbells>) {
    let mut backoff = Duration::from_millis(100);
    while let Some(alive) = bells.upgrade() {
        drop(alive);
        match bus.doorbell(&holder, RING_WAIT).await {
            Ok(queues) => {
                backoff = Duration::from_millis(100);
                let Some(bells) = bells.upgrade() else { return };
                for q in &queues {
                    bells.ring(q);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "doorbell unavailable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
