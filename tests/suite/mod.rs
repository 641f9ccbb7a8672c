//! The command suite every byte-storing backend runs: the same assertions the memory tests make, written
//! against a fresh, empty [`Cache`] so each backend's test file instantiates it with `command_suite!`.
//!
//! Backend-specific behaviour (what a backend cannot do, persistence, servers going down) lives in the
//! backend's own test file.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;

use cache_runtime::{Cache, Error, OptimisticLock, RedLock, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
}

pub fn user() -> User {
    User {
        id: 7,
        name: "ann".into(),
        tags: vec!["admin".into()],
    }
}

/// Keys that are hostile to text protocols and key-value stores, all distinct.
pub fn hostile_keys() -> Vec<String> {
    vec![
        "plain".into(),
        "with space".into(),
        "with  two  spaces".into(),
        "crlf\r\nset injected 0 0 1\r\nx".into(),
        "lf\nonly".into(),
        "nul\0byte".into(),
        "tab\there".into(),
        "\u{7f}del".into(),
        "unicodé ключ 鍵 🔑".into(),
        "k".repeat(1024),
        "k".repeat(250),
        "k".repeat(251),
        "#sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
        "\u{1}\u{2}\u{3}".into(),
        String::new(),
    ]
}

/// Generates one `#[test]` per suite function, each on a cache made by `$make`: an expression evaluated per
/// test giving `(guard, cache)`, where the guard (a server, a temporary directory) lives until the test ends.
#[macro_export]
macro_rules! command_suite {
    ($make:expr) => {
        $crate::command_suite!(@tests $make;
            get_set_roundtrip_typed_values,
            stored_none_is_a_hit,
            add_only_if_absent_and_keeps_existing_value,
            multi_get_and_multi_set_keep_input_order,
            exists_and_delete_count,
            increment_starts_at_zero_and_goes_negative,
            increment_rejects_non_integers_and_leaves_them,
            concurrent_increments_lose_no_update,
            concurrent_adds_have_one_winner,
            expire_reports_existence,
            zero_ttl_is_invalid_input,
            decode_failure_leaves_bytes_untouched,
            hostile_keys_are_distinct_and_inject_nothing,
            namespaces_isolate_keys,
            large_values_roundtrip,
            optimistic_lock_detects_concurrent_writes,
            red_lock_excludes_and_releases_only_its_own,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_guard, cache): (_, cache_runtime::Cache) = $make;
                suite::$name(&cache);
            }
        )*
    };
}

pub fn get_set_roundtrip_typed_values(cache: &Cache) {
    assert_eq!(cache.get::<User>("u").unwrap(), None);
    cache.set("u", &user(), Ttl::Default).unwrap();
    assert_eq!(cache.get::<User>("u").unwrap(), Some(user()));
    cache
        .set("u", &User { id: 8, ..user() }, Ttl::Default)
        .unwrap();
    assert_eq!(cache.get::<User>("u").unwrap().unwrap().id, 8);
    let map = BTreeMap::from([
        ("a".to_string(), vec![1.5f64, -2.0]),
        ("b".to_string(), vec![]),
    ]);
    cache.set("map", &map, Ttl::secs(600)).unwrap();
    assert_eq!(
        cache.get::<BTreeMap<String, Vec<f64>>>("map").unwrap(),
        Some(map)
    );
}

pub fn stored_none_is_a_hit(cache: &Cache) {
    cache.set("maybe", &None::<u32>, Ttl::Default).unwrap();
    assert_eq!(cache.get::<Option<u32>>("maybe").unwrap(), Some(None));
    assert!(cache.exists("maybe").unwrap());
}

pub fn add_only_if_absent_and_keeps_existing_value(cache: &Cache) {
    cache.add("k", &1u32, Ttl::Default).unwrap();
    match cache.add("k", &2u32, Ttl::Default) {
        Err(Error::KeyExists { key }) => assert_eq!(key, "k"),
        other => panic!("expected KeyExists, got {other:?}"),
    }
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(1));
    cache.delete("k").unwrap();
    cache.add("k", &3u32, Ttl::secs(60)).unwrap();
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(3));
}

pub fn multi_get_and_multi_set_keep_input_order(cache: &Cache) {
    let pairs: Vec<(String, u32)> = (0..150).map(|i| (format!("m{i}"), i)).collect();
    cache.multi_set(&pairs, Ttl::secs(600)).unwrap();
    let mut keys: Vec<String> = (0..150).rev().map(|i| format!("m{i}")).collect();
    keys.insert(3, "missing".into());
    keys.push("m7".into()); // a duplicate
    let got = cache.multi_get::<u32, _>(&keys).unwrap();
    assert_eq!(got.len(), keys.len());
    for (key, value) in keys.iter().zip(&got) {
        match key.strip_prefix('m').and_then(|n| n.parse::<u32>().ok()) {
            Some(n) => assert_eq!(*value, Some(n), "{key}"),
            None => assert_eq!(*value, None, "{key}"),
        }
    }
    assert_eq!(
        cache.multi_get::<u32, &str>(&[]).unwrap(),
        Vec::<Option<u32>>::new()
    );
}

