//! The host's side of a call in progress: what the SDK's capabilities reach on the host
//! target.

use super::Effects;
use super::caps::{Breach, COUNTED_ITEMS, Caps, Item, over_item_cap, preview};
use crate::Reject;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The host's side of one call in progress.
pub(super) struct Call {
    /// The entity's state as the call sees it: the committed state with its writes so far.
    pub(super) state: BTreeMap<String, Vec<u8>>,
    /// The time the call sees.
    pub(super) now_ms: u64,
    /// The call's random sequence.
    pub(super) rng: u64,
    /// What the call emitted so far.
    pub(super) effects: Effects,
    /// The caps it runs under.
    pub(super) caps: Caps,
    /// Items emitted so far, for `max_emits`.
    pub(super) emitted: usize,
    /// Bytes emitted so far, for `max_emit_bytes`.
    pub(super) emitted_bytes: usize,
}

impl Call {
    /// Checks one item against its own cap, then counts it against the call's — in the
    /// host's order, so the same cap is reported first.
    fn emit(&mut self, item: Item<'_>, bytes: usize) -> Result<(), Breach> {
        let (cap, _, _) = item.cap(&self.caps);
        if bytes > cap {
            return Err(over_item_cap(&item, bytes, &self.caps));
        }
        self.emitted += 1;
        self.emitted_bytes += bytes;
        let caps = &self.caps;
        if self.emitted > caps.max_emits {
            return Err(Breach(format!(
                "(emit) {} brought this call to {} items, over the cap of {} in one call (`max_emits`: \
                 {COUNTED_ITEMS})",
                item.noun(),
                self.emitted,
                caps.max_emits
            )));
        }
        if self.emitted_bytes > caps.max_emit_bytes {
            return Err(Breach(format!(
                "(emit) {} brought this call to {} bytes, over the cap of {} in one call (`max_emit_bytes`: all its \
                 items together, its refusal reason included)",
                item.noun(),
                self.emitted_bytes,
                caps.max_emit_bytes
            )));
        }
        Ok(())
    }

    /// Checks the refusal reason of a call that returned `Err` against its own cap and
    /// the call's bytes, as the host does before it sends the reason to the client. The
    /// reason itself is not an item.
    pub(super) fn refusal(&self, reject: Reject) -> Reject {
        let (bytes, caps) = (reject.0.len(), &self.caps);
        if bytes > caps.max_reason_bytes {
            return Reject(format!(
                "(emit) a refusal reason of {bytes} bytes (\"{}\"), over the cap of {} on one refusal reason \
                 (`max_reason_bytes`)",
                preview(&reject.0),
                caps.max_reason_bytes
            ));
        }
        let total = self.emitted_bytes + bytes;
        if total > caps.max_emit_bytes {
            return Reject(format!(
                "(emit) the refusal reason brought this call to {total} bytes, over the cap of {} in one call \
                 (`max_emit_bytes`: all its items together, its refusal reason included)",
                caps.max_emit_bytes
            ));
        }
        reject
    }
}

thread_local! {
    pub(super) static CALL: RefCell<Option<Call>> = const { RefCell::new(None) };
}

fn with_call<R>(f: impl FnOnce(&mut Call) -> R) -> R {
    CALL.with(|c| {
        let mut c = c.borrow_mut();
        let call =
            c.as_mut().expect("a host capability was used outside a harness call: wrap the handler in Harness::call");
        f(call)
    })
}

/// Runs `f` on the call in progress; if it broke a cap, stops the handler there (the call
/// in progress is left unborrowed first).
fn emit_or_stop(f: impl FnOnce(&mut Call) -> Result<(), Breach>) {
    if let Err(breach) = with_call(f) {
        // Not a panic of the guest's: no panic hook runs, `Harness` catches it.
        std::panic::resume_unwind(Box::new(breach));
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The capabilities as the SDK's host module calls them on the host target.
pub(crate) mod raw {
    use super::{emit_or_stop, json, with_call};
    use crate::Address;
    use crate::log::Level;
    use crate::testing::Sent;
    use crate::testing::caps::{Breach, Item};

    pub fn log(level: Level, text: &str) {
        emit_or_stop(|c| {
            c.emit(Item::Log, text.len())?;
            c.effects.logs.push((level, text.to_owned()));
            Ok(())
        });
    }
    pub fn send(to: &Address, kind: &str, body: &[u8]) {
        emit_or_stop(|c| {
            if kind.starts_with('$') {
                // The host's own wording (`ReservedKind`), behind the cause word.
                return Err(Breach(format!(
                    "(reserved) sent a message of kind `{kind}`: kinds starting with `$` are the host's own"
                )));
            }
            c.emit(Item::Message(kind), kind.len() + body.len())?;
            c.effects.sends.push(Sent { to: to.clone(), kind: kind.to_owned(), body: json(body) });
            Ok(())
        });
    }
    pub fn reply(frame: &[u8]) {
        emit_or_stop(|c| {
            c.emit(Item::Reply, frame.len())?;
            c.effects.replies.push(json(frame));
            Ok(())
        });
    }
    pub fn push(player: u64, frame: &[u8]) {
        emit_or_stop(|c| {
            c.emit(Item::Push(player), frame.len())?;
            c.effects.pushes.push((player, json(frame)));
            Ok(())
        });
    }
    pub fn get(key: &str) -> Option<Vec<u8>> {
        with_call(|c| c.state.get(key).cloned())
    }
    pub fn set(key: &str, value: &[u8]) {
        emit_or_stop(|c| {
            c.emit(Item::Key(key), key.len())?;
            c.emit(Item::Value(key), value.len())?;
            c.state.insert(key.to_owned(), value.to_vec());
            Ok(())
        });
    }
    pub fn remove(key: &str) {
        emit_or_stop(|c| {
            c.emit(Item::Key(key), key.len())?;
            c.state.remove(key);
            Ok(())
        });
    }
    pub fn keys() -> Vec<String> {
        with_call(|c| c.state.keys().cloned().collect())
    }
    pub fn now_ms() -> u64 {
        with_call(|c| c.now_ms)
    }
    pub fn random() -> u64 {
        with_call(|c| super::splitmix64(&mut c.rng))
    }
}

/// The host's random sequence: SplitMix64 over the per-message seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
