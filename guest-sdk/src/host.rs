//! The host capabilities, typed. On wasm32 they call the imported WIT functions; on the
//! host target they call the native test host in [`crate::testing`].

#[cfg(target_arch = "wasm32")]
mod raw {
    use crate::Address;
    use crate::bindings::platform::warren::game as wit;

    pub fn log(level: super::log::Level, text: &str) {
        use super::log::Level;
        use wit::log::Level as L;
        let level = match level {
            Level::Trace => L::Trace,
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        };
        wit::log::write(level, text);
    }
    pub fn send(to: &Address, kind: &str, body: &[u8]) {
        wit::messaging::send(&crate::export::address_to_wit(to), kind, body);
    }
    pub fn reply(frame: &[u8]) {
        wit::messaging::reply(frame);
    }
    pub fn push(player: u64, frame: &[u8]) {
        wit::messaging::push(player, frame);
    }
    pub fn get(key: &str) -> Option<Vec<u8>> {
        wit::state::get(key)
    }
    pub fn set(key: &str, value: &[u8]) {
        wit::state::set(key, value);
    }
    pub fn remove(key: &str) {
        wit::state::remove(key);
    }
    pub fn keys() -> Vec<String> {
        wit::state::keys()
    }
    pub fn now_ms() -> u64 {
        wit::env::now_ms()
    }
    pub fn random() -> u64 {
        wit::env::random()
    }
}

#[cfg(not(target_arch = "wasm32"))]
use crate::testing::raw;

/// The state of the entity this call is about, as named JSON values.
pub mod state {
    use super::raw;
    use crate::{Outcome, Reject};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// Reads and decodes a value; `None` if it is not set.
    pub fn get<T: DeserializeOwned>(key: &str) -> Outcome<Option<T>> {
        match raw::get(key) {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Reject::new(format!("state `{key}` does not decode: {e}"))),
        }
    }

    /// Reads a value, or its default when not set.
    pub fn get_or_default<T: DeserializeOwned + Default>(key: &str) -> Outcome<T> {
        Ok(get(key)?.unwrap_or_default())
    }

    /// Writes a value (committed with the handler).
    pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) {
        raw::set(key, &crate::encode(value));
    }

    /// Removes a value (committed with the handler).
    pub fn remove(key: &str) {
        raw::remove(key);
    }

    /// The keys that are set, ascending.
    pub fn keys() -> Vec<String> {
        raw::keys()
    }

    /// Reads the raw bytes of a value.
    pub fn get_raw(key: &str) -> Option<Vec<u8>> {
        raw::get(key)
    }

    /// Writes raw bytes.
    pub fn set_raw(key: &str, value: &[u8]) {
        raw::set(key, value);
    }
}

/// Messages to other entities and frames to clients, delivered after the handler commits.
pub mod msg {
    use super::raw;
    use crate::{Address, PlayerId};
    use serde::Serialize;

    /// Sends `body` as a message of kind `kind` to `to`'s queue.
    pub fn send<T: Serialize + ?Sized>(to: Address, kind: &str, body: &T) {
        raw::send(&to, kind, &crate::encode(body));
    }

    /// Answers the client whose frame caused this call.
    pub fn reply<T: Serialize + ?Sized>(frame: &T) {
        raw::reply(&crate::encode(frame));
    }

    /// Pushes a frame to a player's client, wherever it is connected.
    pub fn push<T: Serialize + ?Sized>(player: PlayerId, frame: &T) {
        raw::push(player, &crate::encode(frame));
    }

    /// Pushes one frame to several players' clients, encoding it once.
    pub fn push_each<T: Serialize + ?Sized>(players: impl IntoIterator<Item = PlayerId>, frame: &T) {
        let bytes = crate::encode(frame);
        for player in players {
            raw::push(player, &bytes);
        }
    }
}

/// Time and randomness from the host, the same on a replay of the message.
pub mod env {
    use super::raw;

    /// Milliseconds since the Unix epoch when the host took up this message.
    pub fn now_ms() -> u64 {
        raw::now_ms()
    }

    /// The next number of this call's random sequence.
    pub fn random() -> u64 {
        raw::random()
    }

    /// A number in `lo..hi` (`lo` if the range is empty).
    pub fn random_range(lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + random() % (hi - lo)
    }
}

/// Log lines, tagged by the host with the role and entity; emitted only on commit.
pub mod log {
    use super::raw;

    /// How important a log line is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Level {
        /// Very fine detail.
        Trace,
        /// Detail useful while developing.
        Debug,
        /// Normal events.
        Info,
        /// Something unexpected that was handled.
        Warn,
        /// Something that could not be handled.
        Error,
    }

    /// Writes one line.
    pub fn write(level: Level, text: &str) {
        raw::log(level, text);
    }

    /// Writes an info line.
    pub fn info(text: &str) {
        write(Level::Info, text);
    }

    /// Writes a warning.
    pub fn warn(text: &str) {
        write(Level::Warn, text);
    }
}
