//! Configuration files (TOML). Unknown keys are errors, so a typo is caught at start, not
//! silently ignored.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The configuration of `warren dev`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Where the WebSocket endpoint (`/ws`) and the HTTP pages listen.
    pub listen: SocketAddr,
    /// The folder of built modules, watched for changes.
    pub modules: PathBuf,
    /// Battle rooms.
    pub battle: BattleConfig,
    /// Limits of every handler call.
    pub limits: LimitsConfig,
    /// How clients are held off: timeouts, caps on connections, the pace of frames.
    pub net: NetConfig,
    /// Accounts and session tokens.
    pub auth: AuthConfig,
    /// Whether a client may log in by name alone, without an account's token (`--name-login`):
    /// for trying things out; anyone may then play as anyone.
    pub name_login: bool,
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            modules: PathBuf::from("modules"),
            battle: BattleConfig::default(),
            limits: LimitsConfig::default(),
            net: NetConfig::default(),
            auth: AuthConfig::default(),
            name_login: false,
        }
    }
}

/// Battle room settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BattleConfig {
    /// Ticks per second of every room.
    pub tick_hz: u32,
}

impl Default for BattleConfig {
    fn default() -> Self {
        BattleConfig { tick_hz: 10 }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value given by a flag is out of range (the file's values are checked when it is
    /// read, so what is left to refuse after merging came from a flag).
    #[error("{message}")]
    Flag {
        /// What is wrong, naming the key and its flag.
        message: String,
    },
    /// A cluster host was given no message center, neither in its file nor by flag.
    #[error(
        "no message center: set `redis = \"redis://host:port\"` in the --config file, or pass --redis redis://host:port"
    )]
    NoRedis,
}

impl DevConfig {
    /// Reads a configuration file, checking every key and value.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: DevConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        self.battle.check("")?;
        self.limits.check()?;
        self.net.check()?;
        self.auth.check()
    }
}

impl BattleConfig {
    /// Checks the values; `flag` is appended to the key in the message (empty when the
    /// key has no flag).
    fn check(&self, flag: &str) -> Result<(), String> {
        if self.tick_hz == 0 || self.tick_hz > 1000 {
            return Err(format!("battle.tick_hz{flag} must be 1..=1000, not {}", self.tick_hz));
        }
        Ok(())
    }
}

/// The configuration of a cluster host (`warren baseapp`, `warren guild`, the battleapp):
/// read from `--config FILE` (see `config/<role>.toml`), then overridden by flags
/// ([`HostFlags::resolve`]). One file may serve several roles: every section is checked,
/// and each process uses those of its role.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// The message center every host of the cluster talks through: `redis://host:port[/db]`,
    /// one Redis or any node of a Redis Cluster (several seeds comma-separated). `None`
    /// only until the flags are merged: a host cannot run without it ([`HostConfig::redis`]).
    pub redis: Option<String>,
    /// This host's unique name in the cluster, so its leases, doorbell and membership are
    /// told apart from other hosts'; `None` picks `<role>-<hostname>-<pid>`.
    pub name: Option<String>,
    /// How many groups guilds are split into. Fixed cluster-wide by the first host that
    /// connects, since every host must queue a guild's messages in the same group; a host
    /// configured otherwise is refused.
    pub groups: u32,
    /// Lease time of an owned player or guild group, in ms: how long a crashed host's
    /// entities wait before another host takes them. Leases are renewed every third of it,
    /// so it is also the longest Redis outage a host rides out without dropping them.
    pub lease_ttl_ms: u64,
    /// Limits of every handler call this host runs, so one bad module cannot stall or
    /// exhaust the host.
    pub limits: LimitsConfig,
    /// What only a baseapp uses.
    pub baseapp: BaseappConfig,
    /// Battle rooms: the practice battles of a baseapp and every room of a battleapp.
    pub battle: BattleConfig,
    /// What only a battleapp uses.
    pub battleapp: BattleappConfig,
    /// How the host talks to the message center.
    pub bus: BusConfig,
    /// How clients are held off: timeouts, caps on connections, the pace of frames.
    pub net: NetConfig,
    /// Accounts and session tokens (the signing key every host shares).
    pub auth: AuthConfig,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            redis: None,
            name: None,
            groups: warren_bus::DEFAULT_GROUPS,
            lease_ttl_ms: 10_000,
            limits: LimitsConfig::default(),
            baseapp: BaseappConfig::default(),
            battle: BattleConfig::default(),
            battleapp: BattleappConfig::default(),
            bus: BusConfig::default(),
            net: NetConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// The `[baseapp]` section: what only a baseapp uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BaseappConfig {
    /// Where the baseapp's WebSocket (`/ws`, the client protocol) listens, so clients can
    /// reach it.
    pub listen: SocketAddr,
}

