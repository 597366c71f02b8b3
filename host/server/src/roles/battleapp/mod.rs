//! `warren battleapp`: battle rooms on a tick loop, each owned by lease and reached only
//! through the bus — its queue brings its setup and its players' inputs, its results leave
//! as messages to the players' queues.
//!
//! - A room is made by whoever starts a battle ([`place_room`]: a baseapp): it takes an id,
//!   picks the least-loaded live battleapp from their reports, registers the room there,
//!   sends the setup to the room's queue and rings that battleapp's doorbell.
//! - The battleapp takes the room's lease and runs it ([`room`]); it reports its rooms and
//!   tick lag every second, which is what the next placement reads.
//! - Clients connect for the battle to the room's battleapp ([`socket`]) with a signed
//!   ticket naming the player and the room; the baseapp session stays open beside it.
//! - Rooms whose battleapp died or stopped are taken by another: every battleapp looks at
//!   the registry every second and takes the rooms whose battleapp is gone and whose lease
//!   is free, restoring each from its checkpoint and journal.

mod faults;
pub mod room;
pub mod socket;
pub mod upgrade;

use crate::config::HostConfig;
use crate::mechanics::auth::tokens::Keys;
use crate::mechanics::cluster::{Host, MEMBER_TTL, shutdown_signal};
use crate::mechanics::lease::Held;
use crate::mechanics::logic::LogicPool;
use crate::mechanics::owner::{OwnedQueue, occupy};
use crate::mechanics::ticket::Ticket;
use crate::role::Role;
use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use warren_bus::{Address, Bus, BusError, Outbound};
use warren_runtime::{Battle, RoleModule};

/// The role this host serves.
pub const ROLE: Role = Role::Battleapp;
/// The bus registry of live rooms: room id → the battleapp asked to run it.
pub const REGISTRY: &str = "battle";
/// How often a battleapp reports its load and looks for rooms without an owner.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Most messages a room takes from its queue in one read.
const BATCH: usize = 64;

/// What a battleapp's rooms and sockets share.
pub struct Battleapp {
    /// The cluster host: bus, name, doorbell.
    pub host: Arc<Host>,
    /// The battle module every room follows.
    pub module: Arc<RoleModule<Battle>>,
    /// The tick period of every room.
    pub tick: Duration,
    /// Ticks between two checkpoints of a room.
    pub checkpoint_ticks: u64,
    /// The URL clients reach this battleapp's battle socket at.
    pub url: String,
    /// The cluster's signing keys: tickets are signed and checked with them.
    pub keys: Keys,
    /// Rooms running here, by id.
    rooms: Mutex<HashMap<u64, Running>>,
    /// Battle sockets here: (room, player) → the socket's outgoing frames.
    sockets: Mutex<HashMap<(u64, u64), mpsc::UnboundedSender<String>>>,
    /// The largest tick lag since the last report, µs.
    lag_us: AtomicU64,
    /// How long each tick took: the tick, its frames, a checkpoint when one was due.
    tick_work: TickTimes,
    /// How long after its due time each tick's frames were out: the wait for the timer
    /// (tokio's has 1 ms steps) and for other rooms' ticks, then the work.
    tick_times: TickTimes,
}

/// A histogram of tick times: 50 µs buckets up to 10 ms, and one for anything later.
pub struct TickTimes {
    buckets: Vec<AtomicU64>,
}

/// The width of one [`TickTimes`] bucket, µs.
const TICK_BUCKET_US: u64 = 50;

