//! The client protocol's own frames: login, errors, and the battle frames the host routes.
//! Every other frame is game logic, handed to the baseapp module as it is.
//! Documented in docs/protocol.md.

use serde_json::{Value, json};

/// Longest account name.
const MAX_NAME: usize = 32;

/// What a client frame is, as far as the host cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `{"type":"login","name":"ann"}`.
    Login {
        /// The account name.
        name: String,
    },
    /// `{"type":"battle.start"}`: a practice battle.
    BattleStart,
    /// `{"type":"battle.input", ...}`: for the player's room.
    BattleInput,
    /// Anything else with a `type`: for the baseapp module.
    Game,
}

/// Reads a frame's `type`, with a reason a client can act on when it is malformed.
pub fn parse(frame: &[u8]) -> Result<ClientFrame, String> {
    let value: Value = serde_json::from_slice(frame).map_err(|e| format!("frames are JSON objects: {e}"))?;
    let kind = value.get("type").and_then(Value::as_str).ok_or("a frame needs a \"type\" field with a string")?;
    Ok(match kind {
        "login" => {
            let name = value.get("name").and_then(Value::as_str).ok_or("login needs a \"name\"")?;
            let name = name.trim();
            let valid = !name.is_empty()
                && name.chars().count() <= MAX_NAME
                && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(format!("a name is 1 to {MAX_NAME} letters, digits, _ or -"));
            }
            ClientFrame::Login { name: name.to_owned() }
        }
        "battle.start" => ClientFrame::BattleStart,
        "battle.input" => ClientFrame::BattleInput,
        _ => ClientFrame::Game,
    })
}

/// `{"type":"error","reason":...}`.
pub fn error(reason: &str) -> String {
    json!({"type": "error", "reason": reason}).to_string()
}

/// `{"type":"welcome","player":...,"name":...}`.
pub fn welcome(player: u64, name: &str) -> String {
    json!({"type": "welcome", "player": player, "name": name}).to_string()
}

/// `{"type":"battle.started","room":...,"url":...,"ticket":...}`: where to join the battle.
pub fn battle_started(room: u64, url: &str, ticket: &str) -> String {
    json!({"type": "battle.started", "room": room, "url": url, "ticket": ticket}).to_string()
}

/// The setup of a practice battle: the player against the script's bot.
pub fn practice_setup(player: u64) -> Vec<u8> {
    json!({"players": [player], "practice": true}).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_routed_by_type() {
        assert_eq!(parse(br#"{"type":"login","name":" ann "}"#), Ok(ClientFrame::Login { name: "ann".into() }));
        assert_eq!(parse(br#"{"type":"battle.start"}"#), Ok(ClientFrame::BattleStart));
        assert_eq!(parse(br#"{"type":"battle.input","action":"attack"}"#), Ok(ClientFrame::BattleInput));
        assert_eq!(parse(br#"{"type":"bag"}"#), Ok(ClientFrame::Game));
    }

    #[test]
    fn malformed_frames_get_a_reason() {
        assert!(parse(b"hello").unwrap_err().contains("JSON"));
        assert!(parse(br#"{"kind":"bag"}"#).unwrap_err().contains("type"));
        assert!(parse(br#"{"type":"login"}"#).unwrap_err().contains("name"));
        assert!(parse(br#"{"type":"login","name":"a b"}"#).unwrap_err().contains("letters"));
        assert!(parse(br#"{"type":"login","name":""}"#).is_err());
    }
}
