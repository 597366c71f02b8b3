//! Warren's baseapp script: what a player owns and does outside battle.
//!
//! - [`items`]: the item catalogue (what stacks, what the shop sells, what things do).
//! - [`profile`], [`bag`], [`equipment`], [`pets`]: the player's data, each under its own
//!   state key (`profile`, `bag`, `equipment`, `pets`) so a handler reads only what it needs.
//! - [`actions`]: one function per client action; [`social`]: whispers and battle rewards,
//!   which arrive as messages from other entities; [`guilds`]: requests to guilds and
//!   their events.
//!
//! Client frames are JSON objects with a `type` (see `docs/protocol.md`). Every action
//! that succeeds replies with frames showing the state it changed; one that fails
//! returns a [`Reject`] whose reason the host sends to the client as an `error` frame, and
//! nothing the handler did is kept.

pub mod actions;
pub mod bag;
pub mod equipment;
pub mod guilds;
pub mod items;
pub mod pets;
pub mod profile;
pub mod social;

use crate::bag::Bag;
use crate::items::EquipSlot;
use crate::profile::Profile;
use serde::Deserialize;
use serde_json::json;
use warren_guest::prelude::*;

/// Items a new player finds in the bag.
pub const STARTER_ITEMS: &[(&str, u32)] = &[("potion", 3), ("berry", 10), ("wood-sword", 1)];

/// The player logic this module exports.
pub struct PlayerLogic;

warren_guest::export_player!(PlayerLogic);

/// A frame from the client, by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum ClientFrame {
    /// Liveness check; answered with `pong`.
    #[serde(rename = "ping")]
    Ping,
    /// Show the profile.
    #[serde(rename = "profile")]
    Profile,
    /// Show the bag.
    #[serde(rename = "bag")]
    Bag,
    /// Show the equipment.
    #[serde(rename = "equipment")]
    Equipment,
    /// Show the pets.
    #[serde(rename = "pets")]
    Pets,
    /// Show what the shop sells.
    #[serde(rename = "shop")]
    Shop,
    /// Buy `count` of `item`.
    #[serde(rename = "shop.buy")]
    Buy {
        /// Catalogue id.
        item: String,
        /// How many; 1 if absent.
        #[serde(default = "one")]
        count: u32,
    },
    /// Use one item of bag slot `slot`.
    #[serde(rename = "item.use")]
    Use {
        /// Bag slot index.
        slot: usize,
    },
    /// Throw away `count` items of bag slot `slot`.
    #[serde(rename = "item.drop")]
    Drop {
        /// Bag slot index.
        slot: usize,
        /// How many; 1 if absent.
        #[serde(default = "one")]
        count: u32,
    },
    /// Sell `count` items of bag slot `slot` to the shop.
    #[serde(rename = "item.sell")]
    Sell {
        /// Bag slot index.
        slot: usize,
        /// How many; 1 if absent.
        #[serde(default = "one")]
        count: u32,
    },
    /// Wear the item in bag slot `slot`.
    #[serde(rename = "equip")]
    Equip {
        /// Bag slot index.
        slot: usize,
    },
    /// Take off what is worn in equipment slot `slot`.
    #[serde(rename = "unequip")]
    Unequip {
        /// `weapon`, `head` or `body`.
        slot: EquipSlot,
    },
    /// Adopt a pet.
    #[serde(rename = "pet.adopt")]
    PetAdopt {
        /// Species id.
        species: String,
        /// The pet's name.
        name: String,
    },
    /// Feed pet `pet` one item of bag slot `slot`.
    #[serde(rename = "pet.feed")]
    PetFeed {
        /// Pet id.
        pet: u32,
        /// Bag slot index of the food.
        slot: usize,
    },
    /// Rename pet `pet`.
    #[serde(rename = "pet.rename")]
    PetRename {
        /// Pet id.
        pet: u32,
        /// The new name.
        name: String,
    },
    /// Found guild `name`.
    #[serde(rename = "guild.create")]
    GuildCreate {
        /// The guild's name.
        name: String,
    },
    /// Join guild `name`.
    #[serde(rename = "guild.join")]
    GuildJoin {
        /// The guild's name.
        name: String,
    },
    /// Leave the player's guild.
    #[serde(rename = "guild.leave")]
    GuildLeave,
    /// Say `text` to the player's guild.
    #[serde(rename = "guild.chat")]
    GuildChat {
        /// What to say.
        text: String,
    },
    /// The info of the player's guild, or of guild `name`.
    #[serde(rename = "guild.info")]
    GuildInfo {
        /// A guild's name; the player's own guild without it.
        #[serde(default)]
        name: Option<String>,
    },
    /// Whisper `text` to player `to`.
    #[serde(rename = "whisper")]
    Whisper {
        /// The player to whisper to.
        to: PlayerId,
        /// What to say.
        text: String,
    },
}

