//! What every role host of a cluster does alike: connect to the message center, name
//! itself, load its role's published module and follow its updates, say it is alive, and
//! stop on a signal.

use crate::config::{AuthConfig, HostConfig, KEY_ENV};
use crate::mechanics::auth::tokens::Keys;
use crate::mechanics::doorbell::Doorbells;
use crate::mechanics::live::Refusals;
use crate::mechanics::live::{follow, short};
use crate::mechanics::net::{Door, NetLimits};
use crate::mechanics::quota::Sandbox;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use warren_bus::{Bus, BusError};
use warren_runtime::{RoleModule, Runtime, World};

/// How often a host says it is alive.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// How long a host counts as alive after its last heartbeat: a host that died is known
/// dead this long after, and its players and groups are taken over then (leases of a
/// host that is no longer a member are taken before they expire, fenced).
pub const MEMBER_TTL: Duration = Duration::from_millis(2500);

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
    /// The quotas and the bound on running calls every role here shares.
    pub sandbox: Sandbox,
    /// The door every client socket of this host comes through: its caps and bounds.
    pub net: Arc<Door>,
    /// Accounts and session tokens: the `[auth]` section.
    pub auth: AuthConfig,
    /// The key that signs session tokens and battle tickets, if one was given (only the
    /// roles that let clients in need it: see [`Host::keys`]).
    pub keys: Option<Keys>,
}

impl Host {
    /// Connects to the message center, retrying with backoff until it answers (a host
    /// started before Redis waits for it). A configuration the cluster refuses is fatal.
    /// `config` is the host's resolved configuration ([`HostConfig`], see
    /// [`crate::config::HostFlags::resolve`]); `role` names the host by default.
    pub async fn connect(role: &str, config: &HostConfig) -> anyhow::Result<Host> {
        config.check().map_err(|e| anyhow::anyhow!("{e}"))?;
        let redis = config.redis()?;
        let instance = config.name.clone().unwrap_or_else(|| default_name(role));
        anyhow::ensure!(
            !instance.is_empty() && !instance.contains(char::is_whitespace),
            "host name `{instance}` must be non-empty without spaces"
        );
        let mut backoff = Duration::from_millis(200);
        let bus = loop {
            match Bus::redis_with(redis, config.bus.options(config.groups)).await {
                Ok(bus) => break bus,
                Err(e @ BusError::Mismatch(_)) => return Err(e).context("refused by the cluster"),
                Err(e) => {
                    tracing::warn!(%redis, error = %e, retry_in_ms = backoff.as_millis() as u64, "message center unavailable");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let runtime = Runtime::new(config.limits.to_limits()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let bells = Doorbells::start(bus.clone(), instance.clone());
        tracing::info!(%instance, %redis, groups = config.groups, "connected to the message center");
        Ok(Host {
            bus,
            runtime,
            instance,
            bells,
            refusals: Arc::new(Refusals::default()),
            lease_ttl: Duration::from_millis(config.lease_ttl_ms),
            sandbox: Sandbox::new(config.limits.to_quotas()),
            net: Door::new(config.net.to_limits()),
            auth: config.auth.clone(),
            keys: config
                .auth
                .key()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .map(|k| Keys::new(&k))
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        })
    }

    /// The signing keys; a role that lets clients in (a baseapp, a battleapp) cannot run
    /// without them.
    pub fn keys(&self) -> anyhow::Result<Keys> {
        self.keys.clone().with_context(|| {
            format!(
                "no signing key for session tokens and battle tickets: set {KEY_ENV} or [auth] key_file \
                 (at least 32 random bytes, the same on every baseapp and battleapp)"
            )
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

    /// A host on a bus this process made itself (`warren dev`: the embedded bus), named
    /// `instance`. Its modules come from the bus as a cluster host's do.
    pub fn local(bus: Bus, runtime: Runtime, instance: &str, lease_ttl: Duration) -> Host {
        let bells = Doorbells::start(bus.clone(), instance.to_owned());
        Host {
            bus,
            runtime,
            instance: instance.to_owned(),
            bells,
            refusals: Arc::new(Refusals::default()),
            lease_ttl,
            sandbox: Sandbox::default(),
            net: Door::new(NetLimits::default()),
            auth: AuthConfig::default(),
            keys: Some(Keys::random()),
        }
    }

    /// Takes this host out of `role`'s members at once, so the others take over what it
    /// held without waiting for its heartbeat to expire.
    pub async fn leave(&self, role: &str) {
        if let Err(e) = self.bus.leave(role, &self.instance).await {
            tracing::warn!(error = %e, "could not leave the membership; it expires by itself");
        }
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
