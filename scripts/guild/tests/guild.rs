//! The guild script driven through `GroupHarness`, as a guild host would drive it.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use warren_guest::Address;
use warren_guest::testing::{Effects, GroupHarness};
use warren_script_guild::guild::MAX_MEMBERS;
use warren_script_guild::{APPLIED, EVENT, Guild, GuildLogic};

/// The guild under test.
const GUILD: u64 = 17;
/// The founder.
const ANN: u64 = 42;
const BOB: u64 = 43;
const CAT: u64 = 44;
const DAN: u64 = 45;

type Harness = GroupHarness<GuildLogic>;

fn from(player: u64) -> Option<Address> {
    Some(Address::Player(player))
}

/// Sends `kind` from `player` and expects it to commit.
fn ok(g: &mut Harness, player: u64, kind: &str, body: Value) -> Effects {
    match g.message(from(player), kind, body.clone()) {
        Ok(effects) => effects,
        Err(reject) => panic!("{kind} {body} from {player} was rejected: {reject}"),
    }
}

/// The `guild.event` bodies sent, as (player, body), in order. Fails on any other send.
fn events(effects: &Effects) -> Vec<(u64, Value)> {
    effects
        .sends
        .iter()
        .map(|s| match (&s.to, s.kind.as_str()) {
            (Address::Player(p), EVENT) => (*p, s.body.clone()),
            _ => panic!("unexpected send {s:?}"),
        })
        .collect()
}

/// The players an event of kind `event` went to, in order.
fn told(effects: &Effects, event: &str) -> Vec<u64> {
    events(effects).into_iter().filter(|(_, b)| b["event"] == event).map(|(p, _)| p).collect()
}

fn guild(g: &Harness) -> Option<Guild> {
    g.host.state(warren_script_guild::guild::KEY)
}

fn applied(g: &Harness) -> u64 {
    g.host.state(APPLIED).unwrap_or(0)
}

fn all_state(g: &Harness) -> BTreeMap<String, Value> {
    g.host.keys().into_iter().map(|k| (k.clone(), g.host.state::<Value>(&k).expect("listed keys are set"))).collect()
}

/// Sends `kind` from `player`, expects a refusal told to the sender only, with the guild
/// unchanged and the message counted; returns the reason.
fn refused(g: &mut Harness, player: u64, kind: &str, body: Value) -> String {
    let before = guild(g);
    let count = applied(g);
    let effects = ok(g, player, kind, body);
    let events = events(&effects);
    assert_eq!(events.len(), 1, "one refusal event: {events:?}");
    let (to, event) = &events[0];
    assert_eq!(*to, player);
    assert_eq!(event["guild"], GUILD);
    assert_eq!(event["event"], "refused");
    assert_eq!(event["request"], kind);
    assert_eq!(guild(g), before, "a refusal leaves the guild as it was");
    assert_eq!(applied(g), count + 1, "a refusal is still counted");
    event["reason"].as_str().expect("reason is a string").to_owned()
}

/// A guild `Foxes` founded by ann.
fn founded() -> Harness {
    let mut g = Harness::new(GUILD);
    ok(&mut g, ANN, "guild.create", json!({"name": "Foxes", "founder_name": "ann"}));
    g
}

/// A guild founded by ann, joined by bob and then cat, a second apart.
fn three_members() -> Harness {
    let mut g = founded();
    g.host.advance(1000);
    ok(&mut g, BOB, "guild.join", json!({"name": "bob"}));
    g.host.advance(1000);
    ok(&mut g, CAT, "guild.join", json!({"name": "cat"}));
    g
}

