//! `warren guild`: a guild host. Guilds are split into groups, each with one queue; the
//! live guild hosts share the groups and each owns its share by lease — all of which is
//! the shared host for grouped entities ([`grouped`]). What is the guild role's own — its
//! world, the group queue of a guild, where a guild's keys sit in its group's state — is
//! [`Grouped`](crate::mechanics::grouped::Grouped) for [`Guild`].

use crate::mechanics::cluster::{Host, shutdown_signal};
use crate::mechanics::grouped;
use crate::role::Role;
use std::future::Future;
use std::sync::Arc;
use warren_runtime::{Guild, RoleModule};

/// The role this host serves.
pub const ROLE: Role = Role::Guild;

/// Runs the guild role on `host`, serving `module`, until `stop` completes; then hands its
/// groups over.
pub async fn run(
    host: Arc<Host>,
    module: Arc<RoleModule<Guild>>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    grouped::run::<Guild>(host, module, stop).await
}

/// Runs `warren guild` until Ctrl-C or SIGTERM.
pub async fn main(host: Host) -> anyhow::Result<()> {
    let module = host.role::<Guild>().await?;
    run(Arc::new(host), module, shutdown_signal()).await
}
