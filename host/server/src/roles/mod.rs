//! The roles, one place each. Every role is thin: it wires the shared
//! [`mechanics`](crate::mechanics) for its job.

pub mod baseapp;
pub mod battleapp;
pub mod dev;
pub mod guild;
