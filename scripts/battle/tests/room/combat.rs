//! Damage, defending, healing and the bot, tick by tick.

use crate::*;
use warren_script_battle::combat::{HEAL_COOLDOWN, heal_amount};
use warren_script_battle::fighter::{Action, Command};

fn damage_of(event: &Value) -> u32 {
    event["damage"].as_u64().expect("attack events carry damage") as u32
}

#[test]
fn an_attack_does_attack_minus_defense_give_or_take_a_fifth() {
    let mut h = duel();
    send(&mut h, 1, attack(2));
    let effects = tick(&mut h);
    let events = events(&effects, 1);
    assert_eq!(events.len(), 1, "{events:?}");
    let damage = damage_of(&events[0]);
    assert_eq!(events[0], json!({"kind": "attack", "actor": 1, "target": 2, "damage": damage, "blocked": false}));
    // Attack 12 against defense 4: 8, from 80 % to 120 %.
    assert!((6..=9).contains(&damage), "{damage}");
    assert_eq!(fighter(&h, 2).hp, 100 - damage);
    assert_eq!(fighter(&h, 1).hp, 100);
}

#[test]
fn the_spread_covers_its_whole_range() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let mut h = room(json!({"players": [1, 2]}), seed);
        send(&mut h, 1, act("attack"));
        seen.insert(damage_of(&events(&tick(&mut h), 2)[0]));
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [6, 7, 8, 9]);
}

#[test]
fn defending_halves_the_same_hit() {
    for seed in 0..20 {
        let mut open = room(json!({"players": [1, 2]}), seed);
        let mut guarded = room(json!({"players": [1, 2]}), seed);
        send(&mut open, 1, attack(2));
        send(&mut guarded, 1, attack(2));
        send(&mut guarded, 2, act("defend"));
        // Each harness call takes the next seed: line both ticks up on the same one.
        open.host.set_seed(seed);
        guarded.host.set_seed(seed);
        let full = damage_of(&events(&tick(&mut open), 1)[0]);
        let events = events(&tick(&mut guarded), 1);
        assert_eq!(events[0], json!({"kind": "defend", "actor": 2}));
        assert_eq!(events[1]["blocked"], true);
        assert_eq!(damage_of(&events[1]), (full / 2).max(1), "seed {seed}");
        assert_eq!(fighter(&guarded, 2).last, Some(Action::Defend));
    }
}

#[test]
fn attacks_land_at_once() {
    let mut h = duel();
    send(&mut h, 1, act("attack"));
    send(&mut h, 2, act("attack"));
    let effects = tick(&mut h);
    assert_eq!(events(&effects, 2).len(), 2);
    assert!(fighter(&h, 1).hp < 100 && fighter(&h, 2).hp < 100);
}

#[test]
fn knocking_each_other_out_together_is_a_draw() {
    let mut room = duel().room().clone();
    for f in &mut room.fighters {
        f.hp = 1;
        f.queued = Some(Command { action: Action::Attack, target: None });
    }
    let (status, effects) = tick_arranged(&mut room, 1);
    assert_eq!(status, RoomStatus::Finished);
    let end = &effects.pushes.iter().find(|(p, f)| *p == 1 && f["type"] == "battle.end").unwrap().1;
    assert_eq!(end["winner"], Value::Null);
    assert_eq!(end["winners"], json!([]));
    assert_eq!(end["reason"], "knockout");
    let downs = events(&effects, 1).iter().filter(|e| e["kind"] == "down").count();
    assert_eq!(downs, 2);
}

#[test]
fn heal_restores_a_quarter_then_cools_down() {
    let mut h = duel();
    for _ in 0..3 {
        send(&mut h, 1, attack(2));
        tick(&mut h);
    }
    let hurt = fighter(&h, 2).hp;
    send(&mut h, 2, act("heal"));
    let effects = tick(&mut h);
    let healed = (100 - hurt).min(heal_amount(100));
    assert_eq!(events(&effects, 2), [json!({"kind": "heal", "actor": 2, "hp": healed})]);
    assert_eq!(fighter(&h, 2).hp, hurt + healed);

    // Healed in room tick 3: the next heal is from tick 3 + HEAL_COOLDOWN.
    let wait = HEAL_COOLDOWN - 1;
    assert_eq!(rejected(&mut h, 2, act("heal")), format!("heal is ready in {wait} ticks"));
    assert_eq!(fighter(&h, 2).view(h.room().ticks)["heal_in"], wait);
    for _ in 1..wait {
        send(&mut h, 1, attack(2));
        tick(&mut h);
    }
    assert_eq!(rejected(&mut h, 2, act("heal")), "heal is ready in 1 tick");
    tick(&mut h);
    send(&mut h, 2, act("heal"));
}

#[test]
fn heal_stops_at_max_hp() {
    let mut h = duel();
    send(&mut h, 1, attack(2));
    tick(&mut h);
    send(&mut h, 2, act("heal"));
    tick(&mut h);
    assert_eq!(fighter(&h, 2).hp, 100);
}

#[test]
fn the_bot_acts_every_tick() {
    let mut h = practice();
    for _ in 0..10 {
        tick(&mut h);
        assert!(fighter(&h, 0).last.is_some());
    }
    assert!(fighter(&h, 1).hp < 100, "the bot attacked");
}

#[test]
fn a_hurt_bot_mostly_heals() {
    let mut heals = 0;
    for seed in 0..40 {
        let mut room = practice().room().clone();
        room.fighters[1].hp = 10;
        tick_arranged(&mut room, seed);
        if room.fighters[1].last == Some(Action::Heal) {
            heals += 1;
            assert_eq!(room.fighters[1].hp, 30);
        }
    }
    assert!((20..40).contains(&heals), "{heals} heals in 40");
}

#[test]
fn every_player_sees_every_tick() {
    let mut h = room(json!({"players": [1, 2], "practice": true}), 3);
    send(&mut h, 1, act("defend"));
    let effects = tick(&mut h);
    let to: Vec<u64> = effects.pushes.iter().map(|(p, _)| *p).collect();
    assert_eq!(to, [1, 2]);
    let frame = &effects.pushes[0].1;
    assert_eq!(frame["type"], "battle.state");
    assert_eq!(frame["room"], ROOM);
    assert_eq!(frame["tick"], 0);
    assert_eq!(frame["fighters"].as_array().unwrap().len(), 3);
    assert_eq!(frame["fighters"][0]["last"], "defend");
    assert_eq!(frame["fighters"][1]["last"], Value::Null);
    assert_eq!(effects.pushes[1].1, effects.pushes[0].1);
}
