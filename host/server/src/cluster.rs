//! What every role host of a cluster does alike: connect to the message center, name
//! itself, load its role's published module and follow its updates, say it is alive, and
//! stop on a signal.

use crate::inbox::Doorbells;
use crate::live::{follow, short};
use crate::watch::Refusals;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use warren_bus::{Bus, BusError};
use warren_runtime::{Limits, RoleModule, Runtime, World};

/// How often a host says it is alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a host counts as alive after its last heartbeat.
pub const MEMBER_TTL: Duration = Duration::from_secs(5);

/// The options every cluster host takes.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// The message center: `redis://host:port[/db]` (one Redis or any node of a cluster).
    #[arg(long)]
    pub redis: String,
    /// How many groups guilds are split into; must match the cluster's.
    #[arg(long, default_value_t = warren_bus::DEFAULT_GROUPS)]
    pub groups: u32,
    /// Lease time of an owned player or guild group, in ms: how long a crashed host's
    /// entities wait before another host takes them.
    #[arg(long, default_value_t = 10_000)]
    pub lease_ttl_ms: u64,
    /// This host's name in the cluster (default: `<role>-<hostname>-<pid>`). Unique.
    #[arg(long)]
    pub name: Option<String>,
}

/// A connected cluster host.
pub struct Host {
    /// The message center.
    pub bus: Bus,
    /// The wasm runtime.
    pub runtime: Runtime,
    /// This host's unique name: its lease holder and member name.
    pub instance: String,
    /// Wakes this host's queue owners.
    pub bells: Arc<Doorbells>,
    /// Modules this host refused.
    pub refusals: Arc<Refusals>,
    /// Lease time of owned entities.
    pub lease_ttl: Duration,
}

impl Host {
    /// Connects to the message center, retrying with backoff until it answers (a host
    /// started before Redis waits for it). A configuration the cluster refuses is fatal.
    pub async fn connect(role: &str, args: &HostArgs) -> anyhow::Result<Host> {
        let instance = args.name.clone().unwrap_or_else(|| default_name(role));
        anyhow::ensure!(
            !instance.is_empty() && !instance.contains(char::is_whitespace),
            "host name `{instance}` must be non-empty without spaces"
        );
        anyhow::ensure!(args.lease_ttl_ms >= 300, "--lease-ttl-ms must be at least 300");
        anyhow::ensure!(args.groups >= 1, "--groups must be at least 1");
        let mut backoff = Duration::from_millis(200);
        let bus = loop {
            match Bus::redis_with_groups(&args.redis, args.groups).await {
                Ok(bus) => break bus,
                Err(e @ BusError::Mismatch(_)) => return Err(e).context("refused by the cluster"),
                Err(e) => {
                    tracing::warn!(redis = %args.redis, error = %e, retry_in_ms = backoff.as_millis() as u64, "message center unavailable");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let runtime = Runtime::new(Limits::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let bells = Doorbells::start(bus.clone(), instance.clone());
        tracing::info!(%instance, redis = %args.redis, groups = args.groups, "connected to the message center");
        Ok(Host {
            bus,
            runtime,
            instance,
            bells,
            refusals: Arc::new(Refusals::default()),
            lease_ttl: Duration::from_millis(args.lease_ttl_ms),
        })
    }

    /// Loads the role's published module and follows its updates.
    pub async fn role<W: World>(&self) -> anyhow::Result<Arc<RoleModule<W>>> {
        let digest =
            self.bus.current_module(W::NAME).await?.with_context(|| {
                format!("no {} module is published: run `warren publish --redis <url>` first", W::NAME)
            })?;
        let bytes = self.bus.module(&digest).await?;
        let rt = self.runtime.clone();
        let module = tokio::task::spawn_blocking(move || rt.load::<W>(&bytes))
            .await?
            .with_context(|| format!("the published {} module {} cannot serve", W::NAME, short(&digest)))?;
        tracing::info!(role = W::NAME, digest = %short(&digest), "module loaded");
        let slot = RoleModule::new(module);
        follow(self.bus.clone(), self.runtime.clone(), slot.clone(), self.refusals.clone());
        Ok(slot)
    }

    /// Says this host is alive as a member of `role`, every second, until dropped.
    pub fn heartbeat(&self, role: &'static str) -> tokio::task::JoinHandle<()> {
        let (bus, instance) = (self.bus.clone(), self.instance.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = bus.heartbeat(role, &instance, MEMBER_TTL).await {
                    tracing::warn!(error = %e, "heartbeat not delivered");
                }
                tokio::time::sleep(HEARTBEAT_EVERY).await;
            }
        })
    }
}

fn default_name(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if host.is_empty() { "host" } else { host };
    format!("{role}-{host}-{}", std::process::id())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("stopping: draining");
}
