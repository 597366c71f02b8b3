//! The `warren` binary's library. The folders are the architecture:
//!
//! - [`roles`]: one place per role — what that role does and nothing else
//!   (`roles/baseapp/`: player sessions; `roles/guild.rs`: guild groups; `roles/dev.rs`:
//!   every role in one process).
//! - [`mechanics`]: what every role shares, written once — owning a queue
//!   ([`mechanics::owner`]), hosting grouped entities ([`mechanics::grouped`]), leases,
//!   doorbells, running calls, following module deploys, the cluster host's life.
//! - [`tools`]: the operator and developer commands (`publish`, `dead-letters`,
//!   `build`, `play`).
//! - [`role`]: the roles by name; [`config`]: configuration files; [`protocol`]: the
//!   host's own client frames; [`web`]: the web client the baseapp serves at `/`.

pub mod config;
pub mod mechanics;
pub mod protocol;
pub mod role;
pub mod roles;
pub mod tools;
pub mod web;
