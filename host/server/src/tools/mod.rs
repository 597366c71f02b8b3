//! Operator and developer commands: `warren publish`, `warren dead-letters`,
//! `warren build`, `warren play`, `warren gateway-config`.

pub mod admin;
pub mod build;
pub mod gateway;
pub mod new;
pub mod play;
