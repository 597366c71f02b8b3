//! Each fault fails its own call only, within its limit, commits nothing, and the next
//! call succeeds.

use crate::{env, json, player_v1, runtime};
use std::time::Instant;
use warren_runtime::{CallError, EmitLimit, EntityState, Instance, RoleModule};

/// Runs `frame` after one good call, checks the failure with `check`, then checks that
/// nothing was committed and that the next call works on the committed state.
fn fault(frame: &str, check: impl FnOnce(&CallError)) {
    let mut inst = Instance::new(RoleModule::new(player_v1()));
    let mut state = EntityState::new();
    inst.on_client(&mut state, env(1), 1, br#"{"type":"count"}"#).unwrap().apply_to(&mut state);
    let before = state.clone();

    let err = inst.on_client(&mut state, env(2), 1, frame.as_bytes()).expect_err("the call must fail");
    assert!(err.is_fault(), "{err}");
    check(&err);
    assert_eq!(state, before, "a failed call hands the state back untouched");

    let out = inst.on_client(&mut state, env(3), 1, br#"{"type":"count"}"#).expect("the next call succeeds");
    assert_eq!(json(&out.replies[0])["count"], 2, "the failed call's write was not committed");
}

#[test]
fn a_trap_fails_only_its_call() {
    fault(r#"{"type":"trap"}"#, |e| {
        assert!(matches!(e, CallError::Trap(_)), "{e:?}");
        assert!(e.to_string().contains("unreachable") || e.to_string().contains("panic"), "{e}");
    });
}

#[test]
fn an_endless_loop_is_cut_at_the_deadline() {
    let deadline = runtime().limits().deadline;
    let started = Instant::now();
    fault(r#"{"type":"loop"}"#, |e| assert_eq!(*e, CallError::Deadline(deadline)));
    let took = started.elapsed();
    assert!(took >= deadline, "cut before its deadline: {took:?}");
    // The deadline is enforced by an epoch thread; a loaded 2-core machine may delay it,
    // but never by a second.
    assert!(took < deadline + std::time::Duration::from_secs(1), "cut far too late: {took:?}");
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let cap = runtime().limits().memory_bytes;
    fault(r#"{"type":"bomb"}"#, |e| match e {
        CallError::Memory(m) => {
            assert_eq!(m.cap, cap);
            assert!(m.desired > cap);
        }
        other => panic!("expected a memory error, got {other:?}"),
    });
}

#[test]
fn too_many_messages_hit_the_emit_cap() {
    let max = runtime().limits().max_emits;
    let frame = format!(r#"{{"type":"flood","n":{}}}"#, max + 1);
    fault(&frame, |e| assert_eq!(*e, CallError::Emit(EmitLimit::Count(max))));
}

#[test]
fn too_many_bytes_hit_the_emit_cap() {
    let max = runtime().limits().max_emit_bytes;
    let frame = format!(r#"{{"type":"big","bytes":{}}}"#, max + 1);
    fault(&frame, |e| assert_eq!(*e, CallError::Emit(EmitLimit::Bytes(max))));
}
