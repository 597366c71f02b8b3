//! The players a baseapp holds: the sessions' shared host, one session per player at a
//! time on this host (a newer login ends the older one and waits for it), and the
//! player's lease across hosts (a `$kick` to the holder, or a take-over from a holder that
//! is no longer a live baseapp).

use crate::mechanics::auth::Auth;
use crate::mechanics::auth::kick::Kick;
use crate::mechanics::auth::{AuthError, Identity};
use crate::mechanics::doorbell::Doorbells;
use crate::mechanics::lease::Held;
use crate::mechanics::logic::LogicPool;
use crate::mechanics::net::Door;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use warren_bus::{Address, Bus};
use warren_runtime::Baseapp;

/// What a baseapp's sessions share.
pub struct PlayerHost {
    /// The message center.
    pub bus: Bus,
    /// The player logic.
    pub logic: Arc<LogicPool<Baseapp>>,
    /// Per player here: the lock a session holds while it owns the player, and the way to
    /// end that session when the player logs in again.
    pub sessions: Mutex<HashMap<u64, PlayerSlot>>,
    /// This host's name: the holder of its players' leases.
    pub holder: String,
    /// Wakes sessions when their queue has news.
    pub bells: Arc<Doorbells>,
    /// Lease time of a player.
    pub lease_ttl: Duration,
    /// Set when the host is stopping: every session ends.
    pub closing: watch::Sender<bool>,
    /// Client sockets open, those closing included: a stopping host waits for them, so
    /// every socket gets its last frames and its close handshake.
    pub(super) sockets: AtomicUsize,
    /// The host's door: the bounds of every client socket.
    pub net: Arc<Door>,
    /// Who may play as whom: accounts and their tokens.
    pub auth: Arc<Auth>,
}

impl PlayerHost {
    /// A baseapp's session host.
    pub fn new(
        bus: Bus,
        logic: Arc<LogicPool<Baseapp>>,
        holder: String,
        bells: Arc<Doorbells>,
        lease_ttl: Duration,
        net: Arc<Door>,
        auth: Arc<Auth>,
    ) -> PlayerHost {
        PlayerHost {
            bus,
            logic,
            sessions: Mutex::default(),
            holder,
            bells,
            lease_ttl,
            closing: watch::channel(false).0,
            sockets: AtomicUsize::new(0),
            net,
            auth,
        }
    }

    /// How many sessions are open.
    pub fn open_sessions(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// How many client sockets are open (sessions, logins, sockets closing).
    pub fn open_sockets(&self) -> usize {
        self.sockets.load(Ordering::Acquire)
    }
}

/// Counts a socket open while it lives.
pub(super) struct SocketCount<'h>(&'h AtomicUsize);

impl<'h> SocketCount<'h> {
    pub(super) fn new(n: &'h AtomicUsize) -> SocketCount<'h> {
        n.fetch_add(1, Ordering::AcqRel);
        SocketCount(n)
    }
}

impl Drop for SocketCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A player's ownership on this host.
#[derive(Default)]
pub struct PlayerSlot {
    /// Held by the session that owns the player; the next session waits for it, so two
    /// sessions never hold the player's state at once.
    owner: Arc<tokio::sync::Mutex<()>>,
    /// The newest session's id and the sender that ends it.
    newest: Option<(u64, oneshot::Sender<()>)>,
}

/// What came of taking a player's lease ([`take_player`]).
pub(super) enum Taken {
    /// Held: the player's queue is this session's.
    Held(Held),
    /// Another host's session did not let go in time.
    Busy,
    /// The account logged out everywhere after the session's token was checked.
    Revoked,
}

/// Takes `identity`'s player's lease for this host. If another host holds it, asks that
/// session to end (a `$kick` naming its token) and waits for the lease — taken over at
/// once from a holder that is no longer a live baseapp, else at most a lease time and a
/// bit, after which the other host must be gone or stuck. Before each kick, and once the
/// lease is held, the account's token generation is read again: a session let in by a
/// token revoked since pushes no one out, and does not keep the player.
pub(super) async fn take_player(host: &PlayerHost, identity: &Identity) -> Result<Taken, AuthError> {
    let player = identity.player;
    let owner = Address::Player(player);
    let deadline = tokio::time::Instant::now() + host.lease_ttl + Duration::from_secs(2);
    let mut kicked = None;
    loop {
        // Only baseapps hold players' leases.
        let members = host.bus.members(super::ROLE.name()).await?;
        if let Some(held) =
            Held::acquire_or_take_over(&host.bus, &owner, &host.holder, host.lease_ttl, &members).await?
        {
            // Held, the player's queue is this session's: a logout everywhere since the
            // last look either finds the session there or shows in the generation now.
            return match host.auth.still_current(identity).await {
                Ok(true) => Ok(Taken::Held(held)),
                not => {
                    held.release(&host.bus).await;
                    not.map(|_| Taken::Revoked)
                }
            };
        }
        if let Some((_, token)) = host.bus.lease_holder(&owner).await?
            && kicked != Some(token)
        {
            if !host.auth.still_current(identity).await? {
                return Ok(Taken::Revoked);
            }
            host.bus.send(Kick::Lease(token).to(player)).await?;
            kicked = Some(token);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Taken::Busy);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes this the player's newest session here, ends the older one, and waits until the
/// older one has finished (logout and last commit included) before taking the player.
pub(super) async fn claim(
    host: &PlayerHost,
    player: u64,
) -> (u64, oneshot::Receiver<()>, tokio::sync::OwnedMutexGuard<()>) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (kick, kicked) = oneshot::channel();
    let owner = {
        let mut sessions = host.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let slot = sessions.entry(player).or_default();
        if let Some((_, older)) = slot.newest.replace((id, kick)) {
            let _ = older.send(());
        }
        slot.owner.clone()
    };
    (id, kicked, owner.lock_owned().await)
}

pub(super) fn release(host: &PlayerHost, player: u64, session_id: u64) {
    let mut sessions = host.sessions.lock().unwrap_or_else(|e| e.into_inner());
    // Only the newest session removes the slot: a newer one may be waiting on its lock.
    if sessions.get(&player).and_then(|s| s.newest.as_ref()).is_some_and(|(id, _)| *id == session_id) {
        sessions.remove(&player);
    }
}

/// A fresh random number (request keys and attempts of frames without a key).
pub(super) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
    );
    h.finish()
}
