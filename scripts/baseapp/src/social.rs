//! What reaches a player from other entities: whispers from other players, and the
//! result of a battle, which pays a reward.

use crate::profile::Profile;
use serde::{Deserialize, Serialize};
use serde_json::json;
use warren_guest::prelude::*;

/// Message kind of a whisper between players.
pub const WHISPER: &str = "chat.whisper";

/// Message kind of a battle room's result, sent to each human fighter.
pub const BATTLE_RESULT: &str = "battle.result";

/// The longest whisper, in characters.
pub const MAX_WHISPER_CHARS: usize = 200;

/// The body of a `chat.whisper` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whisper {
    /// The sender's player id.
    pub from: PlayerId,
    /// The sender's name, so the receiver need not look it up.
    pub from_name: String,
    /// What was said.
    pub text: String,
}

/// `whisper`: sends `text` to player `to`'s queue; their baseapp pushes it to them.
pub fn send_whisper(player: PlayerId, to: PlayerId, text: &str) -> Outcome {
    if to == player {
        return Err(Reject::new("you cannot whisper to yourself"));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(Reject::new("whisper text must not be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_WHISPER_CHARS {
        return Err(Reject::new(format!("whisper is too long: {chars} characters, at most {MAX_WHISPER_CHARS}")));
    }
    let profile = Profile::load()?;
    let whisper = Whisper { from: player, from_name: profile.name, text: text.to_owned() };
    msg::send(Address::Player(to), WHISPER, &whisper);
    msg::reply(&json!({"type": "whisper.sent", "to": to, "text": text}));
    Ok(())
}

/// A `chat.whisper` message: pushed to the player's client.
pub fn receive_whisper(player: PlayerId, msg: &Message) -> Outcome {
    let whisper: Whisper = msg.decode()?;
    // Trust the host's record of the sender over the body when there is one.
    let from = match msg.sender {
        Some(Address::Player(id)) => id,
        _ => whisper.from,
    };
    msg::push(player, &json!({"type": "whisper", "from": from, "from_name": whisper.from_name, "text": whisper.text}));
    Ok(())
}

/// The body of a `battle.result` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BattleResult {
    /// The battle room.
    pub room: u64,
    /// The best fighter of the winning team (0 is the practice bot); `None` for a draw.
    pub winner: Option<PlayerId>,
    /// Every member of the winning team; empty for a draw.
    #[serde(default)]
    pub winners: Vec<PlayerId>,
    /// A practice battle pays less.
    #[serde(default)]
    pub practice: bool,
}

/// Experience and gold a battle pays: (xp, gold).
pub fn reward(won: bool, practice: bool) -> (u64, u64) {
    match (won, practice) {
        (true, false) => (50, 20),
        (false, false) => (10, 0),
        (true, true) => (20, 0),
        (false, true) => (5, 0),
    }
}

/// A `battle.result` message from a battle room: pays the reward and tells the client.
pub fn battle_result(player: PlayerId, msg: &Message) -> Outcome {
    let result: BattleResult = msg.decode()?;
    if msg.sender != Some(Address::Battle(result.room)) {
        return Err(Reject::new(format!("{BATTLE_RESULT} must come from battle room {}", result.room)));
    }
    let won = result.winner == Some(player) || result.winners.contains(&player);
    let (xp, gold) = reward(won, result.practice);
    let mut profile = Profile::load()?;
    let levels = profile.gain_xp(xp);
    profile.gold = profile.gold.saturating_add(gold);
    profile.save();
    msg::push(
        player,
        &json!({
            "type": "battle.reward",
            "room": result.room,
            "won": won,
            "xp": xp,
            "gold": gold,
            "levels": levels,
        }),
    );
    msg::push(player, &profile.view(player));
    Ok(())
}
