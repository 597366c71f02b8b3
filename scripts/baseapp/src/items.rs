//! The item catalogue: every item the game knows, how far it stacks, what the shop asks
//! and pays for it, and what it does.
//!
//! Items are named by a stable id (`potion`, `iron-sword`) in state and in frames; the
//! catalogue lives in the module, so a module update can rebalance prices or add items
//! without touching stored bags.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_guest::{Outcome, Reject};

/// Where a piece of gear is worn. An item fits exactly one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EquipSlot {
    /// A sword or other weapon: adds attack.
    Weapon,
    /// A helmet or cap: adds defense.
    Head,
    /// Armour for the body: adds defense.
    Body,
}

impl EquipSlot {
    /// Every slot, in display order.
    pub const ALL: [EquipSlot; 3] = [EquipSlot::Weapon, EquipSlot::Head, EquipSlot::Body];

    /// The slot's name in frames.
    pub fn name(self) -> &'static str {
        match self {
            EquipSlot::Weapon => "weapon",
            EquipSlot::Head => "head",
            EquipSlot::Body => "body",
        }
    }
}

/// What using a consumable does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Restores this many hit points, up to the maximum.
    Heal(u32),
    /// Grants this much experience.
    Xp(u64),
}

/// What an item is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// Used up by `item.use`.
    Consumable(Effect),
    /// Fed to a pet with `pet.feed`.
    Food {
        /// Satiety the pet gains.
        satiety: u32,
        /// Affection the pet gains (doubled for the species' favourite food).
        affection: u32,
    },
    /// Worn with `equip`.
    Gear {
        /// The one slot it fits.
        slot: EquipSlot,
        /// Attack it adds while worn.
        attack: u32,
        /// Defense it adds while worn.
        defense: u32,
        /// The level a player needs to wear it.
        min_level: u32,
    },
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemDef {
    /// Stable id used in state and frames.
    pub id: &'static str,
    /// Name shown to players.
    pub name: &'static str,
    /// How many fit in one bag slot; 1 means not stackable.
    pub max_stack: u32,
    /// What the shop asks per item, in gold.
    pub price: u32,
    /// What the shop pays per item, in gold.
    pub sell_price: u32,
    /// What the item does.
    pub kind: ItemKind,
}

impl ItemDef {
    /// Whether more than one fits in a bag slot.
    pub fn stackable(&self) -> bool {
        self.max_stack > 1
    }

    /// The item as the `shop` frame lists it.
    pub fn view(&self) -> Value {
        let kind = match self.kind {
            ItemKind::Consumable(Effect::Heal(hp)) => json!({"use": "heal", "hp": hp}),
            ItemKind::Consumable(Effect::Xp(xp)) => json!({"use": "xp", "xp": xp}),
            ItemKind::Food { satiety, affection } => {
                json!({"use": "food", "satiety": satiety, "affection": affection})
            }
            ItemKind::Gear { slot, attack, defense, min_level } => json!({
                "use": "gear",
                "slot": slot.name(),
                "attack": attack,
                "defense": defense,
                "min_level": min_level,
            }),
        };
        json!({
            "item": self.id,
            "name": self.name,
            "stack": self.max_stack,
            "price": self.price,
            "sell_price": self.sell_price,
            "kind": kind,
        })
    }
}

const fn gear(slot: EquipSlot, attack: u32, defense: u32, min_level: u32) -> ItemKind {
    ItemKind::Gear { slot, attack, defense, min_level }
}

/// Every item in the game. The shop sells all of them.
pub const CATALOGUE: &[ItemDef] = &[
    ItemDef {
        id: "potion",
        name: "Potion",
        max_stack: 20,
        price: if cfg!(feature = "potion-sale") { 5 } else { 10 },
        sell_price: 4,
        kind: ItemKind::Consumable(Effect::Heal(40)),
    },
    ItemDef {
        id: "xp-tome",
        name: "Tome of Insight",
        max_stack: 10,
        price: 60,
        sell_price: 20,
        kind: ItemKind::Consumable(Effect::Xp(100)),
    },
    ItemDef {
        id: "berry",
        name: "Berry",
        max_stack: 50,
        price: 2,
        sell_price: 1,
        kind: ItemKind::Food { satiety: 10, affection: 1 },
    },
    ItemDef {
        id: "fish",
        name: "Fish",
        max_stack: 20,
        price: 5,
        sell_price: 2,
        kind: ItemKind::Food { satiety: 25, affection: 3 },
    },
    ItemDef {
        id: "meat",
        name: "Meat",
        max_stack: 20,
        price: 8,
        sell_price: 3,
        kind: ItemKind::Food { satiety: 40, affection: 4 },
    },
    ItemDef {
        id: "wood-sword",
        name: "Wooden Sword",
        max_stack: 1,
        price: 25,
        sell_price: 10,
        kind: gear(EquipSlot::Weapon, 3, 0, 1),
    },
    ItemDef {
        id: "iron-sword",
        name: "Iron Sword",
        max_stack: 1,
        price: 150,
        sell_price: 60,
        kind: gear(EquipSlot::Weapon, 8, 0, 3),
    },
    ItemDef {
        id: "leather-cap",
        name: "Leather Cap",
        max_stack: 1,
        price: 30,
        sell_price: 12,
        kind: gear(EquipSlot::Head, 0, 2, 1),
    },
    ItemDef {
        id: "iron-helm",
        name: "Iron Helm",
        max_stack: 1,
        price: 120,
        sell_price: 45,
        kind: gear(EquipSlot::Head, 0, 5, 3),
    },
    ItemDef {
        id: "leather-vest",
        name: "Leather Vest",
        max_stack: 1,
        price: 60,
        sell_price: 25,
        kind: gear(EquipSlot::Body, 0, 4, 1),
    },
];

/// The catalogue entry for `id`, if the item exists.
pub fn find(id: &str) -> Option<&'static ItemDef> {
    CATALOGUE.iter().find(|d| d.id == id)
}

/// The catalogue entry for `id`, or a rejection naming the unknown item.
pub fn lookup(id: &str) -> Outcome<&'static ItemDef> {
    find(id).ok_or_else(|| Reject::new(format!("unknown item `{id}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_stacks_positive() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            assert!(a.max_stack >= 1, "{} stacks to 0", a.id);
            assert!(a.sell_price < a.price, "{} sells for more than it costs", a.id);
            for b in &CATALOGUE[i + 1..] {
                assert_ne!(a.id, b.id);
            }
        }
    }

    #[test]
    fn gear_does_not_stack() {
        for def in CATALOGUE {
            if let ItemKind::Gear { .. } = def.kind {
                assert!(!def.stackable(), "{} is gear but stacks", def.id);
            }
        }
    }

    #[test]
    fn lookup_names_unknown_items() {
        assert_eq!(lookup("potion").map(|d| d.max_stack), Ok(20));
        assert_eq!(lookup("cake"), Err(Reject::new("unknown item `cake`")));
    }
}