fn one() -> u32 {
    1
}

impl Player for PlayerLogic {
    fn on_login(player: PlayerId, name: &str) -> Outcome {
        let now = env::now_ms();
        let profile = match state::get::<Profile>(profile::KEY)? {
            Some(mut profile) => {
                profile.last_login_ms = now;
                profile.logins += 1;
                profile
            }
            None => {
                let name = if name.trim().is_empty() { format!("player-{player}") } else { name.to_owned() };
                let mut bag = Bag::load()?;
                for (item, count) in STARTER_ITEMS {
                    bag.add(item, *count)?;
                }
                bag.save();
                log::info(&format!("new player {player} `{name}`"));
                Profile::new(&name, now)
            }
        };
        profile.save();
        msg::reply(&profile.view(player));
        Ok(())
    }

    fn on_client(player: PlayerId, frame: &[u8]) -> Outcome {
        match decode_frame::<ClientFrame>(frame)? {
            ClientFrame::Ping => msg::reply(&json!({"type": "pong"})),
            ClientFrame::Profile => msg::reply(&Profile::load()?.view(player)),
            ClientFrame::Bag => msg::reply(&Bag::load()?.view()),
            ClientFrame::Equipment => msg::reply(&equipment::Equipment::load()?.view()),
            ClientFrame::Pets => msg::reply(&pets::Pets::load()?.view(env::now_ms())),
            ClientFrame::Shop => actions::show_shop(),
            ClientFrame::Buy { item, count } => actions::buy(player, &item, count)?,
            ClientFrame::Use { slot } => actions::use_item(player, slot)?,
            ClientFrame::Drop { slot, count } => actions::drop_item(slot, count)?,
            ClientFrame::Sell { slot, count } => actions::sell(player, slot, count)?,
            ClientFrame::Equip { slot } => actions::equip(slot)?,
            ClientFrame::Unequip { slot } => actions::unequip(slot)?,
            ClientFrame::PetAdopt { species, name } => actions::adopt_pet(player, &species, &name)?,
            ClientFrame::PetFeed { pet, slot } => actions::feed_pet(pet, slot)?,
            ClientFrame::PetRename { pet, name } => actions::rename_pet(pet, &name)?,
            ClientFrame::Whisper { to, text } => social::send_whisper(player, to, &text)?,
            ClientFrame::GuildCreate { name } => guilds::create(&name)?,
            ClientFrame::GuildJoin { name } => guilds::join(&name)?,
            ClientFrame::GuildLeave => guilds::leave()?,
            ClientFrame::GuildChat { text } => guilds::chat(&text)?,
            ClientFrame::GuildInfo { name } => guilds::info(name.as_deref())?,
        }
        Ok(())
    }

    fn on_message(player: PlayerId, msg: Message) -> Outcome {
        match msg.kind.as_str() {
            social::WHISPER => social::receive_whisper(player, &msg),
            social::BATTLE_RESULT => social::battle_result(player, &msg),
            guilds::EVENT => guilds::event(player, &msg),
            other => {
                // Not ours to handle: ignore it (a refusal would only be logged by the host).
                log::warn(&format!("player {player}: ignored message of kind `{other}`"));
                Ok(())
            }
        }
    }

    fn on_logout(player: PlayerId) -> Outcome {
        log::info(&format!("player {player} logged out"));
        Ok(())
    }
}
