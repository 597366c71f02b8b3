//! `warren-runtime` runs a role's game logic: WebAssembly components checked against the
//! role's WIT world, called under limits, and swapped between calls.
//!
//! It knows nothing of Redis or sockets. Its callers hand it an entity's state and a
//! message; it hands back the call's [`Effects`] — state writes, messages, frames — or a
//! [`CallError`] saying which limit or trap ended the call. Nothing of a failed call
//! escapes: every capability the guest uses is buffered in the store until the handler
//! returns.
//!
//! - [`Runtime`]: the process's one engine, its epoch clock and host capabilities.
//! - [`Runtime::load`]: bytes → [`Module`], compiled, world-checked and `init`-ed, or a
//!   [`LoadError`]. Slow: call it off the serving path.
//! - [`RoleModule`]: the module a role serves now; [`RoleModule::swap`] is atomic.
//! - [`Instance`]: calls into a role whose entity state the host owns; follows swaps.
//! - [`Room`]: a battle room, state in guest memory, moved by snapshot/restore.

pub mod bindings;
mod call;
mod engine;
mod instance;
mod limits;
mod module;
mod roles;
mod room;
mod world;

pub use bindings::{Address, Level, Message};
pub use call::{CallEnv, Effects, EntityState, Outgoing, StateWrite, thread_cpu_time};
pub use engine::{EPOCH_TICK, Runtime};
pub use instance::{Instance, PANIC_PREFIX};
pub use limits::{CallError, EmitLimit, Limits, MemoryCap, Quota, ReservedKind, StateQuota, is_reserved_kind};
pub use module::{LoadError, Module, RoleModule, digest};
pub use roles::CallResult;
pub use room::{Room, RoomStatus};
pub use world::{Baseapp, Battle, Guild, Matchmaker, Team, World};
