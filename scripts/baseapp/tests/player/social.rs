//! Whispers and battle rewards: messages between entities.

use crate::*;
use warren_guest::Address;
use warren_guest::log::Level;
use warren_guest::testing::Sent;

#[test]
fn whisper_sends_a_message_to_the_other_player() {
    let mut p = new_player();
    let effects = ok(&mut p, json!({"type": "whisper", "to": 7, "text": "  hi there "}));
    assert_eq!(
        effects.sends,
        vec![Sent {
            to: Address::Player(7),
            kind: "chat.whisper".into(),
            body: json!({"from": ME, "from_name": "ann", "text": "hi there"}),
        }]
    );
    assert_eq!(effects.replies, vec![json!({"type": "whisper.sent", "to": 7, "text": "hi there"})]);
    assert!(effects.pushes.is_empty());
}

#[test]
fn bad_whispers_are_refused() {
    let mut p = new_player();
    assert_eq!(rejected(&mut p, json!({"type": "whisper", "to": ME, "text": "hi"})), "you cannot whisper to yourself");
    assert_eq!(rejected(&mut p, json!({"type": "whisper", "to": 7, "text": "   "})), "whisper text must not be empty");
    assert_eq!(
        rejected(&mut p, json!({"type": "whisper", "to": 7, "text": "a".repeat(201)})),
        "whisper is too long: 201 characters, at most 200"
    );
}

#[test]
fn a_whisper_received_is_pushed_to_the_client() {
    let mut p = new_player();
    let effects = p
        .message(Some(Address::Player(7)), "chat.whisper", json!({"from": 7, "from_name": "bob", "text": "psst"}))
        .unwrap();
    assert_eq!(effects.pushes, vec![(ME, json!({"type": "whisper", "from": 7, "from_name": "bob", "text": "psst"}))]);
    assert!(effects.replies.is_empty());
}

#[test]
fn the_host_sender_wins_over_the_body() {
    let mut p = new_player();
    let effects = p
        .message(Some(Address::Player(8)), "chat.whisper", json!({"from": 7, "from_name": "bob", "text": "x"}))
        .unwrap();
    assert_eq!(effects.pushes[0].1["from"], 8);
}

#[test]
fn a_malformed_whisper_is_refused() {
    let mut p = new_player();
    let err = p.message(Some(Address::Player(7)), "chat.whisper", json!({"text": 3})).unwrap_err();
    assert!(err.0.starts_with("bad `chat.whisper` message:"), "{err}");
}

#[test]
fn winning_a_battle_pays_xp_and_gold() {
    let mut p = new_player();
    let effects = p
        .message(Some(Address::Battle(9)), "battle.result", json!({"room": 9, "winner": ME, "practice": false}))
        .unwrap();
    assert_eq!(
        effects.pushes[0],
        (ME, json!({"type": "battle.reward", "room": 9, "won": true, "xp": 50, "gold": 20, "levels": 0}))
    );
    assert_eq!(effects.pushes[1].1["type"], "profile");
    let profile = profile(&p);
    assert_eq!((profile.xp, profile.gold), (50, 120));
}

#[test]
fn losing_a_practice_battle_pays_a_little() {
    let mut p = new_player();
    edit_profile(&mut p, |pr| pr.xp = 98);
    let effects = p
        .message(Some(Address::Battle(9)), "battle.result", json!({"room": 9, "winner": 0, "practice": true}))
        .unwrap();
    assert_eq!(
        effects.pushes[0].1,
        json!({"type": "battle.reward", "room": 9, "won": false, "xp": 5, "gold": 0, "levels": 1})
    );
    assert_eq!(profile(&p).level, 2);
}

#[test]
fn battle_results_must_come_from_their_room() {
    let mut p = new_player();
    let before = all_state(&p);
    let body = json!({"room": 9, "winner": ME});
    let err = p.message(Some(Address::Player(7)), "battle.result", body.clone()).unwrap_err();
    assert_eq!(err.0, "battle.result must come from battle room 9");
    assert!(p.message(Some(Address::Battle(8)), "battle.result", body.clone()).is_err());
    assert!(p.message(None, "battle.result", body).is_err());
    assert_eq!(all_state(&p), before);
}

#[test]
fn unknown_messages_are_logged_and_dropped() {
    let mut p = new_player();
    let before = all_state(&p);
    let effects = p.message(None, "guild.invite", json!({})).unwrap();
    assert_eq!(effects.logs, vec![(Level::Warn, "player 42: ignored message of kind `guild.invite`".to_owned())]);
    assert!(effects.pushes.is_empty() && effects.sends.is_empty());
    assert_eq!(all_state(&p), before);
}
