//! The `warren` binary's library: configuration, the CLI's commands, and the role hosts
//! that wire sockets, the bus and the runtime together. Roles stay thin: the shared
//! mechanics live in [`logic`] (running calls, effects to messages) and [`live`] (module
//! deploys and swaps).

pub mod admin;
pub mod baseapp;
pub mod battle;
pub mod build_cmd;
pub mod cluster;
pub mod config;
pub mod deliver;
pub mod dev;
pub mod guild_host;
pub mod inbox;
pub mod lease;
pub mod live;
pub mod logic;
pub mod play;
pub mod protocol;
pub mod session;
pub mod watch;
