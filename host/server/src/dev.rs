//! `warren dev`: every role in one process on the embedded bus, the client WebSocket on
//! `/ws`, and `modules/` watched and swapped live.

use crate::battle::BattleHost;
use crate::config::DevConfig;
use crate::inbox::Doorbells;
use crate::live::{follow, short};
use crate::logic::LogicPool;
use crate::session::{self, PlayerHost};
use crate::watch::Refusals;
use anyhow::Context;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use warren_bus::Bus;
use warren_runtime::{Baseapp, Battle, RoleModule, Runtime, World};

/// The one host's name in `warren dev`.
const DEV_HOLDER: &str = "dev";

/// A running `warren dev`.
pub struct DevServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The server task; ends after the shutdown signal.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// What the HTTP handlers share.
#[derive(Clone)]
struct AppState {
    players: Arc<PlayerHost>,
    bus: Bus,
    refusals: Arc<Refusals>,
    /// What this process serves, role by role (the bus pointer says what was published).
    baseapp: Arc<RoleModule<Baseapp>>,
    battle: Arc<RoleModule<Battle>>,
}

/// Loads a role's module from `dir`, publishes it and starts following the role.
async fn start_role<W: World>(
    dir: &Path,
    bus: &Bus,
    runtime: &Runtime,
    refusals: &Arc<Refusals>,
) -> anyhow::Result<Arc<RoleModule<W>>> {
    let path = dir.join(format!("{}.wasm", W::NAME));
    let bytes = tokio::fs::read(&path)
        .await
        .with_context(|| format!("{} is missing: run `warren build` first", path.display()))?;
    let rt = runtime.clone();
    let (module, bytes) = tokio::task::spawn_blocking(move || (rt.load::<W>(&bytes), bytes)).await?;
    let module = module.with_context(|| format!("{} cannot serve", path.display()))?;
    bus.publish_module(W::NAME, bytes).await?;
    tracing::info!(role = W::NAME, digest = %short(module.digest()), "module loaded");
    let slot = RoleModule::new(module);
    follow(bus.clone(), runtime.clone(), slot.clone(), refusals.clone());
    Ok(slot)
}

/// Starts `warren dev`; it serves until `shutdown` completes.
pub async fn start(
    config: DevConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<DevServer> {
    let runtime = Runtime::new(config.limits.to_limits()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let bus = Bus::embedded();
    let refusals = Arc::new(Refusals::default());
    let baseapp = start_role::<Baseapp>(&config.modules, &bus, &runtime, &refusals).await?;
    let battle = start_role::<Battle>(&config.modules, &bus, &runtime, &refusals).await?;
    let watcher = crate::watch::watch_modules(&config.modules, bus.clone(), runtime.clone(), refusals.clone())
        .with_context(|| format!("cannot watch {}", config.modules.display()))?;

    let tick = Duration::from_secs(1) / config.battle.tick_hz;
    let players = Arc::new(PlayerHost::new(
        bus.clone(),
        LogicPool::new(baseapp.clone()),
        BattleHost::start(battle.clone(), bus.clone(), tick),
        DEV_HOLDER.to_owned(),
        Doorbells::start(bus.clone(), DEV_HOLDER.to_owned()),
        Duration::from_secs(10),
    ));
    let app = Router::new()
        .route("/", get(index))
        .route("/ws", get(upgrade))
        .route("/modules", get(modules))
        .with_state(AppState { players, bus, refusals, baseapp, battle });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "warren dev serving: WebSocket on ws://{addr}/ws");
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        drop(watcher);
        served.context("server failed")
    });
    Ok(DevServer { addr, task })
}

async fn index() -> &'static str {
    "Warren dev server. Connect a WebSocket to /ws and send {\"type\":\"login\",\"name\":\"you\"}. \
     GET /modules lists the modules serving.\n"
}

async fn upgrade(ws: WebSocketUpgrade, State(app): State<AppState>) -> impl IntoResponse {
    session::upgrade(ws, app.players)
}

/// What each role serves in this process, what the bus has published, and the last
/// refusal of each: `{"serving": {"baseapp": "<sha256>"}, "published": {...}, "refused": {...}}`.
async fn modules(State(app): State<AppState>) -> Json<serde_json::Value> {
    let mut published = serde_json::Map::new();
    for role in crate::live::ROLES {
        if let Ok(Some(digest)) = app.bus.current_module(role).await {
            published.insert((*role).to_owned(), digest.into());
        }
    }
    let serving = serde_json::json!({
        "baseapp": app.baseapp.current().digest(),
        "battle": app.battle.current().digest(),
    });
    Json(serde_json::json!({"serving": serving, "published": published, "refused": app.refusals.snapshot()}))
}