#[test]
fn create_makes_the_sender_leader_and_tells_them() {
    let mut g = Harness::new(GUILD);
    g.host.set_now(5_000);
    let effects = ok(&mut g, ANN, "guild.create", json!({"name": "  Foxes ", "founder_name": "ann"}));
    let member = json!({"id": ANN, "name": "ann", "joined_ms": 5_000});
    assert_eq!(
        events(&effects),
        vec![(
            ANN,
            json!({"guild": GUILD, "event": "created", "name": "Foxes", "leader": ANN, "created_ms": 5_000,
                   "members": [member]})
        )]
    );
    let guild = guild(&g).expect("guild saved");
    assert_eq!(guild.name, "Foxes");
    assert_eq!(guild.leader, ANN);
    assert_eq!(guild.member_ids(), vec![ANN]);
    assert_eq!(applied(&g), 1);
}

#[test]
fn create_is_refused_when_the_guild_exists_or_the_name_is_bad() {
    let mut g = Harness::new(GUILD);
    assert!(refused(&mut g, ANN, "guild.create", json!({"name": "Fx"})).contains("3 to 24"));
    let long = "x".repeat(25);
    assert!(refused(&mut g, ANN, "guild.create", json!({"name": long})).contains("3 to 24"));
    assert!(refused(&mut g, ANN, "guild.create", json!({"name": "   "})).contains("3 to 24"));
    assert_eq!(guild(&g), None);
    // 24 characters (not bytes) is fine.
    ok(&mut g, ANN, "guild.create", json!({"name": "é".repeat(24), "founder_name": "ann"}));

    let reason = refused(&mut g, BOB, "guild.create", json!({"name": "Wolves", "founder_name": "bob"}));
    assert!(reason.contains("already exists"), "{reason}");
    assert_eq!(guild(&g).unwrap().leader, ANN);
}

#[test]
fn join_adds_the_member_and_tells_every_member() {
    let mut g = founded();
    g.host.set_now(2_000_000);
    let effects = ok(&mut g, BOB, "guild.join", json!({"name": "bob"}));
    let joined = json!({"guild": GUILD, "event": "joined", "player": BOB, "player_name": "bob", "members": 2});
    assert_eq!(events(&effects), vec![(ANN, joined.clone()), (BOB, joined)]);
    let guild = guild(&g).unwrap();
    assert_eq!(guild.member_ids(), vec![ANN, BOB]);
    assert_eq!(guild.member(BOB).unwrap().joined_ms, 2_000_000, "join time is the host's clock");

    let effects = ok(&mut g, CAT, "guild.join", json!({"name": ""}));
    assert_eq!(told(&effects, "joined"), vec![ANN, BOB, CAT]);
    assert_eq!(events(&effects)[0].1["player_name"], "player-44", "an empty name gets a default");
}

#[test]
fn duplicate_join_and_join_of_a_missing_guild_are_refused() {
    let mut g = Harness::new(GUILD);
    assert!(refused(&mut g, BOB, "guild.join", json!({"name": "bob"})).contains("does not exist"));

    let mut g = founded();
    ok(&mut g, BOB, "guild.join", json!({"name": "bob"}));
    assert!(refused(&mut g, BOB, "guild.join", json!({"name": "bob"})).contains("already a member"));
    assert!(refused(&mut g, ANN, "guild.join", json!({"name": "ann"})).contains("already a member"));
    assert_eq!(guild(&g).unwrap().member_ids(), vec![ANN, BOB]);
}

#[test]
fn chat_goes_to_every_member() {
    let mut g = three_members();
    g.host.set_now(9_000_000);
    let effects = ok(&mut g, BOB, "guild.chat", json!({"text": " hello all "}));
    let line = json!({"guild": GUILD, "event": "chat", "from": BOB, "from_name": "bob", "text": "hello all", "at_ms": 9_000_000});
    assert_eq!(events(&effects), vec![(ANN, line.clone()), (BOB, line.clone()), (CAT, line)]);
}