impl TickTimes {
    fn new() -> TickTimes {
        TickTimes { buckets: (0..=200).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Counts one tick that took `us` from its due time to its frames being out.
    pub fn record(&self, us: u64) {
        let i = ((us / TICK_BUCKET_US) as usize).min(self.buckets.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets every tick counted so far.
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// Ticks counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The time within which a share `p` of the ticks were out, µs (a bucket's upper
    /// bound; `u64::MAX` past the last bucket); `None` before any tick.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = (total as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return Some(if i + 1 == counts.len() { u64::MAX } else { (i as u64 + 1) * TICK_BUCKET_US });
            }
        }
        Some(u64::MAX)
    }
}

/// A room running here.
struct Running {
    /// Set to hand the room over.
    drain: watch::Sender<bool>,
    /// The digest of the module the room runs on (a room may stay on an older one).
    module: String,
    /// Why it stays on an older module, if it does.
    pinned: Option<String>,
}

/// What a battleapp says of itself in its reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Load {
    /// Rooms running.
    pub rooms: usize,
    /// The largest tick lag in the last second, ms.
    pub tick_lag_ms: f64,
    /// Where clients connect for a battle.
    pub url: String,
}

impl Battleapp {
    /// A battleapp on `host`, serving `module`, its socket at `url`.
    pub async fn new(
        host: Arc<Host>,
        module: Arc<RoleModule<Battle>>,
        tick: Duration,
        checkpoint_ticks: u64,
        url: String,
    ) -> anyhow::Result<Arc<Battleapp>> {
        let keys = host.keys()?;
        Ok(Arc::new(Battleapp {
            host,
            module,
            tick,
            checkpoint_ticks,
            url,
            keys,
            rooms: Mutex::default(),
            sockets: Mutex::default(),
            lag_us: AtomicU64::new(0),
            tick_work: TickTimes::new(),
            tick_times: TickTimes::new(),
        }))
    }

    /// How many rooms run here.
    pub fn room_count(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Records the module room `id` runs on now, and why it is not the current one.
    fn note_module(&self, id: u64, digest: &str, pinned: Option<String>) {
        if let Some(r) = self.rooms.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&id) {
            digest.clone_into(&mut r.module);
            r.pinned = pinned;
        }
    }

    /// What this battleapp serves: the battle module its new rooms get, the module of each
    /// running room, how many rooms run on each module, and the rooms pinned to an older
    /// one with why (its restore on the new module failed):
    /// `{"serving": {"battle": D}, "refused": {..}, "rooms": {"5": D}, "rooms_by_module": {D: 1}, "pinned": {"5": why}}`.
    pub fn modules(&self) -> serde_json::Value {
        let running = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let mut rooms = serde_json::Map::new();
        let mut by_module = std::collections::BTreeMap::<&str, u64>::new();
        let mut pinned = serde_json::Map::new();
        for (id, r) in running.iter() {
            rooms.insert(id.to_string(), r.module.clone().into());
            if !r.module.is_empty() {
                *by_module.entry(&r.module).or_default() += 1;
            }
            if let Some(why) = &r.pinned {
                pinned.insert(id.to_string(), why.clone().into());
            }
        }
        serde_json::json!({
            "serving": {"battle": self.module.current().digest()},
            "refused": self.host.refusals.snapshot(),
            "rooms": rooms,
            "rooms_by_module": by_module,
            "pinned": pinned,
        })
    }

    /// How long ticks took, from their due time to their frames being out.
    pub fn tick_times(&self) -> &TickTimes {
        &self.tick_times
    }

    /// How long ticks took to play, checkpoint and send.
    pub fn tick_work(&self) -> &TickTimes {
        &self.tick_work
    }

