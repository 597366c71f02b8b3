//! Hot swap under a concurrent call loop: no call fails, the new behaviour shows, the
//! entity state is intact.

use crate::{env, json, load};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use warren_runtime::{Baseapp, EntityState, Instance, RoleModule};
use warren_test_guests::{PLAYER_V1, PLAYER_V2};

const SWAPS: usize = 60;
const WORKERS: usize = 2;

#[test]
fn sixty_swaps_under_load_lose_no_call_and_no_state() {
    let v1 = load::<Baseapp>(PLAYER_V1);
    let v2 = load::<Baseapp>(PLAYER_V2);
    let role = RoleModule::new(v1.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (role, stop, calls) = (role.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut inst = Instance::new(role);
                let mut state = EntityState::new();
                let (mut ok, mut failed, mut seen) = (0u64, 0u64, [false; 3]);
                while !stop.load(Ordering::Relaxed) {
                    match inst.on_client(&mut state, env(ok), w as u64, br#"{"type":"count"}"#) {
                        Ok(fx) => {
                            let reply = json(&fx.replies[0]);
                            assert_eq!(reply["count"], ok + 1, "each call sees every earlier commit");
                            seen[reply["version"].as_u64().unwrap() as usize] = true;
                            fx.apply_to(&mut state);
                            ok += 1;
                            calls.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("worker {w}: {e}");
                            failed += 1;
                        }
                    }
                }
                // After the last swap, the next call must run the final module.
                let fx = inst.on_client(&mut state, env(ok), w as u64, br#"{"type":"count"}"#).unwrap();
                let last = json(&fx.replies[0]);
                (ok, failed, seen, last, state)
            })
        })
        .collect();

    let started = std::time::Instant::now();
    for i in 0..SWAPS {
        // Let calls run between swaps: wait for at least one more call per worker.
        let before = calls.load(Ordering::Relaxed);
        while calls.load(Ordering::Relaxed) < before + WORKERS as u64 {
            // A worker that stopped (its assertion failed) must fail the test, not hang it.
            assert!(!workers.iter().any(|w| w.is_finished()), "a worker stopped during the swaps");
            assert!(started.elapsed() < std::time::Duration::from_secs(120), "calls stopped progressing");
            std::thread::yield_now();
        }
        role.swap(if i % 2 == 0 { v2.clone() } else { v1.clone() });
    }
    assert_eq!(role.current().digest(), v1.digest(), "an even number of swaps ends on v1");
    role.swap(v2.clone());
    stop.store(true, Ordering::Relaxed);

    for worker in workers {
        let (ok, failed, seen, last, state) = worker.join().expect("worker");
        assert_eq!(failed, 0, "no call failed during the swaps");
        assert!(seen[1] && seen[2], "both versions served calls");
        assert_eq!(last["version"], 2, "the call after the last swap runs the new module");
        assert_eq!(last["count"], ok + 1, "the state went through every swap intact");
        assert_eq!(state.get("count").unwrap(), (ok).to_string().as_bytes());
    }
}
