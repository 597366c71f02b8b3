//! Loading: a module that does not compile, does not match the world, or refuses to
//! start is rejected with a clear error, and the module serving keeps serving.

use crate::{env, json, load, player_v1, runtime};
use warren_runtime::{Baseapp, Battle, EntityState, Instance, LoadError, RoleModule};

fn rejected(bytes: &[u8]) -> LoadError {
    match runtime().load::<Baseapp>(bytes) {
        Ok(_) => panic!("the module must be rejected"),
        Err(e) => e,
    }
}

#[test]
fn bad_modules_are_rejected_with_the_reason() {
    assert_eq!(rejected(b"hello, world"), LoadError::NotWasm);
    assert_eq!(rejected(b"\0asm\x01\0\0\0"), LoadError::CoreModule);

    let good = warren_test_guests::read(warren_test_guests::PLAYER_V1);
    let truncated = &good[..good.len() / 2];
    assert!(matches!(rejected(truncated), LoadError::Compile(_)));

    let room = warren_test_guests::read(warren_test_guests::ROOM_V1);
    match rejected(&room) {
        LoadError::World { world, detail } => {
            assert_eq!(world, "baseapp");
            assert!(detail.contains("player"), "names the missing export: {detail}");
        }
        other => panic!("expected a world mismatch, got {other:?}"),
    }

    let bad_init = warren_test_guests::read(warren_test_guests::PLAYER_BAD_INIT);
    assert_eq!(rejected(&bad_init), LoadError::Init("this build refuses to start".into()));
}

#[test]
fn a_rejected_module_leaves_the_old_one_serving() {
    let v1 = player_v1();
    let role = RoleModule::new(v1.clone());
    let mut inst = Instance::new(role.clone());
    let mut state = EntityState::new();
    inst.on_client(&mut state, env(1), 1, br#"{"type":"count"}"#).unwrap().apply_to(&mut state);

    // The upload path: load first, swap only what loaded.
    let bad = warren_test_guests::read(warren_test_guests::PLAYER_BAD_INIT);
    assert!(runtime().load::<Baseapp>(&bad).is_err());
    assert_eq!(role.current().digest(), v1.digest());

    let out = inst.on_client(&mut state, env(2), 1, br#"{"type":"count"}"#).expect("still serving");
    assert_eq!(json(&out.replies[0])["version"], 1);
    assert_eq!(json(&out.replies[0])["count"], 2);
}

#[test]
fn a_precompiled_module_loads_and_serves() {
    let bytes = warren_test_guests::read(warren_test_guests::PLAYER_V2);
    let compiled = runtime().precompile(&bytes).expect("precompile");
    // SAFETY: compiled just now by this process's engine.
    let module = unsafe { runtime().load_precompiled::<Baseapp>(&compiled, warren_runtime::digest(&bytes)) }
        .expect("load precompiled");
    assert_eq!(module.digest(), warren_runtime::digest(&bytes));
    let mut inst = Instance::new(RoleModule::new(module));
    let out = inst.on_client(&mut EntityState::new(), env(1), 1, br#"{"type":"count"}"#).unwrap();
    assert_eq!(json(&out.replies[0])["version"], 2);
}

#[test]
fn modules_are_named_by_their_sha256() {
    let bytes = warren_test_guests::read(warren_test_guests::ROOM_V1);
    let module = load::<Battle>(warren_test_guests::ROOM_V1);
    assert_eq!(module.digest().len(), 64);
    assert_eq!(module.digest(), warren_runtime::digest(&bytes));
}

#[test]
fn loading_the_same_bytes_again_compiles_once() {
    // A fresh runtime, so no other test has compiled these bytes in it.
    let rt = warren_runtime::Runtime::new(warren_runtime::Limits::default()).unwrap();
    let bytes = warren_test_guests::read(warren_test_guests::PLAYER_V2);
    let a = rt.load::<Baseapp>(&bytes).unwrap();
    assert_eq!(rt.compilations(), 1);
    let b = rt.load::<Baseapp>(&bytes).unwrap();
    assert_eq!(rt.compilations(), 1, "the second load used the compiled code");
    assert_eq!(a.digest(), b.digest());
    rt.load::<Baseapp>(&warren_test_guests::read(warren_test_guests::PLAYER_V1)).unwrap();
    assert_eq!(rt.compilations(), 2, "other bytes compile");
    // A module from the cache serves like any other.
    let mut inst = Instance::new(RoleModule::new(b));
    let out = inst.on_client(&mut EntityState::new(), env(1), 1, br#"{"type":"count"}"#).unwrap();
    assert_eq!(json(&out.replies[0])["version"], 2);
}

#[test]
fn only_modules_that_pass_every_check_keep_their_compiled_code() {
    let rt = warren_runtime::Runtime::new(warren_runtime::Limits::default()).expect("runtime");
    let bad_init = warren_test_guests::read(warren_test_guests::PLAYER_BAD_INIT);
    assert!(rt.load::<Baseapp>(&bad_init).is_err());
    assert!(rt.load::<Baseapp>(&bad_init).is_err());
    assert_eq!(rt.compilations(), 2, "a refused module's code is not kept: each try compiles it");

    let room = warren_test_guests::read(warren_test_guests::ROOM_V1);
    assert!(matches!(rt.load::<Baseapp>(&room), Err(LoadError::World { .. })));
    assert_eq!(rt.compilations(), 3);
    rt.load::<Battle>(&room).expect("the same bytes serve the world they export");
    assert_eq!(rt.compilations(), 4, "the earlier compile was not kept");

    let good = warren_test_guests::read(warren_test_guests::PLAYER_V1);
    rt.load::<Baseapp>(&good).expect("load");
    rt.load::<Baseapp>(&good).expect("load again");
    assert_eq!(rt.compilations(), 5, "a module that passed is compiled once");
}

#[test]
fn a_module_over_the_size_cap_is_refused_before_compiling() {
    let good = warren_test_guests::read(warren_test_guests::PLAYER_V1);
    let limits = warren_runtime::Limits { max_module_bytes: good.len() - 1, ..Default::default() };
    let rt = warren_runtime::Runtime::new(limits).expect("runtime");
    let err = rt.load::<Baseapp>(&good).err().expect("too big");
    assert_eq!(err, LoadError::TooBig { bytes: good.len(), cap: good.len() - 1 });
    assert!(err.to_string().contains("over the cap"), "{err}");
    assert_eq!(rt.precompile(&good).err(), Some(err));
    assert_eq!(rt.compilations(), 0);
}

#[test]
fn an_init_that_never_ends_or_a_module_too_big_for_memory_is_refused() {
    let deadline = runtime().limits().deadline;
    let init_loop = warren_test_guests::read(warren_test_guests::PLAYER_INIT_LOOP);
    assert_eq!(rejected(&init_loop), LoadError::InitFault(warren_runtime::CallError::Deadline(deadline)));

    let big = warren_test_guests::read(warren_test_guests::PLAYER_BIG_MEMORY);
    assert!(big.len() < 4 << 20, "the memory is asked for, not carried: {} bytes", big.len());
    match rejected(&big) {
        LoadError::InitFault(warren_runtime::CallError::Memory(m)) => {
            assert_eq!(m.cap, runtime().limits().memory_bytes);
            assert!(m.desired > 256 << 20, "{m}");
        }
        other => panic!("expected the memory cap, got {other:?}"),
    }
}
