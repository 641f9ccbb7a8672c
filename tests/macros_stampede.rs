//! `#[cached_stampede]`: concurrent misses of one key run the body once.
//!
//! Threads start together through a `Barrier`; nothing here sleeps or measures time.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use cache_runtime::{cached_stampede, caches, AliasConfig};

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached_stampede(alias = "stampede_once", lease = 5)]
fn expensive(n: u64) -> u64 {
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 1000
}

#[test]
fn eight_threads_on_one_cold_key_run_the_body_once() {
    caches::add("stampede_once", AliasConfig::memory()).unwrap();
    let barrier = Barrier::new(8);
    let values: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    expensive(7)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(values, vec![7000; 8], "all eight get the value");
    assert_eq!(
        SLOW_CALLS.load(Ordering::SeqCst),
        1,
        "the body ran exactly once"
    );
    assert_eq!(expensive(7), 7000);
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 1);
}

static GATED_CALLS: AtomicUsize = AtomicUsize::new(0);
static GATE: Barrier = Barrier::new(2);

/// The first run waits at a barrier with the test thread, so the other callers are certain to arrive while it
/// is running: they must wait for it rather than run the body themselves.
#[cached_stampede(alias = "stampede_gated", lease = 30)]
fn gated(n: u64) -> Result<u64, String> {
    if GATED_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        GATE.wait(); // the leader is running
        GATE.wait(); // the followers have been started
    }
    Ok(n + 1)
}

#[test]
fn followers_wait_for_a_running_leader() {
    caches::add("stampede_gated", AliasConfig::memory()).unwrap();
    std::thread::scope(|s| {
        let leader = s.spawn(|| gated(1));
        GATE.wait();
        let followers: Vec<_> = (0..7).map(|_| s.spawn(|| gated(1))).collect();
        GATE.wait();
        assert_eq!(leader.join().unwrap(), Ok(2));
        for follower in followers {
            assert_eq!(follower.join().unwrap(), Ok(2));
        }
    });
    assert_eq!(GATED_CALLS.load(Ordering::SeqCst), 1);
}

static ERR_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached_stampede(alias = "stampede_err")]
fn flaky(n: u64) -> Result<u64, String> {
    if ERR_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err("first call fails".into())
    } else {
        Ok(n)
    }
}

#[test]
fn errors_are_not_shared_or_cached() {
    caches::add("stampede_err", AliasConfig::memory()).unwrap();
    assert!(flaky(3).is_err());
    assert_eq!(flaky(3), Ok(3));
    assert_eq!(flaky(3), Ok(3));
    assert_eq!(ERR_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(flaky_cache_get(3).unwrap(), Some(3));
}

#[test]
fn the_lock_is_released_after_the_run() {
    caches::add("stampede_lock", AliasConfig::memory()).unwrap();
    assert_eq!(locked(2), 4);
    let cache = locked_cache().unwrap();
    let key = locked_cache_key(2).unwrap();
    assert!(!cache.exists(&format!("{key}-lock")).unwrap());
    assert_eq!(cache.get::<u64>(&key).unwrap(), Some(4));
}

#[cached_stampede(alias = "stampede_lock", lease = 1.5, ttl = 60)]
fn locked(n: u64) -> u64 {
    n * 2
}

static DOWN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached_stampede(alias = "stampede_down", lease = 5)]
fn resilient(n: u64) -> u64 {
    DOWN_CALLS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

#[test]
fn a_cache_that_is_down_fails_open() {
    caches::register_backend(
        "stampede_down",
        cache_runtime::BackendSpec::new(&[], |_| Ok(std::sync::Arc::new(support::DownBackend))),
    );
    caches::add("stampede_down", AliasConfig::new("stampede_down")).unwrap();
    assert_eq!(resilient(1), 2);
    assert_eq!(resilient(1), 2);
    assert_eq!(
        DOWN_CALLS.load(Ordering::SeqCst),
        2,
        "no cache, no lock: the body runs every call"
    );
}

/// The body calls the function again with the same key (a fixed key): the inner call must not wait for the
/// flight its own thread leads.
#[cached_stampede(alias = "stampede_reentrant", key = "fixed", lease = 30)]
fn reentrant(depth: u32) -> u32 {
    if depth == 0 {
        0
    } else {
        reentrant(depth - 1) + 1
    }
}

#[test]
fn a_body_reentering_its_own_key_does_not_deadlock() {
    caches::add("stampede_reentrant", AliasConfig::memory()).unwrap();
    assert_eq!(reentrant(3), 3);
    assert_eq!(
        reentrant(5),
        3,
        "the outer call stored its value under the fixed key"
    );
}
