//! Each fault fails its own call only, within its limit, commits nothing, and the next
//! call succeeds.

use crate::{env, json, player_v1, runtime};
use std::time::Instant;
use warren_runtime::{CallError, EmitLimit, EntityState, Instance, Quota, ReservedKind, RoleModule};

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
        // The guest SDK's panic hook says where and why: the message, not a backtrace.
        let CallError::Trap(what) = e else { panic!("a trap: {e:?}") };
        assert!(what.starts_with(warren_runtime::PANIC_PREFIX), "{what}");
        assert!(what.contains("src/lib.rs:") && what.ends_with(": asked to trap"), "{what}");
        assert_eq!(what.lines().count(), 1, "{what}");
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

#[test]
fn each_thing_a_guest_hands_over_has_its_own_cap() {
    let l = runtime().limits();
    let item = |what: &'static str, bytes: usize, cap: usize| CallError::Emit(EmitLimit::Item { what, bytes, cap });
    // A JSON-encoded string is two bytes longer than its text (the quotes).
    let cases = [
        (
            format!(r#"{{"type":"log","bytes":{}}}"#, l.max_log_bytes + 1),
            item("a log line", l.max_log_bytes + 1, l.max_log_bytes),
        ),
        (
            format!(r#"{{"type":"push","to":2,"bytes":{}}}"#, l.max_frame_bytes),
            item("a push", l.max_frame_bytes + 2, l.max_frame_bytes),
        ),
        (
            format!(r#"{{"type":"store","key":"k","bytes":{}}}"#, l.max_value_bytes),
            item("a state value", l.max_value_bytes + 2, l.max_value_bytes),
        ),
        (
            format!(r#"{{"type":"store","key":"{}","bytes":1}}"#, "k".repeat(l.max_key_bytes + 1)),
            item("a state key", l.max_key_bytes + 1, l.max_key_bytes),
        ),
        (
            format!(r#"{{"type":"send","to":2,"kind":"{}"}}"#, "k".repeat(l.max_message_bytes)),
            item("a message", l.max_message_bytes + 1, l.max_message_bytes),
        ),
    ];
    for (frame, expected) in cases {
        fault(&frame, |e| assert_eq!(*e, expected, "{}", &frame[..40]));
    }
    // At the cap exactly, each is fine.
    let mut inst = Instance::new(RoleModule::new(player_v1()));
    let frame = format!(r#"{{"type":"push","to":2,"bytes":{}}}"#, l.max_frame_bytes - 2);
    let out = inst.on_client(&mut EntityState::new(), env(1), 1, frame.as_bytes()).expect("a push at the cap");
    assert_eq!(out.pushes[0].1.len(), l.max_frame_bytes);
}

#[test]
fn a_refusal_reason_over_its_cap_fails_the_call() {
    let cap = runtime().limits().max_reason_bytes;
    let frame = format!(r#"{{"type":"refuse","bytes":{}}}"#, cap + 1);
    fault(&frame, |e| {
        assert_eq!(*e, CallError::Emit(EmitLimit::Item { what: "a refusal reason", bytes: cap + 1, cap }));
        assert_eq!(e.cause(), "emit");
    });
    // One at the cap is an answer like any other.
    let mut inst = Instance::new(RoleModule::new(player_v1()));
    let frame = format!(r#"{{"type":"refuse","bytes":{cap}}}"#);
    match inst.on_client(&mut EntityState::new(), env(1), 1, frame.as_bytes()) {
        Err(CallError::Rejected(reason)) => assert_eq!(reason.len(), cap),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn every_reserved_kind_is_refused_at_send() {
    for kind in ["$kick", "$frame", "$create", "$input", "$anything"] {
        let frame = format!(r#"{{"type":"send","to":2,"kind":"{kind}"}}"#);
        fault(&frame, |e| {
            assert_eq!(*e, CallError::Reserved(ReservedKind(kind.into())));
            assert_eq!(e.cause(), "reserved");
            assert!(e.to_string().contains("kinds starting with `$` are the host's own"), "{e}");
        });
    }
}

#[test]
fn an_entity_state_over_its_quota_is_refused_and_may_shrink() {
    let l = runtime().limits();
    let quota = l.state_bytes.baseapp;
    let mut inst = Instance::new(RoleModule::new(player_v1()));
    let mut state = EntityState::new();
    // Values under the value cap, adding up to more than the quota.
    let value = l.max_value_bytes - 2;
    let mut stored = 0;
    let err = loop {
        let frame = format!(r#"{{"type":"store","key":"v{stored}","bytes":{value}}}"#);
        match inst.on_client(&mut state, env(1), 1, frame.as_bytes()) {
            Ok(out) => {
                out.apply_to(&mut state);
                stored += 1;
            }
            Err(e) => break e,
        }
        assert!(stored < 100, "the quota never held");
    };
    let size: usize = state.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(size <= quota, "what was committed stays within the quota: {size}");
    match err {
        CallError::Quota(Quota::StateBytes { bytes, cap }) => {
            assert_eq!(cap, quota);
            assert!(bytes > quota && bytes <= size + value + 8, "{bytes}");
        }
        other => panic!("expected the state quota, got {other:?}"),
    }
    assert_eq!(err.cause(), "quota");
    // A call that shrinks the state is fine even while it is near the quota, and one that
    // overwrites a value with one of the same size too.
    let frame = format!(r#"{{"type":"store","key":"v0","bytes":{value}}}"#);
    inst.on_client(&mut state, env(2), 1, frame.as_bytes()).expect("same size: not growing");
    let frame = r#"{"type":"store","key":"v0","bytes":1}"#;
    inst.on_client(&mut state, env(3), 1, frame.as_bytes()).expect("shrinking").apply_to(&mut state);
}

#[test]
fn too_many_keys_are_refused() {
    let cap = runtime().limits().max_state_keys;
    let mut inst = Instance::new(RoleModule::new(player_v1()));
    let mut state = EntityState::new();
    // One call may emit as many items as the quota has keys: fill it over two calls.
    for (key, value) in (0..cap - 10).map(|i| (format!("x{i}"), vec![0u8])) {
        state.insert(key, value);
    }
    let err = inst.on_client(&mut state, env(1), 1, br#"{"type":"keys","n":11}"#).expect_err("over the key quota");
    assert_eq!(err, CallError::Quota(Quota::StateKeys { keys: cap + 1, cap }));
    assert_eq!(state.len(), cap - 10, "nothing committed");
    inst.on_client(&mut state, env(2), 1, br#"{"type":"keys","n":10}"#).expect("at the quota").apply_to(&mut state);
    assert_eq!(state.len(), cap);
}

/// The calling thread's CPU time.
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Pins the calling thread to CPU `core`.
fn pin_to(core: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0, "pin");
    }
}

#[test]
fn the_deadline_counts_cpu_time_so_a_call_on_a_busy_core_is_not_cut() {
    let deadline = std::time::Duration::from_millis(40);
    let limits = warren_runtime::Limits { deadline, ..Default::default() };
    let rt = warren_runtime::Runtime::new(limits).expect("runtime");
    let module = std::sync::Arc::new(rt.load(&warren_test_guests::read(warren_test_guests::PLAYER_V1)).unwrap());
    std::thread::spawn(move || {
        pin_to(0);
        let mut inst = Instance::new(RoleModule::new(module));
        let spin = |inst: &mut Instance<_>, iters: u64| {
            let frame = format!(r#"{{"type":"spin","iters":{iters}}}"#);
            let started = Instant::now();
            let out = inst.on_client(&mut EntityState::new(), env(1), 1, frame.as_bytes());
            (out, started.elapsed())
        };
        // About 20 ms of work, measured in the thread's CPU time (other tests may share the
        // core meanwhile) on a warm instance.
        spin(&mut inst, 200_000).0.expect("a warm-up");
        let cpu_before = thread_cpu();
        spin(&mut inst, 2_000_000).0.expect("a short spin");
        let took = thread_cpu() - cpu_before;
        let iters = (2_000_000.0 * 20.0 / took.as_secs_f64() / 1000.0) as u64;
        // Three threads busy on the same core: the call gets about a quarter of it, so its
        // wall time passes the deadline. The scheduler may favour it for a while; the
        // experiment is made again until its wall time did pass the deadline.
        let mut shared = None;
        for _ in 0..5 {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let busy: Vec<_> = (0..3)
                .map(|_| {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        pin_to(0);
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            std::hint::black_box(0u64);
                        }
                    })
                })
                .collect();
            let (out, took) = spin(&mut inst, iters);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            busy.into_iter().for_each(|t| t.join().unwrap());
            if took > deadline {
                shared = Some((out, took));
                break;
            }
        }
        let (out, took) = shared.expect("the core was shared: a call's wall time passed the deadline in 5 tries");
        out.unwrap_or_else(|e| panic!("a call of ~20 ms of CPU in {took:?} of wall time was cut: {e}"));
        // And a call that does use its deadline of CPU (four times as much work: ~80 ms)
        // is still cut, busy core or not.
        let (out, took) = spin(&mut inst, iters * 4);
        assert_eq!(out.expect_err("cut"), CallError::Deadline(deadline), "after {took:?}");
    })
    .join()
    .unwrap();
}

#[test]
fn a_stack_overflow_fails_only_its_call() {
    // The guest's own stack (in its linear memory) runs into the bottom of its memory.
    fault(r#"{"type":"recurse"}"#, |e| {
        assert!(matches!(e, CallError::Trap(_)), "{e:?}");
        assert!(e.to_string().ends_with("wasm trap: out of bounds memory access"), "{e}");
    });
    // The engine's call stack runs out.
    fault(r#"{"type":"deep"}"#, |e| {
        assert!(matches!(e, CallError::Trap(_)), "{e:?}");
        assert!(e.to_string().ends_with("wasm trap: call stack exhausted"), "{e}");
    });
}
