//! Adopting, feeding and renaming pets.

use crate::*;
use warren_script_baseapp::pets::SATIETY_DECAY_MS;

fn adopt(p: &mut Harness, species: &str, name: &str) -> Effects {
    ok(p, json!({"type": "pet.adopt", "species": species, "name": name}))
}

#[test]
fn adopting_pays_and_adds_a_pet() {
    let mut p = new_player();
    let effects = adopt(&mut p, "cat", "Tom");
    assert_eq!(reply_types(&effects), ["pets", "profile"]);
    assert_eq!(
        reply(&effects, "pets"),
        &json!({
            "type": "pets",
            "max": 3,
            "pets": [{"id": 1, "species": "cat", "name": "Tom", "satiety": 50, "affection": 0}],
        })
    );
    assert_eq!(profile(&p).gold, 50);
    assert!(p.host.keys().contains(&"pets".to_owned()));
}

#[test]
fn adopting_checks_species_name_gold_and_the_limit() {
    let mut p = new_player();
    assert_eq!(
        rejected(&mut p, json!({"type": "pet.adopt", "species": "yeti", "name": "Bob"})),
        "unknown species `yeti`: choose one of cat, dog, owl"
    );
    assert_eq!(
        rejected(&mut p, json!({"type": "pet.adopt", "species": "cat", "name": "Tom!"})),
        "pet name may hold only letters, digits, spaces, `-` and `_`, not '!'"
    );
    assert_eq!(
        rejected(&mut p, json!({"type": "pet.adopt", "species": "owl", "name": "Hoot"})),
        "not enough gold: need 120, have 100"
    );
    edit_profile(&mut p, |pr| pr.gold = 1_000);
    adopt(&mut p, "cat", "A");
    adopt(&mut p, "dog", "B");
    adopt(&mut p, "owl", "C");
    assert_eq!(
        rejected(&mut p, json!({"type": "pet.adopt", "species": "cat", "name": "D"})),
        "you already have 3 pets, the most you can keep"
    );
    assert_eq!(profile(&p).gold, 1_000 - 50 - 80 - 120);
}

#[test]
fn feeding_uses_food_from_the_bag() {
    let mut p = new_player();
    adopt(&mut p, "dog", "Rex");
    let effects = ok(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 1}));
    assert_eq!(reply_types(&effects), ["pets", "bag"]);
    assert_eq!(reply(&effects, "pets")["pets"][0]["satiety"], 60);
    assert_eq!(reply(&effects, "pets")["pets"][0]["affection"], 1);
    assert_eq!(bag(&p).count_of("berry"), 9);
}

#[test]
fn favourite_food_doubles_affection() {
    let mut p = new_player();
    adopt(&mut p, "cat", "Tom");
    ok(&mut p, json!({"type": "shop.buy", "item": "fish"}));
    let effects = ok(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 3}));
    assert_eq!(reply(&effects, "pets")["pets"][0]["affection"], 6);
    assert_eq!(reply(&effects, "pets")["pets"][0]["satiety"], 75);
}

#[test]
fn a_full_pet_refuses_food_until_it_gets_hungry() {
    let mut p = new_player();
    adopt(&mut p, "cat", "Tom");
    for _ in 0..5 {
        ok(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 1}));
    }
    assert_eq!(rejected(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 1})), "Tom is not hungry");
    assert_eq!(bag(&p).count_of("berry"), 5);
    p.host.advance(SATIETY_DECAY_MS * 30);
    let pets = ok(&mut p, json!({"type": "pets"}));
    assert_eq!(pets.replies[0]["pets"][0]["satiety"], 70);
    ok(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 1}));
}

#[test]
fn feeding_needs_a_pet_and_food() {
    let mut p = new_player();
    adopt(&mut p, "cat", "Tom");
    assert_eq!(rejected(&mut p, json!({"type": "pet.feed", "pet": 2, "slot": 1})), "you have no pet 2");
    assert_eq!(rejected(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 0})), "Potion is not pet food");
    assert_eq!(rejected(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 2})), "Wooden Sword is not pet food");
    assert_eq!(rejected(&mut p, json!({"type": "pet.feed", "pet": 1, "slot": 4})), "bag slot 4 is empty");
}

#[test]
fn renaming_validates_the_name() {
    let mut p = new_player();
    adopt(&mut p, "cat", "Tom");
    let effects = ok(&mut p, json!({"type": "pet.rename", "pet": 1, "name": "Sir Tom-2_x"}));
    assert_eq!(reply_types(&effects), ["pets"]);
    assert_eq!(reply(&effects, "pets")["pets"][0]["name"], "Sir Tom-2_x");
    for (name, reason) in [
        ("", "pet name must not be empty"),
        ("abcdefghijklmnopq", "pet name is too long: 17 characters, at most 16"),
        ("<script>", "pet name may hold only letters, digits, spaces, `-` and `_`, not '<'"),
        ("Tom ", "pet name must not start or end with a space"),
    ] {
        assert_eq!(rejected(&mut p, json!({"type": "pet.rename", "pet": 1, "name": name})), reason);
    }
    assert_eq!(rejected(&mut p, json!({"type": "pet.rename", "pet": 7, "name": "Rex"})), "you have no pet 7");
}

#[test]
fn pet_ids_are_not_reused() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.gold = 1_000);
    adopt(&mut p, "cat", "A");
    let effects = adopt(&mut p, "cat", "B");
    let ids: Vec<_> = reply(&effects, "pets")["pets"].as_array().unwrap().iter().map(|p| p["id"].clone()).collect();
    assert_eq!(ids, [json!(1), json!(2)]);
}