pub fn exists_and_delete_count(cache: &Cache) {
    assert!(!cache.exists("e").unwrap());
    cache.set("e", &"x".to_string(), Ttl::Default).unwrap();
    assert!(cache.exists("e").unwrap());
    assert_eq!(cache.delete("e").unwrap(), 1);
    assert_eq!(cache.delete("e").unwrap(), 0);
    assert!(!cache.exists("e").unwrap());
}

pub fn increment_starts_at_zero_and_goes_negative(cache: &Cache) {
    assert_eq!(cache.increment("n", 1).unwrap(), 1);
    assert_eq!(cache.increment("n", 5).unwrap(), 6);
    assert_eq!(cache.increment("n", -10).unwrap(), -4);
    assert_eq!(cache.increment("n", -1).unwrap(), -5);
    assert_eq!(cache.increment("n", 7).unwrap(), 2);
    assert_eq!(cache.get::<i64>("n").unwrap(), Some(2));
    assert_eq!(cache.increment("neg", -3).unwrap(), -3);
    assert_eq!(cache.increment("zero", 0).unwrap(), 0);
    cache.set("preset", &40i64, Ttl::Default).unwrap();
    assert_eq!(cache.increment("preset", 2).unwrap(), 42);
    cache.set("big", &(i64::MAX - 1), Ttl::Default).unwrap();
    assert!(cache.increment("big", 5).is_err(), "overflow is an error");
    assert_eq!(
        cache.get::<i64>("big").unwrap(),
        Some(i64::MAX - 1),
        "and leaves the value"
    );
}

pub fn increment_rejects_non_integers_and_leaves_them(cache: &Cache) {
    cache.set("name", &"ann".to_string(), Ttl::Default).unwrap();
    match cache.increment("name", 1) {
        Err(Error::NotAnInteger { key }) => assert_eq!(key, "name"),
        other => panic!("expected NotAnInteger, got {other:?}"),
    }
    assert_eq!(cache.get::<String>("name").unwrap().as_deref(), Some("ann"));
    cache.set("float", &1.5f64, Ttl::Default).unwrap();
    assert!(matches!(
        cache.increment("float", -1),
        Err(Error::NotAnInteger { .. })
    ));
    assert_eq!(cache.get::<f64>("float").unwrap(), Some(1.5));
}

