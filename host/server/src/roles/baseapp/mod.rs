//! `warren baseapp`: a baseapp of a cluster. Clients connect to its WebSocket (`/ws`,
//! the same protocol as `warren dev`); each session owns its player by lease, loads the
//! player's data from the message center at login and stores it with every commit.
//! Battles run on battleapps: `battle.start` places a room on the least-loaded one.

use crate::mechanics::auth::{self, Auth};
use crate::mechanics::cluster::{Host, shutdown_signal};
use crate::mechanics::logic::LogicPool;
use crate::mechanics::net::ClientUpgrade;
use crate::role::Role;
pub mod door;
pub mod edge;
mod frames;
pub mod players;
pub mod session;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use players::PlayerHost;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use warren_runtime::Baseapp;

/// The role this host serves.
pub const ROLE: Role = Role::Baseapp;
/// How long a stopping baseapp waits for its sessions to log out.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

/// Runs a baseapp on `listen` until `stop` completes; then every session is told, logged
/// out and its player released, so the players can log in on another baseapp at once.
pub async fn run(
    host: Host,
    listen: SocketAddr,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let baseapp = host.role::<Baseapp>().await?;
    let heartbeat = host.heartbeat(ROLE.name());
    let auth = Arc::new(Auth::new(host.bus.clone(), host.keys()?, &host.auth));
    let players = Arc::new(PlayerHost::new(
        host.bus.clone(),
        LogicPool::new(baseapp, host.sandbox.clone()),
        host.instance.clone(),
        host.bells.clone(),
        host.lease_ttl,
        host.net.clone(),
        auth.clone(),
    ));
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: ClientUpgrade, State(p): State<Arc<PlayerHost>>, headers: HeaderMap| async move {
                door::upgrade(ws, p, &headers)
            }),
        )
        .with_state(players.clone())
        .merge(crate::web::routes())
        .merge(auth::http::routes(auth));
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("warren baseapp {} listening on {addr}", host.instance);
    tracing::info!(%addr, "baseapp serving: WebSocket on ws://{addr}/ws");
    crate::mechanics::net::serve(listener, app, host.net.clone(), stop).await.context("server failed")?;

    let _ = players.closing.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
    // Every socket gets its last frames, the reason and its close handshake before the
    // process exits (each session bounds its own wait).
    while players.open_sockets() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    heartbeat.abort();
    host.leave(ROLE.name()).await;
    tracing::info!(left_open = players.open_sockets(), "baseapp stopped");
    Ok(())
}

/// Runs `warren baseapp` until Ctrl-C or SIGTERM.
pub async fn main(host: Host, listen: SocketAddr) -> anyhow::Result<()> {
    run(host, listen, shutdown_signal()).await
}
