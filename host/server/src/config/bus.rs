//! The `[bus]` section of a host's configuration: how it talks to the message center.

use serde::Deserialize;

/// The `[bus]` section: timeouts and retries of the host's Redis connections.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// How long one Redis command may wait for its reply, in ms (0: forever). A command
    /// that timed out may still be applied: the host finds out what became of a commit
    /// (docs/cluster.md, *Timeouts*), so a short value costs retries, never correctness.
    pub response_timeout_ms: u64,
    /// How many times a lost connection is opened again, with backoff from 100 ms, before
    /// a command fails (the next command tries again).
    pub reconnect_retries: usize,
    /// How long opening a connection may take, in ms.
    pub connect_timeout_ms: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        let d = warren_bus::RedisOptions::default();
        BusConfig {
            response_timeout_ms: d.response_timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
            reconnect_retries: d.reconnect_retries,
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
        }
    }
}

impl BusConfig {
    /// The Redis options of a bus with `groups` guild groups.
    pub fn options(&self, groups: u32) -> warren_bus::RedisOptions {
        let ms = std::time::Duration::from_millis;
        warren_bus::RedisOptions {
            groups,
            namespace: None,
            response_timeout: (self.response_timeout_ms > 0).then(|| ms(self.response_timeout_ms)),
            reconnect_retries: self.reconnect_retries,
            connect_timeout: ms(self.connect_timeout_ms.max(1)),
        }
    }

    /// Checks every value; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.reconnect_retries > 100 {
            return Err(format!("bus.reconnect_retries must be 0..=100, not {}", self.reconnect_retries));
        }
        if self.connect_timeout_ms == 0 || self.connect_timeout_ms > 60_000 {
            return Err(format!("bus.connect_timeout_ms must be 1..=60000, not {}", self.connect_timeout_ms));
        }
        if self.response_timeout_ms > 600_000 {
            return Err(format!(
                "bus.response_timeout_ms must be 0..=600000 (0: none), not {}",
                self.response_timeout_ms
            ));
        }
        Ok(())
    }
}
