//! The `[net]` section of a configuration: how a host holds off bad clients — timeouts,
//! caps on connections, the pace of a client's frames (docs/limits.md, *Clients*).

use crate::mechanics::net::NetLimits;
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

/// The `[net]` section, for `warren dev` and every cluster host with a client socket.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    /// How long a client may take to send an HTTP request's headers (the WebSocket
    /// upgrade's included), in ms; a connection that sends nothing is closed after it too.
    pub header_timeout_ms: u64,
    /// How long an upgraded socket may stay open without logging in (or, on a battleapp,
    /// joining a room), in ms.
    pub login_timeout_ms: u64,
    /// Most client connections open on the host at once, logged in or not (0: the
    /// process's open-file limit less 256, kept for the host's own files).
    pub max_connections: usize,
    /// Most connections open at once from one address, logged in or not.
    pub max_per_address: usize,
    /// Most connections from one address that have not logged in yet.
    pub max_pending_per_address: usize,
    /// Addresses counted against the host's cap only: a gateway in front of the host
    /// (nginx) brings every player from its own address and caps their addresses itself.
    pub uncapped_addresses: Vec<IpAddr>,
    /// Frames (control frames included) one connection may send a second, on average...
    pub frames_per_s: u32,
    /// ...and at once after a quiet spell.
    pub frames_burst: u32,
    /// How long one write to a client may wait for the client to take it, in ms: a
    /// client that stops reading is closed after it, and holds nothing meanwhile.
    pub write_timeout_ms: u64,
    /// How often the host pings a client that has sent nothing since, in ms.
    pub ping_interval_ms: u64,
    /// How long a client may send nothing (no frame, no pong) before it is closed, in ms.
    pub idle_timeout_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        let d = NetLimits::default();
        let ms = |d: Duration| d.as_millis() as u64;
        NetConfig {
            header_timeout_ms: ms(d.header_timeout),
            login_timeout_ms: ms(d.login_timeout),
            max_connections: 0,
            max_per_address: d.max_per_address,
            max_pending_per_address: d.max_pending_per_address,
            uncapped_addresses: d.uncapped_addresses,
            frames_per_s: d.frames_per_s,
            frames_burst: d.frames_burst,
            write_timeout_ms: ms(d.write_timeout),
            ping_interval_ms: ms(d.ping_interval),
            idle_timeout_ms: ms(d.idle_timeout),
        }
    }
}

/// Longest of the timeouts: an hour.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Most connections a host may be configured for.
const MAX_CONNECTIONS: usize = 10_000_000;

impl NetConfig {
    /// The limits a host's door applies ([`crate::mechanics::net::Door`]).
    pub fn to_limits(&self) -> NetLimits {
        let ms = Duration::from_millis;
        NetLimits {
            header_timeout: ms(self.header_timeout_ms),
            login_timeout: ms(self.login_timeout_ms),
            max_connections: match self.max_connections {
                0 => NetLimits::connections_for_open_files(),
                n => n,
            },
            max_per_address: self.max_per_address,
            max_pending_per_address: self.max_pending_per_address,
            uncapped_addresses: self.uncapped_addresses.clone(),
            frames_per_s: self.frames_per_s,
            frames_burst: self.frames_burst,
            write_timeout: ms(self.write_timeout_ms),
            ping_interval: ms(self.ping_interval_ms),
            idle_timeout: ms(self.idle_timeout_ms),
        }
    }

    /// Checks every value; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("header_timeout_ms", self.header_timeout_ms),
            ("login_timeout_ms", self.login_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("ping_interval_ms", self.ping_interval_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ] {
            if value == 0 || value > MAX_TIMEOUT_MS {
                return Err(format!("net.{key} must be 1..={MAX_TIMEOUT_MS}, not {value}"));
            }
        }
        if self.idle_timeout_ms <= self.ping_interval_ms {
            return Err(format!(
                "net.idle_timeout_ms ({}) must be above net.ping_interval_ms ({}): a client answers the pings",
                self.idle_timeout_ms, self.ping_interval_ms
            ));
        }
        if self.max_connections > MAX_CONNECTIONS {
            return Err(format!(
                "net.max_connections must be 0..={MAX_CONNECTIONS} (0: from the open-file limit), not {}",
                self.max_connections
            ));
        }
        for (key, value) in [
            ("max_per_address", self.max_per_address),
            ("max_pending_per_address", self.max_pending_per_address),
            ("frames_per_s", self.frames_per_s as usize),
            ("frames_burst", self.frames_burst as usize),
        ] {
            if value == 0 {
                return Err(format!("net.{key} must be above 0"));
            }
        }
        if self.max_pending_per_address > self.max_per_address {
            return Err(format!(
                "net.max_pending_per_address ({}) must be at most net.max_per_address ({})",
                self.max_pending_per_address, self.max_per_address
            ));
        }
        Ok(())
    }
}
