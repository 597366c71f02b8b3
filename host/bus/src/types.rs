//! The values that cross the bus.

use std::collections::BTreeMap;

/// An entity's state: named values.
pub type EntityState = BTreeMap<String, Vec<u8>>;

/// One change to an entity's state: `None` removes the key.
pub type StateWrite = (String, Option<Vec<u8>>);

/// A message's id within its queue, increasing (`<ms>-<seq>`, as Redis Streams name them).
pub type MessageId = String;

/// An entity a message is addressed to, or a queue, named by the entity that owns it.
///
/// Every entity has a queue of its own except guilds: a guild's messages go to the queue
/// of its group ([`Address::GuildGroup`], see [`crate::group_of`]), and guild hosts own
/// groups, not single guilds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    /// A player's queue.
    Player(u64),
    /// A guild (its messages are queued in its group's queue).
    Guild(u64),
    /// A group of guilds: one queue, one owner, one state hash for all its guilds.
    GuildGroup(u32),
    /// A team's queue.
    Team(u64),
    /// A battle room's queue.
    Battle(u64),
    /// A named matchmaking queue.
    MatchQueue(String),
}

impl Address {
    /// The hash tag of the address's owner: all its keys share it, so they share one slot
    /// on Redis Cluster.
    pub fn tag(&self) -> String {
        match self {
            Address::Player(id) => format!("{{p:{id}}}"),
            Address::Guild(id) => format!("{{guild:{id}}}"),
            Address::GuildGroup(n) => format!("{{g:{n}}}"),
            Address::Team(id) => format!("{{t:{id}}}"),
            Address::Battle(id) => format!("{{b:{id}}}"),
            Address::MatchQueue(name) => format!("{{m:{name}}}"),
        }
    }

    /// Reads a tag back (`{p:42}` → `Player(42)`).
    pub fn from_tag(tag: &str) -> Option<Address> {
        let inner = tag.strip_prefix('{')?.strip_suffix('}')?;
        let (kind, id) = inner.split_once(':')?;
        let num = || id.parse::<u64>().ok();
        Some(match kind {
            "p" => Address::Player(num()?),
            "guild" => Address::Guild(num()?),
            "g" => Address::GuildGroup(id.parse().ok()?),
            "t" => Address::Team(num()?),
            "b" => Address::Battle(num()?),
            "m" => Address::MatchQueue(id.to_owned()),
            _ => return None,
        })
    }
}

/// A message on its way to a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The destination.
    pub to: Address,
    /// The sending entity, if any.
    pub sender: Option<Address>,
    /// What the message is.
    pub kind: String,
    /// The payload.
    pub body: Vec<u8>,
    /// How many messages caused this one, one from another (0: none did — a client's
    /// frame or the host's own message caused it). A chain too deep is a dead letter.
    pub hops: u32,
}

/// A message as stored in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The entity it is addressed to (a guild, in a guild group's queue; otherwise the
    /// queue's owner).
    pub to: Address,
    /// The sending entity, if any.
    pub sender: Option<Address>,
    /// What the message is.
    pub kind: String,
    /// The payload.
    pub body: Vec<u8>,
    /// When it was enqueued (ms since the Unix epoch): the handler's `now`.
    pub now_ms: u64,
    /// The seed of the handler's random sequence for this message.
    pub seed: u64,
    /// How many messages caused this one (see [`Outbound::hops`]).
    pub hops: u32,
}

/// A message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id, to acknowledge it with.
    pub id: MessageId,
    /// The message.
    pub envelope: Envelope,
    /// How many times it has been delivered, this time included.
    pub attempts: u32,
}

/// A handler's effects, stored in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The entity whose state is written and whose queue's message is acknowledged.
    pub owner: Address,
    /// State writes of the entity.
    pub writes: Vec<StateWrite>,
    /// Messages to enqueue.
    pub sends: Vec<Outbound>,
    /// The message handled, acknowledged by this commit.
    pub ack: Option<MessageId>,
    /// The committer's lease token on the owner, if it holds one: the commit is refused
    /// ([`BusError::StaleOwner`]) unless that lease is still the owner's current one.
    pub fence: Option<u64>,
    /// Frames for the owner's client, appended to the owner's push log ([`Push`]) with the
    /// next sequence numbers: a player's screen gets each once, whatever happens to the
    /// socket (see [`crate::Bus::pushes`]).
    pub pushes: Vec<Vec<u8>>,
    /// The request this commit answers, recorded with it so that its outcome is known
    /// later: a retry of the request finds it applied, and a commit whose reply was lost
    /// is resolved by [`crate::Bus::resolve`], never guessed.
    pub request: Option<Request>,
}

