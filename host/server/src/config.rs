//! Configuration files (TOML). Unknown keys are errors, so a typo is caught at start, not
//! silently ignored.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            modules: PathBuf::from("modules"),
            battle: BattleConfig::default(),
            limits: LimitsConfig::default(),
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

/// The limits of a handler call.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Deadline of one call, in milliseconds.
    pub deadline_ms: u64,
    /// Memory cap of one instance, in MiB.
    pub memory_mib: usize,
    /// Most items (messages, frames, writes, log lines) one call may emit.
    pub max_emits: usize,
    /// Most bytes one call may emit.
    pub max_emit_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = warren_runtime::Limits::default();
        LimitsConfig {
            deadline_ms: l.deadline.as_millis() as u64,
            memory_mib: l.memory_bytes >> 20,
            max_emits: l.max_emits,
            max_emit_bytes: l.max_emit_bytes,
        }
    }
}

impl LimitsConfig {
    /// The runtime's limits.
    pub fn to_limits(&self) -> warren_runtime::Limits {
        warren_runtime::Limits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib << 20,
            max_emits: self.max_emits,
            max_emit_bytes: self.max_emit_bytes,
        }
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
        self.limits.check()
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

impl LimitsConfig {
    /// Checks the values, naming the key of the first one out of range.
    fn check(&self) -> Result<(), String> {
        let l = self;
        if l.deadline_ms == 0 || l.deadline_ms > 10_000 {
            return Err(format!("limits.deadline_ms must be 1..=10000, not {}", l.deadline_ms));
        }
        if l.memory_mib == 0 || l.memory_mib > 4096 {
            return Err(format!("limits.memory_mib must be 1..=4096, not {}", l.memory_mib));
        }
        if l.max_emits == 0 || l.max_emit_bytes == 0 {
            return Err("limits.max_emits and limits.max_emit_bytes must be above 0".into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_dev_config_parses() {
        let text = include_str!("../../../config/dev.toml");
        assert_eq!(DevConfig::parse(text).unwrap(), DevConfig::default());
    }

    #[test]
    fn typos_and_bad_values_are_refused_with_the_key() {
        let err = DevConfig::parse("[battle]\ntick_hertz = 5\n").unwrap_err();
        assert!(err.contains("tick_hertz"), "{err}");
        let err = DevConfig::parse("[battle]\ntick_hz = 0\n").unwrap_err();
        assert!(err.contains("battle.tick_hz"), "{err}");
        let err = DevConfig::parse("listen = \"nowhere\"\n").unwrap_err();
        assert!(err.contains("listen"), "{err}");
    }

    /// What the shipped examples set: the defaults, and a local Redis.
    fn example() -> HostConfig {
        HostConfig { redis: Some("redis://127.0.0.1:6379".into()), ..HostConfig::default() }
    }

    #[test]
    fn the_shipped_host_configs_parse_to_the_defaults() {
        for (file, text) in [
            ("baseapp.toml", include_str!("../../../config/baseapp.toml")),
            ("guild.toml", include_str!("../../../config/guild.toml")),
            ("battleapp.toml", include_str!("../../../config/battleapp.toml")),
        ] {
            let parsed = HostConfig::parse(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(parsed, example(), "{file}");
        }
    }

    #[test]
    fn host_config_typos_and_bad_values_are_refused_with_the_key() {
        for (text, key) in [
            // Typos, at the top and in every section.
            ("lease_ttl = 5000\n", "lease_ttl"),
            ("[baseapp]\nlisten_on = \"127.0.0.1:1\"\n", "listen_on"),
            ("[battle]\ntick_hertz = 5\n", "tick_hertz"),
            ("[battleapp]\ncheckpoint_tick = 5\n", "checkpoint_tick"),
            ("[limits]\ndeadline = 5\n", "deadline"),
            ("[guild]\n", "guild"),
            // Wrong types.
            ("groups = \"many\"\n", "groups"),
            ("[baseapp]\nlisten = \"nowhere\"\n", "listen"),
            ("[battleapp]\nlisten = \"nowhere\"\n", "listen"),
            // Values out of range.
            ("redis = \"\"\n", "redis"),
            ("redis = \"127.0.0.1:6379\"\n", "redis"),
            ("name = \"two words\"\n", "name"),
            ("name = \"\"\n", "name"),
            ("groups = 0\n", "groups"),
            ("lease_ttl_ms = 299\n", "lease_ttl_ms"),
            ("lease_ttl_ms = 3600001\n", "lease_ttl_ms"),
            ("[battle]\ntick_hz = 0\n", "battle.tick_hz"),
            ("[battle]\ntick_hz = 1001\n", "battle.tick_hz"),
            ("[battleapp]\ncheckpoint_ticks = 0\n", "battleapp.checkpoint_ticks"),
            ("[battleapp]\ncheckpoint_ticks = 10001\n", "battleapp.checkpoint_ticks"),
            ("[battleapp]\npublic_url = \"http://example.com/ws\"\n", "battleapp.public_url"),
            ("[battleapp]\npublic_url = \"wss://\"\n", "battleapp.public_url"),
            ("[limits]\nmemory_mib = 0\n", "limits.memory_mib"),
        ] {
            let err = HostConfig::parse(text).expect_err(text);
            assert!(err.contains(key), "{text:?} refused without naming `{key}`: {err}");
        }
    }

    #[test]
    fn host_config_accepts_every_role_section_and_edge_values() {
        let text = "redis = \"redis://a:7000,redis://b:7001\"\nname = \"base-1\"\ngroups = 1\n\
                    lease_ttl_ms = 300\n[baseapp]\nlisten = \"0.0.0.0:7701\"\n[battle]\ntick_hz = 1000\n\
                    [battleapp]\ncheckpoint_ticks = 10000\npublic_url = \"wss://battle.example.com/ws\"\n";
        let c = HostConfig::parse(text).unwrap();
        assert_eq!((c.groups, c.lease_ttl_ms, c.battle.tick_hz, c.battleapp.checkpoint_ticks), (1, 300, 1000, 10_000));
        assert_eq!(c.name.as_deref(), Some("base-1"));
        let bound = "10.0.0.5:7800".parse().unwrap();
        assert_eq!(c.battleapp.public_url(bound), "wss://battle.example.com/ws");
        assert_eq!(BattleappConfig::default().public_url(bound), "ws://10.0.0.5:7800/ws");
    }

    /// A config file in a temporary folder.
    fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let (_dir, path) = config_file(
            "redis = \"redis://file:6379\"\nname = \"from-file\"\ngroups = 8\nlease_ttl_ms = 5000\n\
             [baseapp]\nlisten = \"127.0.0.1:7701\"\n[battle]\ntick_hz = 20\n[limits]\ndeadline_ms = 80\n\
             [battleapp]\ncheckpoint_ticks = 40\n",
        );
        // No flags but the file: the file's values, the defaults elsewhere.
        let only_file = HostFlags { config: Some(path.clone()), ..HostFlags::default() };
        let c = only_file.resolve(&BaseappFlags::default()).unwrap();
        assert_eq!(c.redis().unwrap(), "redis://file:6379");
        assert_eq!((c.name.as_deref(), c.groups, c.lease_ttl_ms), (Some("from-file"), 8, 5000));
        assert_eq!((c.baseapp.listen.port(), c.battle.tick_hz, c.limits.deadline_ms), (7701, 20, 80));
        assert_eq!(c.limits.memory_mib, LimitsConfig::default().memory_mib);
        assert_eq!(c.battleapp.listen, BattleappConfig::default().listen);

        // Every flag given: each wins over the file.
        let flags = HostFlags {
            config: Some(path),
            redis: Some("redis://flag:6379".into()),
            name: Some("from-flag".into()),
            groups: Some(16),
            lease_ttl_ms: Some(2000),
        };
        let baseapp = BaseappFlags { listen: Some("127.0.0.1:7702".parse().unwrap()) };
        let c = flags.resolve(&baseapp).unwrap();
        assert_eq!(c.redis().unwrap(), "redis://flag:6379");
        assert_eq!((c.name.as_deref(), c.groups, c.lease_ttl_ms), (Some("from-flag"), 16, 2000));
        assert_eq!(c.baseapp.listen.port(), 7702);
        assert_eq!(c.limits.deadline_ms, 80, "keys without a flag keep the file's value");

        let battleapp = BattleappFlags {
            listen: Some("127.0.0.1:7801".parse().unwrap()),
            tick_hz: Some(30),
            checkpoint_ticks: Some(5),
            public_url: Some("wss://b.example.com/ws".into()),
        };
        let c = flags.resolve(&battleapp).unwrap();
        assert_eq!((c.battleapp.listen.port(), c.battle.tick_hz, c.battleapp.checkpoint_ticks), (7801, 30, 5));
        assert_eq!(c.battleapp.public_url.as_deref(), Some("wss://b.example.com/ws"));
        assert_eq!(c.baseapp.listen.port(), 7701, "another role's flags leave the baseapp section alone");

        // Without a file: flags over the defaults.
        let c = HostFlags { redis: Some("redis://flag:6379".into()), ..HostFlags::default() }.resolve(&()).unwrap();
        assert_eq!(c, HostConfig { redis: Some("redis://flag:6379".into()), ..HostConfig::default() });
    }

    #[test]
    fn a_host_without_redis_or_with_a_bad_flag_is_refused_clearly() {
        let err = HostFlags::default().resolve(&()).unwrap_err().to_string();
        assert!(err.contains("--redis") && err.contains("redis =") && err.contains("--config"), "{err}");
        let (_dir, path) = config_file("name = \"no-redis\"\n");
        let err = HostFlags { config: Some(path), ..HostFlags::default() }.resolve(&()).unwrap_err().to_string();
        assert!(err.contains("--redis"), "{err}");

        let flags = HostFlags { redis: Some("redis://r:6379".into()), lease_ttl_ms: Some(100), ..HostFlags::default() };
        let err = flags.resolve(&()).unwrap_err().to_string();
        assert!(err.contains("--lease-ttl-ms") && err.contains("lease_ttl_ms"), "{err}");
        let flags = HostFlags { redis: Some("redis://r:6379".into()), ..HostFlags::default() };
        let err = flags.resolve(&BattleappFlags { tick_hz: Some(0), ..BattleappFlags::default() }).unwrap_err();
        assert!(err.to_string().contains("--tick-hz"), "{err}");

        let (_dir, path) = config_file("redis = \"redis://r:6379\"\ngroups = 0\n");
        let err = HostFlags { config: Some(path.clone()), ..HostFlags::default() }.resolve(&()).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("groups") && err.contains(&path.display().to_string()), "names the file: {err}");
    }

    #[test]
    fn the_host_flags_keep_their_names() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            host: HostFlags,
            #[command(flatten)]
            baseapp: BaseappFlags,
        }
        let cli = Cli::try_parse_from([
            "warren",
            "--listen",
            "127.0.0.1:0",
            "--redis",
            "redis://r:6379",
            "--groups",
            "12",
            "--name",
            "base-1",
            "--lease-ttl-ms",
            "1500",
            "--config",
            "c.toml",
        ])
        .unwrap();
        assert_eq!(cli.host.redis.as_deref(), Some("redis://r:6379"));
        assert_eq!(
            (cli.host.groups, cli.host.lease_ttl_ms, cli.host.name.as_deref()),
            (Some(12), Some(1500), Some("base-1"))
        );
        assert_eq!(cli.baseapp.listen.map(|a| a.port()), Some(0));
        assert_eq!(cli.host.config.as_deref(), Some(Path::new("c.toml")));
    }
}