pub fn concurrent_increments_lose_no_update(cache: &Cache) {
    const THREADS: usize = 4;
    const ROUNDS: i64 = 150;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..ROUNDS {
                    cache.increment("counter", 3).unwrap();
                    // Odd threads also step down, crossing zero on the way: the signed path races too.
                    if t % 2 == 1 {
                        cache.increment("counter", -2).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let expected = THREADS as i64 * ROUNDS * 3 - (THREADS as i64 / 2) * ROUNDS * 2;
    assert_eq!(cache.get::<i64>("counter").unwrap(), Some(expected));
}

pub fn concurrent_adds_have_one_winner(cache: &Cache) {
    const THREADS: usize = 8;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                cache.add("race", &t, Ttl::Default).is_ok()
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(winners, 1);
}

pub fn expire_reports_existence(cache: &Cache) {
    cache.set("t", &1u8, Ttl::secs(100)).unwrap();
    assert!(cache.expire("t", Ttl::secs(200)).unwrap());
    assert!(cache.expire("t", Ttl::Never).unwrap());
    assert_eq!(cache.get::<u8>("t").unwrap(), Some(1));
    assert!(!cache.expire("absent", Ttl::secs(5)).unwrap());
}

pub fn zero_ttl_is_invalid_input(cache: &Cache) {
    assert!(matches!(
        cache.set("z", &1, Ttl::secs(0)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        cache.add("z", &1, Ttl::secs(0)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        cache.expire("z", Ttl::secs(0)),
        Err(Error::InvalidInput(_))
    ));
    assert!(!cache.exists("z").unwrap());
}

pub fn decode_failure_leaves_bytes_untouched(cache: &Cache) {
    cache.set("s", &"text".to_string(), Ttl::Default).unwrap();
    assert!(matches!(
        cache.get::<u64>("s"),
        Err(Error::Deserialize { .. })
    ));
    assert_eq!(cache.get::<String>("s").unwrap().as_deref(), Some("text"));
}

pub fn hostile_keys_are_distinct_and_inject_nothing(cache: &Cache) {
    cache
        .set("sentinel", &"still here".to_string(), Ttl::Default)
        .unwrap();
    let keys = hostile_keys();
    for (i, key) in keys.iter().enumerate() {
        cache.set(key, &i, Ttl::Default).unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(cache.get::<usize>(key).unwrap(), Some(i), "{key:?}");
        assert!(cache.exists(key).unwrap(), "{key:?}");
    }
    assert_eq!(
        cache.multi_get::<usize, _>(&keys).unwrap(),
        (0..keys.len()).map(Some).collect::<Vec<_>>()
    );
    // Nothing the keys carried ran as a command.
    assert_eq!(
        cache.get::<String>("sentinel").unwrap().as_deref(),
        Some("still here")
    );
    assert_eq!(cache.get::<String>("injected").unwrap(), None);
    for key in &keys {
        assert_eq!(
            cache.increment(&format!("{key}#n"), 2).unwrap(),
            2,
            "{key:?}"
        );
        assert_eq!(cache.delete(key).unwrap(), 1, "{key:?}");
    }
}

pub fn namespaces_isolate_keys(cache: &Cache) {
    let a = cache.with_namespace("suite-a");
    let b = cache.with_namespace("suite-b");
    a.set("k", &1, Ttl::Default).unwrap();
    b.set("k", &2, Ttl::Default).unwrap();
    assert_eq!(a.get::<i32>("k").unwrap(), Some(1));
    assert_eq!(b.get::<i32>("k").unwrap(), Some(2));
    assert_eq!(a.delete("k").unwrap(), 1);
    assert_eq!(b.get::<i32>("k").unwrap(), Some(2));
}

pub fn large_values_roundtrip(cache: &Cache) {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    cache.set("big", &big, Ttl::Default).unwrap();
    assert_eq!(cache.get::<Vec<u8>>("big").unwrap(), Some(big.clone()));
    let text = "x".repeat(300_000);
    cache
        .multi_set(&[("t1", text.clone()), ("t2", text.clone())], Ttl::Default)
        .unwrap();
    assert_eq!(
        cache.multi_get::<String, _>(&["t1", "t2"]).unwrap(),
        vec![Some(text.clone()), Some(text)]
    );
}

pub fn optimistic_lock_detects_concurrent_writes(cache: &Cache) {
    cache.set("balance", &10, Ttl::Default).unwrap();
    let lock = OptimisticLock::new(cache, "balance").unwrap();
    let seen: i32 = lock.value().unwrap().unwrap();
    lock.cas(&(seen + 5), Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("balance").unwrap(), Some(15));

    let stale = OptimisticLock::new(cache, "balance").unwrap();
    cache.set("balance", &0, Ttl::Default).unwrap();
    assert!(matches!(
        stale.cas(&1, Ttl::Default),
        Err(Error::OptimisticLock { .. })
    ));
    assert_eq!(cache.get::<i32>("balance").unwrap(), Some(0));

    // Rewriting the same value is still a change.
    let same = OptimisticLock::new(cache, "balance").unwrap();
    cache.set("balance", &0, Ttl::Default).unwrap();
    assert!(same.cas(&9, Ttl::Default).is_err());

    // An increment is a change too.
    let counted = OptimisticLock::new(cache, "balance").unwrap();
    cache.increment("balance", 1).unwrap();
    assert!(counted.cas(&9, Ttl::Default).is_err());

    // On an absent key, cas creates it unless someone else did first.
    let fresh = OptimisticLock::new(cache, "new").unwrap();
    assert_eq!(fresh.value::<i32>().unwrap(), None);
    fresh.cas(&1, Ttl::Default).unwrap();
    let late = OptimisticLock::new(cache, "new2").unwrap();
    cache.set("new2", &2, Ttl::Default).unwrap();
    assert!(late.cas(&3, Ttl::Default).is_err());
}

pub fn red_lock_excludes_and_releases_only_its_own(cache: &Cache) {
    let lease = std::time::Duration::from_secs(30);
    let lock = RedLock::new(cache, "job", lease).unwrap();
    let guard = lock.try_acquire().unwrap().expect("free");
    let rival = RedLock::new(cache, "job", lease).unwrap();
    assert!(rival.try_acquire().unwrap().is_none());
    assert!(guard.release().unwrap());
    let rival_guard = rival.try_acquire().unwrap().expect("released");

    // A holder whose lock was taken over (its lease ran out) cannot release the new holder's lock.
    drop(rival_guard);
    let first = lock.try_acquire().unwrap().expect("free again");
    cache
        .set("job-lock", &"someone else".to_string(), Ttl::Default)
        .unwrap();
    assert!(!first.release().unwrap());
    assert_eq!(
        cache.get::<String>("job-lock").unwrap().as_deref(),
        Some("someone else")
    );
}
