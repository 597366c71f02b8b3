//! The `[auth]` section: accounts and session tokens.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// The environment variable that holds the signing key (overrides `auth.key_file`).
pub const KEY_ENV: &str = "WARREN_AUTH_KEY";

/// The `[auth]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A file holding the key that signs session tokens and battle tickets: at least 32
    /// bytes (`head -c 48 /dev/urandom | base64 > key`), the same on every host of the
    /// cluster. [`KEY_ENV`] overrides it. A cluster host does not start without a key;
    /// `warren dev` makes one up for its run (and says so).
    pub key_file: Option<PathBuf>,
    /// How long a session token is good for, in seconds.
    pub session_ttl_s: u64,
    /// How long a refresh token is good for, in seconds.
    pub refresh_ttl_s: u64,
    /// Login attempts (password logins) one account takes a minute.
    pub logins_per_minute_per_account: u32,
    /// Login, registration and device attempts one address makes a minute.
    pub logins_per_minute_per_address: u32,
    /// Proxies (the nginx gateway) trusted to name the client's address in
    /// `X-Forwarded-For`; from anyone else the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            key_file: None,
            session_ttl_s: 3600,
            refresh_ttl_s: 30 * 24 * 3600,
            logins_per_minute_per_account: 10,
            logins_per_minute_per_address: 60,
            trusted_proxies: vec![],
        }
    }
}

impl AuthConfig {
    /// Checks every value; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if !(10..=7 * 24 * 3600).contains(&self.session_ttl_s) {
            return Err(format!("auth.session_ttl_s must be 10..=604800, not {}", self.session_ttl_s));
        }
        if self.refresh_ttl_s < self.session_ttl_s || self.refresh_ttl_s > 365 * 24 * 3600 {
            return Err(format!(
                "auth.refresh_ttl_s must be auth.session_ttl_s..=31536000, not {}",
                self.refresh_ttl_s
            ));
        }
        for (key, n) in [
            ("logins_per_minute_per_account", self.logins_per_minute_per_account),
            ("logins_per_minute_per_address", self.logins_per_minute_per_address),
        ] {
            if n == 0 || n > 1_000_000 {
                return Err(format!("auth.{key} must be 1..=1000000, not {n}"));
            }
        }
        Ok(())
    }

    /// The signing key: [`KEY_ENV`], else `key_file`'s contents (trimmed); `None` if
    /// neither is set. An error names what is wrong with the one given.
    pub fn key(&self) -> Result<Option<Vec<u8>>, String> {
        let min = crate::mechanics::auth::tokens::MIN_KEY_BYTES;
        let (key, from) = if let Ok(env) = std::env::var(KEY_ENV) {
            (env.trim().as_bytes().to_vec(), KEY_ENV.to_owned())
        } else if let Some(path) = &self.key_file {
            let text = std::fs::read(path).map_err(|e| format!("auth.key_file {}: {e}", path.display()))?;
            (text.trim_ascii().to_vec(), format!("auth.key_file {}", path.display()))
        } else {
            return Ok(None);
        };
        if key.len() < min {
            return Err(format!("the signing key in {from} has {} bytes; it needs at least {min}", key.len()));
        }
        Ok(Some(key))
    }
}