impl Commit {
    /// A commit of `owner` that writes, sends and acknowledges nothing (fill in what it does).
    pub fn of(owner: Address) -> Commit {
        Commit {
            owner,
            writes: Vec::new(),
            sends: Vec::new(),
            ack: None,
            fence: None,
            pushes: Vec::new(),
            request: None,
        }
    }

    /// A commit that only acknowledges message `id` of `owner`'s queue.
    pub fn ack_only(owner: Address, id: MessageId) -> Commit {
        Commit { ack: Some(id), ..Commit::of(owner) }
    }
}

/// A request (a client's frame) a commit answers: its key, unique per owner within the
/// owner's window of requests ([`crate::MAX_REQUESTS`]), this attempt's number, and the
/// outcome to answer a retry with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The idempotency key (the client's, or one the host made up for a frame without).
    pub key: String,
    /// This attempt: an attempt [`crate::Bus::resolve`] declared void never commits.
    pub attempt: u64,
    /// What a retry of the request is answered with (the replies, encoded by the caller).
    pub outcome: Vec<u8>,
}

/// A frame in an owner's push log, with its sequence number (1, 2, 3, ... per owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Its sequence number: one more than the push before it.
    pub seq: u64,
    /// The frame.
    pub frame: Vec<u8>,
}

/// What an owner's push log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushLog {
    /// The pushes asked for, oldest first.
    pub pushes: Vec<Push>,
    /// The sequence number of the newest push ever logged (0: none yet).
    pub last: u64,
    /// The highest sequence number the client acknowledged ([`crate::Bus::trim_pushes`]).
    pub acked: u64,
}

/// What a commit did beyond what it was asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The sequence number of the last of the commit's [`Commit::pushes`] (they are
    /// numbered consecutively up to it); 0 when it had none.
    pub last_push: u64,
}

/// A lease on an owner (a player, a guild group): who holds it, and the fencing token that
/// its commits carry. Tokens only grow, so a commit of a holder that lost the lease is
/// recognised and refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is on.
    pub owner: Address,
    /// Who holds it (a host instance).
    pub holder: String,
    /// The fencing token.
    pub token: u64,
}

/// A message that kept failing, set aside with its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The queue it was taken from.
    pub queue: Address,
    /// Its id in that queue.
    pub id: MessageId,
    /// The message.
    pub envelope: Envelope,
    /// Why its handler failed, the last time.
    pub error: String,
}

/// A role's current module changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleAnnouncement {
    /// The role (`baseapp`, `battle`, ...).
    pub role: String,
    /// The new current module's sha256.
    pub digest: String,
}

/// Why a bus operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The commit's lease token is not the owner's current one: another host owns the
    /// entity now. Nothing was applied.
    #[error("stale owner of {owner}: lease token {token} is no longer current")]
    StaleOwner {
        /// The entity.
        owner: String,
        /// The stale token.
        token: u64,
    },
    /// The message center could not be reached or refused the command; nothing was done
    /// (a commit either fully happened or not at all).
    #[error("message center unavailable: {0}")]
    Unavailable(String),
    /// The process's configuration disagrees with the cluster's (the number of guild
    /// groups, fixed when the cluster first starts).
    #[error("configuration mismatch: {0}")]
    Mismatch(String),
    /// No module is stored under that digest.
    #[error("no module stored with digest {0}")]
    ModuleNotFound(String),
    /// The commit answers a request that was decided before: applied already (`applied`;
    /// its outcome is [`crate::Bus::request_outcome`]), or this attempt was declared void
    /// by [`crate::Bus::resolve`]. Nothing was applied.
    #[error("request {key} of {owner} was decided before (applied: {applied})")]
    RequestDecided {
        /// The owner.
        owner: String,
        /// The request's key.
        key: String,
        /// Whether it was applied (else this attempt was void).
        applied: bool,
    },
    /// The commit acknowledges a message that is not pending (already acknowledged:
    /// applying it again would apply it twice).
    #[error("message {id} of {queue} is not pending: its effects were already committed")]
    NotPending {
        /// The queue.
        queue: String,
        /// The message.
        id: MessageId,
    },
}
