//! The memoization macros over a real redis-server: a `#[cached]` hit is one GET in one round trip, a
//! `#[multi_cached]` batch is one request when all keys hit and two when some miss, decorated functions fail
//! open while the server is down and resume caching after a restart, a corrupted entry is recomputed and
//! rewritten, and `#[cached_stampede]` runs the body once across threads through a RedLock on Redis.

#![cfg(feature = "redis")]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use cache_runtime::{cached, cached_stampede, caches, multi_cached, AliasConfig, Error};
use support::{admin, calls, observed};

const NO_HANG: Duration = Duration::from_secs(10);

fn alias(port: u16) -> AliasConfig {
    AliasConfig::new("redis")
        .option("endpoint", "127.0.0.1")
        .option("port", port)
        .timeout(Duration::from_secs(2))
        .namespace("memo")
}

fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

static SQUARE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "redis_cached", ttl = 60)]
fn square(n: u64) -> u64 {
    SQUARE_CALLS.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[test]
fn a_cached_hit_is_exactly_one_get() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    caches::add("redis_cached", alias(server.port)).unwrap();

    let (cmds, requests) = observed(&mut admin, || assert_eq!(square(7), 49));
    assert_eq!(
        cmds,
        calls(&[("get", 1), ("set", 1)]),
        "a miss: GET, then SET PX"
    );
    // The miss also opened the pooled connection (one setup request).
    assert!(requests >= 2);

    let (cmds, requests) = observed(&mut admin, || assert_eq!(square(7), 49));
    assert_eq!(cmds, calls(&[("get", 1)]), "a hit: one GET, nothing else");
    assert_eq!(requests, 1, "one round trip");
    assert_eq!(count(&SQUARE_CALLS), 1);

    // Stored as JSON under the namespace, with the TTL in milliseconds.
    let key = format!("memo:{}", square_cache_key(7).unwrap());
    let stored: String = redis::cmd("GET").arg(&key).query(&mut admin).unwrap();
    assert_eq!(stored, "49");
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut admin).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
}

static NAME_CALLS: AtomicUsize = AtomicUsize::new(0);

#[multi_cached(alias = "redis_multi", keys_from_attr = "ids", ttl = 60)]
fn names(ids: Vec<u32>) -> HashMap<u32, String> {
    NAME_CALLS.fetch_add(1, Ordering::SeqCst);
    ids.into_iter()
        .map(|id| (id, format!("user{id}")))
        .collect()
}

#[test]
fn multi_cached_is_one_request_when_all_hit_and_two_when_some_miss() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    caches::add("redis_multi", alias(server.port)).unwrap();
    assert_eq!(names(vec![1, 2, 3]).len(), 3); // cold: also opens the connection

    let (cmds, requests) = observed(&mut admin, || {
        let found = names(vec![3, 1, 2]);
        assert_eq!(found[&2], "user2");
    });
    assert_eq!(cmds, calls(&[("mget", 1)]));
    assert_eq!(requests, 1, "all hit: one round trip");
    assert_eq!(count(&NAME_CALLS), 1);

    let (cmds, requests) = observed(&mut admin, || {
        let found = names(vec![1, 2, 3, 4, 5]);
        assert_eq!(found.len(), 5);
        assert_eq!(found[&5], "user5");
    });
    assert_eq!(
        cmds,
        calls(&[
            ("exec", 1),
            ("mget", 1),
            ("mset", 1),
            ("multi", 1),
            ("pexpire", 2)
        ])
    );
    assert_eq!(
        requests, 2,
        "some miss: one MGET, one MULTI/MSET/PEXPIRE/EXEC"
    );
    assert_eq!(count(&NAME_CALLS), 2);
}

static DOUBLE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "redis_fail_open")]
fn double(n: u32) -> u32 {
    DOUBLE_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

#[test]
fn decorated_functions_fail_open_while_the_server_is_down() {
    let mut server = support::redis_server();
    caches::add(
        "redis_fail_open",
        alias(server.port).timeout(Duration::from_millis(500)),
    )
    .unwrap();
    assert_eq!(double(2), 4);
    assert_eq!(double(2), 4);
    assert_eq!(count(&DOUBLE_CALLS), 1);

    server.kill();
    let started = Instant::now();
    for n in 0..5 {
        assert_eq!(double(n), n * 2, "the right value while Redis is down");
    }
    assert!(started.elapsed() < NO_HANG);
    assert_eq!(count(&DOUBLE_CALLS), 6, "every call ran the body");
    assert!(
        double_cache_get(2).is_err(),
        "the companion API reports the error"
    );

    server.restart();
    assert_eq!(double(2), 4, "no persistence: recomputed once");
    assert_eq!(double(2), 4);
    assert_eq!(
        count(&DOUBLE_CALLS),
        7,
        "cached again on the same shared instance"
    );
}

static PROFILE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "redis_corrupt")]
fn profile(id: u32) -> BTreeMap<String, u32> {
    PROFILE_CALLS.fetch_add(1, Ordering::SeqCst);
    BTreeMap::from([("id".to_string(), id)])
}

#[test]
fn a_corrupted_entry_is_a_miss_and_gets_rewritten() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    caches::add("redis_corrupt", alias(server.port)).unwrap();
    let key = format!("memo:{}", profile_cache_key(1).unwrap());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("\u{0}garbage")
        .query(&mut admin)
        .unwrap();
    assert!(matches!(
        profile_cache_get(1),
        Err(Error::Deserialize { .. })
    ));
    assert_eq!(profile(1)["id"], 1);
    assert_eq!(count(&PROFILE_CALLS), 1);
    let stored: String = redis::cmd("GET").arg(&key).query(&mut admin).unwrap();
    assert_eq!(stored, r#"{"id":1}"#);
    assert_eq!(profile(1)["id"], 1);
    assert_eq!(count(&PROFILE_CALLS), 1, "the rewritten entry is a hit");
}

static REPORT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached_stampede(alias = "redis_stampede", lease = 10)]
fn report(n: u64) -> u64 {
    REPORT_CALLS.fetch_add(1, Ordering::SeqCst);
    n + 1000
}

#[test]
fn stampede_runs_the_body_once_across_threads() {
    let server = support::redis_server();
    caches::add("redis_stampede", alias(server.port)).unwrap();
    let barrier = Barrier::new(8);
    let values: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    report(1)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(values, vec![1001; 8]);
    assert_eq!(count(&REPORT_CALLS), 1);
    assert_eq!(report(1), 1001);
    assert_eq!(count(&REPORT_CALLS), 1);
}
