//! The bag: a fixed number of slots, each empty or holding one stack of one item.
//!
//! Adding fills the stacks of that item already in the bag first (in slot order), then
//! empty slots; an add that does not fit entirely is refused and changes nothing.

use crate::items::{self, ItemDef};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_guest::{Outcome, Reject, state};

/// The state key the bag is stored under.
pub const KEY: &str = "bag";

/// How many slots a bag has.
pub const BAG_SLOTS: usize = 20;

/// Some items of one kind in one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// The item's catalogue id.
    pub item: String,
    /// How many; at least 1 and at most the item's `max_stack`.
    pub count: u32,
}

impl Stack {
    /// One stack of `count` `item`s.
    pub fn new(item: &str, count: u32) -> Self {
        Stack { item: item.to_owned(), count }
    }
}

/// A player's bag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bag {
    /// `None` is an empty slot. Stored in full so slot indices are stable.
    slots: Vec<Option<Stack>>,
}

impl Default for Bag {
    fn default() -> Self {
        Bag { slots: vec![None; BAG_SLOTS] }
    }
}

impl Bag {
    /// Reads the player's bag, empty if there is none yet. A bag stored by a module with
    /// fewer slots grows to [`BAG_SLOTS`].
    pub fn load() -> Outcome<Bag> {
        let mut bag: Bag = state::get_or_default(KEY)?;
        if bag.slots.len() < BAG_SLOTS {
            bag.slots.resize(BAG_SLOTS, None);
        }
        Ok(bag)
    }

    /// Writes the bag back (committed with the handler).
    pub fn save(&self) {
        state::set(KEY, self);
    }

    /// How many slots the bag has.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slots, `None` where empty.
    pub fn slots(&self) -> &[Option<Stack>] {
        &self.slots
    }

    /// How many of `item` the bag holds in all.
    pub fn count_of(&self, item: &str) -> u64 {
        self.slots.iter().flatten().filter(|s| s.item == item).map(|s| u64::from(s.count)).sum()
    }

    /// How many more of `def` the bag can take.
    pub fn room_for(&self, def: &ItemDef) -> u64 {
        let per_slot = u64::from(def.max_stack);
        self.slots
            .iter()
            .map(|slot| match slot {
                None => per_slot,
                Some(s) if s.item == def.id => per_slot.saturating_sub(u64::from(s.count)),
                Some(_) => 0,
            })
            .sum()
    }

    /// Adds `count` of `item`: tops up existing stacks, then uses empty slots. Refused,
    /// with the bag unchanged, if they do not all fit.
    pub fn add(&mut self, item: &str, count: u32) -> Outcome {
        let def = items::lookup(item)?;
        if count == 0 {
            return Err(Reject::new("count must be at least 1"));
        }
        let room = self.room_for(def);
        if room < u64::from(count) {
            return Err(if room == 0 {
                Reject::new("bag is full")
            } else {
                Reject::new(format!("bag is full: room for only {room} more {}", def.id))
            });
        }
        let mut left = count;
        for stack in self.slots.iter_mut().flatten().filter(|s| s.item == def.id) {
            let put = left.min(def.max_stack.saturating_sub(stack.count));
            stack.count += put;
            left -= put;
        }
        for slot in self.slots.iter_mut().filter(|s| s.is_none()) {
            if left == 0 {
                break;
            }
            let put = left.min(def.max_stack);
            *slot = Some(Stack::new(def.id, put));
            left -= put;
        }
        debug_assert_eq!(left, 0, "room_for promised the items fit");
        Ok(())
    }

    /// The stack in `slot`, or why there is none.
    pub fn get(&self, slot: usize) -> Outcome<&Stack> {
        match self.slots.get(slot) {
            None => Err(self.no_slot(slot)),
            Some(None) => Err(empty_slot(slot)),
            Some(Some(stack)) => Ok(stack),
        }
    }

    /// Takes `count` items out of `slot`, emptying the slot when none are left.
    pub fn take(&mut self, slot: usize, count: u32) -> Outcome<Stack> {
        if count == 0 {
            return Err(Reject::new("count must be at least 1"));
        }
        let no_slot = self.no_slot(slot);
        let cell = self.slots.get_mut(slot).ok_or(no_slot)?;
        let Some(stack) = cell.as_mut() else {
            return Err(empty_slot(slot));
        };
        if count > stack.count {
            return Err(Reject::new(format!("bag slot {slot} holds only {}", stack.count)));
        }
        stack.count -= count;
        let taken = Stack::new(&stack.item, count);
        if stack.count == 0 {
            *cell = None;
        }
        Ok(taken)
    }

    fn no_slot(&self, slot: usize) -> Reject {
        Reject::new(format!("no bag slot {slot}: the bag has slots 0 to {}", self.slots.len().saturating_sub(1)))
    }

    /// Puts `stack` into `slot`, which must be empty.
    pub fn put(&mut self, slot: usize, stack: Stack) -> Outcome {
        match self.slots.get_mut(slot) {
            Some(cell @ None) => {
                *cell = Some(stack);
                Ok(())
            }
            Some(Some(_)) => Err(Reject::new(format!("bag slot {slot} is not empty"))),
            None => Err(self.no_slot(slot)),
        }
    }

    /// The `bag` frame: the occupied slots with their index.
    pub fn view(&self) -> Value {
        let items: Vec<Value> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| json!({"slot": i, "item": s.item, "count": s.count})))
            .collect();
        json!({"type": "bag", "capacity": self.capacity(), "items": items})
    }
}