#[test]
fn chat_is_refused_to_non_members_and_for_bad_lengths() {
    let mut g = three_members();
    assert!(refused(&mut g, DAN, "guild.chat", json!({"text": "let me in"})).contains("only members"));
    assert!(refused(&mut g, BOB, "guild.chat", json!({"text": "  "})).contains("empty"));
    assert!(refused(&mut g, BOB, "guild.chat", json!({"text": "y".repeat(201)})).contains("at most 200"));
    let effects = ok(&mut g, BOB, "guild.chat", json!({"text": "y".repeat(200)}));
    assert_eq!(told(&effects, "chat"), vec![ANN, BOB, CAT]);

    let mut empty = Harness::new(GUILD);
    assert!(refused(&mut empty, BOB, "guild.chat", json!({"text": "hi"})).contains("does not exist"));
}

#[test]
fn leave_removes_the_member_and_tells_the_rest_and_the_leaver() {
    let mut g = three_members();
    let effects = ok(&mut g, BOB, "guild.leave", json!({}));
    let left = json!({"guild": GUILD, "event": "left", "player": BOB, "player_name": "bob", "members": 2});
    assert_eq!(events(&effects), vec![(ANN, left.clone()), (CAT, left.clone()), (BOB, left)]);
    let guild = guild(&g).unwrap();
    assert_eq!(guild.member_ids(), vec![ANN, CAT]);
    assert_eq!(guild.leader, ANN, "a member leaving keeps the leader");

    assert!(refused(&mut g, BOB, "guild.leave", json!({})).contains("not a member"));
    // A former member may join again, as the newest member.
    ok(&mut g, BOB, "guild.join", json!({"name": "bob"}));
    assert_eq!(g.host.state::<Guild>("guild").unwrap().member_ids(), vec![ANN, CAT, BOB]);
}

#[test]
fn a_leaving_leader_hands_over_to_the_longest_standing_member() {
    let mut g = three_members();
    let effects = ok(&mut g, ANN, "guild.leave", json!({}));
    assert_eq!(told(&effects, "left"), vec![BOB, CAT, ANN]);
    let leader = json!({"guild": GUILD, "event": "leader", "player": BOB, "player_name": "bob", "previous": ANN});
    assert_eq!(
        events(&effects).into_iter().filter(|(_, b)| b["event"] == "leader").collect::<Vec<_>>(),
        vec![(BOB, leader.clone()), (CAT, leader)]
    );
    let guild = guild(&g).unwrap();
    assert_eq!(guild.leader, BOB);
    assert_eq!(guild.member_ids(), vec![BOB, CAT]);

    // Longest-standing is by join time: ann rejoins last, then bob leaves: cat leads.
    g.host.advance(1000);
    ok(&mut g, ANN, "guild.join", json!({"name": "ann"}));
    let effects = ok(&mut g, BOB, "guild.leave", json!({}));
    assert_eq!(told(&effects, "leader"), vec![CAT, ANN]);
    assert_eq!(events(&effects).last().unwrap().1["player"], CAT);
    assert_eq!(self::guild(&g).unwrap().leader, CAT);
}

#[test]
fn a_tie_in_join_time_goes_to_whoever_joined_first() {
    let mut g = founded();
    ok(&mut g, CAT, "guild.join", json!({"name": "cat"}));
    ok(&mut g, BOB, "guild.join", json!({"name": "bob"}));
    ok(&mut g, ANN, "guild.leave", json!({}));
    assert_eq!(guild(&g).unwrap().leader, CAT);
}

#[test]
fn the_last_member_leaving_disbands_the_guild() {
    let mut g = founded();
    ok(&mut g, BOB, "guild.join", json!({"name": "bob"}));
    ok(&mut g, ANN, "guild.leave", json!({}));
    let effects = ok(&mut g, BOB, "guild.leave", json!({}));
    assert_eq!(
        events(&effects),
        vec![
            (BOB, json!({"guild": GUILD, "event": "left", "player": BOB, "player_name": "bob", "members": 0})),
            (BOB, json!({"guild": GUILD, "event": "disbanded", "name": "Foxes"})),
        ]
    );
    assert_eq!(guild(&g), None);
    assert_eq!(all_state(&g), BTreeMap::from([(APPLIED.to_owned(), json!(4))]), "only the counter is left");

    assert!(refused(&mut g, BOB, "guild.info", json!({})).contains("does not exist"));
    // The id can be founded again.
    let effects = ok(&mut g, CAT, "guild.create", json!({"name": "Owls", "founder_name": "cat"}));
    assert_eq!(told(&effects, "created"), vec![CAT]);
    assert_eq!(guild(&g).unwrap().member_ids(), vec![CAT]);
    assert_eq!(applied(&g), 6);
}

