//! Who a client is. Accounts — by username and password, or by a device id a client keeps
//! (a guest, who may add a username and password later) — stored in the message center;
//! the signed tokens a login hands out ([`tokens`]); and the check at a socket's door: a
//! missing, expired, forged or revoked token is refused before any logic runs.
//!
//! Logins are rate-limited per account and per address. Usernames are normalized so that
//! one name is one account ([`names`]). `warren dev` may also let a client in by name
//! alone (`--name-login`); cluster roles never do.

pub mod http;
pub mod kick;
pub mod names;
pub mod passwords;
pub mod tokens;

use crate::config::AuthConfig;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::num::NonZeroU32;
pub use tokens::TokenError;
use tokens::{Keys, Use, now_s};
use warren_bus::{Bus, BusError};

/// The account fields Warren keeps.
const NAME: &str = "name";
const PASSWORD: &str = "pw";
const GENERATION: &str = "gen";

/// Shortest and longest device id a client may keep, and what it is written with.
const DEVICE_ID: std::ops::RangeInclusive<usize> = 16..=128;

/// Who a client is, once let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The player (the account's id).
    pub player: u64,
    /// The name other players see.
    pub name: String,
    /// The account's token generation it was let in at: logging out everywhere ends the
    /// sessions of older ones ([`kick::Kick::Revoked`]).
    pub generation: u64,
}

/// What a login hands the client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issued {
    /// The player.
    pub player: u64,
    /// The username, if the account has one (a device account has none until it is given one).
    pub username: Option<String>,
    /// The session token (opens the WebSocket).
    pub token: String,
    /// Gets a new session token once this one expires.
    pub refresh_token: String,
    /// Seconds the session token is good for.
    pub expires_in: u64,
}

