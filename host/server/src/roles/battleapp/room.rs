//! One battle room on its battleapp: the room's side of its owned queue (`{b:<id>}`).
//!
//! Everything that shapes the battle travels through the room's queue and is journaled
//! in the room's state before it counts: `$create` (the setup) and `$input` (a player's
//! input). An input is committed as `in/<tick>/<n>` — the tick before which it is applied —
//! with its ack, and only then applied; every `checkpoint_ticks` ticks, and at the result,
//! the room's snapshot and next tick replace the journal in one commit, the result
//! messages going out with it. A tick's time and randomness derive from the room's seed
//! and the tick's number, so a battleapp that takes the room over — restore the snapshot,
//! replay the journal — plays exactly the ticks the players already saw.

use super::Battleapp;
use super::faults::TickFaults;
use super::upgrade::{FINISHED_KEY, SNAPSHOT_KEY};
use crate::mechanics::logic::fresh_env;
use crate::mechanics::owner::{Control, Occupant, OwnedQueue, Routed, Settled, Target};
use crate::mechanics::ticket::Ticket;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;
use warren_bus::{Address, BusError, Delivery, EntityState};
use warren_runtime::{Battle, CallEnv, CallError, Effects, Outgoing, Room, RoomStatus};

/// The message kind that creates a room; its body is the setup.
pub const CREATE: &str = "$create";
/// The message kind of a player's input; its sender is the player, its body the frame.
pub const INPUT: &str = "$input";
/// Ticks added to the bound of how far a dead owner may have played (its clock's last
/// reading and the time since): covers a skew of clocks between battleapps.
const CLOCK_MARGIN_TICKS: u64 = 2;

/// A journaled input, as stored under `in/<tick>/<n>`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Journaled {
    player: u64,
    frame: String,
    now_ms: u64,
    seed: u64,
}

/// A room owned by this battleapp.
pub struct RoomOwner {
    app: Arc<Battleapp>,
    id: u64,
    /// The room, once created or restored.
    room: Option<Room>,
    /// The next tick to play.
    next_tick: u64,
    /// The room's seed and start, from its `$create`: each tick's randomness and time.
    seed: u64,
    start_ms: u64,
    /// The players (from the setup): who hears of a move.
    players: Vec<u64>,
    /// Journal keys written since the last checkpoint.
    journaled: Vec<String>,
    /// The number of the next journal entry: entries of one tick sort in the order taken.
    seq: u64,
    /// Ticks since the last checkpoint.
    since_checkpoint: u64,
    /// Result messages of the final tick, until their checkpoint is committed.
    final_sends: Option<Vec<Outgoing>>,
    /// A checkpoint being committed apart from the ticks, and how many of `journaled`
    /// it covers (they are dropped from it when it lands).
    storing: Option<(usize, tokio::task::JoinHandle<Result<(), BusError>>)>,
    /// The room's failing ticks, counted and logged once each fault.
    faults: TickFaults,
    /// The room's ticks.
    ticks: tokio::time::Interval,
    /// Set when the room must be handed over (the battleapp is stopping).
    drain: watch::Receiver<bool>,
    /// Done: the room finished (or failed for good) and its end is committed.
    done: bool,
    /// The module digest last recorded for the room (see [`Battleapp::modules`]).
    module: String,
    /// Why the room stays on an older module, as last recorded.
    pinned: Option<String>,
}

/// The room's own events.
pub enum RoomEvent {
    /// Time for the next tick; how late the timer fired, in µs.
    Tick(u64),
    /// The battleapp is stopping.
    Drain,
}

/// The tick of a journal key (`in/<tick>/<n>`).
fn journal_tick(key: &str) -> Option<u64> {
    key.strip_prefix("in/")?.split('/').next()?.parse().ok()
}

fn state_u64(state: &EntityState, key: &str) -> Option<u64> {
    state.get(key).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
}

