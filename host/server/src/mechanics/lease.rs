//! Holding a lease: taken once, renewed in the background, and reported lost as soon as
//! it may be — a renewal refused, or none that succeeded for a whole ttl.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use warren_bus::{Address, Bus, BusError, Lease};

/// A lease this host holds.
pub struct Held {
    lease: Lease,
    lost: Arc<Lost>,
    renewer: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Lost {
    flag: AtomicBool,
    notify: Notify,
}

impl Held {
    /// Takes the lease on `owner` for `holder`; `None` while someone else holds it.
    pub async fn acquire(bus: &Bus, owner: &Address, holder: &str, ttl: Duration) -> Result<Option<Held>, BusError> {
        let Some(lease) = bus.acquire_lease(owner, holder, ttl).await? else { return Ok(None) };
        Ok(Some(Held::hold(bus, lease, ttl)))
    }

    /// Takes the lease on `owner`, or takes it over from its holder if that holder is not
    /// among the live `members` of its role: a host that died stops heartbeating within
    /// [`crate::mechanics::cluster::MEMBER_TTL`], and its entities need not wait for its
    /// leases to expire. The new lease's token fences off anything the old holder might
    /// still commit. `None` while a live holder has it.
    pub async fn acquire_or_take_over(
        bus: &Bus,
        owner: &Address,
        holder: &str,
        ttl: Duration,
        members: &[String],
    ) -> Result<Option<Held>, BusError> {
        if let Some(held) = Held::acquire(bus, owner, holder, ttl).await? {
            return Ok(Some(held));
        }
        let Some(current) = bus.lease_holder(owner).await? else { return Ok(None) };
        if current.0 == holder || members.contains(&current.0) {
            return Ok(None);
        }
        let Some(lease) = bus.take_over_lease(owner, holder, ttl, &current).await? else { return Ok(None) };
        tracing::info!(owner = %owner.tag(), from = %current.0, "lease taken over from a host that is gone");
        Ok(Some(Held::hold(bus, lease, ttl)))
    }

    fn hold(bus: &Bus, lease: Lease, ttl: Duration) -> Held {
        let lost = Arc::new(Lost::default());
        let renewer = tokio::spawn(renew(bus.clone(), lease.clone(), ttl, lost.clone()));
        Held { lease, lost, renewer }
    }

    /// The fencing token commits carry.
    pub fn token(&self) -> u64 {
        self.lease.token
    }

    /// Whether the lease may be lost.
    pub fn is_lost(&self) -> bool {
        self.lost.flag.load(Ordering::Acquire)
    }

    /// Resolves once the lease may be lost (cancel-safe).
    pub async fn lost(&self) {
        loop {
            let notified = self.lost.notify.notified();
            if self.is_lost() {
                return;
            }
            notified.await;
        }
    }

    /// Gives the lease up.
    pub async fn release(self, bus: &Bus) {
        self.renewer.abort();
        if let Err(e) = bus.release_lease(&self.lease).await {
            // It expires by itself within its ttl.
            tracing::warn!(owner = %self.lease.owner.tag(), error = %e, "lease not released; it will expire");
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew(bus: Bus, lease: Lease, ttl: Duration, lost: Arc<Lost>) {
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let verdict = match bus.renew_lease(&lease, ttl).await {
            Ok(true) => {
                last_ok = Instant::now();
                continue;
            }
            Ok(false) => "taken or expired",
            // Keep trying while it may still be ours.
            Err(_) if last_ok.elapsed() < ttl => continue,
            Err(_) => "not renewed for a whole ttl",
        };
        tracing::warn!(owner = %lease.owner.tag(), verdict, "lease lost");
        lost.flag.store(true, Ordering::Release);
        lost.notify.notify_waiters();
        return;
    }
}
