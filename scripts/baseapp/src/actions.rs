//! The client's actions on the bag, the shop, the equipment and the pets. Each loads the
//! state it needs, checks everything before it writes, and replies with the frames of
//! the state it changed, the main one first.

use crate::bag::Bag;
use crate::equipment::Equipment;
use crate::items::{self, CATALOGUE, Effect, EquipSlot, ItemKind};
use crate::pets::{self, Pets};
use crate::profile::{MAX_LEVEL, Profile};
use serde_json::{Value, json};
use warren_guest::prelude::*;

/// The most items one `shop.buy` may ask for.
pub const MAX_BUY: u32 = 999;

/// `shop`: lists the catalogue.
pub fn show_shop() {
    let items: Vec<Value> = CATALOGUE.iter().map(|d| d.view()).collect();
    msg::reply(&json!({"type": "shop", "items": items}));
}

/// `shop.buy`: pays for `count` of `item` and puts them in the bag.
pub fn buy(player: PlayerId, item: &str, count: u32) -> Outcome {
    let def = items::lookup(item)?;
    if count == 0 || count > MAX_BUY {
        return Err(Reject::new(format!("count must be from 1 to {MAX_BUY}")));
    }
    let mut profile = Profile::load()?;
    let mut bag = Bag::load()?;
    profile.spend(u64::from(def.price) * u64::from(count))?;
    bag.add(def.id, count)?;
    bag.save();
    profile.save();
    msg::reply(&bag.view());
    msg::reply(&profile.view(player));
    Ok(())
}

/// `item.use`: uses up one consumable from bag slot `slot`.
pub fn use_item(player: PlayerId, slot: usize) -> Outcome {
    let mut profile = Profile::load()?;
    let mut bag = Bag::load()?;
    let def = items::lookup(&bag.get(slot)?.item)?;
    match def.kind {
        ItemKind::Consumable(Effect::Heal(hp)) => {
            if profile.heal(hp) == 0 {
                return Err(Reject::new("you are already at full health"));
            }
        }
        ItemKind::Consumable(Effect::Xp(xp)) => {
            if profile.level >= MAX_LEVEL {
                return Err(Reject::new("you are already at the highest level"));
            }
            profile.gain_xp(xp);
        }
        ItemKind::Food { .. } => {
            return Err(Reject::new(format!("{} is pet food: feed it to a pet", def.name)));
        }
        ItemKind::Gear { .. } => {
            return Err(Reject::new(format!("{} is gear: equip it", def.name)));
        }
    }
    bag.take(slot, 1)?;
    bag.save();
    profile.save();
    msg::reply(&bag.view());
    msg::reply(&profile.view(player));
    Ok(())
}

/// `item.drop`: throws away `count` items of bag slot `slot`.
pub fn drop_item(slot: usize, count: u32) -> Outcome {
    let mut bag = Bag::load()?;
    bag.take(slot, count)?;
    bag.save();
    msg::reply(&bag.view());
    Ok(())
}

/// `item.sell`: sells `count` items of bag slot `slot` to the shop.
pub fn sell(player: PlayerId, slot: usize, count: u32) -> Outcome {
    let mut profile = Profile::load()?;
    let mut bag = Bag::load()?;
    let stack = bag.take(slot, count)?;
    let def = items::lookup(&stack.item)?;
    profile.gold = profile.gold.saturating_add(u64::from(def.sell_price) * u64::from(count));
    bag.save();
    profile.save();
    msg::reply(&bag.view());
    msg::reply(&profile.view(player));
    Ok(())
}

/// `equip`: wears the item in bag slot `slot`, swapping out what was worn.
pub fn equip(slot: usize) -> Outcome {
    let profile = Profile::load()?;
    let mut bag = Bag::load()?;
    let mut equipment = Equipment::load()?;
    equipment.equip(&mut bag, slot, profile.level)?;
    equipment.save();
    bag.save();
    msg::reply(&equipment.view());
    msg::reply(&bag.view());
    Ok(())
}

/// `unequip`: puts what is worn in `slot` back into the bag.
pub fn unequip(slot: EquipSlot) -> Outcome {
    let mut bag = Bag::load()?;
    let mut equipment = Equipment::load()?;
    equipment.unequip(&mut bag, slot)?;
    equipment.save();
    bag.save();
    msg::reply(&equipment.view());
    msg::reply(&bag.view());
    Ok(())
}

/// `pet.adopt`: pays for a pet of `species` and names it.
pub fn adopt_pet(player: PlayerId, species: &str, name: &str) -> Outcome {
    let species = pets::species(species)?;
    let mut profile = Profile::load()?;
    let mut pets = Pets::load()?;
    let now = env::now_ms();
    pets.adopt(species, name, now)?;
    profile.spend(species.price)?;
    pets.save();
    profile.save();
    msg::reply(&pets.view(now));
    msg::reply(&profile.view(player));
    Ok(())
}

/// `pet.feed`: feeds pet `pet` one item of the food in bag slot `slot`.
pub fn feed_pet(pet: u32, slot: usize) -> Outcome {
    let mut bag = Bag::load()?;
    let mut pets = Pets::load()?;
    let now = env::now_ms();
    let food = bag.get(slot)?.item.clone();
    pets.feed(pet, &food, now)?;
    bag.take(slot, 1)?;
    pets.save();
    bag.save();
    msg::reply(&pets.view(now));
    msg::reply(&bag.view());
    Ok(())
}

/// `pet.rename`: gives pet `pet` a new name.
pub fn rename_pet(pet: u32, name: &str) -> Outcome {
    let mut pets = Pets::load()?;
    pets.rename(pet, name)?;
    pets.save();
    msg::reply(&pets.view(env::now_ms()));
    Ok(())
}
