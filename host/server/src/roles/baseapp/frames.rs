//! A session's client frames: the host's own (`ack`, battles) and the game's, which are
//! called, committed with their request's record, and answered with the truth — applied,
//! refused, not saved, or (when even that cannot be found out) unknown.

use super::edge::{decode_outcome, encode_outcome};
use super::players::random_u64;
use super::session::{MOVED, Session};
use crate::mechanics::logic::fresh_env;
use crate::mechanics::owner::{OwnedQueue, Target};
use crate::protocol::{self, ClientFrame, Meta};
use crate::roles::battleapp::place_room;
use crate::roles::battleapp::room::INPUT;
use warren_bus::{Address, BusError, Outbound, Request};
use warren_runtime::{Baseapp, CallError};

impl Session<'_> {
    /// Queues the end of the answer to a frame with `key`.
    pub(super) fn done(&mut self, key: Option<&str>) {
        if let Some(key) = key {
            self.out.push(protocol::done(key));
        }
    }

    /// Answers a frame whose key was applied before with the first answer.
    async fn answer_again(&mut self, key: &str) {
        match self.host.bus.request_outcome(&self.owner(), key).await {
            Ok(Some(outcome)) => {
                self.out.extend(decode_outcome(&outcome));
                self.done(Some(key));
            }
            Ok(None) => {
                self.out.push(protocol::error("that request was applied before; its answer is no longer kept"));
                self.done(Some(key));
            }
            Err(e) => self.out.push(protocol::unknown(Some(key), &format!("the server is busy: {e}"))),
        }
    }

    /// A frame from the client.
    pub(super) async fn client(&mut self, text: &[u8], q: &mut OwnedQueue<Baseapp>) {
        let host = self.host;
        let (frame, meta) = match protocol::parse(text) {
            Ok(parsed) => parsed,
            Err(reason) => return self.out.push(protocol::error(&reason)),
        };
        if let Some(ack) = meta.ack {
            self.screen.ack(ack);
        }
        let key = meta.key.as_deref();
        match frame {
            ClientFrame::Ack => {}
            ClientFrame::Login { .. } => {
                self.out.push(protocol::error("already logged in"));
                self.done(key);
            }
            ClientFrame::BattleStart => {
                match place_room(&host.bus, host.auth.keys(), self.player, protocol::practice_setup(self.player)).await
                {
                    Ok(placed) => {
                        self.room = Some(placed.room);
                        self.out.push(protocol::battle_started(placed.room, &placed.url, &placed.ticket));
                    }
                    Err(e) => self.out.push(protocol::error(&format!("cannot start a battle: {e}"))),
                }
                self.done(key);
            }
            // A client without a battle socket plays through its session: the input goes
            // to the room's queue as the player's, the room's frames come back through the
            // player's queue.
            ClientFrame::BattleInput => {
                match self.room {
                    None => self.out.push(protocol::error("not in a battle: send {\"type\":\"battle.start\"} first")),
                    Some(room) => {
                        let input = Outbound {
                            to: Address::Battle(room),
                            sender: Some(Address::Player(self.player)),
                            kind: INPUT.into(),
                            body: text.to_vec(),
                            hops: 0,
                        };
                        if let Err(e) = host.bus.send(input).await {
                            self.out.push(protocol::error(&format!("input not taken, send it again: {e}")));
                        }
                    }
                }
                self.done(key);
            }
            ClientFrame::Game => self.game(text, meta, q).await,
        }
    }

    /// A frame for the baseapp module: called, committed with its request's record, and
    /// answered with the truth — applied, refused, not saved, or (when even that cannot
    /// be found out) unknown, to be sent again with the same key.
    async fn game(&mut self, text: &[u8], meta: Meta, q: &mut OwnedQueue<Baseapp>) {
        let key = meta.key.as_deref();
        if let Some(key) = key {
            if self.requests.was_applied(key) {
                return self.answer_again(key).await;
            }
            if let Some(&attempt) = self.requests.unresolved.get(key) {
                match self.host.bus.resolve(&self.owner(), key, attempt).await {
                    Ok(Some(_)) => {
                        self.requests.applied(key.to_owned());
                        return self.answer_again(key).await;
                    }
                    // That attempt never applies now: this one goes ahead.
                    Ok(None) => {
                        self.requests.unresolved.remove(key);
                    }
                    Err(e) => {
                        let reason = format!("the server cannot tell yet whether it was saved: {e}");
                        return self.out.push(protocol::unknown(Some(key), &reason));
                    }
                }
            }
        }
        let (frame, player) = (protocol::cleaned(text), self.player);
        let me = Target::whole(Address::Player(player));
        let effects = match q.call(&me, fresh_env(), move |i, st, env| i.on_client(st, env, player, &frame)).await {
            Ok(Ok(effects)) => effects,
            Ok(Err(CallError::Rejected(reason))) => {
                self.out.push(protocol::error(&reason));
                return self.done(key);
            }
            Ok(Err(fault)) => {
                // One line that says which module failed on what, and why (a panic's message
                // and place, from the SDK's hook).
                let kind = protocol::frame_type(text);
                tracing::warn!(
                    role = "baseapp",
                    module = %q.logic_digest(),
                    handler = "on_client",
                    player = self.player,
                    frame = %kind,
                    cause = fault.cause(),
                    error = %fault,
                    "client frame failed"
                );
                self.out.push(protocol::error(&format!("the server could not handle that ({})", fault.cause())));
                return self.done(key);
            }
            // Nothing ran: the player's state could not be read.
            Err(e) => {
                self.out.push(protocol::error(&format!("the server is busy, try again ({e})")));
                return self.done(key);
            }
        };
        // A frame without a key whose call changed nothing (a look at the bag, a ping) has
        // nothing to store, and no outcome to find out later: it is answered at once.
        if key.is_none() && OwnedQueue::<Baseapp>::changes_nothing(&effects) {
            q.settle_unchanged(&me, &effects);
            return self.replies(&effects);
        }
        // A frame without a key still gets one, so that a lost answer can be found out.
        // (It starts with a space, which a client's key cannot: the host's own keys have a
        // window of their own and never push a client's key out.)
        let request_key = key.map(str::to_owned).unwrap_or_else(|| format!(" h{:016x}", random_u64()));
        let outcome = if key.is_some() { encode_outcome(&effects.replies) } else { Vec::new() };
        let attempt = random_u64();
        let request = Request { key: request_key.clone(), attempt, outcome };
        let failure = match q.commit_request(&me, &effects, request).await {
            Ok(_) => None,
            Err(BusError::RequestDecided { applied: true, .. }) => {
                if let Some(key) = key {
                    self.requests.applied(key.to_owned());
                    return self.answer_again(key).await;
                }
                None
            }
            Err(e @ BusError::StaleOwner { .. }) => {
                self.ended = Some(MOVED);
                self.out.push(protocol::error(&format!("not saved: {e}")));
                return self.done(key);
            }
            Err(e) => {
                // If it landed, its messages wait in the outbox: the next read takes the
                // queue again, which relays them.
                q.reclaim();
                Some(e)
            }
        };
        let applied = match failure {
            None => true,
            // The answer was lost (a timeout, a dropped connection): find out.
            Some(e) => match self.host.bus.resolve(&self.owner(), &request_key, attempt).await {
                Ok(found) => found.is_some(),
                Err(again) => {
                    tracing::warn!(player, error = %e, then = %again, "commit outcome unknown");
                    if let Some(key) = key {
                        self.requests.unresolved.insert(key.to_owned(), attempt);
                    }
                    let reason = match key {
                        Some(_) => format!(
                            "the server cannot tell yet whether it was saved ({e}): send it again with the same key"
                        ),
                        None => {
                            format!("the server cannot tell yet whether it was saved ({e}): look before you try again")
                        }
                    };
                    return self.out.push(protocol::unknown(key, &reason));
                }
            },
        };
        if applied {
            if let Some(key) = key {
                self.requests.applied(key.to_owned());
            }
            self.replies(&effects);
        } else {
            self.out.push(protocol::error("not saved, try again"));
        }
        self.done(key);
    }
}
