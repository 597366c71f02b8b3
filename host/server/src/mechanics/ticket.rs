//! Battle tickets: a short-lived, signed pass that names a player and a room. The
//! baseapp that starts a battle (or the battleapp that takes a room over) hands one to the
//! player's client; the room's battleapp lets the client's socket in only with a ticket
//! for that room, signed with the cluster's secret and not expired. Written
//! `<player>.<room>.<expires_ms>.<hmac-sha256 hex>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a ticket stays good.
pub const TICKET_TTL_MS: u64 = 60_000;

/// What a ticket lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The player.
    pub player: u64,
    /// The room.
    pub room: u64,
    /// When it stops being good (ms since the Unix epoch).
    pub expires_ms: u64,
}

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not a ticket at all.
    #[error("malformed ticket")]
    Malformed,
    /// Not signed by this cluster, or changed since.
    #[error("forged ticket: its signature does not match")]
    Forged,
    /// Good once, no longer.
    #[error("expired ticket: ask your server for a fresh one")]
    Expired,
    /// Good, for another room than the one asked for.
    #[error("this ticket is for room {0}, not this one")]
    OtherRoom(u64),
}

fn mac(secret: &[u8], body: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body.as_bytes());
    mac
}

impl Ticket {
    /// A ticket for `player` in `room`, good for [`TICKET_TTL_MS`] from `now_ms`.
    pub fn new(player: u64, room: u64, now_ms: u64) -> Ticket {
        Ticket { player, room, expires_ms: now_ms + TICKET_TTL_MS }
    }

    /// The ticket, signed with `secret`.
    pub fn sign(&self, secret: &[u8]) -> String {
        let body = format!("{}.{}.{}", self.player, self.room, self.expires_ms);
        let sig = hex::encode(mac(secret, &body).finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// Checks `text` against `secret`, the clock and the room asked for.
    pub fn verify(text: &str, secret: &[u8], room: u64, now_ms: u64) -> Result<Ticket, TicketError> {
        let (body, sig) = text.rsplit_once('.').ok_or(TicketError::Malformed)?;
        let parts: Vec<u64> =
            body.split('.').map(str::parse).collect::<Result<_, _>>().map_err(|_| TicketError::Malformed)?;
        let [player, for_room, expires_ms] = parts[..] else { return Err(TicketError::Malformed) };
        let sig = hex::decode(sig).map_err(|_| TicketError::Malformed)?;
        // Constant-time comparison.
        mac(secret, body).verify_slice(&sig).map_err(|_| TicketError::Forged)?;
        if now_ms >= expires_ms {
            return Err(TicketError::Expired);
        }
        if for_room != room {
            return Err(TicketError::OtherRoom(for_room));
        }
        Ok(Ticket { player, room, expires_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_ticket_lets_its_player_into_its_room_until_it_expires() {
        let t = Ticket::new(42, 7, 1_000);
        let text = t.sign(SECRET);
        assert_eq!(Ticket::verify(&text, SECRET, 7, 1_000), Ok(t));
        assert_eq!(Ticket::verify(&text, SECRET, 7, 1_000 + TICKET_TTL_MS), Err(TicketError::Expired));
        assert_eq!(Ticket::verify(&text, SECRET, 8, 1_000), Err(TicketError::OtherRoom(7)));
    }

    #[test]
    fn forged_and_malformed_tickets_are_refused() {
        let text = Ticket::new(42, 7, 1_000).sign(SECRET);
        assert_eq!(Ticket::verify(&text, b"another cluster's secret", 7, 1_000), Err(TicketError::Forged));
        // Another player's id over a good signature.
        let stolen = text.replacen("42.", "43.", 1);
        assert_eq!(Ticket::verify(&stolen, SECRET, 7, 1_000), Err(TicketError::Forged));
        for bad in ["", "42", "42.7.1000", "a.b.c.d", "42.7.1000.zz", "42.7.1000.5.ab"] {
            let e = Ticket::verify(bad, SECRET, 7, 1_000).unwrap_err();
            assert!(matches!(e, TicketError::Malformed | TicketError::Forged), "{bad}: {e:?}");
        }
    }
}