fn players_of(setup: &[u8]) -> Vec<u64> {
    serde_json::from_slice::<serde_json::Value>(setup)
        .ok()
        .and_then(|v| v.get("players")?.as_array().map(|a| a.iter().filter_map(|p| p.as_u64()).collect()))
        .unwrap_or_default()
}

/// Mixes the room's seed with a tick number (splitmix64), so each tick has its own.
fn tick_seed(seed: u64, tick: u64) -> u64 {
    let mut z = seed ^ tick.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RoomOwner {
    /// The owner of room `id`, before its state is read.
    pub fn new(app: Arc<Battleapp>, id: u64, drain: watch::Receiver<bool>) -> RoomOwner {
        let mut ticks = tokio::time::interval(app.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        RoomOwner {
            app,
            id,
            room: None,
            next_tick: 0,
            seed: 0,
            start_ms: 0,
            players: Vec::new(),
            journaled: Vec::new(),
            seq: 0,
            since_checkpoint: 0,
            final_sends: None,
            storing: None,
            faults: TickFaults::default(),
            ticks,
            drain,
            done: false,
            module: String::new(),
            pinned: None,
        }
    }

    /// Tells the battleapp which module the room runs on now, and why not the current
    /// one, if that changed (see [`Battleapp::modules`]).
    fn note_module(&mut self) {
        let Some(room) = &self.room else { return };
        let digest = room.module_digest();
        if digest != self.module || room.pinned() != self.pinned.as_deref() {
            digest.clone_into(&mut self.module);
            self.pinned = room.pinned().map(str::to_owned);
            self.app.note_module(self.id, digest, self.pinned.clone());
        }
    }

    fn me(&self) -> Target {
        Target::whole(Address::Battle(self.id))
    }

    fn tick_env(&self, tick: u64) -> CallEnv {
        CallEnv { now_ms: self.start_ms + tick * self.app.tick.as_millis() as u64, seed: tick_seed(self.seed, tick) }
    }

    /// Brings the room back from its state, if it was created before: restores the
    /// checkpoint and replays the journal. `Ok(false)` when the room is over already.
    pub async fn resume(&mut self, q: &mut OwnedQueue<Battle>) -> Result<bool, BusError> {
        let state = q.state().await?.clone();
        if state.contains_key(FINISHED_KEY) {
            return Ok(false);
        }
        let Some(snapshot) = state.get(SNAPSHOT_KEY) else { return Ok(true) };
        self.seed = state_u64(&state, "seed").unwrap_or(0);
        self.start_ms = state_u64(&state, "start_ms").unwrap_or(0);
        self.next_tick = state_u64(&state, "tick").unwrap_or(0);
        self.players = state.get("setup").map(|s| players_of(s)).unwrap_or_default();
        let journal: Vec<(String, u64, Journaled)> = state
            .iter()
            .filter_map(|(k, v)| {
                let tick = journal_tick(k)?;
                Some((k.clone(), tick, serde_json::from_slice(v).ok()?))
            })
            .collect();
        let (module, id, snapshot) = (self.app.module.clone(), self.id, snapshot.clone());
        let restored = tokio::task::spawn_blocking(move || Room::restore(module, id, &snapshot)).await;
        let mut room = match restored {
            Ok(Ok(room)) => room,
            Ok(Err(e)) => {
                tracing::error!(room = self.id, error = %e, "room cannot be restored; it is closed");
                self.close(q, &format!("the battle could not be moved: {}", e.cause())).await;
                return Ok(false);
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        // Replay: the same inputs before the same ticks, each tick with its own time and
        // seed. What the players saw already is not sent again.
        for (key, tick, entry) in journal {
            while self.next_tick < tick {
                let env = self.tick_env(self.next_tick);
                if room.tick(self.next_tick, env).is_ok() {
                    self.next_tick += 1;
                }
            }
            let _ =
                room.input(entry.player, entry.frame.as_bytes(), CallEnv { now_ms: entry.now_ms, seed: entry.seed });
            let n: u64 = key.rsplit('/').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            self.seq = self.seq.max(n + 1);
            self.journaled.push(key);
        }
        // The ticks the last owner played after its last journaled input are not stored.
        // Unless it handed the room over (and stopped exactly at its checkpoint), it may
        // have played — and the players seen — ticks up to its clock's bound: play them
        // again, silently, the same (no input can reach them: inputs read from now on go
        // to later ticks). A tick shown to players is never shown with other content.
        let played_to = match state.get("clock").map(|c| String::from_utf8_lossy(c).into_owned()) {
            Some(clock) => match clock.split(' ').map(str::parse::<u64>).collect::<Result<Vec<_>, _>>().as_deref() {
                Ok([tick, at_ms, 0]) => {
                    let period = self.app.tick.as_millis().max(1) as u64;
                    let now = fresh_env().now_ms;
                    tick + now.saturating_sub(*at_ms) / period + CLOCK_MARGIN_TICKS
                }
                _ => self.next_tick,
            },
            None => self.next_tick,
        };
        let caught_up = self.next_tick;
        let mut ended = None;
        while self.next_tick < played_to && ended.is_none() {
            let env = self.tick_env(self.next_tick);
            match room.tick(self.next_tick, env) {
                Ok((status, effects)) => {
                    self.next_tick += 1;
                    if status == RoomStatus::Finished {
                        // The battle ended meanwhile: its end is shown (below), its result
                        // committed at the first tick here.
                        self.final_sends = Some(effects.sends.clone());
                        ended = Some(effects);
                    }
                }
                Err(_) => break,
            }
        }
        tracing::info!(
            room = self.id,
            tick = self.next_tick,
            replayed = self.journaled.len(),
            caught_up = self.next_tick - caught_up,
            "room taken over"
        );
        self.room = Some(room);
        self.note_module();
        // Tell each player where the room is now, with a ticket for it.
        let now = fresh_env().now_ms;
        for &player in &self.players {
            let ticket = Ticket::new(player, self.id, now).sign(&self.app.keys);
            let frame = json!({"type": "battle.moved", "room": self.id, "url": self.app.url, "ticket": ticket});
            self.app.to_player_queue(self.id, player, frame.to_string()).await;
        }
        if let Some(effects) = ended {
            self.deliver(None, effects).await;
        }
        Ok(true)
    }

    /// `$create`: makes the room, and commits its first checkpoint with the message's ack.
    async fn create(&mut self, d: &Delivery, q: &mut OwnedQueue<Battle>) -> Routed {
        if self.room.is_some() {
            return Routed::Outcome(match q.ack(d.id.clone()).await {
                Ok(()) => Settled::Duplicate,
                Err(e) => q.fail(e),
            });
        }
        let setup = d.envelope.body.clone();
        self.seed = d.envelope.seed;
        self.start_ms = d.envelope.now_ms;
        let env = CallEnv { now_ms: self.start_ms, seed: self.seed };
        let (module, id, s) = (self.app.module.clone(), self.id, setup.clone());
        let made = tokio::task::spawn_blocking(move || Room::create(module, id, &s, env))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let (mut room, effects) = match made {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(room = self.id, error = %e, "room not created");
                self.done = true;
                let _ = self.app.host.bus.unregister(super::REGISTRY, self.id).await;
                return Routed::Misaddressed(format!("room {} not created: {e}", self.id));
            }
        };
        let writes = vec![
            ("setup".to_owned(), Some(setup.clone())),
            ("seed".to_owned(), Some(self.seed.to_string().into_bytes())),
            ("start_ms".to_owned(), Some(self.start_ms.to_string().into_bytes())),
            ("tick".to_owned(), Some(b"0".to_vec())),
            ("clock".to_owned(), Some(format!("0 {} 0", self.start_ms).into_bytes())),
            (SNAPSHOT_KEY.to_owned(), Some(room.checkpoint().map(<[u8]>::to_vec).unwrap_or_default())),
        ];
        if let Err(e) = q.commit_writes(&self.me(), writes, effects.sends.clone(), Some(d.id.clone())).await {
            return Routed::Outcome(q.fail(e));
        }
        self.players = players_of(&setup);
        self.room = Some(room);
        self.note_module();
        self.deliver(None, effects).await;
        Routed::Outcome(Settled::Done(Effects::default(), Default::default()))
    }

    /// `$input`: journals it before the next tick, then applies it.
    async fn input(&mut self, d: &Delivery, q: &mut OwnedQueue<Battle>) -> Routed {
        let Some(Address::Player(player)) = d.envelope.sender else {
            return Routed::Misaddressed("a room input comes from a player".into());
        };
        if self.room.is_none() || self.done || self.final_sends.is_some() {
            let reason = if self.room.is_none() { "the battle has not started" } else { "the battle is over" };
            self.app.to_player(self.id, player, crate::protocol::error(reason)).await;
            return Routed::Outcome(match q.ack(d.id.clone()).await {
                Ok(()) => Settled::Refused(reason.into()),
                Err(e) => q.fail(e),
            });
        }
        let frame = String::from_utf8_lossy(&d.envelope.body).into_owned();
        let entry = Journaled { player, frame, now_ms: d.envelope.now_ms, seed: d.envelope.seed };
        let key = format!("in/{:012}/{:012}", self.next_tick, self.seq);
        self.seq += 1;
        let value = serde_json::to_vec(&entry).expect("a journal entry serializes");
        if let Err(e) = q.commit_writes(&self.me(), vec![(key.clone(), Some(value))], vec![], Some(d.id.clone())).await
        {
            return Routed::Outcome(q.fail(e));
        }
        self.journaled.push(key);
        let env = CallEnv { now_ms: entry.now_ms, seed: entry.seed };
        let room = self.room.as_mut().expect("checked above");
        match room.input(player, entry.frame.as_bytes(), env) {
            Ok(effects) => self.deliver(Some(player), effects).await,
            Err(CallError::Rejected(reason)) => {
                self.app.to_player(self.id, player, crate::protocol::error(&reason)).await
            }
            Err(fault) => {
                let kind = crate::protocol::frame_type(entry.frame.as_bytes());
                tracing::warn!(
                    role = "battle",
                    module = %crate::mechanics::live::short(room.module_digest()),
                    handler = "input",
                    room = self.id,
                    player,
                    frame = %kind,
                    cause = fault.cause(),
                    error = %fault,
                    "room input failed"
                );
                let reason = format!("the server could not handle that ({})", fault.cause());
                self.app.to_player(self.id, player, crate::protocol::error(&reason)).await;
            }
        }
        Routed::Outcome(Settled::Done(Effects::default(), Default::default()))
    }

    /// Frames of a call: replies to `sender`, pushes to their players.
    async fn deliver(&self, sender: Option<u64>, effects: Effects) {
        crate::mechanics::logic::emit_logs(&Address::Battle(self.id), &effects);
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        };
        if let Some(player) = sender {
            for r in effects.replies {
                self.app.to_player(self.id, player, text(r)).await;
            }
        }
        for (player, frame) in effects.pushes {
            self.app.to_player(self.id, player, text(frame)).await;
        }
    }

    /// What became of the checkpoint being stored, if it is done (or, with `wait`, once
    /// it is): `Stop` if the lease turned out to be lost.
    async fn stored(&mut self, wait: bool) -> Control {
        let Some((covered, handle)) = self.storing.take() else { return Control::Continue };
        if !wait && !handle.is_finished() {
            self.storing = Some((covered, handle));
            return Control::Continue;
        }
        match handle.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())) {
            Ok(()) => {
                self.journaled.drain(..covered);
                Control::Continue
            }
            Err(BusError::StaleOwner { .. }) => Control::Stop,
            Err(e) => {
                // The journal keeps the inputs; the next tick tries again.
                tracing::warn!(room = self.id, error = %e, "checkpoint not stored");
                self.since_checkpoint = self.app.checkpoint_ticks;
                Control::Continue
            }
        }
    }

    /// Plays the next tick; checkpoints when due, and at the end.
    async fn tick(&mut self, q: &mut OwnedQueue<Battle>) -> Control {
        if self.stored(false).await == Control::Stop {
            return Control::Stop;
        }
        if self.final_sends.is_some() {
            // The end is played; its commit failed before: try again.
            return self.checkpoint(q).await;
        }
        let tick = self.next_tick;
        let env = self.tick_env(tick);
        let Some(room) = self.room.as_mut() else { return Control::Continue };
        match room.tick(tick, env) {
            Ok((status, mut effects)) => {
                self.note_module();
                self.faults.cleared();
                self.next_tick += 1;
                self.since_checkpoint += 1;
                let sends = std::mem::take(&mut effects.sends);
                self.deliver(None, effects).await;
                if status == RoomStatus::Finished {
                    self.final_sends = Some(sends);
                    return self.checkpoint(q).await;
                }
                if self.since_checkpoint >= self.app.checkpoint_ticks && self.storing.is_none() {
                    self.checkpoint_apart(q);
                }
                Control::Continue
            }
            Err(e) => {
                // The room is as it was before the tick; it tries the same tick again.
                let module = crate::mechanics::live::short(room.module_digest()).to_owned();
                if !self.faults.failed(self.id, &module, tick, &e) {
                    return Control::Continue;
                }
                self.close(q, &format!("the battle failed: {}", e.cause())).await;
                Control::Stop
            }
        }
    }

    /// The writes that replace the journal with the room's snapshot, or `None` if the
    /// snapshot failed (the journal stays).
    fn checkpoint_writes(&mut self) -> Option<Vec<(String, Option<Vec<u8>>)>> {
        let room = self.room.as_mut()?;
        // The snapshot holds everything applied so far, the inputs taken for the next tick
        // included: the journal is done with.
        let snapshot = match room.checkpoint() {
            Ok(snapshot) => snapshot.to_vec(),
            Err(e) => {
                tracing::warn!(room = self.id, error = %e, "snapshot failed; the journal stays");
                return None;
            }
        };
        let mut writes: Vec<(String, Option<Vec<u8>>)> = self.journaled.iter().map(|k| (k.clone(), None)).collect();
        writes.push((SNAPSHOT_KEY.into(), Some(snapshot)));
        writes.push(("tick".into(), Some(self.next_tick.to_string().into_bytes())));
        // When this tick was due here: a battleapp that takes the room over after this
        // one died bounds from it how far this one may have played. A hand-over (drain)
        // stops playing here, exactly.
        let handed_over = u8::from(*self.drain.borrow());
        writes.push((
            "clock".into(),
            Some(format!("{} {} {handed_over}", self.next_tick, fresh_env().now_ms).into_bytes()),
        ));
        Some(writes)
    }

    /// Stores a checkpoint apart from the ticks: the room plays on while Redis commits it,
    /// the journal covering the inputs until it lands (see [`RoomOwner::stored`]).
    fn checkpoint_apart(&mut self, q: &mut OwnedQueue<Battle>) {
        let Some(writes) = self.checkpoint_writes() else { return };
        self.since_checkpoint = 0;
        let commit = q.commit_apart(&self.me(), writes);
        self.storing = Some((self.journaled.len(), tokio::spawn(commit)));
    }

    /// Replaces the journal with the room's snapshot, waiting for it to be stored; with
    /// the result at the end. The ticks wait for this one: it is the room's last.
    async fn checkpoint(&mut self, q: &mut OwnedQueue<Battle>) -> Control {
        if self.stored(true).await == Control::Stop {
            return Control::Stop;
        }
        let Some(mut writes) = self.checkpoint_writes() else { return Control::Continue };
        let last = self.final_sends.is_some();
        if last {
            writes.push((FINISHED_KEY.into(), Some(b"1".to_vec())));
        }
        let sends = self.final_sends.clone().unwrap_or_default();
        match q.commit_writes(&self.me(), writes, sends, None).await {
            Ok(()) => {
                self.journaled.clear();
                self.since_checkpoint = 0;
                if last {
                    self.finish().await;
                    return Control::Stop;
                }
                Control::Continue
            }
            Err(BusError::StaleOwner { .. }) => Control::Stop,
            Err(e) => {
                // The journal keeps the inputs; the next tick tries again.
                tracing::warn!(room = self.id, error = %e, "checkpoint not stored");
                Control::Continue
            }
        }
    }

    /// Closes a room that cannot go on, telling its players, without a result.
    async fn close(&mut self, q: &mut OwnedQueue<Battle>, reason: &str) {
        // A checkpoint still being stored lands first, so it cannot land over the end.
        let _ = self.stored(true).await;
        let frame = json!({"type": "battle.closed", "room": self.id, "reason": reason}).to_string();
        for &p in &self.players.clone() {
            self.app.to_player(self.id, p, frame.clone()).await;
        }
        let writes = vec![(FINISHED_KEY.to_owned(), Some(b"1".to_vec()))];
        if let Err(e) = q.commit_writes(&self.me(), writes, vec![], None).await {
            tracing::warn!(room = self.id, error = %e, "room end not stored");
        }
        self.finish().await;
    }

    async fn finish(&mut self) {
        self.done = true;
        if let Err(e) = self.app.host.bus.unregister(super::REGISTRY, self.id).await {
            tracing::warn!(room = self.id, error = %e, "room not unregistered; the next owner will");
        }
        tracing::info!(room = self.id, ticks = self.next_tick, "room finished");
    }
}

