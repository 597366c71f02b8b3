//! Pets: adopted for gold, fed from the bag, renamed. A pet's satiety drops with time
//! (host time, so a replay sees the same value); affection only grows.

use crate::items::{self, ItemKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_guest::{Outcome, Reject, state};

/// The state key the pets are stored under.
pub const KEY: &str = "pets";

/// How many pets a player may keep.
pub const MAX_PETS: usize = 3;

/// The most satiety and affection a pet can have.
pub const MAX_STAT: u32 = 100;

/// A pet loses one point of satiety per this many milliseconds (10 minutes).
pub const SATIETY_DECAY_MS: u64 = 10 * 60 * 1000;

/// The longest a pet's name may be, in characters.
pub const MAX_NAME_CHARS: usize = 16;

/// A kind of pet that can be adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Species {
    /// Stable id used in state and frames.
    pub id: &'static str,
    /// What adopting one costs, in gold.
    pub price: u64,
    /// The food item it likes best: double affection.
    pub favourite_food: &'static str,
}

/// The species a player can adopt.
pub const SPECIES: &[Species] = &[
    Species { id: "cat", price: 50, favourite_food: "fish" },
    Species { id: "dog", price: 80, favourite_food: "meat" },
    Species { id: "owl", price: 120, favourite_food: "berry" },
];

/// The species `id`, or a rejection listing the ones there are.
pub fn species(id: &str) -> Outcome<&'static Species> {
    SPECIES.iter().find(|s| s.id == id).ok_or_else(|| {
        let known: Vec<&str> = SPECIES.iter().map(|s| s.id).collect();
        Reject::new(format!("unknown species `{id}`: choose one of {}", known.join(", ")))
    })
}

/// Checks a pet name: 1 to 16 characters, letters, digits, spaces, `-` and `_`, not
/// starting or ending with a space.
pub fn validate_name(name: &str) -> Outcome {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(Reject::new("pet name must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(Reject::new(format!("pet name is too long: {chars} characters, at most {MAX_NAME_CHARS}")));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))) {
        return Err(Reject::new(format!("pet name may hold only letters, digits, spaces, `-` and `_`, not {bad:?}")));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(Reject::new("pet name must not start or end with a space"));
    }
    Ok(())
}

/// One pet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pet {
    /// The pet's number, unique among the player's pets, never reused.
    pub id: u32,
    /// Its species' id.
    pub species: String,
    /// The name the player gave it.
    pub name: String,
    /// Satiety when last fed (it decays from `fed_ms` on).
    pub satiety: u32,
    /// When it was last fed, or adopted (host time, ms).
    pub fed_ms: u64,
    /// How attached it is to the player.
    pub affection: u32,
}

impl Pet {
    /// Satiety at time `now_ms`, after decay.
    pub fn satiety_at(&self, now_ms: u64) -> u32 {
        let decayed = now_ms.saturating_sub(self.fed_ms) / SATIETY_DECAY_MS;
        let decayed = u32::try_from(decayed).unwrap_or(u32::MAX);
        self.satiety.saturating_sub(decayed)
    }

    /// The pet as frames show it, at time `now_ms`.
    pub fn view(&self, now_ms: u64) -> Value {
        json!({
            "id": self.id,
            "species": self.species,
            "name": self.name,
            "satiety": self.satiety_at(now_ms),
            "affection": self.affection,
        })
    }
}

/// A player's pets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pets {
    /// The id the next adopted pet gets.
    next_id: u32,
    /// The pets, in order of adoption.
    pets: Vec<Pet>,
}

impl Pets {
    /// Reads the player's pets, none if none are stored.
    pub fn load() -> Outcome<Pets> {
        state::get_or_default(KEY)
    }

    /// Writes the pets back (committed with the handler).
    pub fn save(&self) {
        state::set(KEY, self);
    }

    /// The pets, in order of adoption.
    pub fn list(&self) -> &[Pet] {
        &self.pets
    }

    /// Pet `id`, or why there is none.
    pub fn get_mut(&mut self, id: u32) -> Outcome<&mut Pet> {
        self.pets.iter_mut().find(|p| p.id == id).ok_or_else(|| Reject::new(format!("you have no pet {id}")))
    }

    /// Adopts a pet of `species` named `name` at time `now_ms`. Checks the species, the
    /// name and the pet limit; the caller pays the price. Returns the new pet's id.
    pub fn adopt(&mut self, species: &Species, name: &str, now_ms: u64) -> Outcome<u32> {
        validate_name(name)?;
        if self.pets.len() >= MAX_PETS {
            return Err(Reject::new(format!("you already have {MAX_PETS} pets, the most you can keep")));
        }
        self.next_id = self.next_id.max(1);
        let id = self.next_id;
        self.next_id += 1;
        self.pets.push(Pet {
            id,
            species: species.id.to_owned(),
            name: name.to_owned(),
            satiety: MAX_STAT / 2,
            fed_ms: now_ms,
            affection: 0,
        });
        Ok(id)
    }