    /// Hears frames for `player` of `room` as a battle socket here would (a bot client, a
    /// benchmark): the room's frames for that player come on the receiver.
    pub fn listen(&self, room: u64, player: u64) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.sockets.lock().unwrap_or_else(|e| e.into_inner()).insert((room, player), tx);
        rx
    }

    fn note_lag(&self, late_us: u64) {
        self.lag_us.fetch_max(late_us, Ordering::Relaxed);
    }

    /// Sends a frame to a player of `room`: on their battle socket here if they have one,
    /// else through their queue (their baseapp session forwards it).
    pub async fn to_player(&self, room: u64, player: u64, frame: String) {
        let local = self.sockets.lock().unwrap_or_else(|e| e.into_inner()).get(&(room, player)).cloned();
        let frame = match local {
            Some(tx) => match tx.send(frame) {
                Ok(()) => return,
                // The socket just closed: the frame goes the other way.
                Err(e) => e.0,
            },
            None => frame,
        };
        self.to_player_queue(room, player, frame).await;
    }

    /// Sends a frame to a player through their queue.
    async fn to_player_queue(&self, room: u64, player: u64, frame: String) {
        let msg = Outbound {
            to: Address::Player(player),
            sender: Some(Address::Battle(room)),
            kind: crate::mechanics::logic::CLIENT_FRAME.to_owned(),
            body: frame.into_bytes(),
            hops: 0,
        };
        if let Err(e) = self.host.bus.send(msg).await {
            tracing::debug!(room, player, error = %e, "battle frame not delivered");
        }
    }

    /// Takes room `id` if its lease is free, and runs it.
    async fn take(self: &Arc<Self>, id: u64) {
        if self.rooms.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id) {
            return;
        }
        let owner = Address::Battle(id);
        let held = match Held::acquire(&self.host.bus, &owner, &self.host.instance, self.host.lease_ttl).await {
            Ok(Some(held)) => held,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(room = id, error = %e, "cannot take the room's lease yet");
                return;
            }
        };
        let (drain, drained) = watch::channel(false);
        {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            if rooms.contains_key(&id) {
                return;
            }
            rooms.insert(id, Running { drain, module: String::new(), pinned: None });
        }
        let app = self.clone();
        tokio::spawn(async move {
            // Rooms run on instances of their own (state in guest memory): the queue's pool of
            // instances for stateless handlers stays empty.
            let pool = LogicPool::new(app.module.clone(), app.host.sandbox.clone());
            let mut q = OwnedQueue::new(app.host.bus.clone(), owner, held, pool, &app.host.bells, BATCH);
            let mut room = room::RoomOwner::new(app.clone(), id, drained);
            let resumed = loop {
                match room.resume(&mut q).await {
                    Ok(r) => break r,
                    Err(e) if q.held().is_lost() => {
                        tracing::warn!(room = id, error = %e, "room lost before it resumed");
                        break false;
                    }
                    Err(e) => {
                        tracing::warn!(room = id, error = %e, "cannot read the room; trying again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            if resumed {
                let ended = occupy(&mut q, &mut room).await;
                tracing::debug!(room = id, ?ended, "room left this battleapp");
            } else {
                // Over already: only its registration may be left.
                let _ = app.host.bus.unregister(REGISTRY, id).await;
            }
            q.release().await;
            app.rooms.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
    }

    /// Looks for rooms that need an owner: those registered here, and those whose
    /// battleapp is no longer a member, with no lease holder.
    async fn adopt_orphans(self: &Arc<Self>) -> Result<(), BusError> {
        let bus = &self.host.bus;
        let members = bus.members(ROLE.name()).await?;
        for (id, assigned) in bus.registered(REGISTRY).await? {
            let running_here = self.rooms.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id);
            // Placed here but not running yet, or placed on a battleapp that is gone.
            let wanted = assigned == self.host.instance || !members.contains(&assigned);
            if running_here || !wanted {
                continue;
            }
            if bus.lease_holder(&Address::Battle(id)).await?.is_none() {
                self.take(id).await;
            }
        }
        Ok(())
    }

    /// Reports this battleapp's load (also its heartbeat).
    async fn report(&self) -> Result<(), BusError> {
        let lag_us = self.lag_us.swap(0, Ordering::Relaxed);
        let load = Load { rooms: self.room_count(), tick_lag_ms: lag_us as f64 / 1000.0, url: self.url.clone() };
        let body = serde_json::to_vec(&load).expect("a load serializes");
        self.host.bus.report(ROLE.name(), &self.host.instance, &body, MEMBER_TTL).await
    }

    /// Runs the battleapp's rooms until `stop` completes, then hands every room over:
    /// leaves the membership, checkpoints and releases each room.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let mut unclaimed = self.host.bells.unclaimed();
        let mut look = tokio::time::interval(LOOK_EVERY);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                Some(queue) = unclaimed.recv() => {
                    if let Address::Battle(id) = queue {
                        self.take(id).await;
                    }
                }
                _ = look.tick() => {
                    if let Err(e) = self.report().await {
                        tracing::warn!(error = %e, "load not reported");
                    }
                    if let Err(e) = self.adopt_orphans().await {
                        tracing::warn!(error = %e, "cannot look for rooms without an owner");
                    }
                }
            }
        }
        self.host.leave(ROLE.name()).await;
        let drains: Vec<watch::Sender<bool>> =
            self.rooms.lock().unwrap_or_else(|e| e.into_inner()).values().map(|r| r.drain.clone()).collect();
        for d in &drains {
            let _ = d.send(true);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.room_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(rooms = drains.len(), left = self.room_count(), "every room handed over");
    }
}