impl Default for BaseappConfig {
    fn default() -> Self {
        BaseappConfig { listen: SocketAddr::from(([127, 0, 0, 1], 7700)) }
    }
}

/// The `[battleapp]` section: what only a battleapp uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BattleappConfig {
    /// Where the battleapp's WebSocket (`/ws`) listens, so players in a battle can reach
    /// their room directly.
    pub listen: SocketAddr,
    /// How many ticks pass between two checkpoints of a room: fewer lose less replay work
    /// when a room moves or its host dies, more cost less to store.
    pub checkpoint_ticks: u32,
    /// The `ws://` or `wss://` URL clients reach this battleapp's `/ws` at, for when
    /// `listen` is not what they can connect to (`0.0.0.0`, a gateway, TLS); `None`
    /// derives it from the bound address ([`BattleappConfig::public_url`]).
    pub public_url: Option<String>,
}

impl Default for BattleappConfig {
    fn default() -> Self {
        BattleappConfig { listen: SocketAddr::from(([127, 0, 0, 1], 7800)), checkpoint_ticks: 20, public_url: None }
    }
}

impl BattleappConfig {
    /// The URL clients reach this battleapp's `/ws` at: `public_url` if set, else
    /// `ws://<bound>/ws`, where `bound` is the address the listener got (`listen`, with
    /// its real port when `listen` asked for port 0).
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("ws://{bound}/ws"))
    }
}

/// Most guild groups a cluster may be configured with.
const MAX_GROUPS: u32 = 1_000_000;
/// Shortest lease: renewals come every third of it, so a shorter one would expire under
/// an ordinary network hiccup.
const MIN_LEASE_TTL_MS: u64 = 300;
/// Longest lease: an hour; longer would leave a crashed host's players locked out for
/// longer than anyone waits.
const MAX_LEASE_TTL_MS: u64 = 3_600_000;

impl HostConfig {
    /// Reads a configuration file, checking every key and value. `redis` may be missing
    /// here (a flag may give it).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })
    }

    /// Parses configuration text, checking every key and value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: HostConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Checks every value; the message names the key and, where there is one, its flag.
    /// A missing `redis` is not refused here ([`HostConfig::redis`] does).
    pub fn check(&self) -> Result<(), String> {
        if let Some(redis) = &self.redis {
            let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
            let good = !redis.is_empty()
                && redis.split(',').all(|seed| {
                    let seed = seed.trim();
                    schemes.iter().any(|s| seed.len() > s.len() && seed.starts_with(s))
                        && !seed.contains(char::is_whitespace)
                });
            if !good {
                return Err(format!(
                    "redis (--redis) must be a redis:// URL (or several, comma-separated), not `{redis}`"
                ));
            }
        }
        if let Some(name) = &self.name
            && (name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '{' || c == '}'))
        {
            return Err(format!("name (--name) must be non-empty, without spaces or braces, not `{name}`"));
        }
        if self.groups == 0 || self.groups > MAX_GROUPS {
            return Err(format!("groups (--groups) must be 1..={MAX_GROUPS}, not {}", self.groups));
        }
        if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(&self.lease_ttl_ms) {
            return Err(format!(
                "lease_ttl_ms (--lease-ttl-ms) must be {MIN_LEASE_TTL_MS}..={MAX_LEASE_TTL_MS}, not {}",
                self.lease_ttl_ms
            ));
        }
        self.limits.check()?;
        self.battle.check(" (--tick-hz)")?;
        self.bus.check()?;
        self.net.check()?;
        self.auth.check()?;
        let b = &self.battleapp;
        if b.checkpoint_ticks == 0 || b.checkpoint_ticks > 10_000 {
            return Err(format!(
                "battleapp.checkpoint_ticks (--checkpoint-ticks) must be 1..=10000, not {}",
                b.checkpoint_ticks
            ));
        }
        if let Some(url) = &b.public_url {
            let rest = url.strip_prefix("ws://").or_else(|| url.strip_prefix("wss://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) || url.contains(char::is_whitespace) {
                return Err(format!(
                    "battleapp.public_url (--public-url) must be a ws:// or wss:// URL with a host, not `{url}`"
                ));
            }
        }
        Ok(())
    }

    /// The message center's URL, which a host cannot run without.
    pub fn redis(&self) -> Result<&str, ConfigError> {
        self.redis.as_deref().ok_or(ConfigError::NoRedis)
    }
}

