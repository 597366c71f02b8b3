//! What the player wears: at most one item per [`EquipSlot`], moved to and from the bag.

use crate::bag::{Bag, Stack};
use crate::items::{self, EquipSlot, ItemKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use warren_guest::{Outcome, Reject, state};

/// The state key the equipment is stored under.
pub const KEY: &str = "equipment";

/// The items worn, by slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equipment {
    /// Item id worn in each slot; a slot with nothing worn is absent.
    worn: BTreeMap<EquipSlot, String>,
}

impl Equipment {
    /// Reads the player's equipment, nothing worn if none is stored.
    pub fn load() -> Outcome<Equipment> {
        state::get_or_default(KEY)
    }

    /// Writes the equipment back (committed with the handler).
    pub fn save(&self) {
        state::set(KEY, self);
    }

    /// The item worn in `slot`.
    pub fn worn(&self, slot: EquipSlot) -> Option<&str> {
        self.worn.get(&slot).map(String::as_str)
    }

    /// Wears the item in bag slot `bag_slot`, for a player of level `level`. The item
    /// worn in its equipment slot before, if any, goes into the bag slot just freed, and
    /// is returned.
    pub fn equip(&mut self, bag: &mut Bag, bag_slot: usize, level: u32) -> Outcome<Option<String>> {
        let item = bag.get(bag_slot)?.item.clone();
        let def = items::lookup(&item)?;
        let ItemKind::Gear { slot, min_level, .. } = def.kind else {
            return Err(Reject::new(format!("{} cannot be equipped", def.name)));
        };
        if level < min_level {
            return Err(Reject::new(format!("{} needs level {min_level}, you are level {level}", def.name)));
        }
        bag.take(bag_slot, 1)?;
        let previous = self.worn.insert(slot, item);
        if let Some(prev) = &previous {
            bag.put(bag_slot, Stack::new(prev, 1))?;
        }
        Ok(previous)
    }

    /// Takes off what is worn in `slot` and puts it into the bag; fails if nothing is
    /// worn there or the bag is full. Returns the item.
    pub fn unequip(&mut self, bag: &mut Bag, slot: EquipSlot) -> Outcome<String> {
        let Some(item) = self.worn.get(&slot).cloned() else {
            return Err(Reject::new(format!("nothing is equipped in the {} slot", slot.name())));
        };
        bag.add(&item, 1)?;
        self.worn.remove(&slot);
        Ok(item)
    }

    /// Attack and defense the worn items add up to.
    pub fn bonuses(&self) -> (u32, u32) {
        self.worn.values().filter_map(|id| items::find(id)).fold((0, 0), |(a, d), def| match def.kind {
            ItemKind::Gear { attack, defense, .. } => (a + attack, d + defense),
            _ => (a, d),
        })
    }

    /// The `equipment` frame: every slot (null when empty) and the stat bonuses.
    pub fn view(&self) -> Value {
        let slots: Map<String, Value> = EquipSlot::ALL
            .iter()
            .map(|s| (s.name().to_owned(), self.worn(*s).map_or(Value::Null, |i| json!(i))))
            .collect();
        let (attack, defense) = self.bonuses();
        json!({"type": "equipment", "slots": slots, "attack": attack, "defense": defense})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag_with(items: &[&str]) -> Bag {
        let mut bag = Bag::default();
        for item in items {
            bag.add(item, 1).unwrap();
        }
        bag
    }

    #[test]
    fn equip_moves_the_item_out_of_the_bag() {
        let mut bag = bag_with(&["potion", "wood-sword"]);
        let mut eq = Equipment::default();
        assert_eq!(eq.equip(&mut bag, 1, 1), Ok(None));
        assert_eq!(eq.worn(EquipSlot::Weapon), Some("wood-sword"));
        assert_eq!(bag.count_of("wood-sword"), 0);
        assert_eq!(eq.bonuses(), (3, 0));
    }

    #[test]
    fn equip_swaps_into_the_freed_bag_slot() {
        let mut bag = bag_with(&["wood-sword", "potion", "iron-sword"]);
        let mut eq = Equipment::default();
        eq.equip(&mut bag, 0, 5).unwrap();
        assert_eq!(eq.equip(&mut bag, 2, 5), Ok(Some("wood-sword".to_owned())));
        assert_eq!(eq.worn(EquipSlot::Weapon), Some("iron-sword"));
        assert_eq!(bag.get(2).map(|s| s.item.as_str()), Ok("wood-sword"));
    }

    #[test]
    fn equip_refuses_non_gear_and_low_level() {
        let mut bag = bag_with(&["potion", "iron-sword"]);
        let mut eq = Equipment::default();
        assert_eq!(eq.equip(&mut bag, 0, 1), Err(Reject::new("Potion cannot be equipped")));
        assert_eq!(eq.equip(&mut bag, 1, 2), Err(Reject::new("Iron Sword needs level 3, you are level 2")));
        assert_eq!(eq.equip(&mut bag, 7, 2), Err(Reject::new("bag slot 7 is empty")));
    }

    #[test]
    fn unequip_needs_an_item_and_room() {
        let mut bag = bag_with(&["leather-cap"]);
        let mut eq = Equipment::default();
        assert_eq!(eq.unequip(&mut bag, EquipSlot::Head), Err(Reject::new("nothing is equipped in the head slot")));
        eq.equip(&mut bag, 0, 1).unwrap();
        bag.add("wood-sword", bag.capacity() as u32).unwrap();
        let before = eq.clone();
        assert_eq!(eq.unequip(&mut bag, EquipSlot::Head), Err(Reject::new("bag is full")));
        assert_eq!(eq, before);
        bag.take(3, 1).unwrap();
        assert_eq!(eq.unequip(&mut bag, EquipSlot::Head), Ok("leather-cap".to_owned()));
        assert_eq!(bag.get(3).map(|s| s.item.as_str()), Ok("leather-cap"));
        assert_eq!(eq.worn(EquipSlot::Head), None);
    }

    #[test]
    fn view_shows_every_slot() {
        let mut bag = bag_with(&["leather-vest"]);
        let mut eq = Equipment::default();
        eq.equip(&mut bag, 0, 1).unwrap();
        assert_eq!(
            eq.view(),
            json!({
                "type": "equipment",
                "slots": {"weapon": null, "head": null, "body": "leather-vest"},
                "attack": 0,
                "defense": 4,
            })
        );
    }
}
