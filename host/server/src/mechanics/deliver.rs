//! How any owner handles one message of its queue — written once for player sessions and
//! guild groups: a handler fault is retried, each try on a fresh instance, up to
//! [`MAX_ATTEMPTS`] in all (counting earlier deliveries); a refusal is an answer.

use std::future::Future;
use warren_runtime::{CallError, CallResult, Effects};

/// How many times a queue message is tried before it is set aside as a dead letter.
pub const MAX_ATTEMPTS: u32 = 3;

/// What became of a message's handling.
pub enum Verdict {
    /// The handler succeeded: commit these effects with the ack.
    Done(Effects),
    /// The script refused the message: acknowledge it, change nothing.
    Refused(String),
    /// It kept failing: set it aside as a dead letter with this error.
    Dead(String),
}

/// Runs `call` until it succeeds, refuses, or has failed `MAX_ATTEMPTS` times counting
/// the `attempts` the message already had (1 on its first delivery). `what` names the
/// message in the log lines about it, and is written only for those.
pub async fn handle<F, Fut>(what: &impl std::fmt::Display, mut attempts: u32, mut call: F) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CallResult>,
{
    loop {
        match call().await {
            Ok(effects) => return Verdict::Done(effects),
            Err(CallError::Rejected(reason)) => return Verdict::Refused(reason),
            Err(fault) if attempts >= MAX_ATTEMPTS => {
                tracing::error!(%what, error = %fault, attempts, "message dead-lettered");
                return Verdict::Dead(fault.to_string());
            }
            Err(fault) => {
                tracing::warn!(%what, error = %fault, attempts, "message failed; retrying");
                attempts += 1;
            }
        }
    }
}
