//! Using, dropping and selling bag items.

use crate::*;

#[test]
fn a_potion_heals_and_is_used_up() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.hp = 30);
    let effects = ok(&mut p, json!({"type": "item.use", "slot": 0}));
    assert_eq!(reply_types(&effects), ["bag", "profile"]);
    assert_eq!(reply(&effects, "profile")["hp"], 70);
    assert_eq!(bag_items(&p)[0], (0, "potion".into(), 2));
}

#[test]
fn healing_stops_at_the_maximum() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.hp = 90);
    ok(&mut p, json!({"type": "item.use", "slot": 0}));
    assert_eq!(profile(&p).hp, 100);
}

#[test]
fn a_potion_at_full_health_is_refused() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "item.use", "slot": 0})), "you are already at full health");
}

#[test]
fn the_last_item_empties_its_slot() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.hp = 1);
    for _ in 0..3 {
        ok(&mut p, json!({"type": "item.use", "slot": 0}));
    }
    assert_eq!(bag(&p).count_of("potion"), 0);
    assert_eq!(profile(&p).hp, 100);
    assert_eq!(rejected(&mut p, json!({"type": "item.use", "slot": 0})), "bag slot 0 is empty");
}

#[test]
fn a_tome_gives_xp_and_levels_up() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "shop.buy", "item": "xp-tome"}));
    edit_profile(&mut p, |pr| pr.hp = 10);
    let effects = ok(&mut p, json!({"type": "item.use", "slot": 3}));
    let profile = reply(&effects, "profile");
    assert_eq!((profile["level"].clone(), profile["xp"].clone()), (json!(2), json!(0)));
    // A level-up heals fully, at the new maximum.
    assert_eq!((profile["hp"].clone(), profile["max_hp"].clone()), (json!(110), json!(110)));
    assert_eq!(bag(&p).count_of("xp-tome"), 0);
}

#[test]
fn food_and_gear_cannot_be_used() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "item.use", "slot": 1})), "Berry is pet food: feed it to a pet");
    assert_eq!(rejected(&mut p, json!({"type": "item.use", "slot": 2})), "Wooden Sword is gear: equip it");
}

#[test]
fn using_a_missing_slot_is_refused() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "item.use", "slot": 5})), "bag slot 5 is empty");
    assert_eq!(rejected(&mut p, json!({"type": "item.use", "slot": 20})), "no bag slot 20: the bag has slots 0 to 19");
}

#[test]
fn dropping_removes_items() {
    let mut p = new_player();
    let effects = ok(&mut p, json!({"type": "item.drop", "slot": 1, "count": 4}));
    assert_eq!(reply_types(&effects), ["bag"]);
    assert_eq!(bag(&p).count_of("berry"), 6);
    ok(&mut p, json!({"type": "item.drop", "slot": 1}));
    assert_eq!(bag(&p).count_of("berry"), 5);
    ok(&mut p, json!({"type": "item.drop", "slot": 1, "count": 5}));
    assert_eq!(bag_items(&p).iter().map(|s| s.0).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(profile(&p).gold, 100);
}

#[test]
fn dropping_more_than_the_stack_is_refused() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "item.drop", "slot": 0, "count": 4})), "bag slot 0 holds only 3");
    assert_eq!(rejected(&mut p, json!({"type": "item.drop", "slot": 0, "count": 0})), "count must be at least 1");
    assert_eq!(rejected(&mut p, json!({"type": "item.drop", "slot": 9})), "bag slot 9 is empty");
}

#[test]
fn selling_pays_the_sell_price() {
    let mut p = new_player();
    let effects = ok(&mut p, json!({"type": "item.sell", "slot": 2}));
    assert_eq!(reply_types(&effects), ["bag", "profile"]);
    assert_eq!(profile(&p).gold, 110);
    ok(&mut p, json!({"type": "item.sell", "slot": 1, "count": 10}));
    assert_eq!(profile(&p).gold, 120);
    assert_eq!(bag_items(&p), vec![(0, "potion".into(), 3)]);
}

#[test]
fn selling_what_is_not_there_is_refused() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "item.sell", "slot": 0, "count": 5})), "bag slot 0 holds only 3");
    assert_eq!(rejected(&mut p, json!({"type": "item.sell", "slot": 3})), "bag slot 3 is empty");
}
