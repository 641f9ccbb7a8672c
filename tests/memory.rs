//! Every command on the memory backend, expiry on a controllable clock, the eviction bound, namespaces,
//! bad input, and concurrency contracts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use cache_runtime::{
    Cache, CasToken, Error, JsonSerializer, ManualClock, MemoryBackend, OptimisticLock, RawReply,
    RedLock, Ttl, Value,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn user() -> User {
    User {
        id: 7,
        name: "ann".into(),
        tags: vec!["admin".into()],
    }
}

fn clocked() -> (Cache, ManualClock) {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .backend(MemoryBackend::builder().clock(clock.clone()).build())
        .build()
        .unwrap();
    (cache, clock)
}

/// The same command suite on the object store (NullSerializer) and on bytes (JSON).
fn both_modes() -> Vec<Cache> {
    vec![
        Cache::memory(),
        Cache::builder().serializer(JsonSerializer).build().unwrap(),
    ]
}

#[test]
fn get_set_roundtrip_typed_values() {
    for cache in both_modes() {
        assert_eq!(cache.get::<User>("u").unwrap(), None);
        cache.set("u", &user(), Ttl::Default).unwrap();
        assert_eq!(cache.get::<User>("u").unwrap(), Some(user()));
        cache
            .set("u", &User { id: 8, ..user() }, Ttl::Default)
            .unwrap();
        assert_eq!(cache.get::<User>("u").unwrap().unwrap().id, 8);
    }
}

#[test]
fn stored_none_is_a_hit() {
    for cache in both_modes() {
        cache.set("maybe", &None::<u32>, Ttl::Default).unwrap();
        assert_eq!(cache.get::<Option<u32>>("maybe").unwrap(), Some(None));
        assert!(cache.exists("maybe").unwrap());
    }
}

#[test]
fn add_only_if_absent_and_keeps_existing_value() {
    for cache in both_modes() {
        cache.add("k", &1u32, Ttl::Default).unwrap();
        match cache.add("k", &2u32, Ttl::Default) {
            Err(Error::KeyExists { key }) => assert_eq!(key, "k"),
            other => panic!("expected KeyExists, got {other:?}"),
        }
        assert_eq!(cache.get::<u32>("k").unwrap(), Some(1));
    }
}

#[test]
fn multi_get_and_multi_set_keep_input_order() {
    for cache in both_modes() {
        cache
            .multi_set(&[("a", 1i32), ("b", 2), ("c", 3)], Ttl::Default)
            .unwrap();
        let got = cache
            .multi_get::<i32, _>(&["c", "missing", "a", "b"])
            .unwrap();
        assert_eq!(got, vec![Some(3), None, Some(1), Some(2)]);
        assert!(cache.multi_get::<i32, &str>(&[]).unwrap().is_empty());
    }
}

#[test]
fn exists_delete_and_counts() {
    for cache in both_modes() {
        assert!(!cache.exists("k").unwrap());
        cache.set("k", &"v".to_string(), Ttl::Default).unwrap();
        assert!(cache.exists("k").unwrap());
        assert_eq!(cache.delete("k").unwrap(), 1);
        assert_eq!(cache.delete("k").unwrap(), 0);
        assert!(!cache.exists("k").unwrap());
    }
}

#[test]
fn increment_counts_from_zero_and_rejects_non_integers_untouched() {
    for cache in both_modes() {
        assert_eq!(cache.increment("n", 5).unwrap(), 5);
        assert_eq!(cache.increment("n", -7).unwrap(), -2);
        assert_eq!(cache.get::<i64>("n").unwrap(), Some(-2));

        cache.set("counter", &10i64, Ttl::Default).unwrap();
        assert_eq!(cache.increment("counter", 1).unwrap(), 11);
        assert_eq!(cache.get::<i64>("counter").unwrap(), Some(11));

        cache.set("name", &"ann".to_string(), Ttl::Default).unwrap();
        let before = cache.get_stored("name").unwrap();
        match cache.increment("name", 1) {
            Err(Error::NotAnInteger { key }) => assert_eq!(key, "name"),
            other => panic!("expected NotAnInteger, got {other:?}"),
        }
        assert_eq!(
            format!("{:?}", cache.get_stored("name").unwrap()),
            format!("{before:?}")
        );
        assert_eq!(cache.get::<String>("name").unwrap().as_deref(), Some("ann"));

        cache.set("big", &i64::MAX, Ttl::Default).unwrap();
        assert!(matches!(
            cache.increment("big", 1),
            Err(Error::InvalidInput(_))
        ));
        assert_eq!(cache.get::<i64>("big").unwrap(), Some(i64::MAX));
    }
}

