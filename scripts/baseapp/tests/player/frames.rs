//! Frames that only show state, and malformed frames.

use crate::*;
use warren_guest::Player;

#[test]
fn ping_pongs() {
    let mut p = new_player();
    assert_eq!(ok(&mut p, json!({"type": "ping"})).replies, vec![json!({"type": "pong"})]);
}

#[test]
fn views_show_the_state() {
    let mut p = new_player();
    assert_eq!(reply_types(&ok(&mut p, json!({"type": "profile"}))), ["profile"]);
    assert_eq!(
        ok(&mut p, json!({"type": "bag"})).replies,
        vec![json!({
            "type": "bag",
            "capacity": 20,
            "items": [
                {"slot": 0, "item": "potion", "count": 3},
                {"slot": 1, "item": "berry", "count": 10},
                {"slot": 2, "item": "wood-sword", "count": 1},
            ],
        })]
    );
    assert_eq!(
        ok(&mut p, json!({"type": "equipment"})).replies,
        vec![json!({
            "type": "equipment",
            "slots": {"weapon": null, "head": null, "body": null},
            "attack": 0,
            "defense": 0,
        })]
    );
    assert_eq!(ok(&mut p, json!({"type": "pets"})).replies, vec![json!({"type": "pets", "max": 3, "pets": []})]);
    // Viewing writes nothing new.
    assert_eq!(json!(p.host.keys()), json!(["bag", "profile"]));
}

#[test]
fn shop_lists_the_catalogue() {
    let mut p = new_player();
    let effects = ok(&mut p, json!({"type": "shop"}));
    let items = reply(&effects, "shop")["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), warren_script_baseapp::items::CATALOGUE.len());
    assert_eq!(
        items[0],
        json!({
            "item": "potion",
            "name": "Potion",
            "stack": 20,
            "price": 10,
            "sell_price": 4,
            "kind": {"use": "heal", "hp": 40},
        })
    );
}

#[test]
fn malformed_frames_are_refused_with_a_reason() {
    let mut p = new_player();
    let reason = rejected(&mut p, json!({"type": "dance"}));
    assert!(reason.starts_with("bad frame: unknown variant `dance`"), "{reason}");
    let reason = rejected(&mut p, json!({"item": "potion"}));
    assert!(reason.starts_with("bad frame: missing field `type`"), "{reason}");
    let reason = rejected(&mut p, json!({"type": "shop.buy", "count": 1}));
    assert!(reason.starts_with("bad frame: missing field `item`"), "{reason}");
    let reason = rejected(&mut p, json!({"type": "item.use", "slot": -1}));
    assert!(reason.starts_with("bad frame: invalid value"), "{reason}");
    let reason = rejected(&mut p, json!({"type": "unequip", "slot": "feet"}));
    assert!(reason.starts_with("bad frame: unknown variant `feet`"), "{reason}");
    let reason = rejected(&mut p, json!([1, 2]));
    assert!(reason.starts_with("bad frame"), "{reason}");
}

#[test]
fn frames_that_are_not_json_are_refused() {
    let mut p = new_player();
    let err = p.host.call(|| PlayerLogic::on_client(ME, b"{not json")).unwrap_err();
    assert!(err.0.starts_with("bad frame: "), "{err}");
}
