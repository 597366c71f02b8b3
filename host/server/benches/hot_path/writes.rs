//! Frames that write: a closed loop of frames that change the player's state, so each one
//! goes through the message center (its commit), unlike `ping`, which writes nothing and
//! is answered without one.
//!
//! The frame is the shipped baseapp script's `equip` of the wooden sword every new player
//! starts with (bag slot 2), then `unequip` of the weapon slot, alternating. The pair puts
//! the player back where it started (unequipping fills the bag's first empty slot, the
//! one the sword left), so it can repeat forever without running out of anything; a
//! `shop.buy` / `item.sell` cycle would not (a potion costs 10 gold and sells for 4).
//! Both are answered with `equipment` then `bag`: the round trip ends at the `bag`.

use super::WAIT;
use super::load::{self, Round, Socket, Window};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Wears the wooden sword, in bag slot 2 from the player's first login.
const EQUIP: &str = r#"{"type":"equip","slot":2}"#;
/// Takes it off again, back into bag slot 2.
const UNEQUIP: &str = r#"{"type":"unequip","slot":"weapon"}"#;
/// What marks the last frame of the answer to [`EQUIP`] and [`UNEQUIP`] (`bag`, after
/// `equipment`).
const BAG: &str = r#""type":"bag""#;

/// One frame of a check, parsed.
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("frames are JSON ({e}): {text}"))
}

/// Whether a parsed `bag` frame shows the wooden sword in slot 2.
fn sword_in_slot_2(bag: &Value) -> bool {
    bag["items"].as_array().is_some_and(|items| items.iter().any(|i| i["slot"] == 2 && i["item"] == "wood-sword"))
}

/// What the writers' closed loops keep between rounds: whether each player's sword is
/// worn, which says its next frame. Every round waits for its last answers, so the flags
/// stay right from one round to the next. The sockets are the ping rounds' players (these
/// frames touch only state that `ping` does not read), passed to each round.
pub(crate) struct Writers {
    worn: Vec<bool>,
}

impl Writers {
    /// Checks, on each of `sockets` (new players, drained of their login replies), that
    /// one equip and unequip are answered as the rounds expect — `equipment` then `bag`,
    /// the sword worn, then back in bag slot 2 — so a script that answers otherwise fails
    /// the bench here rather than hanging a round. Every player ends with the sword in
    /// the bag.
    pub(crate) async fn check(sockets: &mut [Socket]) -> Writers {
        let checks = sockets.iter_mut().map(|s| async move {
            for (frame, worn) in [(EQUIP, true), (UNEQUIP, false)] {
                s.send(Message::text(frame)).await.expect("send a frame");
                let (first, last) = (load::next_text(s, WAIT).await, load::next_text(s, WAIT).await);
                let (equipment, bag) = (parsed(&first), parsed(&last));
                assert!(
                    equipment["type"] == "equipment" && !first.contains(BAG) && last.contains(BAG),
                    "{frame} is answered with `equipment` then `bag` (the round trip ends at the `bag`), not {first} \
                     then {last}"
                );
                let wears = equipment["slots"]["weapon"] == "wood-sword";
                assert_eq!(wears, worn, "after {frame} the sword is worn: {worn} ({first})");
                assert_eq!(
                    sword_in_slot_2(&bag),
                    !worn,
                    "after {frame} the sword is in bag slot 2: {} ({last})",
                    !worn
                );
            }
        });
        futures_util::future::join_all(checks).await;
        Writers { worn: vec![false; sockets.len()] }
    }

    /// One round of writes on every socket (`pid` is the server's).
    pub(crate) async fn round(&mut self, sockets: &mut [Socket], window: Window, pid: u32) -> Round {
        assert_eq!(sockets.len(), self.worn.len(), "one flag a writer");
        let (equip, unequip) = (Utf8Bytes::from_static(EQUIP), Utf8Bytes::from_static(UNEQUIP));
        let (equip, unequip) = (&equip, &unequip);
        let clients: Vec<_> = sockets
            .iter_mut()
            .zip(self.worn.iter_mut())
            .map(|(s, worn)| {
                async move || {
                    let answered = load::exchange(s, if *worn { unequip } else { equip }, BAG).await;
                    *worn = !*worn;
                    answered
                }
            })
            .collect();
        load::closed_loop(clients, window, pid).await
    }
}