/// Why an account request was refused: the sentence is what the client reads.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request itself is wrong (a name that is not a name, a short password, ...).
    #[error("{0}")]
    Invalid(String),
    /// The username belongs to another account (or looks like one that does).
    #[error("the username {0} is taken (or looks too much like one that is)")]
    Taken(String),
    /// Wrong username or password (which one is not said).
    #[error("wrong username or password")]
    Wrong,
    /// A token was refused.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// Too many attempts lately.
    #[error("too many login attempts {0}: wait a minute and try again")]
    TooMany(&'static str),
    /// The message center did not answer.
    #[error("the server cannot reach its accounts right now: try again ({0})")]
    Unavailable(#[from] BusError),
}

/// Accounts, tokens and the login rate limits of one host.
pub struct Auth {
    bus: Bus,
    keys: Keys,
    session_ttl_s: u64,
    refresh_ttl_s: u64,
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    hasher: passwords::Hasher,
    /// Proxies (the gateway) whose `X-Forwarded-For` names the client's address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Whether a client may log in by name alone (`warren dev --name-login` only).
    pub name_login: bool,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least one"))
}

impl Auth {
    /// Accounts on `bus`, tokens signed with `keys`, as `config` says.
    pub fn new(bus: Bus, keys: Keys, config: &AuthConfig) -> Auth {
        Auth {
            bus,
            keys,
            session_ttl_s: config.session_ttl_s,
            refresh_ttl_s: config.refresh_ttl_s,
            per_account: RateLimiter::keyed(per_minute(config.logins_per_minute_per_account)),
            per_address: RateLimiter::keyed(per_minute(config.logins_per_minute_per_address)),
            hasher: passwords::Hasher::new(2),
            trusted_proxies: config.trusted_proxies.clone(),
            name_login: false,
        }
    }

    /// The signing keys (battle tickets are signed with them too).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Counts one login attempt from `from` (and for `account`, if named).
    fn attempt(&self, from: IpAddr, account: Option<&str>) -> Result<(), AuthError> {
        // Forget quiet keys now and then, so the limiters' memory follows the live load.
        if self.per_address.len() > 10_000 {
            self.per_address.retain_recent();
        }
        if self.per_account.len() > 10_000 {
            self.per_account.retain_recent();
        }
        self.per_address.check_key(&from).map_err(|_| AuthError::TooMany("from your address"))?;
        if let Some(account) = account {
            self.per_account.check_key(&account.to_owned()).map_err(|_| AuthError::TooMany("for this account"))?;
        }
        Ok(())
    }

    /// Tokens for `player` at generation `generation`.
    fn issue(&self, player: u64, generation: u64, username: Option<String>) -> Issued {
        let now = now_s();
        Issued {
            player,
            username,
            token: self.keys.sign(player, generation, Use::Session, None, now, self.session_ttl_s),
            refresh_token: self.keys.sign(player, generation, Use::Refresh, None, now, self.refresh_ttl_s),
            expires_in: self.session_ttl_s,
        }
    }

    /// Registers `username` with `password`.
    pub async fn register(&self, username: &str, password: &str, from: IpAddr) -> Result<Issued, AuthError> {
        let name = names::username(username).map_err(AuthError::Invalid)?;
        passwords::check(password).map_err(AuthError::Invalid)?;
        self.attempt(from, None)?;
        let hash = self.hasher.hash(password.to_owned()).await;
        let fields: [(&str, &[u8]); 2] = [(NAME, name.shown.as_bytes()), (PASSWORD, hash.as_bytes())];
        match self.bus.create_account(&user_login(&name.key), &fields).await? {
            Some(player) => Ok(self.issue(player, 0, Some(name.shown))),
            None => Err(AuthError::Taken(name.shown)),
        }
    }

    /// Logs in by username and password.
    pub async fn login(&self, username: &str, password: &str, from: IpAddr) -> Result<Issued, AuthError> {
        let name = names::username(username).map_err(|_| AuthError::Wrong)?;
        self.attempt(from, Some(&name.key))?;
        let player = self.bus.find_account(&user_login(&name.key)).await?;
        let (hash, shown, generation) = match player {
            Some(id) => {
                let [shown, hash, generation] = self.fields(id).await?;
                (hash, shown, generation)
            }
            None => (None, None, None),
        };
        if !self.hasher.verify(password.to_owned(), hash).await {
            return Err(AuthError::Wrong);
        }
        let player = player.expect("a hash came from an account");
        Ok(self.issue(player, number(generation), shown))
    }

    /// Logs in by a device id, making a guest account the first time.
    pub async fn device(&self, device_id: &str, from: IpAddr) -> Result<Issued, AuthError> {
        let valid = DEVICE_ID.contains(&device_id.len())
            && device_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(AuthError::Invalid(format!(
                "a device id is {} to {} letters, digits, _ or -",
                DEVICE_ID.start(),
                DEVICE_ID.end()
            )));
        }
        self.attempt(from, None)?;
        // Stored hashed: whoever reads the message center cannot log in as the device.
        let login = format!("device:{}", hex::encode(Sha256::digest(device_id.as_bytes())));
        let player = match self.bus.find_account(&login).await? {
            Some(id) => id,
            None => match self.bus.create_account(&login, &[]).await? {
                Some(id) => id,
                // Made by a racing request for the same device.
                None => self.bus.find_account(&login).await?.ok_or(AuthError::Wrong)?,
            },
        };
        let [shown, _, generation] = self.fields(player).await?;
        Ok(self.issue(player, number(generation), shown))
    }

    /// Gives the guest account of a session `token` a username and password: it keeps its
    /// player and gets a name to log in with elsewhere. An account that has a password
    /// keeps it: a session token alone (perhaps stolen) does not change it.
    pub async fn set_password(&self, token: &str, username: &str, password: &str) -> Result<Issued, AuthError> {
        let (player, claims, [_, hash, _]) = self.current(token, Use::Session).await?;
        if hash.is_some() {
            return Err(AuthError::Invalid("this account has a username and password already".into()));
        }
        let name = names::username(username).map_err(AuthError::Invalid)?;
        passwords::check(password).map_err(AuthError::Invalid)?;
        let hash = self.hasher.hash(password.to_owned()).await;
        let fields: [(&str, &[u8]); 2] = [(NAME, name.shown.as_bytes()), (PASSWORD, hash.as_bytes())];
        if !self.bus.link_login(player, &user_login(&name.key), &fields).await? {
            return Err(AuthError::Taken(name.shown));
        }
        Ok(self.issue(player, claims.generation, Some(name.shown)))
    }

    /// New tokens for a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Issued, AuthError> {
        let (player, claims, [shown, _, _]) = self.current(refresh_token, Use::Refresh).await?;
        Ok(self.issue(player, claims.generation, shown))
    }

    /// Revokes every token of the session `token`'s account, this one included, and ends
    /// the account's open sessions.
    pub async fn logout_everywhere(&self, token: &str) -> Result<(), AuthError> {
        let (player, claims, _) = self.current(token, Use::Session).await?;
        let mut generation = claims.generation;
        // Another revocation came between the read and the move (a password change, say):
        // the tokens it made are revoked too, from the generation it left.
        for _ in 0..3 {
            if self.revoke(player, generation, &[]).await?.is_some() {
                break;
            }
            let [_, _, now] = self.fields(player).await?;
            generation = number(now);
        }
        Ok(())
    }

    /// Changes the password of the session `token`'s account, given its current one (a
    /// session token alone, perhaps stolen, does not). Every token made before is revoked
    /// and every open session ends, this client's too: it goes on with the tokens answered.
    /// A request overtaken by another change or a logout everywhere changes nothing.
    pub async fn change_password(
        &self,
        token: &str,
        password: &str,
        new_password: &str,
        from: IpAddr,
    ) -> Result<Issued, AuthError> {
        let (player, claims, [shown, hash, _]) = self.current(token, Use::Session).await?;
        let Some(shown) = shown.filter(|_| hash.is_some()) else {
            return Err(AuthError::Invalid("this account has no password yet: give it a username and password".into()));
        };
        // Guesses of the current password count as logins.
        let key = names::username(&shown).map(|n| n.key).unwrap_or_else(|_| shown.clone());
        self.attempt(from, Some(&key))?;
        if !self.hasher.verify(password.to_owned(), hash).await {
            return Err(AuthError::Wrong);
        }
        passwords::check(new_password).map_err(AuthError::Invalid)?;
        let new_hash = self.hasher.hash(new_password.to_owned()).await;
        match self.revoke(player, claims.generation, &[(PASSWORD, new_hash.as_bytes())]).await? {
            Some(generation) => Ok(self.issue(player, generation, Some(shown))),
            None => Err(TokenError::Revoked.into()),
        }
    }

    /// Moves the account's token generation on from `generation`, setting `set` in the same
    /// step, and ends the sessions of older generations: the new generation, or `None` if
    /// it had moved on already (nothing is set then).
    ///
    /// A kick goes before the revocation: should the revocation fail, the token still
    /// works to try again. Another goes after it, for a session that read the first while
    /// still let in (the queue's owner then); a session that takes the player later checks
    /// the generation itself ([`Auth::still_current`]).
    async fn revoke(&self, player: u64, generation: u64, set: &[(&str, &[u8])]) -> Result<Option<u64>, AuthError> {
        self.bus.send(kick::Kick::Revoked(generation + 1).to(player)).await?;
        let Some(now) = self.bus.bump_account_field(player, GENERATION, generation, set).await? else {
            return Ok(None);
        };
        if let Err(e) = self.bus.send(kick::Kick::Revoked(now).to(player)).await {
            // Revoked all the same: not an error to the client (whose token is revoked
            // now, so it could not try again). The first kick ended the sessions then.
            tracing::warn!(player, error = %e, "the kick after a revocation was not sent");
        }
        Ok(Some(now))
    }

    /// Whether `identity`'s generation is still the account's: a session checks, once it
    /// holds the player, that no logout everywhere came after its token was checked.
    pub async fn still_current(&self, identity: &Identity) -> Result<bool, AuthError> {
        let [_, _, generation] = self.fields(identity.player).await?;
        Ok(number(generation) <= identity.generation)
    }

    /// Who a session token lets in.
    pub async fn session(&self, token: &str) -> Result<Identity, AuthError> {
        let (player, claims, [shown, _, _]) = self.current(token, Use::Session).await?;
        Ok(Identity { player, name: shown.unwrap_or_else(|| guest_name(player)), generation: claims.generation })
    }

    /// Who a name lets in, where names alone let players in (`warren dev --name-login`):
    /// the account of that username, made on first use.
    pub async fn by_name(&self, typed: &str) -> Result<Identity, AuthError> {
        let name = names::username(typed).map_err(AuthError::Invalid)?;
        let login = user_login(&name.key);
        let player = match self.bus.find_account(&login).await? {
            Some(id) => id,
            None => match self.bus.create_account(&login, &[(NAME, name.shown.as_bytes())]).await? {
                Some(id) => id,
                None => self.bus.find_account(&login).await?.ok_or(AuthError::Wrong)?,
            },
        };
        let [shown, _, generation] = self.fields(player).await?;
        Ok(Identity { player, name: shown.unwrap_or(name.shown), generation: number(generation) })
    }

    /// A token checked against the key, the clock and the account's generation: its
    /// player, its claims, and the account's fields (read once for both the check and the
    /// caller).
    async fn current(&self, token: &str, use_: Use) -> Result<(u64, tokens::Claims, [Option<String>; 3]), AuthError> {
        let claims = self.keys.verify(token, use_, now_s())?;
        let player = claims.player().ok_or(TokenError::Forged)?;
        let fields = self.fields(player).await?;
        if number(fields[2].clone()) != claims.generation {
            return Err(TokenError::Revoked.into());
        }
        Ok((player, claims, fields))
    }

    /// The shown name, password hash and token generation of an account.
    async fn fields(&self, player: u64) -> Result<[Option<String>; 3], AuthError> {
        let got = self.bus.account_fields(player, &[NAME, PASSWORD, GENERATION]).await?;
        let mut text = got.into_iter().map(|v| v.and_then(|b| String::from_utf8(b).ok()));
        Ok([text.next().flatten(), text.next().flatten(), text.next().flatten()])
    }
}

/// The login of a username key.
fn user_login(key: &str) -> String {
    format!("user:{key}")
}

/// The name a guest is shown by.
fn guest_name(player: u64) -> String {
    format!("guest-{player}")
}

fn number(field: Option<String>) -> u64 {
    field.and_then(|s| s.parse().ok()).unwrap_or(0)
}
