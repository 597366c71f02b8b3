//! Battle tickets: a short-lived, signed pass that names a player and a room. The
//! baseapp that starts a battle (or the battleapp that takes a room over) hands one to the
//! player's client; the room's battleapp lets the client's socket in only with a ticket
//! for that room, not expired, signed with the cluster's key — the same machinery and key
//! as session tokens ([`crate::mechanics::auth::tokens`]), marked for this use only.

use crate::mechanics::auth::tokens::{Keys, TokenError, Use};

/// How long a ticket stays good.
pub const TICKET_TTL_MS: u64 = 60_000;

/// What a ticket lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The player.
    pub player: u64,
    /// The room.
    pub room: u64,
    /// When it stops being good (ms since the Unix epoch, to the second).
    pub expires_ms: u64,
}

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not a ticket, not signed by this cluster, or changed since.
    #[error("forged ticket: its signature does not match")]
    Forged,
    /// Good once, no longer.
    #[error("expired ticket: ask your server for a fresh one")]
    Expired,
    /// Good, for another room than the one asked for.
    #[error("this ticket is for room {0}, not this one")]
    OtherRoom(u64),
}

impl Ticket {
    /// A ticket for `player` in `room`, good for [`TICKET_TTL_MS`] from `now_ms`.
    pub fn new(player: u64, room: u64, now_ms: u64) -> Ticket {
        Ticket { player, room, expires_ms: (now_ms / 1000) * 1000 + TICKET_TTL_MS }
    }

    /// The ticket, signed with `keys`.
    pub fn sign(&self, keys: &Keys) -> String {
        let ttl_s = TICKET_TTL_MS / 1000;
        keys.sign(self.player, 0, Use::Ticket, Some(self.room), self.expires_ms / 1000 - ttl_s, ttl_s)
    }

    /// Checks `text` against `keys`, the clock and the room asked for.
    pub fn verify(text: &str, keys: &Keys, room: u64, now_ms: u64) -> Result<Ticket, TicketError> {
        let claims = keys.verify(text, Use::Ticket, now_ms / 1000).map_err(|e| match e {
            TokenError::Expired => TicketError::Expired,
            _ => TicketError::Forged,
        })?;
        let (Some(player), Some(for_room)) = (claims.player(), claims.room) else { return Err(TicketError::Forged) };
        if for_room != room {
            return Err(TicketError::OtherRoom(for_room));
        }
        Ok(Ticket { player, room, expires_ms: claims.exp * 1000 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn a_signed_ticket_lets_its_player_into_its_room_until_it_expires() {
        let t = Ticket::new(42, 7, 1_000);
        let text = t.sign(&keys());
        assert_eq!(Ticket::verify(&text, &keys(), 7, 1_000), Ok(t));
        assert_eq!(Ticket::verify(&text, &keys(), 7, 1_000 + TICKET_TTL_MS), Err(TicketError::Expired));
        assert_eq!(Ticket::verify(&text, &keys(), 8, 1_000), Err(TicketError::OtherRoom(7)));
    }

    #[test]
    fn forged_and_malformed_tickets_and_session_tokens_are_refused() {
        let text = Ticket::new(42, 7, 1_000).sign(&keys());
        let other = Keys::new(b"another cluster's key, 32 bytes+").unwrap();
        assert_eq!(Ticket::verify(&text, &other, 7, 1_000), Err(TicketError::Forged));
        // Another player's claims over this ticket's signature.
        let theirs = Ticket::new(43, 7, 1_000).sign(&other);
        let parts: Vec<&str> = text.split('.').collect();
        let stolen = format!("{}.{}.{}", parts[0], theirs.split('.').nth(1).unwrap(), parts[2]);
        assert_eq!(Ticket::verify(&stolen, &keys(), 7, 1_000), Err(TicketError::Forged));
        // A session token is no ticket.
        let session = keys().sign(42, 0, Use::Session, Some(7), 1, 60);
        assert_eq!(Ticket::verify(&session, &keys(), 7, 1_000), Err(TicketError::Forged));
        for bad in ["", "42", "42.7.1000", "a.b.c.d"] {
            assert_eq!(Ticket::verify(bad, &keys(), 7, 1_000), Err(TicketError::Forged), "{bad}");
        }
    }
}