#[test]
fn ttl_expires_on_the_clock_not_before() {
    let (cache, clock) = clocked();
    cache.set("short", &1u8, Ttl::millis(1500)).unwrap();
    cache.set("forever", &2u8, Ttl::Never).unwrap();
    clock.advance(Duration::from_millis(1499));
    assert_eq!(cache.get::<u8>("short").unwrap(), Some(1));
    assert!(cache.exists("short").unwrap());
    clock.advance(Duration::from_millis(1));
    assert_eq!(cache.get::<u8>("short").unwrap(), None);
    assert!(!cache.exists("short").unwrap());
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(cache.get::<u8>("forever").unwrap(), Some(2));
}

#[test]
fn default_ttl_applies_and_per_call_ttl_overrides_it() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .backend(MemoryBackend::builder().clock(clock.clone()).build())
        .default_ttl(Ttl::secs(10))
        .build()
        .unwrap();
    cache.set("default", &1u8, Ttl::Default).unwrap();
    cache.set("longer", &1u8, Ttl::secs(100)).unwrap();
    cache.set("never", &1u8, Ttl::Never).unwrap();
    clock.advance(Duration::from_secs(10));
    assert!(!cache.exists("default").unwrap());
    assert!(cache.exists("longer").unwrap());
    assert!(cache.exists("never").unwrap());

    let shorter = cache.with_ttl(Ttl::secs(1)).unwrap();
    shorter.set("view", &1u8, Ttl::Default).unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(!cache.exists("view").unwrap());
}

#[test]
fn expire_changes_and_persists_ttl() {
    let (cache, clock) = clocked();
    cache.set("k", &1u8, Ttl::secs(5)).unwrap();
    assert!(cache.expire("k", Ttl::Never).unwrap());
    clock.advance(Duration::from_secs(10));
    assert!(cache.exists("k").unwrap());
    assert!(cache.expire("k", Ttl::secs(1)).unwrap());
    clock.advance(Duration::from_secs(1));
    assert!(!cache.exists("k").unwrap());
    assert!(!cache.expire("k", Ttl::secs(1)).unwrap());
}

#[test]
fn expired_keys_can_be_added_again() {
    let (cache, clock) = clocked();
    cache.add("lock", &1u8, Ttl::secs(1)).unwrap();
    assert!(cache.add("lock", &2u8, Ttl::secs(1)).is_err());
    clock.advance(Duration::from_secs(1));
    cache.add("lock", &3u8, Ttl::secs(1)).unwrap();
    assert_eq!(cache.get::<u8>("lock").unwrap(), Some(3));
}

#[test]
fn millisecond_ttls_are_kept() {
    let (cache, clock) = clocked();
    cache.set("a", &1u8, Duration::from_millis(20)).unwrap();
    clock.advance(Duration::from_millis(19));
    assert!(cache.exists("a").unwrap());
    clock.advance(Duration::from_millis(1));
    assert!(!cache.exists("a").unwrap());
    // Sub-millisecond rounds up to one millisecond, never to "forever".
    cache.set("b", &1u8, Duration::from_micros(10)).unwrap();
    clock.advance(Duration::from_millis(1));
    assert!(!cache.exists("b").unwrap());
}

#[test]
fn zero_ttl_is_rejected_and_nothing_changes() {
    let cache = Cache::memory();
    cache.set("k", &1u8, Ttl::Default).unwrap();
    for result in [
        cache.set("k", &2u8, Ttl::secs(0)),
        cache.add("new", &2u8, Ttl::secs(0)),
        cache.multi_set(&[("k", 2u8)], Ttl::secs(0)),
        cache.expire("k", Ttl::secs(0)).map(drop),
    ] {
        assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    }
    assert_eq!(cache.get::<u8>("k").unwrap(), Some(1));
    assert!(!cache.exists("new").unwrap());
    assert!(Cache::builder().default_ttl(Ttl::secs(0)).build().is_err());
    assert!(cache.with_ttl(Duration::ZERO).is_err());
}

