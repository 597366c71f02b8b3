//! The runtime's integration tests, in one test binary. Guests are built from source by
//! `warren-test-guests`.

mod calls;
mod caps;
mod faults;
mod modules;
mod rooms;
mod swap;

use std::sync::{Arc, OnceLock};
use warren_runtime::{Baseapp, CallEnv, Limits, Module, Runtime, World};

/// One runtime for the whole binary, as in a host process.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(Limits::default()).expect("runtime starts"))
}

/// Loads a built guest as a module of world `W`.
pub fn load<W: World>(path: &str) -> Arc<Module<W>> {
    Arc::new(runtime().load::<W>(&warren_test_guests::read(path)).expect("guest loads"))
}

/// The baseapp test guest, version 1.
pub fn player_v1() -> Arc<Module<Baseapp>> {
    load(warren_test_guests::PLAYER_V1)
}

/// A call environment with seed `seed`.
pub fn env(seed: u64) -> CallEnv {
    CallEnv { now_ms: 1_700_000_000_000, seed }
}

/// Parses a JSON frame.
pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("frame is JSON")
}
