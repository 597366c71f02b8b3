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
        let l = &self.limits;
        if self.battle.tick_hz == 0 || self.battle.tick_hz > 1000 {
            return Err(format!("battle.tick_hz must be 1..=1000, not {}", self.battle.tick_hz));
        }
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
}