#[test]
fn expired_entries_are_swept_by_writes_even_if_never_read() {
    let clock = ManualClock::new();
    let backend = Arc::new(
        MemoryBackend::builder()
            .clock(clock.clone())
            .shards(1)
            .build(),
    );
    let cache = Cache::builder()
        .backend_shared(backend.clone())
        .build()
        .unwrap();
    for i in 0..1000 {
        cache.set(&format!("old{i}"), &i, Ttl::secs(1)).unwrap();
    }
    clock.advance(Duration::from_secs(2));
    // Nobody reads the old keys; ongoing writes retire them a few at a time.
    for i in 0..400 {
        cache.set(&format!("new{i}"), &i, Ttl::Never).unwrap();
    }
    // Four due deadlines retired per write: 250 writes retire all 1000.
    assert_eq!(backend.len(), 400);
    assert_eq!(cache.raw::<&str>("sweep", &[]).unwrap(), RawReply::Int(0));
}

#[test]
fn sweep_removes_everything_expired_at_once() {
    let clock = ManualClock::new();
    let backend = Arc::new(MemoryBackend::builder().clock(clock.clone()).build());
    let cache = Cache::builder()
        .backend_shared(backend.clone())
        .build()
        .unwrap();
    for i in 0..100 {
        cache
            .set(&format!("k{i}"), &i, Ttl::secs(1 + (i % 2)))
            .unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(backend.sweep(), 50);
    assert_eq!(backend.len(), 50);
}

#[test]
fn eviction_bound_holds_and_keeps_recently_read_entries() {
    let backend = Arc::new(MemoryBackend::builder().max_entries(100).build());
    let cache = Cache::builder()
        .backend_shared(backend.clone())
        .build()
        .unwrap();
    for i in 0..100u32 {
        cache.set(&format!("hot{i}"), &i, Ttl::Default).unwrap();
    }
    for _ in 0..2 {
        for i in 0..50u32 {
            assert_eq!(cache.get::<u32>(&format!("hot{i}")).unwrap(), Some(i));
        }
    }
    for i in 0..1000u32 {
        cache.set(&format!("cold{i}"), &i, Ttl::Default).unwrap();
        assert!(backend.len() <= 100);
        // Keep the hot half hot.
        if i % 10 == 0 {
            for h in 0..50u32 {
                let _ = cache.get::<u32>(&format!("hot{h}")).unwrap();
            }
        }
    }
    assert_eq!(backend.len(), 100);
    let hot_left = (0..50u32)
        .filter(|i| cache.exists(&format!("hot{i}")).unwrap())
        .count();
    assert!(
        hot_left >= 40,
        "CLOCK kept only {hot_left} of 50 hot entries"
    );
}

#[test]
fn tiny_bounds_are_exact() {
    for bound in [1usize, 2, 3, 31, 33, 64, 65, 5_000] {
        let backend = Arc::new(MemoryBackend::builder().max_entries(bound).build());
        let cache = Cache::builder()
            .backend_shared(backend.clone())
            .build()
            .unwrap();
        for i in 0..(bound * 4) {
            cache.set(&format!("k{i}"), &i, Ttl::Default).unwrap();
            assert!(
                backend.len() <= bound,
                "bound {bound}: len {}",
                backend.len()
            );
        }
        assert!(!backend.is_empty());
    }
}

#[test]
fn namespaces_isolate_keys_and_clear_only_touches_its_own() {
    let root = Cache::memory();
    let a = root.with_namespace("a");
    let b = root.with_namespace("b");
    a.set("k", &1u8, Ttl::Default).unwrap();
    b.set("k", &2u8, Ttl::Default).unwrap();
    root.set("k", &3u8, Ttl::Default).unwrap();
    root.set("a-k", &4u8, Ttl::Default).unwrap();
    assert_eq!(a.get::<u8>("k").unwrap(), Some(1));
    assert_eq!(b.get::<u8>("k").unwrap(), Some(2));
    assert_eq!(root.get::<u8>("k").unwrap(), Some(3));
    assert_eq!(
        root.get::<u8>("a:k").unwrap(),
        Some(1),
        "stored as {{namespace}}:{{key}}"
    );
    assert_eq!(a.build_key("k"), "a:k");

    assert_eq!(a.clear().unwrap(), 1);
    assert_eq!(a.get::<u8>("k").unwrap(), None);
    assert_eq!(b.get::<u8>("k").unwrap(), Some(2));
    assert_eq!(root.get::<u8>("a-k").unwrap(), Some(4));

    // Without a namespace, clear empties everything.
    assert_eq!(root.clear().unwrap(), 3);
    assert_eq!(b.get::<u8>("k").unwrap(), None);
}

#[test]
fn keys_lists_this_namespace_with_globs() {
    let root = Cache::memory();
    let ns = root.with_namespace("n*s");
    for k in ["user:1", "user:2", "user:10", "post:1"] {
        ns.set(k, &1u8, Ttl::Default).unwrap();
    }
    root.with_namespace("nXs")
        .set("user:3", &1u8, Ttl::Default)
        .unwrap();
    assert_eq!(
        ns.keys("user:*").unwrap(),
        vec!["user:1", "user:10", "user:2"]
    );
    assert_eq!(ns.keys("user:?").unwrap(), vec!["user:1", "user:2"]);
    assert_eq!(ns.keys("*:[0-1]").unwrap(), vec!["post:1", "user:1"]);
    assert_eq!(root.keys("*").unwrap().len(), 5);
}

#[test]
fn custom_key_builder_replaces_namespacing() {
    let cache = Cache::builder()
        .namespace("app")
        .key_builder(|key, ns| format!("{}|{}", ns.unwrap_or(""), key.to_uppercase()))
        .build()
        .unwrap();
    cache.set("k", &1u8, Ttl::Default).unwrap();
    assert_eq!(cache.build_key("k"), "app|K");
    assert_eq!(cache.without_namespace().get::<u8>("k").unwrap(), None);
    assert_eq!(cache.get::<u8>("K").unwrap(), Some(1));
}

#[test]
fn reading_another_type_is_a_deserialize_error_and_keeps_the_value() {
    for cache in both_modes() {
        cache.set("u", &user(), Ttl::Default).unwrap();
        assert!(matches!(
            cache.get::<u64>("u"),
            Err(Error::Deserialize { .. })
        ));
        assert!(matches!(
            cache.multi_get::<u64, _>(&["u"]),
            Err(Error::Deserialize { .. })
        ));
        assert_eq!(cache.get::<User>("u").unwrap(), Some(user()));
    }
}

#[test]
fn raw_commands() {
    let cache = Cache::memory();
    cache.set("a", &1u8, Ttl::Default).unwrap();
    assert_eq!(cache.raw::<&str>("LEN", &[]).unwrap(), RawReply::Int(1));
    assert!(matches!(
        cache.raw::<&str>("FLUSHALL", &[]),
        Err(Error::Unsupported { .. })
    ));
    cache.close().unwrap();
    assert_eq!(
        cache.get::<u8>("a").unwrap(),
        Some(1),
        "memory survives close"
    );
}

#[test]
fn set_stored_and_get_stored_bypass_the_serializer() {
    let cache = Cache::builder().serializer(JsonSerializer).build().unwrap();
    cache
        .set_stored(
            "k",
            Value::Bytes(b"{\"id\":1,\"name\":\"x\",\"tags\":[]}".to_vec()),
            Ttl::Default,
        )
        .unwrap();
    assert_eq!(cache.get::<User>("k").unwrap().unwrap().name, "x");
    cache
        .set_stored("bad", Value::Bytes(b"\xff\xfe".to_vec()), Ttl::Default)
        .unwrap();
    assert!(matches!(
        cache.get::<User>("bad"),
        Err(Error::Deserialize { .. })
    ));
    assert_eq!(
        cache.get_stored("bad").unwrap().unwrap().as_bytes(),
        Some(&b"\xff\xfe"[..])
    );
}

#[test]
fn clones_share_the_store() {
    let cache = Cache::memory();
    let clone = cache.clone();
    clone
        .set("k", &BTreeMap::from([(1, 2)]), Ttl::Default)
        .unwrap();
    assert_eq!(
        cache.get::<BTreeMap<i32, i32>>("k").unwrap(),
        Some(BTreeMap::from([(1, 2)]))
    );
}

#[test]
fn eight_threads_racing_add_have_exactly_one_winner() {
    for cache in both_modes() {
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8u32)
            .map(|i| {
                let cache = cache.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    cache.add("once", &i, Ttl::Default).is_ok()
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1);
    }
}

#[test]
fn two_threads_ten_thousand_increments_lose_nothing() {
    for cache in both_modes() {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let cache = cache.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..10_000 {
                        cache.increment("hits", 1).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(cache.get::<i64>("hits").unwrap(), Some(20_000));
    }
}

#[test]
fn multi_set_is_atomic_for_readers() {
    let cache = Cache::memory();
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    let writer = {
        let cache = cache.clone();
        let keys = keys.clone();
        thread::spawn(move || {
            for round in 0..300u32 {
                let pairs: Vec<(String, u32)> = keys.iter().map(|k| (k.clone(), round)).collect();
                cache.multi_set(&pairs, Ttl::Default).unwrap();
            }
        })
    };
    // A read that sees round r comes after the whole multi_set of round r, so every later read of any key
    // sees r or later (hot copies included: one key of a multi_set is never readable lock-free early).
    let mut last = 0u32;
    while !writer.is_finished() {
        for key in &keys {
            if let Some(v) = cache.get::<u32>(key).unwrap() {
                assert!(v >= last, "{key}: round {v} read after round {last}");
                last = v;
            }
        }
    }
    writer.join().unwrap();
    let all = cache.multi_get::<u32, _>(&keys).unwrap();
    assert!(all.iter().all(|v| *v == Some(299)));
}

#[test]
fn redlock_excludes_and_releases_only_its_own() {
    let (cache, clock) = clocked();
    let a = RedLock::new(&cache, "job", Duration::from_secs(10)).unwrap();
    let b = RedLock::new(&cache, "job", Duration::from_secs(10)).unwrap();
    let guard = a.try_acquire().unwrap().unwrap();
    assert!(b.try_acquire().unwrap().is_none());
    // The lease runs out; b takes the lock; a's release must not free b's lock.
    clock.advance(Duration::from_secs(10));
    let b_guard = b.try_acquire().unwrap().unwrap();
    assert!(!guard.release().unwrap());
    assert!(a.try_acquire().unwrap().is_none());
    drop(b_guard);
    assert!(a.try_acquire().unwrap().is_some());
    assert!(RedLock::new(&cache, "x", Duration::ZERO).is_err());
}

#[test]
fn redlock_waiters_see_the_release() {
    let cache = Cache::memory();
    let holder = RedLock::new(&cache, "job", Duration::from_secs(30)).unwrap();
    let guard = holder.try_acquire().unwrap().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let waiter = {
        let cache = cache.clone();
        let barrier = barrier.clone();
        thread::spawn(move || {
            let lock = RedLock::new(&cache, "job", Duration::from_secs(30)).unwrap();
            assert!(lock.try_acquire().unwrap().is_none());
            barrier.wait();
            let acquired = lock.acquire(Duration::from_secs(60)).unwrap().is_some();
            acquired
        })
    };
    barrier.wait();
    drop(guard);
    assert!(waiter.join().unwrap());
}

#[test]
fn optimistic_lock_detects_concurrent_writes() {
    for cache in both_modes() {
        // Absent key: cas succeeds only while still absent.
        let lock = OptimisticLock::new(&cache, "k").unwrap();
        assert_eq!(lock.value::<u32>().unwrap(), None);
        lock.cas(&1u32, Ttl::Default).unwrap();
        assert!(matches!(
            lock.cas(&2u32, Ttl::Default),
            Err(Error::OptimisticLock { .. })
        ));

        let lock = OptimisticLock::new(&cache, "k").unwrap();
        assert_eq!(lock.value::<u32>().unwrap(), Some(1));
        cache.set("k", &1u32, Ttl::Default).unwrap(); // same value, new version
        assert!(lock.cas(&5u32, Ttl::Default).is_err());
        assert_eq!(cache.get::<u32>("k").unwrap(), Some(1));

        let lock = OptimisticLock::new(&cache, "k").unwrap();
        lock.cas(&6u32, Ttl::Default).unwrap();
        assert_eq!(cache.get::<u32>("k").unwrap(), Some(6));
    }
    let (_, token) = Cache::memory()
        .backend()
        .get_versioned("nope", &Default::default())
        .unwrap();
    assert_eq!(token, CasToken::Absent);
}

#[test]
fn debug_shows_configuration() {
    let cache = Cache::builder().namespace("ns").build().unwrap();
    let text = format!("{cache:?}");
    assert!(text.contains("memory") && text.contains("ns"), "{text}");
}

#[test]
fn weight_bound_holds_and_oversized_values_are_not_stored() {
    let backend = Arc::new(MemoryBackend::builder().max_weight(10_000).build());
    let cache = Cache::builder()
        .backend_shared(backend.clone())
        .serializer(JsonSerializer)
        .build()
        .unwrap();
    for i in 0..500 {
        // ~100 bytes each: key plus a JSON string of 96 characters.
        cache
            .set(&format!("k{i:03}"), &"x".repeat(96), Ttl::Default)
            .unwrap();
        assert!(backend.weight() <= 10_000, "weight {}", backend.weight());
    }
    assert!(
        backend.len() >= 90 && backend.len() <= 100,
        "len {}",
        backend.len()
    );

    cache
        .set("big", &"small".to_string(), Ttl::Default)
        .unwrap();
    cache.set("big", &"y".repeat(20_000), Ttl::Default).unwrap();
    assert!(
        !cache.exists("big").unwrap(),
        "neither the huge value nor the older one is served"
    );

    // Which keys eviction kept depends on the random hash seed: delete one that is there.
    let present = cache
        .keys("k*")
        .unwrap()
        .pop()
        .expect("the bound keeps about 100 entries");
    let before = backend.weight();
    assert_eq!(cache.delete(&present).unwrap(), 1);
    assert!(backend.weight() < before);
    cache.clear().unwrap();
    assert_eq!((backend.len(), backend.weight()), (0, 0));
}

#[test]
fn custom_weigher_and_counter_weights_stay_consistent() {
    let backend = Arc::new(
        MemoryBackend::builder()
            .max_weight(3)
            .weigher(|_key, _value| 1)
            .build(),
    );
    let cache = Cache::builder()
        .backend_shared(backend.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        cache.set(&format!("k{i}"), &i, Ttl::Default).unwrap();
    }
    assert_eq!(backend.len(), 3);
    assert_eq!(backend.weight(), 3);
    cache.clear().unwrap();
    let counting = Arc::new(MemoryBackend::builder().max_weight(1_000).build());
    let counter = Cache::builder()
        .backend_shared(counting.clone())
        .build()
        .unwrap();
    for _ in 0..1000 {
        counter.increment("n", 7).unwrap();
    }
    assert_eq!(counter.get::<i64>("n").unwrap(), Some(7000));
    assert_eq!(counting.weight(), "n".len() + "7000".len());
}

#[test]
fn long_namespaced_keys_round_trip() {
    // Short `{namespace}:{key}` is built on the stack, long ones on the heap: both must store the same way.
    let ns = "n".repeat(150);
    let cache = Cache::memory().with_namespace(ns.as_str());
    for key in ["short".to_string(), "k".repeat(100), "é".repeat(40)] {
        cache.set(&key, &key.len(), Ttl::Default).unwrap();
        assert_eq!(cache.get::<usize>(&key).unwrap(), Some(key.len()));
        assert_eq!(cache.build_key(&key), format!("{ns}:{key}"));
        assert_eq!(
            cache
                .without_namespace()
                .get::<usize>(&format!("{ns}:{key}"))
                .unwrap(),
            Some(key.len())
        );
    }
}

/// Keys on both sides of the in-bucket limit (46 bytes) and far past it, ASCII and multi-byte: every command
/// finds exactly its own key, and `keys`/`clear` see the whole text.
#[test]
fn keys_of_every_length_are_stored_whole() {
    let root = Cache::builder().build().unwrap();
    let cache = root.with_namespace("a");
    let other = root.with_namespace("b");
    let mut keys: Vec<String> = [0usize, 1, 43, 44, 45, 46, 200, 5000]
        .iter()
        .map(|n| "x".repeat(*n))
        .collect();
    // With the `a:` prefix, 2-byte characters cross the limit in the middle of a character.
    keys.push("é".repeat(22));
    keys.push("é".repeat(23));
    keys.push("日".repeat(40));
    for (i, key) in keys.iter().enumerate() {
        cache.set(key, &i, Ttl::Default).unwrap();
        other.set(key, &(i + 100), Ttl::Default).unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(cache.get::<usize>(key).unwrap(), Some(i), "{key}");
        assert_eq!(other.get::<usize>(key).unwrap(), Some(i + 100), "{key}");
        // A key one byte longer is another key.
        assert_eq!(cache.get::<usize>(&format!("{key}!")).unwrap(), None);
    }
    let mut listed = root.keys("a:*").unwrap();
    listed.sort();
    let mut expected: Vec<String> = keys.iter().map(|k| format!("a:{k}")).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(cache.delete(&keys[6]).unwrap(), 1);
    assert_eq!(cache.get::<usize>(&keys[6]).unwrap(), None);
    assert_eq!(cache.clear().unwrap(), keys.len() as u64 - 1);
    assert_eq!(root.keys("a:*").unwrap(), Vec::<String>::new());
    assert_eq!(
        root.keys("b:*").unwrap().len(),
        keys.len(),
        "the other namespace is kept"
    );
}

/// Primitives are kept in place in the store; every command still sees them as the typed objects they were.
#[test]
fn primitive_values_round_trip_through_every_command() {
    let cache = Cache::builder().build().unwrap();
    fn round_trip<T>(cache: &Cache, key: &str, value: T)
    where
        T: cache_runtime::Cacheable + PartialEq + std::fmt::Debug,
    {
        cache.set(key, &value, Ttl::Default).unwrap();
        assert_eq!(cache.get::<T>(key).unwrap(), Some(value.clone()), "{key}");
        let stored = cache.get_stored(key).unwrap().unwrap();
        match stored {
            Value::Object(obj) => assert_eq!(obj.downcast_ref::<T>(), Some(&value), "{key}"),
            Value::Bytes(_) => panic!("{key}: an object store returned bytes"),
        }
        assert_eq!(cache.multi_get::<T, _>(&[key]).unwrap(), vec![Some(value)]);
    }
    round_trip(&cache, "u8", 7u8);
    round_trip(&cache, "u16", 700u16);
    round_trip(&cache, "u32", 70_000u32);
    round_trip(&cache, "u64", u64::MAX);
    round_trip(&cache, "usize", 9usize);
    round_trip(&cache, "i8", -7i8);
    round_trip(&cache, "i16", -700i16);
    round_trip(&cache, "i32", -70_000i32);
    round_trip(&cache, "i64", i64::MIN);
    round_trip(&cache, "isize", -9isize);
    round_trip(&cache, "f32", 1.5f32);
    round_trip(&cache, "f64", -2.25f64);
    round_trip(&cache, "bool", true);
    round_trip(&cache, "char", 'é');
    round_trip(&cache, "string", "not a primitive".to_string());

    // A primitive read as another type is a typed error, and the value stays.
    assert!(matches!(
        cache.get::<u64>("u32"),
        Err(Error::Deserialize { .. })
    ));
    assert_eq!(cache.get::<u32>("u32").unwrap(), Some(70_000));

    // increment works on every stored integer type that fits i64, and refuses the rest.
    assert_eq!(cache.increment("u8", 1).unwrap(), 8);
    assert_eq!(cache.increment("i32", 1).unwrap(), -69_999);
    assert_eq!(cache.get::<i64>("i32").unwrap(), Some(-69_999));
    assert!(matches!(
        cache.increment("u64", 1),
        Err(Error::NotAnInteger { .. })
    ));
    assert!(matches!(
        cache.increment("f64", 1),
        Err(Error::NotAnInteger { .. })
    ));
    assert!(matches!(
        cache.increment("string", 1),
        Err(Error::NotAnInteger { .. })
    ));
    assert_eq!(cache.get::<f64>("f64").unwrap(), Some(-2.25));

    // The optimistic lock sees the stored primitive and its version.
    let lock = OptimisticLock::new(&cache, "u16").unwrap();
    assert_eq!(lock.value::<u16>().unwrap(), Some(700));
    lock.cas(&701u16, Ttl::Default).unwrap();
    assert_eq!(cache.get::<u16>("u16").unwrap(), Some(701));
    assert!(matches!(
        lock.cas(&702u16, Ttl::Default),
        Err(Error::OptimisticLock { .. })
    ));
}

/// Reads a primitive twice (the first read copies it into the hot index, the second is served from there).
fn read_hot(cache: &Cache, key: &str) -> Option<i64> {
    let first = cache.get::<i64>(key).unwrap();
    assert_eq!(cache.get::<i64>(key).unwrap(), first);
    first
}

#[test]
fn no_write_is_hidden_by_a_hot_copy() {
    let (cache, clock) = clocked();
    let other = Cache::memory();
    // Each write, after the key was read (so served lock-free), is seen by the next read. (`i64`: what
    // `increment` stores.)
    type Write = fn(&Cache, &ManualClock);
    let writes: Vec<(&str, Write, Option<i64>)> = vec![
        (
            "set",
            |c, _| c.set("k", &2i64, Ttl::Default).unwrap(),
            Some(2),
        ),
        ("delete", |c, _| assert_eq!(c.delete("k").unwrap(), 1), None),
        (
            "increment",
            |c, _| assert_eq!(c.increment("k", 4).unwrap(), 5),
            Some(5),
        ),
        (
            "expire",
            |c, clock| {
                assert!(c.expire("k", Ttl::secs(1)).unwrap());
                clock.advance(Duration::from_secs(2));
            },
            None,
        ),
        ("clear", |c, _| assert_eq!(c.clear().unwrap(), 1), None),
        (
            "multi_set",
            |c, _| c.multi_set(&[("k", 9i64)], Ttl::Default).unwrap(),
            Some(9),
        ),
        (
            "compare_and_set",
            |c, _| {
                let lock = OptimisticLock::new(c, "k").unwrap();
                lock.cas(&8i64, Ttl::Default).unwrap();
            },
            Some(8),
        ),
    ];
    for (name, write, expected) in writes {
        cache.set("k", &1i64, Ttl::Default).unwrap();
        assert_eq!(read_hot(&cache, "k"), Some(1), "{name}");
        write(&cache, &clock);
        assert_eq!(cache.get::<i64>("k").unwrap(), expected, "after {name}");
        assert_eq!(read_hot(&cache, "k"), expected, "after {name}, read again");
    }
    // A primitive replaced by another type is read as that type, and back.
    cache.set("k", &1i64, Ttl::Default).unwrap();
    read_hot(&cache, "k");
    cache.set("k", &"text".to_string(), Ttl::Default).unwrap();
    assert!(matches!(
        cache.get::<i64>("k"),
        Err(Error::Deserialize { .. })
    ));
    assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("text"));
    cache.set("k", &3i64, Ttl::Default).unwrap();
    assert_eq!(read_hot(&cache, "k"), Some(3));
    // A TTL counts on the hot path too, and a hot copy of one store is not seen by another.
    cache.set("t", &1i64, Ttl::secs(5)).unwrap();
    assert_eq!(read_hot(&cache, "t"), Some(1));
    clock.advance(Duration::from_secs(4));
    assert_eq!(cache.get::<i64>("t").unwrap(), Some(1));
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.get::<i64>("t").unwrap(), None);
    assert_eq!(other.get::<i64>("k").unwrap(), None);
}

