//! First and later logins.

use crate::*;

#[test]
fn first_login_creates_the_profile_and_starter_bag() {
    let mut p = Harness::new(ME);
    p.host.set_now(5_000);
    let effects = p.login("ann").unwrap();
    assert_eq!(
        effects.replies,
        vec![json!({
            "type": "profile",
            "id": ME,
            "name": "ann",
            "level": 1,
            "xp": 0,
            "xp_to_next": 100,
            "gold": 100,
            "hp": 100,
            "max_hp": 100,
        })]
    );
    let profile = profile(&p);
    assert_eq!((profile.created_ms, profile.last_login_ms, profile.logins), (5_000, 5_000, 1));
    assert_eq!(bag_items(&p).len(), 3);
    assert!(effects.logs.iter().any(|(_, line)| line.contains("new player 42")));
}

#[test]
fn later_logins_keep_the_profile_and_bag() {
    let mut p = new_player();
    ok(&mut p, json!({"type": "shop.buy", "item": "potion", "count": 2}));
    p.host.advance(60_000);
    let effects = p.login("someone-else").unwrap();
    assert_eq!(effects.replies[0]["name"], "ann");
    assert_eq!(effects.replies[0]["gold"], 80);
    let profile = profile(&p);
    assert_eq!(profile.logins, 2);
    assert_eq!(profile.last_login_ms, profile.created_ms + 60_000);
    // The starter items are not handed out again.
    assert_eq!(bag(&p).count_of("potion"), 5);
    assert_eq!(bag(&p).count_of("wood-sword"), 1);
}

#[test]
fn a_blank_name_gets_a_default() {
    let mut p = Harness::new(ME);
    let effects = p.login("  ").unwrap();
    assert_eq!(effects.replies[0]["name"], "player-42");
}

#[test]
fn frames_before_any_login_are_refused() {
    let mut p = Harness::new(ME);
    assert_eq!(p.client(json!({"type": "profile"})).unwrap_err().0, "no profile: log in first");
    assert_eq!(p.client(json!({"type": "shop.buy", "item": "potion"})).unwrap_err().0, "no profile: log in first");
    assert!(p.host.keys().is_empty());
}

#[test]
fn logout_keeps_everything() {
    let mut p = new_player();
    let before = all_state(&p);
    p.logout().unwrap();
    assert_eq!(all_state(&p), before);
}
