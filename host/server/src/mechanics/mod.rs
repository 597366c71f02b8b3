//! What every role shares, written once. A role supplies only what differs: its world,
//! how an address maps to a queue and an entity, and its typed call.

pub mod auth;
pub mod cluster;
pub mod deliver;
pub mod doorbell;
pub mod grouped;
pub mod handles;
pub mod lease;
pub mod live;
pub mod logic;
pub mod memory;
pub mod net;
pub mod occupant;
pub mod owner;
pub mod quota;
pub mod ticket;
pub mod watch;
