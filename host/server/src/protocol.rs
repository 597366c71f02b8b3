//! The client protocol's own frames: login, errors, and the battle frames the host routes.
//! Every other frame is game logic, handed to the baseapp module as it is.
//! Documented in docs/protocol.md.

use serde_json::{Value, json};

/// Longest idempotency key.
pub const MAX_KEY: usize = 64;

/// What a client frame is, as far as the host cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `{"type":"login","ack":12}`: `ack`, the last push the client showed (0 or absent:
    /// none), is where the session resumes. The session token names the player; where
    /// names alone let players in (`warren dev --name-login`), `"name":"ann"` does.
    Login {
        /// The name, if one came (checked by the host's name rules, not here).
        name: Option<String>,
    },
    /// `{"type":"ack","seq":12}`: the client showed every push up to 12.
    Ack,
    /// `{"type":"battle.start"}`: a practice battle.
    BattleStart,
    /// `{"type":"battle.input", ...}`: for the player's room.
    BattleInput,
    /// Anything else with a `type`: for the baseapp module.
    Game,
}

/// The host's fields of any client frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// `"ack": 12` (or `seq` of an `ack` frame): the client showed every push up to 12.
    pub ack: Option<u64>,
    /// `"req": "..."`: the frame's request key (idempotency key); a frame sent again with
    /// the same key is applied once and answered with the first answer.
    pub key: Option<String>,
}

/// A frame's `type`, for a log line about it (empty if it has none).
pub fn frame_type(frame: &[u8]) -> String {
    serde_json::from_slice::<Value>(frame)
        .ok()
        .and_then(|f| f.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// Reads a frame's `type` and the host's fields, with a reason a client can act on when
/// it is malformed.
pub fn parse(frame: &[u8]) -> Result<(ClientFrame, Meta), String> {
    let value: Value = serde_json::from_slice(frame).map_err(|e| format!("frames are JSON objects: {e}"))?;
    let kind = value.get("type").and_then(Value::as_str).ok_or("a frame needs a \"type\" field with a string")?;
    let number = |field: &str| match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(format!("\"{field}\" is a push's sequence number: 0 or more")),
    };
    let mut meta = Meta { ack: number("ack")?, key: None };
    if kind == "ack" {
        meta.ack = Some(number("seq")?.ok_or("an ack needs \"seq\": the last push shown")?);
    }
    match value.get("req") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if (1..=MAX_KEY).contains(&k.len()) && k.chars().all(|c| c.is_ascii_graphic()) => {
            meta.key = Some(k.clone());
        }
        Some(_) => return Err(format!("\"req\" (a request key) is 1 to {MAX_KEY} printable ASCII characters")),
    }
    let frame = match kind {
        "login" => match value.get("name") {
            None | Some(Value::Null) => ClientFrame::Login { name: None },
            Some(Value::String(name)) => ClientFrame::Login { name: Some(name.clone()) },
            Some(_) => return Err("a login's \"name\" is a string".into()),
        },
        "ack" => ClientFrame::Ack,
        "battle.start" => ClientFrame::BattleStart,
        "battle.input" => ClientFrame::BattleInput,
        _ => ClientFrame::Game,
    };
    Ok((frame, meta))
}

/// A push as the client gets it: the frame with the host's `seq` first
/// (`{"seq":7,"type":"whisper",...}`). A frame that is not a JSON object is carried as a
/// string in a `push` frame, so that it still has its number.
pub fn numbered(seq: u64, frame: &[u8]) -> String {
    // A module's own `seq` would shadow the host's: it is dropped (looked for only when the
    // frame mentions one, so the usual push is not parsed).
    if frame.windows(5).any(|w| w == b"\"seq\"")
        && let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(frame)
        && fields.remove("seq").is_some()
    {
        return numbered(seq, Value::Object(fields).to_string().as_bytes());
    }
    let text = String::from_utf8_lossy(frame);
    let body = text.trim_start();
    match body.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"seq\":{seq}{rest}"),
        Some(rest) => format!("{{\"seq\":{seq},{rest}"),
        None => json!({"seq": seq, "type": "push", "frame": text}).to_string(),
    }
}

/// `{"type":"done","req":...}`: every answer to the frame with this request key was sent.
pub fn done(key: &str) -> String {
    json!({"type": "done", "req": key}).to_string()
}

/// `{"type":"unknown","req":...,"reason":...}`: whether the frame was applied could not be
/// found out; send it again with the same key (it is applied at most once).
pub fn unknown(key: Option<&str>, reason: &str) -> String {
    match key {
        Some(key) => json!({"type": "unknown", "req": key, "reason": reason}).to_string(),
        None => json!({"type": "unknown", "reason": reason}).to_string(),
    }
}

/// `{"type":"error","reason":...}`.
pub fn error(reason: &str) -> String {
    json!({"type": "error", "reason": reason}).to_string()
}

/// `{"type":"welcome","player":...,"name":...,"last_push":...,"acked":...,"missed":...}`:
/// the player, the newest push logged, the last one acknowledged (by this client or
/// another), and how many unacknowledged pushes were dropped from a full log.
pub fn welcome(player: u64, name: &str, last_push: u64, acked: u64, missed: u64) -> String {
    json!({"type": "welcome", "player": player, "name": name, "last_push": last_push, "acked": acked, "missed": missed})
        .to_string()
}

