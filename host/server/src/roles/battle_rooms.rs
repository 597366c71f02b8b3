//! The battle host: rooms on a fixed-rate tick loop, on a thread of their own. Rooms keep
//! their state in guest memory, so each room owns its instance; the thread owns the rooms.

use crate::mechanics::logic::{CLIENT_FRAME, emit_logs, fresh_env, outbound};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use warren_bus::{Address, Bus, Outbound};
use warren_runtime::{Battle, CallError, Effects, RoleModule, Room, RoomStatus};

/// What the tick thread is asked to do.
enum Command {
    Create { setup: Vec<u8>, reply: oneshot::Sender<Result<u64, CallError>> },
    Input { room: u64, player: u64, input: Vec<u8>, reply: oneshot::Sender<Result<Vec<String>, RoomError>> },
}

/// Why a room did not take an input.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// No such room (never made, or finished).
    #[error("no battle room {0}: it has finished or never existed")]
    NoRoom(u64),
    /// The room has taken all the inputs it takes before its next tick.
    #[error("too many inputs this tick: wait for the next one")]
    Flooded,
    /// The room's logic refused or failed.
    #[error("{0}")]
    Call(CallError),
}

/// Handle to the battle host's tick thread.
#[derive(Clone)]
pub struct BattleHost {
    commands: std_mpsc::Sender<Command>,
}

impl BattleHost {
    /// Starts the tick thread at `tick` per step; room output goes to the bus.
    pub fn start(role: Arc<RoleModule<Battle>>, bus: Bus, tick: Duration) -> BattleHost {
        let (commands, inbox) = std_mpsc::channel();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<Outbound>>();
        std::thread::Builder::new()
            .name("warren-battle-ticks".into())
            .spawn(move || tick_loop(role, inbox, out_tx, tick))
            .expect("spawn the battle thread");
        // Room output (frames for players) leaves through the bus.
        tokio::spawn(async move {
            while let Some(batch) = out_rx.recv().await {
                for msg in batch {
                    if let Err(e) = bus.send(msg).await {
                        tracing::error!(error = %e, "battle output not delivered");
                    }
                }
            }
        });
        BattleHost { commands }
    }

    /// Creates a room from `setup`; returns its id.
    pub async fn create(&self, setup: Vec<u8>) -> Result<u64, CallError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Create { setup, reply })
            .map_err(|_| CallError::Instantiate("the battle host has stopped".into()))?;
        answer.await.map_err(|_| CallError::Instantiate("the battle host has stopped".into()))?
    }

    /// Hands a player's input to a room; returns the frames the room replied.
    pub async fn input(&self, room: u64, player: u64, input: Vec<u8>) -> Result<Vec<String>, RoomError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || RoomError::NoRoom(room);
        self.commands.send(Command::Input { room, player, input, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Most inputs a room takes between two ticks (they are journaled until the tick).
const MAX_INPUTS_PER_TICK: usize = 64;
/// Ticks in a row a room may fail before it is closed.
const MAX_FAILED_TICKS: u32 = 20;

/// A room on the tick thread.
struct LiveRoom {
    room: Room,
    /// The next tick's number: advanced only by a tick that succeeded.
    tick: u64,
    /// Inputs taken since the last tick.
    inputs: usize,
    /// Ticks failed in a row.
    failures: u32,
    /// The players in the room (one live room per player).
    players: Vec<u64>,
}

fn players_of(setup: &[u8]) -> Vec<u64> {
    serde_json::from_slice::<serde_json::Value>(setup)
        .ok()
        .and_then(|v| v.get("players")?.as_array().map(|a| a.iter().filter_map(|p| p.as_u64()).collect()))
        .unwrap_or_default()
}

fn tick_loop(
    role: Arc<RoleModule<Battle>>,
    inbox: std_mpsc::Receiver<Command>,
    out: mpsc::UnboundedSender<Vec<Outbound>>,
    tick: Duration,
) {
    let mut rooms: BTreeMap<u64, LiveRoom> = BTreeMap::new();
    let mut next_id = 1u64;
    let mut next_tick = Instant::now() + tick;
    let emit = |room: u64, effects: &Effects| {
        let from = Address::Battle(room);
        emit_logs(&from, effects);
        let _ = out.send(outbound(&from, effects));
    };
    let tell_players = |room: u64, players: &[u64], frame: serde_json::Value| {
        let batch = players
            .iter()
            .map(|p| Outbound {
                to: Address::Player(*p),
                sender: Some(Address::Battle(room)),
                kind: CLIENT_FRAME.to_owned(),
                body: frame.to_string().into_bytes(),
            })
            .collect();
        let _ = out.send(batch);
    };
    loop {
        match inbox.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(Command::Create { setup, reply }) => {
                let players = players_of(&setup);
                // One live room per player: a new battle ends the player's old one.
                let stale: Vec<u64> = rooms
                    .iter()
                    .filter(|(_, r)| r.players.iter().any(|p| players.contains(p)))
                    .map(|(id, _)| *id)
                    .collect();
                for id in stale {
                    if let Some(old) = rooms.remove(&id) {
                        tell_players(
                            id,
                            &old.players,
                            serde_json::json!({"type": "battle.closed", "room": id, "reason": "a new battle started"}),
                        );
                    }
                }
                let id = next_id;
                next_id += 1;
                let made = Room::create(role.clone(), id, &setup, fresh_env()).map(|(room, effects)| {
                    emit(id, &effects);
                    rooms.insert(id, LiveRoom { room, tick: 0, inputs: 0, failures: 0, players });
                    id
                });
                let _ = reply.send(made);
            }
            Ok(Command::Input { room, player, input, reply }) => {
                let result = match rooms.get_mut(&room) {
                    None => Err(RoomError::NoRoom(room)),
                    Some(r) if r.inputs >= MAX_INPUTS_PER_TICK => Err(RoomError::Flooded),
                    Some(r) => {
                        r.inputs += 1;
                        r.room.input(player, &input, fresh_env()).map_err(RoomError::Call).map(|fx| {
                            emit(room, &fx);
                            fx.replies.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()
                        })
                    }
                };
                let _ = reply.send(result);
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() < next_tick {
            continue;
        }
        rooms.retain(|id, r| {
            r.inputs = 0;
            match r.room.tick(r.tick, fresh_env()) {
                Ok((status, effects)) => {
                    r.tick += 1;
                    r.failures = 0;
                    emit(*id, &effects);
                    status == RoomStatus::Running
                }
                Err(e) => {
                    // The room is as it was before the tick; it tries the same tick again.
                    r.failures += 1;
                    tracing::warn!(room = id, error = %e, failures = r.failures, "tick failed");
                    if r.failures < MAX_FAILED_TICKS {
                        return true;
                    }
                    tracing::error!(room = id, "room closed: its ticks keep failing");
                    let reason = format!("the battle failed: {}", e.cause());
                    tell_players(
                        *id,
                        &r.players,
                        serde_json::json!({"type": "battle.closed", "room": id, "reason": reason}),
                    );
                    false
                }
            }
        });
        next_tick += tick;
        // Behind by more than a tick (a stalled machine): skip, don't burst.
        if next_tick < Instant::now() {
            next_tick = Instant::now() + tick;
        }
    }
}
