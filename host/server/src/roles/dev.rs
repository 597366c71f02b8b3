//! `warren dev`: every role in one process on the embedded bus, the client WebSocket on
//! `/ws`, the web client on `/`, and `modules/` watched and swapped live.

use crate::config::{DevConfig, KEY_ENV};
use crate::mechanics::auth::tokens::Keys;
use crate::mechanics::auth::{self, Auth};
use crate::mechanics::cluster::Host;
use crate::mechanics::live::Refusals;
use crate::mechanics::live::{deploy, short};
use crate::mechanics::logic::LogicPool;
use crate::mechanics::net::ClientUpgrade;
use crate::role::Role;
use crate::roles::baseapp::door;
use crate::roles::baseapp::players::PlayerHost;
use crate::roles::battleapp::{self, Battleapp};
use crate::roles::guild;
use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use warren_bus::Bus;
use warren_runtime::{Baseapp, Battle, Guild, RoleModule, Runtime};

/// The one host's name in `warren dev`.
const DEV_HOLDER: &str = "dev";
/// Guild groups in `warren dev`: one process owns them all, and a few keep its idle sweeps
/// cheap; the code that serves them is the cluster's.
const DEV_GROUPS: u32 = 64;
/// Ticks between two checkpoints of a room in `warren dev`.
const DEV_CHECKPOINT_TICKS: u64 = 20;
/// The roles `warren dev` serves when their module is in its folder; only the baseapp's
/// is required (the others' roles are off without theirs).
const DEV_ROLES: [Role; 3] = [Role::Baseapp, Role::Battleapp, Role::Guild];

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
    /// What this process serves, role by role (the bus pointer says what was published);
    /// `None` for a role whose module was not in the folder at start.
    baseapp: Arc<RoleModule<Baseapp>>,
    battle: Option<Arc<RoleModule<Battle>>>,
    guild: Option<Arc<RoleModule<Guild>>>,
    /// The battleapp, if battles are on: what each running room serves.
    battleapp: Option<Arc<Battleapp>>,
}

/// Validates `dir/<world>.wasm` and publishes it on the bus, as `warren publish` does for
/// a cluster. `false` if there is no such file and the role can do without (all but the
/// baseapp).
async fn publish_file(dir: &std::path::Path, role: Role, bus: &Bus, runtime: &Runtime) -> anyhow::Result<bool> {
    let path = dir.join(format!("{}.wasm", role.world()));
    if role != Role::Baseapp && !path.exists() {
        tracing::warn!(
            "{} is missing: the {} role is off (a player's request to it is answered that it is off); build a {} script and restart warren dev",
            path.display(),
            role.world(),
            role.world()
        );
        return Ok(false);
    }
    let bytes = tokio::fs::read(&path).await.with_context(|| {
        format!("{} is missing: run `warren build` first (warren dev needs at least a baseapp script)", path.display())
    })?;
    let digest =
        deploy(bus, runtime, role.world(), bytes).await.with_context(|| format!("{} cannot serve", path.display()))?;
    tracing::info!(role = role.world(), digest = %short(&digest), "module published");
    Ok(true)
}

