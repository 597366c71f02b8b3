//! A client's battle socket on the room's battleapp. The first frame joins a room with a
//! ticket: `{"type": "battle.join", "room": 5, "ticket": "..."}` — signed by the cluster,
//! not expired, for that room, which must run here. Then the socket takes
//! `battle.input` frames (each goes to the room's queue as the player's `$input`) and
//! carries the room's frames to the player.

use super::Battleapp;
use super::room::INPUT;
use crate::mechanics::logic::fresh_env;
use crate::mechanics::ticket::Ticket;
use crate::protocol;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use warren_bus::{Address, Outbound};

/// Takes a client's WebSocket upgrade and serves it as a battle socket.
pub async fn upgrade(ws: WebSocketUpgrade, State(app): State<Arc<Battleapp>>) -> axum::response::Response {
    crate::mechanics::net::client_socket(ws).on_upgrade(move |socket| serve(socket, app))
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
    let t = Ticket::verify(ticket, &app.secret, room, fresh_env().now_ms).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + ROOM_START_WAIT;
    while !app.rooms.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&room) {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("room {room} is not on this server (it may have moved: wait for battle.moved)"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok((room, t.player))
}

/// Serves one battle socket until it closes.
pub async fn serve(socket: WebSocket, app: Arc<Battleapp>) {
    let (mut sink, mut stream) = socket.split();
    let (room, player) = loop {
        let text = match stream.next().await {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
            Some(Ok(_)) => continue,
        };
        match join(&app, &text).await {
            Ok(joined) => break joined,
            Err(reason) => {
                if sink.send(WsMessage::Text(protocol::error(&reason).into())).await.is_err() {
                    return;
                }
            }
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    app.sockets.lock().unwrap_or_else(|e| e.into_inner()).insert((room, player), tx.clone());
    let joined = json!({"type": "battle.joined", "room": room, "player": player}).to_string();
    let mut open = sink.send(WsMessage::Text(joined.into())).await.is_ok();
    while open {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(frame) => open = sink.send(WsMessage::Text(frame.into())).await.is_ok(),
                None => open = false,
            },
            msg = stream.next() => match msg {
                Some(Ok(WsMessage::Text(text))) => {
                    let reply = match protocol::parse(text.as_bytes()) {
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
                    };
                    if let Some(reply) = reply {
                        open = sink.send(WsMessage::Text(reply.into())).await.is_ok();
                    }
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    open = sink.send(WsMessage::Text(protocol::error("frames are JSON text").into())).await.is_ok();
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => open = false,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut sockets = app.sockets.lock().unwrap_or_else(|e| e.into_inner());
    // A newer socket of the same player keeps its entry.
    if sockets.get(&(room, player)).is_some_and(|s| s.same_channel(&tx)) {
        sockets.remove(&(room, player));
    }
}
