//! Guild requests from the client and guild events from guilds.

use crate::*;
use warren_guest::Address;
use warren_guest::testing::Sent;
use warren_script_baseapp::guilds::guild_id;

#[test]
fn a_guilds_id_comes_from_its_name() {
    assert_eq!(guild_id("Foxes"), guild_id("  foxes "));
    assert_ne!(guild_id("Foxes"), guild_id("Wolves"));
    assert!(guild_id("Foxes") < 1 << 53);
}

#[test]
fn create_and_join_go_to_the_guild_by_name() {
    let mut p = new_player();
    let foxes = guild_id("Foxes");
    let effects = ok(&mut p, json!({"type": "guild.create", "name": " Foxes "}));
    assert_eq!(
        effects.sends,
        vec![Sent {
            to: Address::Guild(foxes),
            kind: "guild.create".into(),
            body: json!({"name": "Foxes", "founder_name": "ann"}),
        }]
    );
    assert_eq!(effects.replies, vec![json!({"type": "guild.requested", "guild": foxes, "request": "guild.create"})]);
    let effects = ok(&mut p, json!({"type": "guild.join", "name": "foxes"}));
    assert_eq!(effects.sends[0].to, Address::Guild(foxes));
    assert_eq!(effects.sends[0].body, json!({"name": "ann"}));
}

#[test]
fn membership_follows_the_events_about_the_player() {
    let mut p = new_player();
    let g = Address::Guild(17);
    assert_eq!(rejected(&mut p, json!({"type": "guild.chat", "text": "hi"})), "you are not in a guild");

    let effects =
        p.message(Some(g.clone()), "guild.event", json!({"guild": 17, "event": "joined", "player": ME})).unwrap();
    assert_eq!(
        effects.pushes,
        vec![(ME, json!({"type": "guild.event", "guild": 17, "event": "joined", "player": ME}))]
    );
    assert_eq!(p.state::<u64>("guild"), Some(17));
    let effects = ok(&mut p, json!({"type": "guild.chat", "text": "hi"}));
    assert_eq!(effects.sends[0], Sent { to: g.clone(), kind: "guild.chat".into(), body: json!({"text": "hi"}) });
    assert!(rejected(&mut p, json!({"type": "guild.join", "name": "Wolves"})).contains("already in guild 17"));

    // Someone else leaving changes nothing; a disband does.
    p.message(Some(g.clone()), "guild.event", json!({"guild": 17, "event": "left", "player": 5})).unwrap();
    assert_eq!(p.state::<u64>("guild"), Some(17));
    p.message(Some(g), "guild.event", json!({"guild": 17, "event": "disbanded", "name": "Foxes"})).unwrap();
    assert_eq!(p.state::<u64>("guild"), None);
}

#[test]
fn guild_events_must_come_from_a_guild() {
    let mut p = new_player();
    let err = p.message(Some(Address::Player(3)), "guild.event", json!({"event": "joined", "player": ME})).unwrap_err();
    assert_eq!(err.0, "guild events come from guilds");
    assert_eq!(p.state::<u64>("guild"), None);
}