/// Starts `warren dev` on a fresh embedded bus; it serves until `shutdown` completes.
pub async fn start(
    config: DevConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<DevServer> {
    start_on(config, Bus::embedded_with_groups(DEV_GROUPS), shutdown).await
}

/// Starts `warren dev` on `bus` (tests hand it an embedded bus they inject faults into).
pub async fn start_on(
    config: DevConfig,
    bus: Bus,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<DevServer> {
    let runtime = Runtime::new(config.limits.to_limits()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut present = std::collections::BTreeSet::new();
    for role in DEV_ROLES {
        if publish_file(&config.modules, role, &bus, &runtime).await? {
            present.insert(role);
        }
    }
    // From here on every role runs as on a cluster host, the embedded bus standing in for
    // Redis: modules come from the bus and follow its announcements.
    let mut host = Host::local(bus.clone(), runtime.clone(), DEV_HOLDER, Duration::from_secs(10));
    let mut quotas = config.limits.to_quotas();
    // What this process does not serve answers at once instead of queueing forever.
    quotas.roles_off =
        crate::mechanics::quota::RolesOff { guild: !present.contains(&Role::Guild), team: true, matchmaker: true };
    host.sandbox = crate::mechanics::quota::Sandbox::new(quotas);
    host.net = crate::mechanics::net::Door::new(config.net.to_limits());
    host.auth = config.auth.clone();
    host.keys = Some(match config.auth.key().map_err(|e| anyhow::anyhow!("{e}"))? {
        Some(key) => Keys::new(&key).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => {
            tracing::info!(
                "no signing key configured ({KEY_ENV} or [auth] key_file): made one for this run; its tokens end with it"
            );
            Keys::random()
        }
    });
    let host = Arc::new(host);
    let baseapp = host.role::<Baseapp>().await?;
    let battle = match present.contains(&Role::Battleapp) {
        true => Some(host.role::<Battle>().await?),
        false => None,
    };
    let watcher =
        crate::mechanics::watch::watch_modules(&config.modules, bus.clone(), runtime.clone(), host.refusals.clone())
            .with_context(|| format!("cannot watch {}", config.modules.display()))?;
    let guild_module = match present.contains(&Role::Guild) {
        true => Some(host.role::<Guild>().await?),
        false => None,
    };
    // The guild host and the battleapp stop when the server does.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let guilds = guild_module.clone().map(|m| tokio::spawn(guild::run(host.clone(), m, until_stopped())));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let tick = Duration::from_secs(1) / config.battle.tick_hz;
    let battleapp = match &battle {
        Some(battle) => Some(
            Battleapp::new(host.clone(), battle.clone(), tick, DEV_CHECKPOINT_TICKS, format!("ws://{addr}/battle"))
                .await?,
        ),
        None => None,
    };
    let rooms = battleapp.clone().map(|b| tokio::spawn(b.run(until_stopped())));

    let mut auth = Auth::new(bus.clone(), host.keys()?, &config.auth);
    auth.name_login = config.name_login;
    if config.name_login {
        tracing::warn!("--name-login: clients log in by name alone, and anyone may play as anyone");
    }
    let auth = Arc::new(auth);
    let players = Arc::new(PlayerHost::new(
        bus.clone(),
        LogicPool::new(baseapp.clone(), host.sandbox.clone()),
        DEV_HOLDER.to_owned(),
        host.bells.clone(),
        host.lease_ttl,
        host.net.clone(),
        auth.clone(),
    ));
    let state = AppState {
        players,
        bus,
        refusals: host.refusals.clone(),
        baseapp,
        battle,
        guild: guild_module,
        battleapp: battleapp.clone(),
    };
    let mut app = Router::new()
        .route("/ws", get(upgrade))
        .route("/modules", get(modules))
        .route("/rooms", get(list_rooms))
        .route("/rooms/{id}/snapshot", get(room_snapshot))
        .with_state(state)
        .merge(crate::web::routes())
        .merge(auth::http::routes(auth));
    if let Some(battleapp) = battleapp {
        app = app.merge(Router::new().route("/battle", get(battleapp::socket::upgrade)).with_state(battleapp));
    }

    tracing::info!(
        %addr,
        "warren dev serving: the web client on http://{addr}/, WebSocket on ws://{addr}/ws, battles on ws://{addr}/battle"
    );
    let door = host.net.clone();
    let task = tokio::spawn(async move {
        let served = crate::mechanics::net::serve(listener, app, door, shutdown).await;
        let _ = stop.send(true);
        if let Some(guilds) = guilds {
            guilds.await??;
        }
        if let Some(rooms) = rooms {
            rooms.await?;
        }
        drop(watcher);
        served.context("server failed")
    });
    Ok(DevServer { addr, task })
}

/// The battle rooms running, each with its last checkpoint (hex) and the module it runs:
/// what `warren build --check-rooms` restores on a freshly built battle module before it
/// writes it. `{"rooms": [{"room": 5, "module": "<sha256>", "snapshot_hex": "7b22..."}]}`.
async fn list_rooms(State(app): State<AppState>) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let running = battleapp::upgrade::running_rooms(&app.bus).await.map_err(unavailable)?;
    let modules = app.battleapp.as_ref().map(|b| b.modules()["rooms"].take()).unwrap_or_default();
    let rooms: Vec<serde_json::Value> = running
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "room": r.room,
                "module": modules.get(r.room.to_string()),
                "snapshot_hex": hex::encode(&r.snapshot),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "rooms": rooms })))
}

/// Room `id`'s last checkpoint, as its module wrote it: saved into a script's tests, it is
/// what a later version's `restore` must read (`warren_guest::testing`).
async fn room_snapshot(State(app): State<AppState>, Path(id): Path<u64>) -> Result<Vec<u8>, (StatusCode, String)> {
    let running = battleapp::upgrade::running_rooms(&app.bus).await.map_err(unavailable)?;
    running
        .into_iter()
        .find(|r| r.room == id)
        .map(|r| r.snapshot)
        .ok_or((StatusCode::NOT_FOUND, format!("no battle room {id} is running\n")))
}

fn unavailable(e: warren_bus::BusError) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the rooms: {e}\n"))
}

async fn upgrade(ws: ClientUpgrade, State(app): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    door::upgrade(ws, app.players, &headers)
}

/// What each role serves in this process, what the bus has published, and the last
/// refusal of each, and the module of each running battle room, how many rooms run on
/// each module, and why a room stays on an older one:
/// `{"serving": {"baseapp": "<sha256>"}, "published": {...}, "refused": {...}, "rooms": {"5": "<sha256>"},
/// "rooms_by_module": {"<sha256>": 1}, "pinned": {"5": "module ... cannot restore it: ..."}}`.
async fn modules(State(app): State<AppState>) -> Json<serde_json::Value> {
    let mut published = serde_json::Map::new();
    for role in Role::ALL.map(Role::world) {
        if let Ok(Some(digest)) = app.bus.current_module(role).await {
            published.insert(role.to_owned(), digest.into());
        }
    }
    let serving = serde_json::json!({
        "baseapp": app.baseapp.current().digest(),
        "battle": app.battle.as_ref().map(|m| m.current().digest().to_owned()),
        "guild": app.guild.as_ref().map(|m| m.current().digest().to_owned()),
    });
    let mut battles = app.battleapp.as_ref().map(|b| b.modules()).unwrap_or_default();
    Json(serde_json::json!({
        "serving": serving,
        "published": published,
        "refused": app.refusals.snapshot(),
        "rooms": battles["rooms"].take(),
        "rooms_by_module": battles["rooms_by_module"].take(),
        "pinned": battles["pinned"].take(),
    }))
}
