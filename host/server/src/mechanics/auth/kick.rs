//! Ending a player's open session from anywhere in the cluster: a `$kick` message in the
//! player's queue, which whichever session owns the queue reads. Only a host sends one
//! (every message a module sends carries its entity as sender, and no module may send a
//! `$` kind), so a kick with a sender is no kick.

use warren_bus::{Address, Outbound};

/// The message kind that asks a player's session to end.
pub const KICK: &str = "$kick";

/// What a kick asks of the session that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// A newer login elsewhere waits for the player: the session holding the player's
    /// lease under this token ends. A kick meant for an earlier session is done with.
    Lease(u64),
    /// The account logged out everywhere: every session let in by a token older than this
    /// generation ends — those open now, and one let in by an old token before the
    /// generation changed. Sessions of the new generation stay.
    Revoked(u64),
}

impl Kick {
    /// The kick as a message to `player`'s queue.
    pub fn to(self, player: u64) -> Outbound {
        let body = match self {
            Kick::Lease(token) => token.to_string(),
            Kick::Revoked(generation) => format!("revoked:{generation}"),
        };
        Outbound { to: Address::Player(player), sender: None, kind: KICK.into(), body: body.into_bytes(), hops: 0 }
    }

    /// The kick a message's body says; `None` for a body that says none.
    pub fn parse(body: &[u8]) -> Option<Kick> {
        let body = std::str::from_utf8(body).ok()?;
        match body.strip_prefix("revoked:") {
            Some(generation) => generation.parse().ok().map(Kick::Revoked),
            None => body.parse().ok().map(Kick::Lease),
        }
    }

    /// Whether the session holding the lease under `lease` and let in at token generation
    /// `generation` must end.
    pub fn ends(self, lease: u64, generation: u64) -> bool {
        match self {
            Kick::Lease(token) => token == lease,
            Kick::Revoked(newer) => generation < newer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kick_reads_back_as_it_was_sent_and_ends_only_the_sessions_it_means() {
        for kick in [Kick::Lease(7), Kick::Revoked(3)] {
            assert_eq!(Kick::parse(&kick.to(1).body), Some(kick));
        }
        assert_eq!(Kick::parse(b"revoked:x"), None);
        assert_eq!(Kick::parse(b"\xff"), None);
        assert!(Kick::Lease(7).ends(7, 0) && !Kick::Lease(7).ends(8, 0));
        assert!(Kick::Revoked(3).ends(1, 2), "a session of an older generation ends");
        assert!(!Kick::Revoked(3).ends(1, 3), "one let in after the logout stays");
    }
}
