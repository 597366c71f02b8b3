//! Warren's guild script: a guild's members, its leader and its chat.
//!
//! The entity is one guild; its data lives in host-owned state under two keys:
//! - `guild`: the [`Guild`] (name, leader, members in join order). Absent until
//!   `guild.create`, and removed again when the last member leaves.
//! - `applied`: how many messages this guild has handled, a `u64`. It counts every message
//!   that commits — refused requests included — and survives a disband, so the cluster
//!   tests can check each message was applied exactly once.
//!
//! Requests arrive as messages from players' logic (`msg.sender` is the player):
//! [`CREATE`], [`JOIN`], [`LEAVE`], [`CHAT`], [`INFO`]. Every change is told to the
//! members it concerns with a [`EVENT`] message to their player queues (the baseapp
//! forwards it to the client): `{"guild": id, "event": "created" | "joined" | "left" |
//! "leader" | "disbanded" | "chat" | "info" | "refused", ...}`. `docs/protocol.md` lists
//! the bodies.
//!
//! # Refusals
//!
//! A handler that returns `Err(Reject)` commits nothing — no state and no messages — and
//! the host only logs it. A player whose request is refused would then never learn why.
//! So a *user-facing* refusal (the guild exists already, is full, the name is too short,
//! the sender is not a member, ...) is not a `Reject`: the handler leaves the guild as it
//! was, sends the sender a `guild.event` with `"event": "refused"` and the reason, counts
//! the message in `applied`, and returns `Ok(())`. Each request checks everything before
//! it writes anything, so a refused request changes nothing but `applied`.
//!
//! `Reject` is kept for messages no player can be told about or that no correct sender
//! produces: a sender that is not a player, a body that does not decode, an unknown kind.
//! Those commit nothing (not even `applied`); the host logs and drops them.

pub mod guild;

pub use crate::guild::{Guild, Member};
use serde::Deserialize;
use serde_json::{Value, json};
use warren_guest::prelude::*;

/// Create the guild, with the sender as leader: `{"name": "...", "founder_name": "..."}`.
pub const CREATE: &str = "guild.create";
/// Join the guild: `{"name": "..."}`, the sender's display name.
pub const JOIN: &str = "guild.join";
/// Leave the guild: `{}`.
pub const LEAVE: &str = "guild.leave";
/// Say something to every member: `{"text": "..."}`.
pub const CHAT: &str = "guild.chat";
/// Ask for the guild's info: `{}`.
pub const INFO: &str = "guild.info";
/// What the guild sends to players' queues.
pub const EVENT: &str = "guild.event";

/// The state key of the handled-message counter.
pub const APPLIED: &str = "applied";

/// The longest chat line, in characters.
pub const MAX_CHAT_CHARS: usize = 200;

/// The body of `guild.create`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreateBody {
    /// The guild's name.
    pub name: String,
    /// The founder's display name.
    #[serde(default)]
    pub founder_name: String,
}

/// The body of `guild.join`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JoinBody {
    /// The joining player's display name.
    #[serde(default)]
    pub name: String,
}

/// The body of `guild.chat`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatBody {
    /// What to say.
    pub text: String,
}

/// What a request came to: `Err` holds the reason it was refused, told to the sender.
type Verdict = Result<(), String>;

/// The guild logic this module exports.
pub struct GuildLogic;

warren_guest::export_group!(guild, GuildLogic);

impl Group for GuildLogic {
    fn on_message(id: u64, msg: Message) -> Outcome {
        let player = match msg.sender {
            Some(Address::Player(player)) => player,
            ref other => {
                return Err(Reject::new(format!("`{}` must come from a player, not {other:?}", msg.kind)));
            }
        };
        let guild = Guild::load()?;
        let verdict = match msg.kind.as_str() {
            CREATE => create(id, player, guild, msg.decode()?),
            JOIN => join(id, player, guild, msg.decode()?),
            LEAVE => leave(id, player, guild),
            CHAT => chat(id, player, guild, msg.decode()?),
            INFO => info(id, player, guild),
            other => return Err(Reject::new(format!("unknown guild message kind `{other}`"))),
        };
        if let Err(reason) = verdict {
            tell(id, [player], "refused", json!({"request": msg.kind, "reason": reason}));
        }
        let applied: u64 = state::get_or_default(APPLIED)?;
        state::set(APPLIED, &(applied + 1));
        Ok(())
    }
}