impl Occupant<Battle> for RoomOwner {
    type Event = RoomEvent;

    async fn route(&mut self, d: &Delivery, q: &mut OwnedQueue<Battle>) -> Routed {
        match d.envelope.kind.as_str() {
            CREATE => self.create(d, q).await,
            INPUT => self.input(d, q).await,
            other => Routed::Misaddressed(format!("a room takes {CREATE} and {INPUT} messages, not `{other}`")),
        }
    }

    async fn settled(&mut self, _: &Delivery, _: Settled) {}

    async fn event(&mut self) -> RoomEvent {
        tokio::select! {
            at = self.ticks.tick() => RoomEvent::Tick(at.elapsed().as_micros() as u64),
            changed = self.drain.changed() => match changed {
                Ok(()) => RoomEvent::Drain,
                Err(_) => std::future::pending().await,
            },
        }
    }

    async fn on_event(&mut self, event: RoomEvent, q: &mut OwnedQueue<Battle>) -> Control {
        match event {
            RoomEvent::Tick(late_us) => {
                self.app.note_lag(late_us);
                let started = std::time::Instant::now();
                let control = self.tick(q).await;
                let work = started.elapsed().as_micros() as u64;
                self.app.tick_work.record(work);
                self.app.tick_times.record(late_us + work);
                control
            }
            RoomEvent::Drain => Control::Continue,
        }
    }

    async fn idle(&mut self, q: &mut OwnedQueue<Battle>) -> Control {
        if self.done {
            return Control::Stop;
        }
        if *self.drain.borrow() {
            // Hand over: what was played is stored, the next owner goes on from it.
            if self.room.is_some() && self.checkpoint(q).await == Control::Continue && !self.journaled.is_empty() {
                tracing::warn!(room = self.id, "handed over with its journal: the next owner replays it");
            }
            return Control::Stop;
        }
        Control::Continue
    }
}
