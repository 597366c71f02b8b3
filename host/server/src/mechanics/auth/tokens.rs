//! Signed tokens (JWT, HS256): the session token a login hands out (short-lived), the
//! refresh token that gets a new one, and the battle ticket that lets a client into one
//! room. Each names a player and the account's token generation: logging out everywhere
//! moves the generation on, and every token made before is refused from then on.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The fewest bytes a signing key has.
pub const MIN_KEY_BYTES: usize = 32;

/// What a token is for: a token for one use is refused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    /// Opens a session (the WebSocket) and calls the account's HTTP endpoints.
    Session,
    /// Gets a new session token.
    Refresh,
    /// Joins one battle room.
    Ticket,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The player (the account's id), as a decimal string.
    pub sub: String,
    /// When it stops being good, seconds since the Unix epoch.
    pub exp: u64,
    /// When it was made.
    pub iat: u64,
    /// The account's token generation when it was made.
    pub generation: u64,
    /// What it is for.
    #[serde(rename = "use")]
    pub use_: Use,
    /// For a ticket: the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<u64>,
}

impl Claims {
    /// The player the token names.
    pub fn player(&self) -> Option<u64> {
        self.sub.parse().ok()
    }
}

/// Why a token was refused. The sentences are what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token came.
    #[error("no session token: log in first")]
    Missing,
    /// Not a token, or not signed with this cluster's key (forged, or another cluster's).
    #[error("the session token is not valid: log in again")]
    Forged,
    /// Good once, no longer.
    #[error("the session token expired: refresh it or log in again")]
    Expired,
    /// A token for another use (a refresh token where a session token goes, ...).
    #[error("this token is not for that")]
    WrongUse,
    /// Made before the account logged out everywhere.
    #[error("the session token was revoked: log in again")]
    Revoked,
}

/// The cluster's signing key, both ways.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Keys from a secret of at least [`MIN_KEY_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Keys, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("the signing key has {} bytes; it needs at least {MIN_KEY_BYTES}", secret.len()));
        }
        Ok(Keys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) })
    }

    /// Keys from a fresh random secret (`warren dev` without a configured key).
    pub fn random() -> Keys {
        let mut secret = [0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut secret).expect("the OS gives random bytes");
        Keys::new(&secret).expect("long enough")
    }

    /// A signed token for `player` of account generation `generation`, good for `ttl_s`
    /// from `now_s`.
    pub fn sign(&self, player: u64, generation: u64, use_: Use, room: Option<u64>, now_s: u64, ttl_s: u64) -> String {
        let claims = Claims { sub: player.to_string(), exp: now_s + ttl_s, iat: now_s, generation, use_, room };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signs any claims")
    }

    /// Checks a token's signature, its expiry against `now_s` and its use; the account's
    /// generation is the caller's to check (it lives in the message center).
    pub fn verify(&self, token: &str, use_: Use, now_s: u64) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock, to the second.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|_| TokenError::Forged)?.claims;
        if claims.player().is_none() {
            return Err(TokenError::Forged);
        }
        if now_s >= claims.exp {
            return Err(TokenError::Expired);
        }
        if claims.use_ != use_ {
            return Err(TokenError::WrongUse);
        }
        Ok(claims)
    }
}

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_for_its_player_use_and_time_only() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let token = keys.sign(42, 3, Use::Session, None, 1_000, 60);
        let claims = keys.verify(&token, Use::Session, 1_030).unwrap();
        assert_eq!((claims.player(), claims.generation), (Some(42), 3));
        assert_eq!(keys.verify(&token, Use::Session, 1_060), Err(TokenError::Expired));
        assert_eq!(keys.verify(&token, Use::Refresh, 1_030), Err(TokenError::WrongUse));
        let other = Keys::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&token, Use::Session, 1_030), Err(TokenError::Forged), "another key");
        // A changed payload (another player's, from a token of another key) breaks the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let theirs = other.sign(43, 3, Use::Session, None, 1_000, 60);
        let forged = format!("{}.{}.{}", parts[0], theirs.split('.').nth(1).unwrap(), parts[2]);
        assert_eq!(keys.verify(&forged, Use::Session, 1_030), Err(TokenError::Forged));
        assert_eq!(keys.verify("not a token", Use::Session, 1_030), Err(TokenError::Forged));
        assert!(Keys::new(&[1u8; 31]).is_err(), "a short key is refused");
    }
}