#[test]
fn a_guild_holds_at_most_fifty_members() {
    let mut g = founded();
    for player in 1..MAX_MEMBERS as u64 {
        ok(&mut g, 1000 + player, "guild.join", json!({"name": format!("p{player}")}));
    }
    assert_eq!(guild(&g).unwrap().members.len(), MAX_MEMBERS);
    assert!(refused(&mut g, 9999, "guild.join", json!({"name": "late"})).contains("full"));

    // A chat reaches all fifty.
    let effects = ok(&mut g, ANN, "guild.chat", json!({"text": "full house"}));
    assert_eq!(told(&effects, "chat").len(), MAX_MEMBERS);

    // Once someone leaves there is room again.
    ok(&mut g, 1001, "guild.leave", json!({}));
    let effects = ok(&mut g, 9999, "guild.join", json!({"name": "late"}));
    assert_eq!(told(&effects, "joined").len(), MAX_MEMBERS);
}

#[test]
fn info_goes_to_the_sender_only() {
    let mut g = three_members();
    let effects = ok(&mut g, DAN, "guild.info", json!({}));
    let events = events(&effects);
    assert_eq!(events.len(), 1);
    let (to, info) = &events[0];
    assert_eq!(*to, DAN, "non-members may look a guild up");
    assert_eq!(info["event"], "info");
    assert_eq!(info["guild"], GUILD);
    assert_eq!(info["name"], "Foxes");
    assert_eq!(info["leader"], ANN);
    let names: Vec<&str> = info["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ann", "bob", "cat"]);
    assert_eq!(info["members"][1]["joined_ms"], 1_001_000);
}

#[test]
fn applied_counts_every_handled_message_once() {
    let mut g = Harness::new(GUILD);
    assert_eq!(applied(&g), 0);
    ok(&mut g, ANN, "guild.create", json!({"name": "Foxes", "founder_name": "ann"}));
    ok(&mut g, BOB, "guild.join", json!({"name": "bob"}));
    ok(&mut g, BOB, "guild.chat", json!({"text": "hi"}));
    ok(&mut g, DAN, "guild.info", json!({}));
    refused(&mut g, DAN, "guild.chat", json!({"text": "hi"}));
    ok(&mut g, BOB, "guild.leave", json!({}));
    assert_eq!(applied(&g), 6);
}

#[test]
fn malformed_or_anonymous_messages_are_rejected_and_change_nothing() {
    let mut g = three_members();
    let before = all_state(&g);

    let err = g.message(None, "guild.chat", json!({"text": "hi"})).unwrap_err();
    assert!(err.0.contains("must come from a player"), "{err}");
    let err = g.message(Some(Address::Guild(3)), "guild.join", json!({"name": "x"})).unwrap_err();
    assert!(err.0.contains("must come from a player"), "{err}");
    let err = g.message(from(BOB), "guild.chat", json!({"words": "hi"})).unwrap_err();
    assert!(err.0.contains("bad `guild.chat` message"), "{err}");
    let err = g.message(from(BOB), "guild.create", json!({})).unwrap_err();
    assert!(err.0.contains("bad `guild.create` message"), "{err}");
    let err = g.message(from(BOB), "guild.promote", json!({})).unwrap_err();
    assert!(err.0.contains("unknown guild message kind `guild.promote`"), "{err}");

    assert_eq!(all_state(&g), before, "a rejected message commits nothing, not even the counter");
}