/// The flags every cluster host takes: `--config FILE`, and one flag per common key, which
/// overrides the file's value (flag > file > default). A role's own flags come in a
/// [`RoleFlags`] beside it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HostFlags {
    /// Configuration file (see config/<role>.toml); the flags below override its values.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The message center: `redis://host:port[/db]`, one Redis or any node of a cluster
    /// [key: redis; required here or in the file].
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// How many groups guilds are split into; must match the cluster's [key: groups;
    /// default: 4096].
    #[arg(long, value_name = "N")]
    pub groups: Option<u32>,
    /// Lease time of an owned player or guild group, in ms: how long a crashed host's
    /// entities wait before another host takes them [key: lease_ttl_ms; default: 10000].
    #[arg(long, value_name = "MS")]
    pub lease_ttl_ms: Option<u64>,
    /// This host's unique name in the cluster [key: name; default: <role>-<hostname>-<pid>].
    #[arg(long)]
    pub name: Option<String>,
}

/// The flags of one role, written over the file's values of its sections.
pub trait RoleFlags {
    /// Writes every flag that was given into `config`.
    fn apply(&self, config: &mut HostConfig);
}

/// A role with no flags of its own (the guild host).
impl RoleFlags for () {
    fn apply(&self, _: &mut HostConfig) {}
}

/// The flags of `warren baseapp`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BaseappFlags {
    /// Where the WebSocket listens [key: baseapp.listen; default: 127.0.0.1:7700].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

impl RoleFlags for BaseappFlags {
    fn apply(&self, config: &mut HostConfig) {
        if let Some(listen) = self.listen {
            config.baseapp.listen = listen;
        }
    }
}

/// The flags of a battleapp, ready to flatten into its command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BattleappFlags {
    /// Where the WebSocket listens [key: battleapp.listen; default: 127.0.0.1:7800].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Ticks per second of every room [key: battle.tick_hz; default: 10].
    #[arg(long, value_name = "HZ")]
    pub tick_hz: Option<u32>,
    /// Ticks between two checkpoints of a room [key: battleapp.checkpoint_ticks; default: 20].
    #[arg(long, value_name = "TICKS")]
    pub checkpoint_ticks: Option<u32>,
    /// The ws:// or wss:// URL clients reach this battleapp's /ws at [key:
    /// battleapp.public_url; default: ws://<listen>/ws].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

impl RoleFlags for BattleappFlags {
    fn apply(&self, config: &mut HostConfig) {
        if let Some(listen) = self.listen {
            config.battleapp.listen = listen;
        }
        if let Some(tick_hz) = self.tick_hz {
            config.battle.tick_hz = tick_hz;
        }
        if let Some(ticks) = self.checkpoint_ticks {
            config.battleapp.checkpoint_ticks = ticks;
        }
        if let Some(url) = &self.public_url {
            config.battleapp.public_url = Some(url.clone());
        }
    }
}

impl HostFlags {
    /// The host's configuration: the `--config` file's values (the defaults without one),
    /// overridden by every flag given, these and the role's; checked, with `redis` given
    /// one way or the other.
    pub fn resolve(&self, role: &impl RoleFlags) -> Result<HostConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => HostConfig::load(path)?,
            None => HostConfig::default(),
        };
        if let Some(redis) = &self.redis {
            config.redis = Some(redis.clone());
        }
        if let Some(name) = &self.name {
            config.name = Some(name.clone());
        }
        if let Some(groups) = self.groups {
            config.groups = groups;
        }
        if let Some(ttl) = self.lease_ttl_ms {
            config.lease_ttl_ms = ttl;
        }
        role.apply(&mut config);
        config.check().map_err(|message| ConfigError::Flag { message })?;
        config.redis()?;
        Ok(config)
    }
}

mod auth;
pub use auth::{AuthConfig, KEY_ENV};
mod bus;
pub use bus::BusConfig;
mod limits;
pub use limits::{LimitsConfig, StateKib};
mod net;
pub use net::NetConfig;

#[cfg(test)]
mod tests;
