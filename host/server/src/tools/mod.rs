//! Operator and developer commands: `warren publish`, `warren dead-letters`,
//! `warren build`, `warren play`.

pub mod admin;
pub mod build;
pub mod new;
pub mod play;
