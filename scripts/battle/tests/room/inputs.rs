//! Inputs: queued for the next tick, one per fighter, refused with a reason.

use crate::*;

#[test]
fn an_input_is_queued_for_the_next_tick() {
    let mut h = duel();
    send(&mut h, 1, attack(2));
    assert!(fighter(&h, 1).queued.is_some());
    assert_eq!(fighter(&h, 2).hp, 100, "nothing happens before the tick");
    tick(&mut h);
    assert!(fighter(&h, 1).queued.is_none());
    assert!(fighter(&h, 2).hp < 100);
}

#[test]
fn one_action_per_tick() {
    let mut h = duel();
    send(&mut h, 1, act("defend"));
    assert_eq!(rejected(&mut h, 1, act("attack")), "you already chose an action for this tick");
    tick(&mut h);
    send(&mut h, 1, act("attack"));
}

#[test]
fn unknown_actions_and_frames_are_refused() {
    let mut h = duel();
    assert_eq!(rejected(&mut h, 1, act("dance")), "unknown action `dance`: use attack, defend or heal");
    assert_eq!(
        rejected(&mut h, 1, json!({"type": "chat", "action": "attack"})),
        "unknown frame type `chat`: send battle.input"
    );
    let reason = rejected(&mut h, 1, json!({"type": "battle.input"}));
    assert!(reason.starts_with("bad frame: missing field `action`"), "{reason}");
    let reason = rejected(&mut h, 1, json!({"type": "battle.input", "action": "attack", "target": "bob"}));
    assert!(reason.starts_with("bad frame: invalid type"), "{reason}");
}

#[test]
fn only_fighting_players_may_act() {
    let mut h = practice();
    assert_eq!(rejected(&mut h, 99, act("attack")), "you are not in this battle");
    assert_eq!(rejected(&mut h, 0, act("attack")), "you are not in this battle");
}

#[test]
fn targets_are_checked() {
    let mut h = room(json!({"players": [1, 2], "practice": true}), 1);
    assert_eq!(rejected(&mut h, 1, attack(1)), "you cannot attack yourself");
    assert_eq!(rejected(&mut h, 1, attack(2)), "fighter 2 is on your side");
    assert_eq!(rejected(&mut h, 1, attack(5)), "no fighter 5 in this battle");
    send(&mut h, 1, attack(0));
}

#[test]
fn a_downed_fighter_cannot_act_or_be_targeted() {
    let mut h = room(json!({"players": [1, 2, 3]}), 1);
    while fighter(&h, 2).hp > 0 {
        send(&mut h, 1, attack(2));
        send(&mut h, 3, attack(2));
        tick(&mut h);
    }
    assert_eq!(rejected(&mut h, 2, act("defend")), "you are down");
    assert_eq!(rejected(&mut h, 3, attack(2)), "fighter 2 is already down");
    send(&mut h, 3, attack(1));
}

#[test]
fn heal_needs_missing_hp() {
    let mut h = duel();
    assert_eq!(rejected(&mut h, 1, act("heal")), "you are at full health");
}

#[test]
fn nothing_is_accepted_after_the_end() {
    let mut h = practice();
    run_to_end(&mut h, Some(1), 600);
    assert_eq!(rejected(&mut h, 1, act("attack")), "the battle is over");
    // Further ticks keep reporting the end and emit nothing.
    let (status, effects) = h.tick().unwrap();
    assert_eq!(status, RoomStatus::Finished);
    assert_eq!(effects, Effects::default());
}