fn empty_slot(slot: usize) -> Reject {
    Reject::new(format!("bag slot {slot} is empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stacks(bag: &Bag) -> Vec<(usize, &str, u32)> {
        bag.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s.item.as_str(), s.count))).collect()
    }

    #[test]
    fn new_bag_is_empty_with_fixed_slots() {
        let bag = Bag::default();
        assert_eq!(bag.capacity(), BAG_SLOTS);
        assert!(stacks(&bag).is_empty());
    }

    #[test]
    fn adding_fills_existing_stacks_then_new_slots() {
        let mut bag = Bag::default();
        bag.add("potion", 15).unwrap();
        bag.add("berry", 3).unwrap();
        bag.add("potion", 10).unwrap();
        // 15 + 10 potions: slot 0 tops up to 20, the other 5 go to the next empty slot.
        assert_eq!(stacks(&bag), vec![(0, "potion", 20), (1, "berry", 3), (2, "potion", 5)]);
        assert_eq!(bag.count_of("potion"), 25);
    }

    #[test]
    fn large_adds_split_into_full_stacks() {
        let mut bag = Bag::default();
        bag.add("berry", 120).unwrap();
        assert_eq!(stacks(&bag), vec![(0, "berry", 50), (1, "berry", 50), (2, "berry", 20)]);
    }

    #[test]
    fn unstackable_items_take_one_slot_each() {
        let mut bag = Bag::default();
        bag.add("wood-sword", 2).unwrap();
        assert_eq!(stacks(&bag), vec![(0, "wood-sword", 1), (1, "wood-sword", 1)]);
    }

    #[test]
    fn emptied_slots_are_reused_first() {
        let mut bag = Bag::default();
        bag.add("wood-sword", 3).unwrap();
        bag.take(1, 1).unwrap();
        bag.add("leather-cap", 1).unwrap();
        assert_eq!(stacks(&bag)[1], (1, "leather-cap", 1));
    }

    #[test]
    fn full_bag_refuses_and_stays_unchanged() {
        let mut bag = Bag::default();
        bag.add("wood-sword", BAG_SLOTS as u32).unwrap();
        let before = bag.clone();
        assert_eq!(bag.add("potion", 1), Err(Reject::new("bag is full")));
        assert_eq!(bag, before);
    }

    #[test]
    fn partial_fit_is_refused_whole() {
        let mut bag = Bag::default();
        bag.add("wood-sword", BAG_SLOTS as u32 - 1).unwrap();
        bag.add("potion", 18).unwrap();
        let before = bag.clone();
        assert_eq!(bag.room_for(items::find("potion").unwrap()), 2);
        assert_eq!(bag.add("potion", 3), Err(Reject::new("bag is full: room for only 2 more potion")));
        assert_eq!(bag, before);
        bag.add("potion", 2).unwrap();
        assert_eq!(bag.count_of("potion"), 20);
    }

    #[test]
    fn a_full_stack_still_takes_none_of_its_item_in_a_full_bag() {
        let mut bag = Bag::default();
        bag.add("wood-sword", BAG_SLOTS as u32 - 1).unwrap();
        bag.add("potion", 20).unwrap();
        assert_eq!(bag.add("potion", 1), Err(Reject::new("bag is full")));
    }

    #[test]
    fn unknown_items_and_zero_counts_are_refused() {
        let mut bag = Bag::default();
        assert_eq!(bag.add("cake", 1), Err(Reject::new("unknown item `cake`")));
        assert_eq!(bag.add("potion", 0), Err(Reject::new("count must be at least 1")));
    }

    #[test]
    fn take_splits_or_empties_a_stack() {
        let mut bag = Bag::default();
        bag.add("potion", 5).unwrap();
        assert_eq!(bag.take(0, 2), Ok(Stack::new("potion", 2)));
        assert_eq!(stacks(&bag), vec![(0, "potion", 3)]);
        assert_eq!(bag.take(0, 3), Ok(Stack::new("potion", 3)));
        assert!(stacks(&bag).is_empty());
    }

    #[test]
    fn take_checks_slot_and_count() {
        let mut bag = Bag::default();
        bag.add("potion", 5).unwrap();
        assert_eq!(bag.take(0, 6), Err(Reject::new("bag slot 0 holds only 5")));
        assert_eq!(bag.take(1, 1), Err(Reject::new("bag slot 1 is empty")));
        assert_eq!(bag.take(20, 1), Err(Reject::new("no bag slot 20: the bag has slots 0 to 19")));
        assert_eq!(bag.take(0, 0), Err(Reject::new("count must be at least 1")));
    }

    #[test]
    fn put_needs_an_empty_slot() {
        let mut bag = Bag::default();
        bag.add("potion", 1).unwrap();
        assert_eq!(bag.put(0, Stack::new("berry", 1)), Err(Reject::new("bag slot 0 is not empty")));
        bag.put(5, Stack::new("berry", 1)).unwrap();
        assert_eq!(stacks(&bag), vec![(0, "potion", 1), (5, "berry", 1)]);
    }

    #[test]
    fn view_lists_occupied_slots() {
        let mut bag = Bag::default();
        bag.add("potion", 2).unwrap();
        assert_eq!(
            bag.view(),
            json!({"type": "bag", "capacity": 20, "items": [{"slot": 0, "item": "potion", "count": 2}]})
        );
    }
}