/// `{"type":"battle.started","room":...,"url":...,"ticket":...}`: where to join the battle.
pub fn battle_started(room: u64, url: &str, ticket: &str) -> String {
    json!({"type": "battle.started", "room": room, "url": url, "ticket": ticket}).to_string()
}

/// The setup of a practice battle: the player against the script's bot.
pub fn practice_setup(player: u64) -> Vec<u8> {
    json!({"players": [player], "practice": true}).to_string().into_bytes()
}

/// A game frame as the module gets it: every string in it without the characters that
/// let one player disguise text for another ([`crate::mechanics::auth::names::clean`]:
/// control characters, direction overrides), written raw or as `\u` escapes. Almost every
/// frame is clean, and is handed on as it came.
pub fn cleaned(frame: &[u8]) -> Vec<u8> {
    use crate::mechanics::auth::names;
    let escaped = frame.windows(2).any(|w| w == b"\\u");
    let clean = std::str::from_utf8(frame).is_ok_and(names::is_clean);
    if clean && !escaped {
        return frame.to_vec();
    }
    fn walk(value: &mut Value) {
        match value {
            Value::String(s) if !names::is_clean(s) => *s = names::clean(s),
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(fields) => fields.values_mut().for_each(walk),
            _ => {}
        }
    }
    match serde_json::from_slice::<Value>(frame) {
        Ok(mut value) => {
            walk(&mut value);
            serde_json::to_vec(&value).unwrap_or_else(|_| frame.to_vec())
        }
        // Not JSON: `parse` refused it before it got here.
        Err(_) => frame.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(frame: &[u8]) -> Result<ClientFrame, String> {
        parse(frame).map(|(f, _)| f)
    }

    #[test]
    fn frames_are_routed_by_type() {
        assert_eq!(kind(br#"{"type":"login","name":"ann"}"#), Ok(ClientFrame::Login { name: Some("ann".into()) }));
        assert_eq!(kind(br#"{"type":"login","ack":4}"#), Ok(ClientFrame::Login { name: None }));
        assert_eq!(kind(br#"{"type":"battle.start"}"#), Ok(ClientFrame::BattleStart));
        assert_eq!(kind(br#"{"type":"battle.input","action":"attack"}"#), Ok(ClientFrame::BattleInput));
        assert_eq!(kind(br#"{"type":"bag"}"#), Ok(ClientFrame::Game));
        assert_eq!(kind(br#"{"type":"ack","seq":3}"#), Ok(ClientFrame::Ack));
    }

    #[test]
    fn acks_and_keys_are_the_hosts() {
        let meta = |f: &[u8]| parse(f).map(|(_, m)| m);
        assert_eq!(meta(br#"{"type":"ack","seq":3}"#), Ok(Meta { ack: Some(3), key: None }));
        assert_eq!(
            meta(br#"{"type":"shop.buy","ack":9,"req":"b-1"}"#),
            Ok(Meta { ack: Some(9), key: Some("b-1".into()) })
        );
        assert!(meta(br#"{"type":"ack"}"#).unwrap_err().contains("seq"));
        assert!(meta(br#"{"type":"bag","ack":-1}"#).unwrap_err().contains("ack"));
        assert!(meta(br#"{"type":"bag","req":""}"#).unwrap_err().contains("req"));
        assert!(meta(br#"{"type":"bag","req":"a b"}"#).unwrap_err().contains("req"));
        assert!(meta(&format!(r#"{{"type":"bag","req":"{}"}}"#, "k".repeat(65)).into_bytes()).is_err());
        assert_eq!(meta(br#"{"type":"store","key":"v1"}"#), Ok(Meta::default()), "`key` is the game's");
    }

    #[test]
    fn pushes_carry_their_number_first() {
        assert_eq!(numbered(7, br#"{"type":"whisper","text":"hi"}"#), r#"{"seq":7,"type":"whisper","text":"hi"}"#);
        assert_eq!(serde_json::from_str::<Value>(&numbered(8, b" { }")).unwrap(), json!({"seq": 8}));
        let own: Value = serde_json::from_str(&numbered(10, br#"{"type":"t","seq":99}"#)).unwrap();
        assert_eq!(own, json!({"seq": 10, "type": "t"}), "a module's own seq is the host's");
        let odd: Value = serde_json::from_str(&numbered(9, b"oops")).unwrap();
        assert_eq!(odd, json!({"seq": 9, "type": "push", "frame": "oops"}));
    }

    #[test]
    fn game_frames_reach_the_module_without_disguising_characters() {
        let plain = br#"{"type":"whisper","to":2,"text":"hi there"}"#;
        assert_eq!(cleaned(plain), plain.to_vec(), "a clean frame is handed on as it came");
        let raw = "{\"type\":\"whisper\",\"to\":2,\"text\":\"gg \u{202E}gnp.exe\"}";
        let out: Value = serde_json::from_slice(&cleaned(raw.as_bytes())).unwrap();
        assert_eq!(out["text"], "gg gnp.exe");
        let escaped = br#"{"type":"guild.chat","text":["a\u202eb","c\u0007d\nok"]}"#;
        let out: Value = serde_json::from_slice(&cleaned(escaped)).unwrap();
        assert_eq!(out["text"], json!(["ab", "cd\nok"]));
    }

    #[test]
    fn malformed_frames_get_a_reason() {
        assert!(kind(b"hello").unwrap_err().contains("JSON"));
        assert!(kind(br#"{"kind":"bag"}"#).unwrap_err().contains("type"));
        assert!(kind(br#"{"type":"login","name":7}"#).unwrap_err().contains("name"));
    }
}