/// Where a new room went.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The room's id.
    pub room: u64,
    /// The URL of the battleapp's battle socket.
    pub url: String,
    /// A ticket for the player who started it.
    pub ticket: String,
}

/// Why a room could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// No battleapp reported in the last seconds.
    #[error("no battle server is running; try again later")]
    NoBattleapp,
    /// The message center failed (nothing was placed, or a room was registered that its
    /// battleapp will find without a setup and close).
    #[error("the battle could not be set up: {0}")]
    Bus(#[from] BusError),
}

/// Makes a room for `setup` on the least-loaded live battleapp, for `player`: takes an id,
/// sends the setup to the room's queue, registers the room and rings the battleapp.
pub async fn place_room(bus: &Bus, keys: &Keys, player: u64, setup: Vec<u8>) -> Result<Placed, PlaceError> {
    let reports = bus.reports(ROLE.name()).await?;
    let (holder, load) = reports
        .into_iter()
        .filter_map(|(name, body)| Some((name, serde_json::from_slice::<Load>(&body).ok()?)))
        .min_by(|(an, a), (bn, b)| {
            (a.rooms, a.tick_lag_ms, an).partial_cmp(&(b.rooms, b.tick_lag_ms, bn)).expect("finite")
        })
        .ok_or(PlaceError::NoBattleapp)?;
    let room = bus.next_id(REGISTRY).await?;
    let create = Outbound {
        to: Address::Battle(room),
        sender: Some(Address::Player(player)),
        kind: room::CREATE.into(),
        body: setup,
        hops: 0,
    };
    bus.send(create).await?;
    bus.register(REGISTRY, room, &holder).await?;
    bus.ring(&holder, &Address::Battle(room)).await?;
    let now = crate::mechanics::logic::fresh_env().now_ms;
    let ticket = Ticket::new(player, room, now).sign(keys);
    Ok(Placed { room, url: load.url, ticket })
}

/// Runs `warren battleapp` on `listen` until Ctrl-C or SIGTERM.
pub async fn main(host: Host, config: &HostConfig) -> anyhow::Result<()> {
    let host = Arc::new(host);
    let module = host.role::<Battle>().await?;
    let listen = config.battleapp.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let url = config.battleapp.public_url(addr);
    let tick = Duration::from_secs(1) / config.battle.tick_hz;
    let checkpoint_ticks = u64::from(config.battleapp.checkpoint_ticks);
    let app = Battleapp::new(host.clone(), module, tick, checkpoint_ticks, url.clone()).await?;
    let router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "Warren battleapp. Join a battle on the WebSocket at /ws.\n" }))
        .route("/ws", axum::routing::get(socket::upgrade))
        .route(
            "/modules",
            axum::routing::get(|axum::extract::State(app): axum::extract::State<Arc<Battleapp>>| async move {
                axum::Json(app.modules())
            }),
        )
        .with_state(app.clone());
    println!("warren battleapp {} listening on {addr}", host.instance);
    tracing::info!(%addr, %url, "battleapp serving");
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let rooms = tokio::spawn(app.clone().run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let served = crate::mechanics::net::serve(listener, router, host.net.clone(), async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await;
    rooms.await?;
    served.context("server failed")
}
