//! Wearing and taking off gear.

use crate::*;

fn equipment(p: &mut Harness) -> Value {
    ok(p, json!({"type": "equipment"})).replies[0].clone()
}

#[test]
fn equipping_moves_gear_from_the_bag() {
    let mut p = new_player();
    let effects = ok(&mut p, json!({"type": "equip", "slot": 2}));
    assert_eq!(reply_types(&effects), ["equipment", "bag"]);
    assert_eq!(reply(&effects, "equipment")["slots"]["weapon"], "wood-sword");
    assert_eq!(reply(&effects, "equipment")["attack"], 3);
    assert_eq!(bag(&p).count_of("wood-sword"), 0);
    assert_eq!(json!(p.host.keys()), json!(["bag", "equipment", "profile"]));
}

#[test]
fn each_item_goes_to_its_own_slot() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "shop.buy", "item": "leather-cap"}));
    ok(&mut p, json!({"type": "shop.buy", "item": "leather-vest"}));
    for slot in 2..5 {
        ok(&mut p, json!({"type": "equip", "slot": slot}));
    }
    let eq = equipment(&mut p);
    assert_eq!(eq["slots"], json!({"weapon": "wood-sword", "head": "leather-cap", "body": "leather-vest"}));
    assert_eq!((eq["attack"].clone(), eq["defense"].clone()), (json!(3), json!(6)));
    assert_eq!(bag_items(&p).len(), 2);
}

#[test]
fn equipping_swaps_the_old_item_into_the_freed_slot() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| {
        pr.level = 3;
        pr.gold = 500;
    });
    ok(&mut p, json!({"type": "shop.buy", "item": "iron-sword"}));
    ok(&mut p, json!({"type": "equip", "slot": 2}));
    let effects = ok(&mut p, json!({"type": "equip", "slot": 3}));
    assert_eq!(reply(&effects, "equipment")["slots"]["weapon"], "iron-sword");
    assert_eq!(bag_items(&p)[2..], [(3, "wood-sword".into(), 1)]);
}

#[test]
fn swapping_works_in_a_full_bag() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "equip", "slot": 2}));
    fill_bag(&mut p);
    ok(&mut p, json!({"type": "equip", "slot": 19}));
    assert_eq!(bag(&p).count_of("wood-sword"), 18);
    assert_eq!(equipment(&mut p)["slots"]["weapon"], "wood-sword");
}

#[test]
fn only_gear_at_the_right_level_can_be_equipped() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "equip", "slot": 0})), "Potion cannot be equipped");
    assert_eq!(rejected(&mut p, json!({"type": "equip", "slot": 1})), "Berry cannot be equipped");
    assert_eq!(rejected(&mut p, json!({"type": "equip", "slot": 7})), "bag slot 7 is empty");
    edit_profile(&mut p, |pr| pr.gold = 500);
    ok(&mut p, json!({"type": "shop.buy", "item": "iron-helm"}));
    assert_eq!(rejected(&mut p, json!({"type": "equip", "slot": 3})), "Iron Helm needs level 3, you are level 1");
}

#[test]
fn unequipping_returns_the_item_to_the_bag() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "equip", "slot": 2}));
    ok(&mut p, json!({"type": "item.drop", "slot": 0, "count": 3}));
    let effects = ok(&mut p, json!({"type": "unequip", "slot": "weapon"}));
    assert_eq!(reply_types(&effects), ["equipment", "bag"]);
    assert_eq!(reply(&effects, "equipment")["slots"]["weapon"], Value::Null);
    // It goes to the first free slot.
    assert_eq!(bag_items(&p)[0], (0, "wood-sword".into(), 1));
}

#[test]
fn unequipping_an_empty_slot_is_refused() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "unequip", "slot": "head"})), "nothing is equipped in the head slot");
}

#[test]
fn unequipping_into_a_full_bag_is_refused() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "equip", "slot": 2}));
    fill_bag(&mut p);
    assert_eq!(rejected(&mut p, json!({"type": "unequip", "slot": "weapon"})), "bag is full");
    assert_eq!(equipment(&mut p)["slots"]["weapon"], "wood-sword");
}
