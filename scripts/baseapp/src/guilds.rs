//! The player's side of guilds: client frames become requests to the guild's entity (its
//! id is derived from its name, so everyone naming `Foxes` reaches the same guild), and
//! the guild's `guild.event` messages are pushed to the client. The player's own guild is
//! remembered under the state key [`KEY`], from the events that concern the player.

use crate::profile::Profile;
use serde_json::{Value, json};
use warren_guest::prelude::*;

/// State key: the id of the guild the player is in (a `u64`), absent if none.
pub const KEY: &str = "guild";
/// What guilds send to players.
pub const EVENT: &str = "guild.event";

/// The guild id of a guild name: FNV-1a of the trimmed, lower-cased name, kept within
/// 2^53 so JavaScript clients read it exactly. Never 0.
pub fn guild_id(name: &str) -> u64 {
    let hash = name
        .trim()
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash & ((1 << 53) - 1)).max(1)
}

/// The player's guild, if any.
pub fn current() -> Outcome<Option<u64>> {
    state::get::<u64>(KEY)
}

fn request(guild: u64, kind: &str, body: Value) {
    msg::send(Address::Guild(guild), kind, &body);
    msg::reply(&json!({"type": "guild.requested", "guild": guild, "request": kind}));
}

fn my_guild() -> Outcome<u64> {
    current()?.ok_or_else(|| Reject::new("you are not in a guild"))
}

/// `guild.create`: found guild `name`, with the player as leader.
pub fn create(name: &str) -> Outcome {
    if let Some(id) = current()? {
        return Err(Reject::new(format!("you are already in guild {id}: leave it first")));
    }
    let founder = Profile::load()?.name;
    request(guild_id(name), "guild.create", json!({"name": name.trim(), "founder_name": founder}));
    Ok(())
}

/// `guild.join`: join guild `name`.
pub fn join(name: &str) -> Outcome {
    if let Some(id) = current()? {
        return Err(Reject::new(format!("you are already in guild {id}: leave it first")));
    }
    let me = Profile::load()?.name;
    request(guild_id(name), "guild.join", json!({"name": me}));
    Ok(())
}

/// `guild.leave`: leave the player's guild.
pub fn leave() -> Outcome {
    request(my_guild()?, "guild.leave", json!({}));
    Ok(())
}

/// `guild.chat`: say `text` to the player's guild.
pub fn chat(text: &str) -> Outcome {
    if text.trim().is_empty() {
        return Err(Reject::new("chat text must not be empty"));
    }
    request(my_guild()?, "guild.chat", json!({"text": text}));
    Ok(())
}

/// `guild.info`: the player's guild's info, or guild `name`'s.
pub fn info(name: Option<&str>) -> Outcome {
    let guild = match name {
        Some(name) => guild_id(name),
        None => my_guild()?,
    };
    request(guild, "guild.info", json!({}));
    Ok(())
}

/// A `guild.event` from a guild: remember the player's membership from the events that
/// concern them, and push the event to the client as `{"type": "guild.event", ...}`.
pub fn event(player: PlayerId, msg: &Message) -> Outcome {
    let guild = match msg.sender {
        Some(Address::Guild(id)) => id,
        _ => return Err(Reject::new("guild events come from guilds")),
    };
    let mut body: Value = msg.decode()?;
    let about_me = |field: &str| body.get(field).and_then(Value::as_u64) == Some(player);
    match body.get("event").and_then(Value::as_str) {
        Some("created") if about_me("leader") => state::set(KEY, &guild),
        Some("joined") if about_me("player") => state::set(KEY, &guild),
        Some("left") if about_me("player") => state::remove(KEY),
        Some("disbanded") if current()? == Some(guild) => state::remove(KEY),
        _ => {}
    }
    if let Some(fields) = body.as_object_mut() {
        fields.insert("type".into(), json!(EVENT));
    }
    msg::push(player, &body);
    Ok(())
}
