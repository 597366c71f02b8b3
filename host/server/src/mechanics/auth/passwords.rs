//! Password hashes: argon2id with its recommended parameters (19 MiB, two passes), a
//! random salt per password, stored as a PHC string. Hashing takes tens of milliseconds
//! of CPU on purpose, so it runs on the blocking threads, a few at a time: a flood of
//! logins waits for its turn instead of taking every core.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Shortest password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// Longest password, in characters (hashing cost does not grow with it, but a cap keeps
/// requests small).
pub const MAX_PASSWORD: usize = 128;

/// Checks a new password's length; the error says what is wrong.
pub fn check(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(format!("a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters"));
    }
    Ok(())
}

/// Hashes and checks passwords, a few at a time.
#[derive(Debug)]
pub struct Hasher {
    running: Semaphore,
}

impl Hasher {
    /// A hasher running at most `at_once` hashes together.
    pub fn new(at_once: usize) -> Hasher {
        Hasher { running: Semaphore::new(at_once.max(1)) }
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> String {
        let _turn = self.running.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(move || {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).expect("the OS gives random bytes");
            let salt = SaltString::encode_b64(&salt).expect("16 bytes make a salt");
            Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashes any password").to_string()
        })
        .await
        .expect("hashing does not panic")
    }

    /// Whether `password` matches `hash`. With no hash (no such account), a hash is still
    /// computed, so that a wrong name takes as long as a wrong password.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let _turn = self.running.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(move || match hash.as_deref().map(PasswordHash::new) {
            Some(Ok(parsed)) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
            Some(Err(_)) => false,
            None => {
                let salt = SaltString::encode_b64(&[0u8; 16]).expect("16 bytes make a salt");
                let _ = Argon2::default().hash_password(password.as_bytes(), &salt);
                false
            }
        })
        .await
        .expect("hashing does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_matches_its_hash_only() {
        let hasher = Hasher::new(2);
        let hash = hasher.hash("correct horse".into()).await;
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_ne!(hasher.hash("correct horse".into()).await, hash, "a fresh salt each time");
        assert!(hasher.verify("correct horse".into(), Some(hash.clone())).await);
        assert!(!hasher.verify("Correct horse".into(), Some(hash)).await);
        assert!(!hasher.verify("correct horse".into(), None).await);
        assert!(!hasher.verify("x".into(), Some("not a hash".into())).await);
        assert!(check("short").is_err() && check("long enough").is_ok());
    }
}
