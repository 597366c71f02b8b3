//! The battle host: rooms on a fixed-rate tick loop, on a thread of their own. Rooms keep
//! their state in guest memory, so each room owns its instance; the thread owns the rooms.

use crate::logic::{fresh_env, outbound};
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
    Input { room: u64, player: u64, input: Vec<u8>, reply: oneshot::Sender<Result<(), RoomError>> },
}

/// Why a room did not take an input.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// No such room (never made, or finished).
    #[error("no battle room {0}: it has finished or never existed")]
    NoRoom(u64),
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

    /// Hands a player's input to a room.
    pub async fn input(&self, room: u64, player: u64, input: Vec<u8>) -> Result<(), RoomError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || RoomError::NoRoom(room);
        self.commands.send(Command::Input { room, player, input, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn tick_loop(
    role: Arc<RoleModule<Battle>>,
    inbox: std_mpsc::Receiver<Command>,
    out: mpsc::UnboundedSender<Vec<Outbound>>,
    tick: Duration,
) {
    let mut rooms: BTreeMap<u64, (Room, u64)> = BTreeMap::new();
    let mut next_id = 1u64;
    let mut next_tick = Instant::now() + tick;
    let emit = |room: u64, effects: &Effects| {
        let _ = out.send(outbound(&Address::Battle(room), effects));
    };
    loop {
        match inbox.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(Command::Create { setup, reply }) => {
                let id = next_id;
                next_id += 1;
                let made = Room::create(role.clone(), id, &setup, fresh_env()).map(|(room, effects)| {
                    emit(id, &effects);
                    rooms.insert(id, (room, 0));
                    id
                });
                let _ = reply.send(made);
            }
            Ok(Command::Input { room, player, input, reply }) => {
                let result = match rooms.get_mut(&room) {
                    None => Err(RoomError::NoRoom(room)),
                    Some((r, _)) => {
                        r.input(player, &input, fresh_env()).map(|fx| emit(room, &fx)).map_err(RoomError::Call)
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
        rooms.retain(|id, (room, n)| {
            let result = room.tick(*n, fresh_env());
            *n += 1;
            match result {
                Ok((status, effects)) => {
                    emit(*id, &effects);
                    status == RoomStatus::Running
                }
                Err(e) => {
                    // The room is as it was before the tick; it tries again next tick.
                    tracing::warn!(room = id, error = %e, "tick failed");
                    true
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
