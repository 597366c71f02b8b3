//! A client's battle socket on the room's battleapp. The first frame joins a room with a
//! ticket: `{"type": "battle.join", "room": 5, "ticket": "..."}` — signed by the cluster,
//! not expired, for that room, which must run here. Then the socket takes
//! `battle.input` frames (each goes to the room's queue as the player's `$input`) and
//! carries the room's frames to the player.

use super::Battleapp;
use super::room::INPUT;
use crate::mechanics::logic::fresh_env;
use crate::mechanics::net::socket::{CLOSE_WAIT, Unsent};
use crate::mechanics::net::{Admitted, ClientUpgrade, Ending, Heard, Inbound, refuse, send_within};
use crate::mechanics::ticket::Ticket;
use crate::protocol;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use warren_bus::{Address, Outbound};

/// Takes a client's WebSocket upgrade and serves it as a battle socket.
pub async fn upgrade(ws: ClientUpgrade, State(app): State<Arc<Battleapp>>) -> axum::response::Response {
    ws.on_upgrade(move |socket, admitted| serve(socket, app, admitted))
}

/// How long a join waits for a room that was just placed here to start.
const ROOM_START_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a join frame: the room and the player its ticket lets in, or why not. A room
/// placed a moment ago may not run yet (its battleapp is taking it): the join waits a
/// little for it.
async fn join(app: &Battleapp, text: &str) -> Result<(u64, u64), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("frames are JSON objects: {e}"))?;
    if v.get("type").and_then(Value::as_str) != Some("battle.join") {
        return Err("join a battle first: {\"type\":\"battle.join\",\"room\":...,\"ticket\":\"...\"}".into());
    }
    let room = v.get("room").and_then(Value::as_u64).ok_or("battle.join needs a \"room\"")?;
    let ticket = v.get("ticket").and_then(Value::as_str).ok_or("battle.join needs a \"ticket\"")?;
    let t = Ticket::verify(ticket, &app.keys, room, fresh_env().now_ms).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + ROOM_START_WAIT;
    while !app.rooms.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&room) {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("room {room} is not on this server (it may have moved: wait for battle.moved)"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok((room, t.player))
}

/// Serves one battle socket until it closes, under the host's bounds (docs/limits.md,
/// *Clients*): a join within the login timeout, frames at the client's pace, writes
/// within the write timeout, pings while the client is silent.
pub async fn serve(socket: WebSocket, app: Arc<Battleapp>, admitted: Admitted) {
    let door = app.host.net.clone();
    let limits = &door.limits;
    let (mut sink, mut stream) = socket.split();
    let mut inbound = Inbound::new(limits);
    let joining = tokio::time::timeout(limits.login_timeout, async {
        loop {
            let text = match inbound.judge(limits, stream.next().await) {
                Heard::Text(text) => text,
                Heard::Nothing => continue,
                Heard::Gone => return Err(None),
                Heard::Refused(ending) => return Err(Some(ending)),
            };
            match join(&app, &text).await {
                Ok(joined) => return Ok(joined),
                Err(reason) => {
                    let error = WsMessage::Text(protocol::error(&reason).into());
                    if send_within(&mut sink, [error], limits.write_timeout).await.is_err() {
                        return Err(None);
                    }
                }
            }
        }
    });
    let (room, player) = match joining.await {
        Ok(Ok(joined)) => joined,
        Ok(Err(None)) => return,
        Ok(Err(Some(ending))) => return refuse(sink, stream, &ending, CLOSE_WAIT).await,
        Err(_) => return refuse(sink, stream, &limits.login_late(), CLOSE_WAIT).await,
    };
    admitted.logged_in();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    app.sockets.lock().unwrap_or_else(|e| e.into_inner()).insert((room, player), tx.clone());
    let joined = json!({"type": "battle.joined", "room": room, "player": player}).to_string();
    let mut pulse = door.pulse();
    let mut ending = match send_within(&mut sink, [WsMessage::Text(joined.into())], limits.write_timeout).await {
        Ok(()) => None,
        Err(_) => Some(Quiet),
    };
    while ending.is_none() {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(frame) => ending = sent(send_within(&mut sink, [WsMessage::Text(frame.into())], limits.write_timeout).await),
                None => ending = Some(Quiet),
            },
            next = stream.next() => match inbound.judge(limits, next) {
                Heard::Text(text) => {
                    if let Some(reply) = input(&app, room, player, &text).await {
                        ending = sent(send_within(&mut sink, [WsMessage::Text(reply.into())], limits.write_timeout).await);
                    }
                }
                Heard::Nothing => {}
                Heard::Gone => ending = Some(Quiet),
                Heard::Refused(refused) => ending = Some(Told(refused)),
            },
            Ok(()) = pulse.changed() => match inbound.at_beat(limits) {
                Ok(false) => {}
                Ok(true) => ending = sent(send_within(&mut sink, [WsMessage::Ping(Default::default())], limits.write_timeout).await),
                Err(silent) => ending = Some(Told(silent)),
            },
        }
    }
    {
        let mut sockets = app.sockets.lock().unwrap_or_else(|e| e.into_inner());
        // A newer socket of the same player keeps its entry.
        if sockets.get(&(room, player)).is_some_and(|s| s.same_channel(&tx)) {
            sockets.remove(&(room, player));
        }
    }
    if let Some(Told(ending)) = ending {
        refuse(sink, stream, &ending, CLOSE_WAIT).await;
    }
}

/// How a battle socket ends.
enum End {
    /// Without a word: the client went, cannot be written to, or joined again elsewhere.
    Quiet,
    /// With an error frame and a close frame.
    Told(Ending),
}
use End::{Quiet, Told};

/// The end a write calls for: none if it went, without a word if it did not.
fn sent(result: Result<(), Unsent>) -> Option<End> {
    result.err().map(|_| Quiet)
}

/// Takes a client's frame for the room: a `battle.input` goes to the room's queue as the
/// player's; the answer, if any, is an error.
async fn input(app: &Battleapp, room: u64, player: u64, text: &str) -> Option<String> {
    match protocol::parse(text.as_bytes()) {
        Ok((protocol::ClientFrame::BattleInput, _)) => {
            let input = Outbound {
                to: Address::Battle(room),
                sender: Some(Address::Player(player)),
                kind: INPUT.into(),
                body: text.as_bytes().to_vec(),
                hops: 0,
            };
            match app.host.bus.send(input).await {
                Ok(_) => None,
                Err(e) => Some(protocol::error(&format!("input not taken, send it again: {e}"))),
            }
        }
        Ok(_) => Some(protocol::error("this socket takes battle.input frames")),
        Err(reason) => Some(protocol::error(&reason)),
    }
}