/// Sends each of `players` a `guild.event` of kind `event`, with `fields` (an object)
/// after `guild` and `event`.
fn tell(id: u64, players: impl IntoIterator<Item = PlayerId>, event: &str, fields: Value) {
    let mut body = json!({"guild": id, "event": event});
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    for player in players {
        msg::send(Address::Player(player), EVENT, &body);
    }
}

/// `guild.create`: founds the guild with the sender as its leader and only member.
fn create(id: u64, player: PlayerId, guild: Option<Guild>, body: CreateBody) -> Verdict {
    if let Some(guild) = guild {
        return Err(format!("guild {id} already exists (`{}`)", guild.name));
    }
    let name = guild::guild_name(&body.name)?;
    let founder = guild::member_name(player, &body.founder_name)?;
    let now = env::now_ms();
    let guild = Guild {
        name,
        leader: player,
        created_ms: now,
        members: vec![Member { id: player, name: founder, joined_ms: now }],
    };
    guild.save();
    log::info(&format!("guild {id} `{}` created by player {player}", guild.name));
    tell(id, [player], "created", guild.view());
    Ok(())
}

/// `guild.join`: adds the sender as a member and tells every member, the new one too.
fn join(id: u64, player: PlayerId, guild: Option<Guild>, body: JoinBody) -> Verdict {
    let mut guild = guild.ok_or_else(|| format!("guild {id} does not exist"))?;
    if guild.is_member(player) {
        return Err(format!("you are already a member of `{}`", guild.name));
    }
    if guild.members.len() >= guild::MAX_MEMBERS {
        return Err(format!("`{}` is full ({} members)", guild.name, guild::MAX_MEMBERS));
    }
    let name = guild::member_name(player, &body.name)?;
    guild.members.push(Member { id: player, name: name.clone(), joined_ms: env::now_ms() });
    guild.save();
    let count = guild.members.len();
    tell(id, guild.member_ids(), "joined", json!({"player": player, "player_name": name, "members": count}));
    Ok(())
}

/// `guild.leave`: removes the sender. A leaving leader hands over to the longest-standing
/// member; the last member leaving disbands the guild.
fn leave(id: u64, player: PlayerId, guild: Option<Guild>) -> Verdict {
    let mut guild = guild.ok_or_else(|| format!("guild {id} does not exist"))?;
    let Some(index) = guild.members.iter().position(|m| m.id == player) else {
        return Err(format!("you are not a member of `{}`", guild.name));
    };
    let leaver = guild.members.remove(index);
    let count = guild.members.len();
    let left = json!({"player": player, "player_name": leaver.name, "members": count});
    let mut told = guild.member_ids();
    told.push(player);
    tell(id, told, "left", left);

    if guild.members.is_empty() {
        // Disband: clear the guild's state, except the message counter.
        for key in state::keys() {
            if key != APPLIED {
                state::remove(&key);
            }
        }
        log::info(&format!("guild {id} `{}` disbanded", guild.name));
        tell(id, [player], "disbanded", json!({"name": guild.name}));
        return Ok(());
    }

    if guild.leader == player {
        let heir = guild.longest_standing().cloned().expect("a guild with members has a longest-standing one");
        guild.leader = heir.id;
        tell(
            id,
            guild.member_ids(),
            "leader",
            json!({"player": heir.id, "player_name": heir.name, "previous": player}),
        );
    }
    guild.save();
    Ok(())
}

/// `guild.chat`: a member's line, delivered to every member (the speaker too).
fn chat(id: u64, player: PlayerId, guild: Option<Guild>, body: ChatBody) -> Verdict {
    let guild = guild.ok_or_else(|| format!("guild {id} does not exist"))?;
    let Some(member) = guild.member(player) else {
        return Err(format!("only members of `{}` may chat in it", guild.name));
    };
    let text = body.text.trim();
    let chars = text.chars().count();
    if chars == 0 {
        return Err("a chat line must not be empty".to_owned());
    }
    if chars > MAX_CHAT_CHARS {
        return Err(format!("a chat line must be at most {MAX_CHAT_CHARS} characters, not {chars}"));
    }
    let line = json!({"from": player, "from_name": member.name, "text": text, "at_ms": env::now_ms()});
    tell(id, guild.member_ids(), "chat", line);
    Ok(())
}

/// `guild.info`: the guild's info, to the sender only (members and others alike).
fn info(id: u64, player: PlayerId, guild: Option<Guild>) -> Verdict {
    let guild = guild.ok_or_else(|| format!("guild {id} does not exist"))?;
    tell(id, [player], "info", guild.view());
    Ok(())
}
