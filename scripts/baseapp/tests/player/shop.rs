//! Buying from the shop.

use crate::*;

#[test]
fn buying_pays_gold_and_stacks_onto_existing_items() {
    let mut p = new_player();
    let effects = ok(&mut p, json!({"type": "shop.buy", "item": "potion", "count": 2}));
    assert_eq!(reply_types(&effects), ["bag", "profile"]);
    assert_eq!(reply(&effects, "profile")["gold"], 80);
    assert_eq!(bag_items(&p)[0], (0, "potion".into(), 5));
    assert_eq!(profile(&p).gold, 80);
}

#[test]
fn count_defaults_to_one() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "shop.buy", "item": "leather-cap"}));
    assert_eq!(bag(&p).count_of("leather-cap"), 1);
    assert_eq!(profile(&p).gold, 70);
}

#[test]
fn a_stack_that_overflows_continues_in_a_free_slot() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.gold = 1_000);
    ok(&mut p, json!({"type": "shop.buy", "item": "potion", "count": 19}));
    assert_eq!(
        bag_items(&p),
        vec![(0, "potion".into(), 20), (1, "berry".into(), 10), (2, "wood-sword".into(), 1), (3, "potion".into(), 2),]
    );
    assert_eq!(profile(&p).gold, 810);
}

#[test]
fn unstackable_items_take_a_slot_each() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "shop.buy", "item": "wood-sword", "count": 2}));
    assert_eq!(bag_items(&p)[3..], [(3, "wood-sword".into(), 1), (4, "wood-sword".into(), 1)]);
}

#[test]
fn not_enough_gold_is_refused() {
    let mut p = new_player();
    assert_eq!(
        rejected(&mut p, json!({"type": "shop.buy", "item": "iron-sword"})),
        "not enough gold: need 150, have 100"
    );
    assert_eq!(
        rejected(&mut p, json!({"type": "shop.buy", "item": "potion", "count": 11})),
        "not enough gold: need 110, have 100"
    );
}

#[test]
fn a_full_bag_is_refused_and_keeps_the_gold() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.gold = 1_000);
    fill_bag(&mut p);
    assert_eq!(rejected(&mut p, json!({"type": "shop.buy", "item": "leather-cap"})), "bag is full");
    // Potions still fit on the existing stack of 3.
    ok(&mut p, json!({"type": "shop.buy", "item": "potion", "count": 17}));
    assert_eq!(rejected(&mut p, json!({"type": "shop.buy", "item": "potion"})), "bag is full");
}

#[test]
fn an_order_that_only_partly_fits_is_refused_whole() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.gold = 1_000);
    fill_bag(&mut p);
    assert_eq!(
        rejected(&mut p, json!({"type": "shop.buy", "item": "potion", "count": 18})),
        "bag is full: room for only 17 more potion"
    );
}

#[test]
fn unknown_items_and_bad_counts_are_refused() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "shop.buy", "item": "cake"})), "unknown item `cake`");
    assert_eq!(
        rejected(&mut p, json!({"type": "shop.buy", "item": "potion", "count": 0})),
        "count must be from 1 to 999"
    );
    assert_eq!(
        rejected(&mut p, json!({"type": "shop.buy", "item": "berry", "count": 1000})),
        "count must be from 1 to 999"
    );
}