#[test]
fn lock_free_readers_see_no_torn_foreign_or_older_values() {
    // One shard and more keys than hot slots, so keys take slots from each other while readers read.
    let cache = Cache::builder()
        .backend(MemoryBackend::builder().shards(1).build())
        .build()
        .unwrap();
    let keys: Arc<Vec<String>> = Arc::new((0..6_000u64).map(|i| format!("key-{i}")).collect());
    let rounds = 12u64;
    let start = Arc::new(Barrier::new(3));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cache, keys, start, done) = (cache.clone(), keys.clone(), start.clone(), done.clone());
        thread::spawn(move || {
            start.wait();
            for round in 1..=rounds {
                for (i, key) in keys.iter().enumerate() {
                    // The key's index and the round, so a reader can tell whose value it got, and when.
                    cache
                        .set(key, &((i as u64) << 32 | round), Ttl::Default)
                        .unwrap();
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (cache, keys, start, done) =
                (cache.clone(), keys.clone(), start.clone(), done.clone());
            thread::spawn(move || {
                let mut seen = vec![0u64; keys.len()];
                let mut hits = 0u64;
                start.wait();
                // Passes while the writer writes, then one more: it must see the last round everywhere.
                let mut last_pass = false;
                while !last_pass {
                    last_pass = done.load(Ordering::Acquire);
                    for (i, key) in keys.iter().enumerate() {
                        let Some(value) = cache.get::<u64>(key).unwrap() else {
                            assert_eq!(seen[i], 0, "{key} vanished");
                            continue;
                        };
                        hits += 1;
                        assert_eq!(value >> 32, i as u64, "{key} read another key's value");
                        let round = value & 0xFFFF_FFFF;
                        assert!(
                            (1..=rounds).contains(&round),
                            "{key}: torn value {value:#x}"
                        );
                        assert!(round >= seen[i], "{key}: round {round} after {}", seen[i]);
                        seen[i] = round;
                    }
                }
                assert!(
                    seen.iter().all(|&round| round == rounds),
                    "a write was not seen"
                );
                hits
            })
        })
        .collect();
    writer.join().unwrap();
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
}