    /// Feeds pet `id` one `food` item at time `now_ms`. Fails if the item is not food or
    /// the pet is full; the caller takes the item from the bag.
    pub fn feed(&mut self, id: u32, food: &str, now_ms: u64) -> Outcome {
        let def = items::lookup(food)?;
        let ItemKind::Food { satiety, affection } = def.kind else {
            return Err(Reject::new(format!("{} is not pet food", def.name)));
        };
        let pet = self.get_mut(id)?;
        let now = pet.satiety_at(now_ms);
        if now >= MAX_STAT {
            return Err(Reject::new(format!("{} is not hungry", pet.name)));
        }
        let liked = species(&pet.species).is_ok_and(|s| s.favourite_food == def.id);
        let affection = if liked { affection * 2 } else { affection };
        pet.satiety = (now + satiety).min(MAX_STAT);
        pet.fed_ms = now_ms;
        pet.affection = (pet.affection + affection).min(MAX_STAT);
        Ok(())
    }

    /// Renames pet `id`.
    pub fn rename(&mut self, id: u32, name: &str) -> Outcome {
        validate_name(name)?;
        self.get_mut(id)?.name = name.to_owned();
        Ok(())
    }

    /// The `pets` frame at time `now_ms`.
    pub fn view(&self, now_ms: u64) -> Value {
        let pets: Vec<Value> = self.pets.iter().map(|p| p.view(now_ms)).collect();
        json!({"type": "pets", "max": MAX_PETS, "pets": pets})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static Species {
        species("cat").unwrap()
    }

    #[test]
    fn names_are_validated() {
        for ok in ["Tom", "a", "Mr Whiskers", "fluffy-2_b", "Ünsal", "abcdefghijklmnop"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(Reject::new("pet name must not be empty")));
        assert_eq!(
            validate_name("abcdefghijklmnopq"),
            Err(Reject::new("pet name is too long: 17 characters, at most 16"))
        );
        assert_eq!(
            validate_name("Tom!"),
            Err(Reject::new("pet name may hold only letters, digits, spaces, `-` and `_`, not '!'"))
        );
        assert_eq!(validate_name(" Tom"), Err(Reject::new("pet name must not start or end with a space")));
    }

    #[test]
    fn unknown_species_lists_the_known_ones() {
        assert_eq!(species("yeti"), Err(Reject::new("unknown species `yeti`: choose one of cat, dog, owl")));
    }

    #[test]
    fn adopt_numbers_pets_and_limits_them() {
        let mut pets = Pets::default();
        assert_eq!(pets.adopt(cat(), "A", 0), Ok(1));
        assert_eq!(pets.adopt(cat(), "B", 0), Ok(2));
        assert_eq!(pets.adopt(cat(), "C", 0), Ok(3));
        assert_eq!(pets.adopt(cat(), "D", 0), Err(Reject::new("you already have 3 pets, the most you can keep")));
        assert_eq!(pets.list().len(), 3);
    }

    #[test]
    fn satiety_decays_with_time() {
        let mut pets = Pets::default();
        pets.adopt(cat(), "Tom", 0).unwrap();
        let pet = &pets.list()[0];
        assert_eq!(pet.satiety_at(0), 50);
        assert_eq!(pet.satiety_at(SATIETY_DECAY_MS * 20 + 1), 30);
        assert_eq!(pet.satiety_at(u64::MAX), 0);
    }

    #[test]
    fn feeding_raises_stats_with_a_cap_and_favourite_bonus() {
        let mut pets = Pets::default();
        pets.adopt(cat(), "Tom", 0).unwrap();
        pets.feed(1, "berry", 0).unwrap();
        assert_eq!((pets.list()[0].satiety, pets.list()[0].affection), (60, 1));
        pets.feed(1, "fish", 0).unwrap(); // a cat's favourite: 3 * 2 affection
        assert_eq!((pets.list()[0].satiety, pets.list()[0].affection), (85, 7));
        pets.feed(1, "fish", 0).unwrap();
        assert_eq!(pets.list()[0].satiety, MAX_STAT);
        assert_eq!(pets.feed(1, "berry", 0), Err(Reject::new("Tom is not hungry")));
        // Ten minutes later it has room for a snack again.
        pets.feed(1, "berry", SATIETY_DECAY_MS).unwrap();
        assert_eq!(pets.list()[0].satiety, MAX_STAT);
    }

    #[test]
    fn affection_is_capped() {
        let mut pets = Pets::default();
        pets.adopt(cat(), "Tom", 0).unwrap();
        for i in 0..200 {
            // Far enough apart that the pet is always hungry.
            pets.feed(1, "fish", i * 100 * SATIETY_DECAY_MS).unwrap();
        }
        assert_eq!(pets.list()[0].affection, MAX_STAT);
    }

    #[test]
    fn feeding_needs_food_and_a_pet() {
        let mut pets = Pets::default();
        pets.adopt(cat(), "Tom", 0).unwrap();
        assert_eq!(pets.feed(1, "potion", 0), Err(Reject::new("Potion is not pet food")));
        assert_eq!(pets.feed(9, "berry", 0), Err(Reject::new("you have no pet 9")));
    }

    #[test]
    fn rename_validates() {
        let mut pets = Pets::default();
        pets.adopt(cat(), "Tom", 0).unwrap();
        pets.rename(1, "Felix").unwrap();
        assert_eq!(pets.list()[0].name, "Felix");
        assert_eq!(pets.rename(1, ""), Err(Reject::new("pet name must not be empty")));
        assert_eq!(pets.rename(2, "Rex"), Err(Reject::new("you have no pet 2")));
    }
}
