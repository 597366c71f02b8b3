//! A client's way in to a player's session on a baseapp (or `warren dev`): the WebSocket
//! upgrade with its session token, the token checked before anything else, then the login
//! frame within the login timeout — and only then the session ([`super::session`]).

use super::players::{PlayerHost, SocketCount};
use super::session::{RESTARTING, run};
use crate::mechanics::auth;
use crate::mechanics::net::socket::CLOSE_WAIT;
use crate::mechanics::net::{self, Admitted, ClientUpgrade, Ending, Heard, Inbound, NetLimits};
use crate::protocol::{self, ClientFrame};
use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use std::sync::Arc;

/// Takes a client's WebSocket upgrade and serves it as a session. The session token comes
/// with the upgrade (`Authorization: Bearer`, or a `bearer.<token>` subprotocol beside
/// `warren`, the one the host picks).
pub fn upgrade(ws: ClientUpgrade, players: Arc<PlayerHost>, headers: &HeaderMap) -> axum::response::Response {
    let token = auth::http::bearer(headers).map(str::to_owned);
    let ws = ClientUpgrade { ws: ws.ws.protocols([auth::http::PROTOCOL]), ..ws };
    ws.on_upgrade(move |socket, admitted| serve(socket, players, admitted, token))
}

/// A token refused: the client logs in again (a 44xx code, as HTTP's 401).
const UNAUTHORIZED: u16 = 4401;

/// Serves one WebSocket until it closes.
pub async fn serve(mut socket: WebSocket, host: Arc<PlayerHost>, admitted: Admitted, token: Option<String>) {
    let _open = SocketCount::new(&host.sockets);
    let limits = &host.net.limits;
    // Who it is, from the token, before anything else: nothing of the player's logic runs
    // for a client without a good one (unless names alone let players in, in `warren dev`).
    let by_token = match &token {
        Some(token) => Some(host.auth.session(token).await),
        None if host.auth.name_login => None,
        None => Some(Err(auth::TokenError::Missing.into())),
    };
    let by_token = match by_token.transpose() {
        Ok(identity) => identity,
        Err(e) => return refuse_login(socket, e).await,
    };
    // A socket that does not log in is not kept open, nor does it hold up a stopping host;
    // either way, and after a frame the host refuses, the client is told why.
    let mut closing = host.closing.subscribe();
    let login = tokio::select! {
        login = tokio::time::timeout(limits.login_timeout, await_login(&mut socket, limits, by_token.is_none())) => {
            login.unwrap_or_else(|_| Err(Some(limits.login_late())))
        }
        _ = closing.wait_for(|c| *c) => Err(Some(RESTARTING)),
    };
    let (name, ack) = match login {
        Ok(login) => login,
        Err(None) => return,
        Err(Some(ending)) => {
            let (sink, stream) = socket.split();
            return net::refuse(sink, stream, &ending, CLOSE_WAIT).await;
        }
    };
    let who = match (by_token, name) {
        (Some(identity), _) => Ok(identity),
        (None, Some(name)) => host.auth.by_name(&name).await,
        (None, None) => {
            Err(auth::AuthError::Invalid("log in with a name: {\"type\":\"login\",\"name\":\"ann\"}".into()))
        }
    };
    let identity = match who {
        Ok(identity) => identity,
        Err(e) => return refuse_login(socket, e).await,
    };
    admitted.logged_in();
    if let Err(e) = run(socket, &host, &identity, ack).await {
        tracing::warn!(player = identity.player, error = %e, "session ended with an error");
    }
}

/// Ends a socket whose client could not be let in, saying why: a token refused is 4401
/// (log in again), the accounts out of reach 1013 (try again later).
async fn refuse_login(socket: WebSocket, e: auth::AuthError) {
    let code = if matches!(e, auth::AuthError::Unavailable(_)) { 1013 } else { UNAUTHORIZED };
    let (sink, stream) = socket.split();
    net::refuse(sink, stream, &Ending::new(code, e.to_string()), CLOSE_WAIT).await
}

/// Waits for a valid login frame, answering anything else with an error: the name and
/// the last push the client showed. `Err` ends the socket, saying why if there is a why.
async fn await_login(
    socket: &mut WebSocket,
    limits: &NetLimits,
    by_name: bool,
) -> Result<(Option<String>, u64), Option<Ending>> {
    let mut inbound = Inbound::new(limits);
    loop {
        let reply = match inbound.judge(limits, socket.recv().await) {
            Heard::Text(text) => match protocol::parse(text.as_bytes()) {
                // Where names alone let players in, a name that is no name is said so, and
                // the client may try another.
                Ok((ClientFrame::Login { name: Some(name) }, _))
                    if by_name && let Err(reason) = auth::names::username(&name) =>
                {
                    protocol::error(&reason)
                }
                Ok((ClientFrame::Login { name }, meta)) => return Ok((name, meta.ack.unwrap_or(0))),
                Ok(_) => protocol::error("log in first: {\"type\":\"login\"}"),
                Err(reason) => protocol::error(&reason),
            },
            Heard::Nothing => continue,
            Heard::Gone => return Err(None),
            Heard::Refused(ending) => return Err(Some(ending)),
        };
        net::send_within(socket, [WsMessage::Text(reply.into())], limits.write_timeout).await.map_err(|_| None)?;
    }
}
