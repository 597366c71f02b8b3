//! The baseapp script driven through `PlayerHarness`, as the host would drive it: one
//! test binary, one module per area of the game.

mod equip;
mod frames;
mod guilds;
mod items;
mod login;
mod pets;
mod shop;
mod social;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use warren_guest::testing::{Effects, PlayerHarness};
use warren_script_baseapp::PlayerLogic;
use warren_script_baseapp::bag::Bag;
use warren_script_baseapp::profile::Profile;

/// The player under test.
pub const ME: u64 = 42;

/// A harness for the player under test.
pub type Harness = PlayerHarness<PlayerLogic>;

/// A player who has logged in once as `ann`: 100 gold, the starter bag
/// (slot 0: 3 potions, slot 1: 10 berries, slot 2: a wooden sword).
pub fn new_player() -> Harness {
    let mut p = Harness::new(ME);
    p.login("ann").expect("first login succeeds");
    p
}

/// Sends `frame` and expects it to succeed.
pub fn ok(p: &mut Harness, frame: Value) -> Effects {
    match p.client(frame.clone()) {
        Ok(effects) => effects,
        Err(reject) => panic!("{frame} was rejected: {reject}"),
    }
}

/// Every committed state value, to compare before and after a call.
pub fn all_state(p: &Harness) -> BTreeMap<String, Value> {
    p.host
        .keys()
        .into_iter()
        .map(|k| {
            let value = p.state::<Value>(&k).expect("listed keys are set");
            (k, value)
        })
        .collect()
}

/// Sends `frame`, expects it to be rejected without changing any state, and returns the
/// reason.
pub fn rejected(p: &mut Harness, frame: Value) -> String {
    let before = all_state(p);
    let reason = match p.client(frame.clone()) {
        Ok(effects) => panic!("{frame} was accepted: {effects:?}"),
        Err(reject) => reject.0,
    };
    assert_eq!(all_state(p), before, "{frame} was rejected ({reason}) but changed state");
    reason
}

/// The types of the frames replied, in order.
pub fn reply_types(effects: &Effects) -> Vec<&str> {
    effects.replies.iter().map(|f| f["type"].as_str().unwrap_or("?")).collect()
}

/// The replied frame of type `ty`.
pub fn reply<'a>(effects: &'a Effects, ty: &str) -> &'a Value {
    effects.replies.iter().find(|f| f["type"] == ty).unwrap_or_else(|| panic!("no `{ty}` frame in {effects:?}"))
}

/// The committed profile.
pub fn profile(p: &Harness) -> Profile {
    p.state("profile").expect("profile is stored")
}

/// Changes the committed profile, as an earlier call might have.
pub fn edit_profile(p: &mut Harness, f: impl FnOnce(&mut Profile)) {
    let mut profile = profile(p);
    f(&mut profile);
    p.host.set_state("profile", &profile);
}

/// The committed bag.
pub fn bag(p: &Harness) -> Bag {
    p.state("bag").expect("bag is stored")
}

/// `(slot, item, count)` of each occupied bag slot.
pub fn bag_items(p: &Harness) -> Vec<(usize, String, u32)> {
    bag(p).slots().iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s.item.clone(), s.count))).collect()
}

/// Fills every empty bag slot with wooden swords.
pub fn fill_bag(p: &mut Harness) {
    let mut bag = bag(p);
    let free = bag.slots().iter().filter(|s| s.is_none()).count() as u32;
    bag.add("wood-sword", free).expect("swords fit in the free slots");
    p.host.set_state("bag", &bag);
}

#[test]
fn helpers_see_the_starter_state() {
    let p = new_player();
    assert_eq!(bag_items(&p), vec![(0, "potion".into(), 3), (1, "berry".into(), 10), (2, "wood-sword".into(), 1)]);
    assert_eq!(profile(&p).gold, 100);
    assert_eq!(json!(p.host.keys()), json!(["bag", "profile"]));
}
