//! The Redis backend against real redis-server processes started by the test harness on 127.0.0.1 and free
//! ports: the command suite (single server and a 3-master cluster), round trips counted by the server,
//! locks, database/password/ACL user/TLS, faults, and interop with Python's aiocache.

#![cfg(feature = "redis")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{
    AliasConfig, Cache, Config, Error, JsonSerializer, OptimisticLock, RawReply, RedLock,
    RedisBackend, StringSerializer, Ttl,
};
use parking_lot::Mutex;
use support::{admin, calls, observed, Server};
use tracing_subscriber::util::SubscriberInitExt;

/// A bound for "did not hang": far above every configured timeout, far below forever.
const NO_HANG: Duration = Duration::from_secs(10);

fn alias(port: u16) -> AliasConfig {
    AliasConfig::new("redis")
        .option("endpoint", "127.0.0.1")
        .option("port", port)
        .timeout(Duration::from_secs(2))
}

fn cache_on(server: &Server, namespace: &str) -> Cache {
    alias(server.port)
        .namespace(namespace)
        .build_cache("test")
        .unwrap()
}

/// Milliseconds to live of a key of `cache` (-1: none, -2: absent), asked through `raw`.
fn pttl(cache: &Cache, key: &str) -> i64 {
    match cache.raw("PTTL", &[cache.build_key(key)]).unwrap() {
        RawReply::Int(ms) => ms,
        other => panic!("PTTL answered {other:?}"),
    }
}

fn assert_ttl_within(cache: &Cache, key: &str, max_ms: i64) {
    let ms = pttl(cache, key);
    assert!(
        ms > 0 && ms <= max_ms,
        "PTTL of `{key}` is {ms}, expected 1..={max_ms}"
    );
}

/// Every command of the contract, on whatever server or cluster `cache` points at.
fn command_suite(cache: &Cache) {
    let c = cache.with_namespace("suite");
    c.clear().unwrap();

    // add: SET NX PX
    c.add("a", &1u32, Ttl::Default).unwrap();
    assert!(matches!(c.add("a", &2u32, Ttl::Default), Err(Error::KeyExists { key }) if key == "a"));
    assert_eq!(c.get::<u32>("a").unwrap(), Some(1));
    assert_eq!(pttl(&c, "a"), -1);
    c.add("a_ttl", &1u32, Ttl::secs(60)).unwrap();
    assert_ttl_within(&c, "a_ttl", 60_000);

    // get: a miss is None, a stored None is a hit
    assert_eq!(c.get::<u32>("missing").unwrap(), None);
    c.set("none", &Option::<u32>::None, Ttl::Default).unwrap();
    assert_eq!(c.get::<Option<u32>>("none").unwrap(), Some(None));

    // set: millisecond TTL kept; Never persists
    c.set("ttl", &"v".to_string(), Duration::from_millis(1500))
        .unwrap();
    assert_ttl_within(&c, "ttl", 1500);
    assert!(
        pttl(&c, "ttl") > 1000,
        "1500 ms is kept as milliseconds, not rounded to seconds"
    );
    c.set("ttl", &"v".to_string(), Ttl::Never).unwrap();
    assert_eq!(pttl(&c, "ttl"), -1);

    // multi_set / multi_get over keys in many slots
    let pairs: Vec<(String, u32)> = (0..20).map(|i| (format!("m{i}"), i)).collect();
    c.multi_set(&pairs, Ttl::secs(60)).unwrap();
    for (k, _) in &pairs {
        assert_ttl_within(&c, k, 60_000);
    }
    assert_eq!(
        c.multi_get::<u32, _>(&["m3", "nope", "m17", "m0"]).unwrap(),
        vec![Some(3), None, Some(17), Some(0)]
    );
    c.multi_set(&[("p1", 1u32), ("p2", 2)], Ttl::Never).unwrap();
    assert_eq!(pttl(&c, "p1"), -1);
    assert_eq!(
        c.multi_get::<u32, _>(&["p2", "p1"]).unwrap(),
        vec![Some(2), Some(1)]
    );

    // exists
    assert!(c.exists("p1").unwrap());
    assert!(!c.exists("nope").unwrap());

    // increment: absent starts at 0; a non-integer is NotAnInteger and stays as it was
    assert_eq!(c.increment("counter", 5).unwrap(), 5);
    assert_eq!(c.increment("counter", -3).unwrap(), 2);
    assert_eq!(c.get::<i64>("counter").unwrap(), Some(2));
    c.set("word", &"abc".to_string(), Ttl::Default).unwrap();
    assert!(matches!(c.increment("word", 1), Err(Error::NotAnInteger { key }) if key == "word"));
    assert_eq!(c.get::<String>("word").unwrap().as_deref(), Some("abc"));
    c.set("big", &i64::MAX, Ttl::Default).unwrap();
    assert!(matches!(c.increment("big", 1), Err(Error::InvalidInput(_))));

    // delete
    assert_eq!(c.delete("a").unwrap(), 1);
    assert_eq!(c.delete("a").unwrap(), 0);

    // expire: PEXPIRE, PERSIST
    assert!(c.expire("counter", Duration::from_millis(30_500)).unwrap());
    assert_ttl_within(&c, "counter", 30_500);
    assert!(c.expire("counter", Ttl::Never).unwrap());
    assert_eq!(pttl(&c, "counter"), -1);
    assert!(
        c.expire("counter", Ttl::Never).unwrap(),
        "a key without TTL still exists"
    );
    assert!(!c.expire("missing", Ttl::secs(1)).unwrap());
    assert!(!c.expire("missing", Ttl::Never).unwrap());
    assert!(matches!(
        c.expire("counter", Ttl::secs(0)),
        Err(Error::InvalidInput(_))
    ));

    // keys: SCAN MATCH within the namespace
    let expected: Vec<String> = std::iter::once("m1".to_string())
        .chain((10..20).map(|i| format!("m{i}")))
        .collect();
    assert_eq!(c.keys("m1*").unwrap(), expected);
    assert_eq!(c.keys("p?").unwrap(), vec!["p1", "p2"]);

    // a namespace with glob characters matches only itself
    let odd = cache.with_namespace("we*ird[ns]");
    odd.set("k", &1u8, Ttl::Default).unwrap();
    cache
        .with_namespace("weXird[ns]")
        .set("k", &1u8, Ttl::Default)
        .unwrap();
    assert_eq!(odd.keys("*").unwrap(), vec!["k"]);
    assert_eq!(odd.clear().unwrap(), 1);
    assert_eq!(
        cache.with_namespace("weXird[ns]").get::<u8>("k").unwrap(),
        Some(1)
    );
    assert_eq!(cache.with_namespace("weXird[ns]").clear().unwrap(), 1);

    // clear: only this namespace, in SCAN batches
    let other = cache.with_namespace("suite-other");
    other.set("keep", &1u8, Ttl::Default).unwrap();
    let many: Vec<(String, u8)> = (0..2500).map(|i| (format!("bulk:{i}"), 0)).collect();
    c.multi_set(&many, Ttl::secs(300)).unwrap();
    let present = c.keys("*").unwrap().len() as u64;
    assert!(present > 2500);
    assert_eq!(c.clear().unwrap(), present);
    assert!(c.keys("*").unwrap().is_empty());
    assert_eq!(other.get::<u8>("keep").unwrap(), Some(1));

    // raw: any command
    assert_eq!(
        c.raw::<&str>("PING", &[]).unwrap(),
        RawReply::Status("PONG".into())
    );
    assert_eq!(
        c.raw("ECHO", &["hi"]).unwrap(),
        RawReply::Bytes(b"hi".to_vec())
    );
    assert!(matches!(
        c.raw::<&str>("NOSUCHCOMMAND", &[]),
        Err(Error::Backend { .. })
    ));
    assert!(matches!(
        c.raw::<&str>("  ", &[]),
        Err(Error::InvalidInput(_))
    ));

    lock_suite(&c);
    c.clear().unwrap();
    other.clear().unwrap();
}

/// RedLock and OptimisticLock through the backend's add / compare_and_delete / get_versioned / compare_and_set.
fn lock_suite(c: &Cache) {
    let lock = RedLock::new(c, "job", Duration::from_secs(5)).unwrap();
    let guard = lock.try_acquire().unwrap().expect("the lock is free");
    assert_ttl_within(c, "job-lock", 5000);
    let rival = RedLock::new(c, "job", Duration::from_secs(5)).unwrap();
    assert!(rival.try_acquire().unwrap().is_none());
    assert!(guard.release().unwrap());
    let rival_guard = rival.try_acquire().unwrap().expect("released");
    drop(rival_guard);
    assert!(
        !c.exists("job-lock").unwrap(),
        "dropping the guard releases"
    );

    // Lease expiry: the server drops the lock; the late holder cannot release the next holder's lock.
    let short = RedLock::new(c, "lease", Duration::from_millis(100)).unwrap();
    let late = short.try_acquire().unwrap().expect("free");
    let next = RedLock::new(c, "lease", Duration::from_secs(5)).unwrap();
    let next_guard = next.acquire(NO_HANG).unwrap().expect("the lease runs out");
    assert!(!late.release().unwrap(), "the lock is someone else's now");
    assert!(c.exists("lease-lock").unwrap());
    assert!(next_guard.release().unwrap());

    // Optimistic lock: compare-and-set on the stored bytes.
    c.set("balance", &10, Ttl::Default).unwrap();
    let ol = OptimisticLock::new(c, "balance").unwrap();
    assert_eq!(ol.value::<i32>().unwrap(), Some(10));
    ol.cas(&15, Ttl::secs(60)).unwrap();
    assert_eq!(c.get::<i32>("balance").unwrap(), Some(15));
    assert_ttl_within(c, "balance", 60_000);
    let stale = OptimisticLock::new(c, "balance").unwrap();
    c.set("balance", &0, Ttl::Default).unwrap();
    assert!(matches!(
        stale.cas(&1, Ttl::Default),
        Err(Error::OptimisticLock { .. })
    ));
    assert_eq!(c.get::<i32>("balance").unwrap(), Some(0));
    let absent = OptimisticLock::new(c, "fresh").unwrap();
    absent.cas(&1, Ttl::Default).unwrap();
    let raced = OptimisticLock::new(c, "fresh2").unwrap();
    c.set("fresh2", &5, Ttl::Default).unwrap();
    assert!(matches!(
        raced.cas(&1, Ttl::Default),
        Err(Error::OptimisticLock { .. })
    ));
}

#[test]
fn command_suite_on_one_server() {
    let server = support::redis_server();
    command_suite(&cache_on(&server, "main"));
}

#[test]
fn clear_without_namespace_flushes_the_database_only() {
    let server = support::redis_server();
    let db1 = alias(server.port)
        .option("db", 1u32)
        .build_cache("db1")
        .unwrap();
    let db0 = cache_on(&server, "zero");
    db0.set("k", &1u8, Ttl::Default).unwrap();
    db1.multi_set(&[("a", 1u8), ("b", 2), ("c", 3)], Ttl::Default)
        .unwrap();
    assert_eq!(db1.clear().unwrap(), 3);
    assert!(db1.keys("*").unwrap().is_empty());
    assert_eq!(
        db0.get::<u8>("k").unwrap(),
        Some(1),
        "FLUSHDB leaves other databases alone"
    );
}

#[test]
fn expiry_is_enforced_by_the_server() {
    let server = support::redis_server();
    let cache = cache_on(&server, "exp");
    cache.set("short", &1u8, Duration::from_millis(50)).unwrap();
    let deadline = Instant::now() + NO_HANG;
    while cache.get::<u8>("short").unwrap().is_some() {
        assert!(Instant::now() < deadline, "a 50 ms TTL did not expire");
        std::thread::yield_now();
    }
}

#[test]
fn a_hit_is_one_round_trip_and_batches_are_one_request_each() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    let cache = cache_on(&server, "rt");
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let pairs: Vec<(String, u32)> = keys.iter().cloned().zip(0..).collect();
    cache.multi_set(&pairs, Ttl::secs(60)).unwrap(); // also opens the pooled connection

    let (cmds, requests) = observed(&mut admin, || {
        assert_eq!(cache.get::<u32>("k3").unwrap(), Some(3))
    });
    assert_eq!(
        cmds,
        calls(&[("get", 1)]),
        "a get is one GET, no PING or other command"
    );
    assert_eq!(requests, 1);

    let (cmds, requests) = observed(&mut admin, || {
        let found = cache.multi_get::<u32, _>(&keys).unwrap();
        assert!(found.iter().all(Option::is_some));
    });
    assert_eq!(cmds, calls(&[("mget", 1)]), "all hits: one MGET");
    assert_eq!(requests, 1);

    let (cmds, requests) = observed(&mut admin, || {
        cache.multi_set(&pairs, Ttl::secs(60)).unwrap()
    });
    assert_eq!(
        cmds,
        calls(&[("multi", 1), ("mset", 1), ("pexpire", 10), ("exec", 1)])
    );
    assert_eq!(
        requests, 1,
        "MULTI, MSET, PEXPIRE x10, EXEC are sent together"
    );

    // The multi_cached miss path: one MGET, then one transaction storing what was missing.
    let wanted: Vec<String> = (5..15).map(|i| format!("k{i}")).collect();
    let (cmds, requests) = observed(&mut admin, || {
        let found = cache.multi_get::<u32, _>(&wanted).unwrap();
        let missing: Vec<(String, u32)> = wanted
            .iter()
            .zip(&found)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| (k.clone(), 0))
            .collect();
        assert_eq!(missing.len(), 5);
        cache.multi_set(&missing, Ttl::secs(60)).unwrap();
    });
    assert_eq!(
        cmds,
        calls(&[
            ("exec", 1),
            ("mget", 1),
            ("mset", 1),
            ("multi", 1),
            ("pexpire", 5)
        ])
    );
    assert_eq!(requests, 2);
}

#[test]
fn locks_hold_across_caches_sharing_a_server() {
    let server = support::redis_server();
    let a = cache_on(&server, "locks");
    let b = cache_on(&server, "locks");
    let lock = RedLock::new(&a, "report", Duration::from_secs(10)).unwrap();
    let guard = lock.try_acquire().unwrap().unwrap();
    assert!(RedLock::new(&b, "report", Duration::from_secs(10))
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_none());
    drop(guard);
    assert!(RedLock::new(&b, "report", Duration::from_secs(10))
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_some());
}

#[test]
fn database_number_and_password() {
    let server = support::redis_server_with(&["--requirepass", "pw-for-tests-1"]);
    let cache = alias(server.port)
        .option("password", "pw-for-tests-1")
        .option("db", 3u32)
        .namespace("auth")
        .build_cache("auth")
        .unwrap();
    cache.set("k", &7u32, Ttl::Default).unwrap();
    let mut admin = redis::Client::open(format!(
        "redis://:pw-for-tests-1@127.0.0.1:{}/3",
        server.port
    ))
    .unwrap()
    .get_connection()
    .unwrap();
    let stored: Option<String> = redis::cmd("GET").arg("auth:k").query(&mut admin).unwrap();
    assert_eq!(stored.as_deref(), Some("7"));
    let _: () = redis::cmd("SELECT").arg(0).query(&mut admin).unwrap();
    let in_db0: Option<String> = redis::cmd("GET").arg("auth:k").query(&mut admin).unwrap();
    assert_eq!(in_db0, None);

    let wrong = alias(server.port)
        .option("password", "not-the-pw-2")
        .build_cache("wrong")
        .unwrap();
    let err = wrong.get::<u32>("k").unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    let backend = RedisBackend::builder()
        .port(server.port)
        .password("not-the-pw-2")
        .build()
        .unwrap();
    for text in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{wrong:?}"),
        format!("{backend:?} {backend}"),
    ] {
        assert!(!text.contains("not-the-pw-2"), "password shown in: {text}");
    }
    let none = alias(server.port).build_cache("none").unwrap();
    assert!(matches!(none.get::<u32>("k"), Err(Error::Backend { .. })));
}

#[test]
fn acl_user_from_a_url_and_no_password_in_output_or_logs() {
    let mut server = support::redis_server();
    let mut admin = admin(server.port);
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">app-pw-3", "~*", "+@all"])
        .query(&mut admin)
        .unwrap();
    let url = format!(
        "redis://app:app-pw-3@127.0.0.1:{}/0?namespace=acl&timeout=2",
        server.port
    );
    let cache = Cache::from_url(&url).unwrap();
    assert_eq!(cache.namespace(), Some("acl"));
    assert_eq!(
        cache.raw::<&str>("ACL", &["WHOAMI"]).unwrap(),
        RawReply::Bytes(b"app".to_vec())
    );

    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .with_writer(move || LogSink(sink.clone()))
        .finish();
    {
        let _logging = subscriber.set_default();
        cache.set("k", &1u8, Ttl::Default).unwrap();
        // The restart forgets the ACL user: the reconnect fails to authenticate, and says so.
        server.restart();
        let err = cache.get::<u8>("k").unwrap_err();
        for text in [format!("{err}"), format!("{err:?}")] {
            assert!(!text.contains("app-pw-3"), "password shown in: {text}");
        }
        let bad = Cache::from_url(&format!(
            "redis://app:wrong-pw-4@127.0.0.1:{}/0",
            server.port
        ))
        .unwrap();
        let err = bad.get::<u8>("k").unwrap_err();
        assert!(!format!("{err} {err:?} {bad:?}").contains("wrong-pw-4"));
    }
    let logs = String::from_utf8(logs.lock().clone()).unwrap();
    assert!(
        logs.contains("reconnecting"),
        "the reconnect was logged: {logs}"
    );
    assert!(
        !logs.contains("app-pw-3") && !logs.contains("wrong-pw-4"),
        "password in logs: {logs}"
    );
    let backend = RedisBackend::builder().url(&url).build().unwrap();
    for text in [
        format!("{cache:?}"),
        format!("{backend:?}"),
        backend.to_string(),
    ] {
        assert!(!text.contains("app-pw-3"), "password shown in: {text}");
    }
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tls_with_a_private_authority() {
    let tls = support::redis_tls_server();
    let port = tls.server.port;
    let ca = tls.ca_file().to_string_lossy().into_owned();
    let cache = alias(port)
        .option("tls", true)
        .option("tls_ca_file", ca.as_str())
        .namespace("tls")
        .build_cache("tls")
        .unwrap();
    cache
        .set("k", &"secret".to_string(), Ttl::secs(60))
        .unwrap();
    assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("secret"));
    let backend = RedisBackend::builder()
        .port(port)
        .tls(true)
        .tls_ca_file(&ca)
        .build()
        .unwrap();
    assert_eq!(backend.location(), format!("rediss://127.0.0.1:{port}/0"));

    let from_url = Cache::from_url(&format!(
        "rediss://127.0.0.1:{port}/0?namespace=tls&tls_ca_file={ca}"
    ))
    .unwrap();
    assert_eq!(
        from_url.get::<String>("k").unwrap().as_deref(),
        Some("secret")
    );

    // The system's roots do not know this authority: a clear error, not a hang.
    let untrusted = alias(port)
        .option("tls", true)
        .build_cache("untrusted")
        .unwrap();
    let started = Instant::now();
    assert!(matches!(
        untrusted.get::<String>("k"),
        Err(Error::Backend { .. })
    ));
    // Plain text to a TLS port: an error within the timeout.
    let plain = alias(port)
        .timeout(Duration::from_millis(500))
        .build_cache("plain")
        .unwrap();
    assert!(plain.get::<String>("k").is_err());
    assert!(started.elapsed() < NO_HANG);
}

#[test]
fn killed_server_fails_fast_and_the_same_cache_recovers_after_restart() {
    let mut server = support::redis_server();
    let cache = alias(server.port)
        .timeout(Duration::from_millis(500))
        .namespace("fault")
        .build_cache("fault")
        .unwrap();
    cache.set("k", &1u32, Ttl::Default).unwrap();
    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let err = cache.get::<u32>("k").unwrap_err();
        assert!(
            matches!(err, Error::Backend { .. } | Error::Timeout { .. }),
            "{err:?}"
        );
        assert!(started.elapsed() < NO_HANG);
        assert!(cache.set("k", &2u32, Ttl::Default).is_err());
    }
    server.restart();
    cache.set("k", &3u32, Ttl::Default).unwrap();
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(3));
}

#[test]
fn pooled_connections_survive_a_restart_without_a_failed_command() {
    let mut server = support::redis_server();
    let cache = alias(server.port)
        .namespace("restart")
        .build_cache("restart")
        .unwrap();
    // Several pooled connections at once.
    std::thread::scope(|s| {
        for t in 0..4 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..50 {
                    cache.set(&format!("{t}:{i}"), &i, Ttl::Default).unwrap();
                }
            });
        }
    });
    server.restart();
    // No persistence: the data is gone, but every command works on the same cache.
    for cmd in 0..4 {
        assert_eq!(
            cache.get::<u32>("0:1").unwrap(),
            None,
            "command {cmd} after the restart"
        );
    }
    assert_eq!(cache.increment("n", 1).unwrap(), 1);
}

fn signal(server: &Server, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

#[test]
fn an_unresponsive_server_times_out_and_the_cache_recovers() {
    let server = support::redis_server();
    let cache = alias(server.port)
        .timeout(Duration::from_millis(300))
        .namespace("stop")
        .build_cache("stop")
        .unwrap();
    cache.set("k", &1u32, Ttl::Default).unwrap();
    signal(&server, "-STOP");
    let started = Instant::now();
    let err = cache.get::<u32>("k").unwrap_err();
    let waited = started.elapsed();
    let fresh_err = alias(server.port)
        .timeout(Duration::from_millis(300))
        .build_cache("fresh")
        .unwrap()
        .get::<u32>("k")
        .unwrap_err();
    signal(&server, "-CONT");
    assert!(
        matches!(err, Error::Timeout { command: "get", .. }),
        "{err:?}"
    );
    assert!(waited < NO_HANG, "waited {waited:?}");
    assert!(
        matches!(fresh_err, Error::Timeout { .. }),
        "connecting is bounded too: {fresh_err:?}"
    );
    // The timed-out connection was closed, so its late reply cannot answer the next command.
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(1));
    assert_eq!(cache.increment("n", 2).unwrap(), 2);
}

#[test]
fn corrupted_and_foreign_values_are_errors_not_panics() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    let cache = cache_on(&server, "c");
    let _: () = redis::cmd("SET")
        .arg("c:bad")
        .arg("{not json")
        .query(&mut admin)
        .unwrap();
    assert!(matches!(
        cache.get::<BTreeMap<String, u32>>("bad"),
        Err(Error::Deserialize { .. })
    ));
    let kept: String = redis::cmd("GET").arg("c:bad").query(&mut admin).unwrap();
    assert_eq!(kept, "{not json", "the stored bytes are left as they were");
    let _: () = redis::cmd("RPUSH")
        .arg("c:list")
        .arg("x")
        .query(&mut admin)
        .unwrap();
    assert!(matches!(
        cache.get::<String>("list"),
        Err(Error::Backend { .. })
    ));
    assert!(matches!(
        cache.increment("list", 1),
        Err(Error::NotAnInteger { .. })
    ));
    assert!(matches!(
        cache.multi_get::<u32, _>(&["bad"]),
        Err(Error::Deserialize { .. })
    ));
}

#[test]
fn the_pool_bounds_connections_and_shares_them_across_threads() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    let cache = alias(server.port)
        .option("pool_max_size", 2u32)
        .namespace("pool")
        .build_cache("pool")
        .unwrap();
    cache.set("k", &1u32, Ttl::Default).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert_eq!(cache.get::<u32>("k").unwrap(), Some(1));
                }
            });
        }
    });
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(
        clients.lines().count() <= 3,
        "at most 2 pooled + this one:\n{clients}"
    );
    cache.close().unwrap();
    assert_eq!(
        cache.get::<u32>("k").unwrap(),
        Some(1),
        "close, then reconnect on next use"
    );
}

#[test]
fn config_errors_name_the_alias_and_field() {
    let check = |json: &str, needles: &[&str]| {
        let err = Config::from_json(json)
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        for needle in needles {
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
    };
    check(
        r#"{"default": {"cache": "memory"}, "r": {"cache": "redis", "port": "x"}}"#,
        &["alias `r`", "field `port`"],
    );
    check(
        r#"{"default": {"cache": "memory"}, "r": {"cache": "redis", "prot": 1}}"#,
        &["alias `r`", "unknown field `prot`"],
    );
    check(
        r#"{"default": {"cache": "memory"}, "r": {"cache": "redis", "nodes": ["127.0.0.1:7000"], "db": 2}}"#,
        &["alias `r`", "field `db`"],
    );
    check(
        r#"{"default": {"cache": "memory"}, "r": {"cache": "redis", "url": "redis://h:1", "port": 2}}"#,
        &["alias `r`", "field `port`"],
    );
    check(
        r#"{"default": {"cache": "memory"}, "r": {"cache": "redis", "port": 70000}}"#,
        &["alias `r`", "field `port`"],
    );
    // aiocache's own config shape is accepted as it is.
    Config::from_json(
        r#"{"default": {"cache": "aiocache.RedisCache", "endpoint": "127.0.0.1", "port": 6379, "timeout": 1,
            "serializer": {"class": "aiocache.serializers.JsonSerializer"}, "pool_max_size": 4,
            "create_connection_timeout": 0.5, "ssl": false}}"#,
    )
    .unwrap()
    .validate()
    .unwrap();
    let err = RedisBackend::builder()
        .password("pw-5")
        .url("redis://:pw-5@h:1")
        .endpoint("x")
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains("pw-5"));
}

#[test]
fn unreachable_server_is_a_backend_error_without_credentials() {
    let port = support::free_port();
    let cache = Cache::from_url(&format!("redis://u:pw-6@127.0.0.1:{port}/0?timeout=0.5")).unwrap();
    let started = Instant::now();
    let err = cache.get::<u8>("k").unwrap_err();
    assert!(started.elapsed() < NO_HANG);
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    let text = format!("{err} {err:?} {cache:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("pw-6"), "{text}");
}

#[test]
fn redis_cluster_runs_the_command_suite_across_slots() {
    let cluster = support::redis_cluster();
    let cache = AliasConfig::new("redis")
        .option("nodes", cluster.addrs())
        .timeout(Duration::from_secs(5))
        .build_cache("cluster")
        .unwrap();
    // The suite's 20 multi-key entries spread over several slots on several masters.
    let slots: BTreeSet<i64> = (0..20)
        .map(|i| {
            match cache
                .raw("CLUSTER", &["KEYSLOT".to_string(), format!("suite:m{i}")])
                .unwrap()
            {
                RawReply::Int(slot) => slot,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(slots.len() > 10, "{slots:?}");
    command_suite(&cache);

    // The same alias shape from a URL, seeded by one node.
    let url = format!("redis://{}?cluster=true&namespace=url", cluster.addrs()[1]);
    let from_url = Cache::from_url(&url).unwrap();
    let pairs: Vec<(String, u32)> = (0..50).map(|i| (format!("k{i}"), i)).collect();
    from_url.multi_set(&pairs, Ttl::Default).unwrap();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let found = cache
        .with_namespace("url")
        .multi_get::<u32, _>(&keys)
        .unwrap();
    assert_eq!(found, (0..50).map(Some).collect::<Vec<_>>());
    assert_eq!(from_url.keys("k4*").unwrap().len(), 11);
    // Without namespace: FLUSHDB on every master, counting what they held.
    let everything = cache.without_namespace();
    assert_eq!(everything.clear().unwrap(), 50);
    assert!(everything.keys("*").unwrap().is_empty());
}

fn python() -> PathBuf {
    let python = support::require("python3", "python3");
    let ok = Command::new(&python)
        .args(["-c", "import aiocache, redis"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the interop test needs Python's aiocache: run `python3 -m pip install 'aiocache[redis]==0.12.3'` \
         (or `scripts/test`, which installs it)"
    );
    python
}

fn run_python(port: u16, mode: &str) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/aiocache_redis.py");
    let out = Command::new(python())
        .arg(&script)
        .args([port.to_string().as_str(), mode])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {mode} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn python_aiocache_reads_what_we_write_and_we_read_what_it_writes() {
    use serde_json::json;
    let server = support::redis_server();
    let json_cache = Cache::builder()
        .backend(RedisBackend::builder().port(server.port).build().unwrap())
        .serializer(JsonSerializer)
        .namespace("ns")
        .build()
        .unwrap();
    let str_cache = Cache::builder()
        .backend_shared(json_cache.backend().clone())
        .serializer(StringSerializer)
        .namespace("ns")
        .build()
        .unwrap();

    let dict = json!({"name": "Zoë", "tags": ["x", "y"], "n": 7, "f": 2.25, "none": null, "nested": {"ok": true}});
    json_cache.set("rs:dict", &dict, Ttl::Default).unwrap();
    json_cache
        .set("rs:list", &vec![1, 2, 3], Ttl::Default)
        .unwrap();
    let unicode = "日本語 ✓ \"quoted\" \\ back\nslash \u{1F600}".to_string();
    json_cache
        .set("rs:unicode", &unicode, Ttl::Default)
        .unwrap();
    json_cache
        .set("rs:none", &Option::<u32>::None, Ttl::Default)
        .unwrap();
    json_cache
        .multi_set(&[("rs:m1", json!({"a": 1}))], Ttl::secs(100))
        .unwrap();
    str_cache
        .set("rs:text", &"héllo".to_string(), Ttl::Default)
        .unwrap();
    str_cache.set("rs:number", &42u32, Ttl::Default).unwrap();
    json_cache.increment("rs:counter", 3).unwrap();
    json_cache.set("rs:ttl", &1u8, Ttl::secs(100)).unwrap();

    let read = run_python(server.port, "read");
    assert_eq!(read["dict"], dict);
    assert_eq!(read["list"], json!([1, 2, 3]));
    assert_eq!(read["unicode"], json!(unicode));
    assert_eq!(read["none_exists"], json!(true));
    assert_eq!(
        read["none"],
        json!("missing"),
        "aiocache reads a stored null as a miss"
    );
    assert_eq!(read["multi"], json!([[1, 2, 3], null, {"a": 1}]));
    assert_eq!(read["text"], json!("héllo"));
    assert_eq!(read["number"], json!("42"));
    assert_eq!(read["counter"], json!(4));
    assert_eq!(read["ttl_key_exists"], json!(true));
    assert_eq!(json_cache.get::<i64>("rs:counter").unwrap(), Some(4));

    assert_eq!(run_python(server.port, "write"), json!({"ok": true}));
    let got: serde_json::Value = json_cache.get("py:dict").unwrap().unwrap();
    assert_eq!(
        got,
        json!({"name": "Zoë", "tags": ["a", "b"], "n": 3, "f": 1.5, "none": null, "nested": {"x": [1, {"y": true}]}})
    );
    assert_eq!(
        json_cache.get::<Option<u32>>("py:none").unwrap(),
        Some(None)
    );
    assert_eq!(
        json_cache.get::<String>("py:ttl").unwrap().as_deref(),
        Some("short-lived")
    );
    assert_ttl_within(&json_cache, "py:ttl", 100_000);
    assert_eq!(
        json_cache
            .multi_get::<serde_json::Value, _>(&["py:m1", "py:m2", "py:nope"])
            .unwrap(),
        vec![Some(json!([1, 2, 3])), Some(json!({"k": "v"})), None]
    );
    assert_ttl_within(&json_cache, "py:m2", 100_000);
    assert!(matches!(
        json_cache.add("py:added", &"second".to_string(), Ttl::Default),
        Err(Error::KeyExists { .. })
    ));
    assert_eq!(json_cache.increment("py:counter", 1).unwrap(), 6);
    assert_eq!(
        str_cache.get::<String>("py:text").unwrap().as_deref(),
        Some("héllo wörld")
    );
    assert_eq!(str_cache.get::<u32>("py:number").unwrap(), Some(42));
    let mut keys = json_cache.keys("py:*").unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "py:added",
            "py:counter",
            "py:dict",
            "py:m1",
            "py:m2",
            "py:none",
            "py:number",
            "py:text",
            "py:ttl"
        ]
    );
}

#[test]
fn a_command_waiting_for_a_busy_pool_times_out_then_proceeds() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    let cache = alias(server.port)
        .option("pool_max_size", 1u32)
        .timeout(Duration::from_secs(5))
        .namespace("busy")
        .build_cache("busy")
        .unwrap();
    cache.set("k", &1u32, Ttl::Default).unwrap();
    std::thread::scope(|s| {
        // Holds the only connection until the list gets an element.
        let blocked = s.spawn(|| cache.raw("BLPOP", &["busy:queue", "0"]).unwrap());
        let deadline = Instant::now() + NO_HANG;
        loop {
            let info: String = redis::cmd("INFO").arg("clients").query(&mut admin).unwrap();
            if info.contains("blocked_clients:1") {
                break;
            }
            assert!(Instant::now() < deadline, "BLPOP never blocked");
            std::thread::yield_now();
        }
        let impatient = cache.with_timeout(Some(Duration::from_millis(200)));
        let err = impatient.get::<u32>("k").unwrap_err();
        assert!(
            matches!(err, Error::Timeout { command: "get", .. }),
            "{err:?}"
        );
        let _: i64 = redis::cmd("LPUSH")
            .arg("busy:queue")
            .arg("job")
            .query(&mut admin)
            .unwrap();
        assert_eq!(
            blocked.join().unwrap(),
            RawReply::Array(vec![
                RawReply::Bytes(b"busy:queue".to_vec()),
                RawReply::Bytes(b"job".to_vec())
            ])
        );
        assert_eq!(impatient.get::<u32>("k").unwrap(), Some(1));
    });
}

#[test]
fn unix_socket_url() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let socket = socket.to_str().unwrap();
    let _server = support::redis_server_with(&["--unixsocket", socket, "--unixsocketperm", "700"]);
    // A socket path is given with the `url` option (a cache URL names the backend by its scheme).
    let cache = AliasConfig::new("redis")
        .option("url", format!("redis+unix://{socket}"))
        .namespace("unix")
        .build_cache("unix")
        .unwrap();
    cache.set("k", &5u8, Ttl::Default).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), Some(5));
}

/// The slot ranges a cluster node serves, from `CLUSTER SLOTS` asked of `admin`.
fn slots_of(admin: &mut redis::Connection, port: u16) -> Vec<(i64, i64)> {
    let reply: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(admin).unwrap();
    let redis::Value::Array(ranges) = reply else {
        panic!("CLUSTER SLOTS answered {reply:?}")
    };
    ranges
        .into_iter()
        .filter_map(|range| {
            let redis::Value::Array(fields) = range else {
                return None;
            };
            let (redis::Value::Int(start), redis::Value::Int(end), redis::Value::Array(master)) =
                (&fields[0], &fields[1], &fields[2])
            else {
                return None;
            };
            (master.get(1) == Some(&redis::Value::Int(i64::from(port)))).then_some((*start, *end))
        })
        .collect()
}

#[test]
fn a_cluster_master_killed_fails_fast_and_serves_again_after_restart() {
    let mut cluster = support::redis_cluster();
    let cache = AliasConfig::new("redis")
        .option("nodes", cluster.addrs())
        .timeout(Duration::from_millis(500))
        .namespace("cf")
        .build_cache("cf")
        .unwrap();
    let mut other = admin(cluster.nodes[1].port);
    let victim = cluster.nodes[0].port;
    let ranges = slots_of(&mut other, victim);
    let key = (0..10_000)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(format!("cf:{k}"))
                .query(&mut other)
                .unwrap();
            ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot))
        })
        .expect("some key lands on the first master");
    cache.set(&key, &1u32, Ttl::Default).unwrap();

    cluster.nodes[0].kill();
    for _ in 0..3 {
        let started = Instant::now();
        let err = cache.get::<u32>(&key).unwrap_err();
        assert!(
            matches!(err, Error::Backend { .. } | Error::Timeout { .. }),
            "{err:?}"
        );
        assert!(started.elapsed() < NO_HANG, "took {:?}", started.elapsed());
    }

    cluster.nodes[0].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = cache.set(&key, &2u32, Ttl::Default) {
        assert!(
            Instant::now() < deadline,
            "the restarted master never served again: {e}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cache.get::<u32>(&key).unwrap(), Some(2));
}

#[test]
fn raw_connection_state_commands_never_reach_later_commands() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    // One connection: a connection `raw` changed would be the one every later command gets.
    let cache = alias(server.port)
        .option("pool_max_size", 1u32)
        .namespace("state")
        .build_cache("state")
        .unwrap();
    cache.set("k", &1u32, Ttl::Default).unwrap();

    assert_eq!(
        cache.raw("MULTI", &[] as &[String]).unwrap(),
        RawReply::Status("OK".into())
    );
    cache.set("k", &2u32, Ttl::Default).unwrap();
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(2));
    let stored: Option<String> = redis::cmd("GET").arg("state:k").query(&mut admin).unwrap();
    assert_eq!(stored.as_deref(), Some("2"), "the set ran, not queued");

    cache.raw("SELECT", &["1"]).unwrap();
    cache.set("k", &3u32, Ttl::Default).unwrap();
    let stored: Option<String> = redis::cmd("GET").arg("state:k").query(&mut admin).unwrap();
    assert_eq!(stored.as_deref(), Some("3"), "still database 0");

    cache.raw("CLIENT", &["SETNAME", "renamed"]).unwrap();
    let _ = cache.raw("WATCH", &["state:k"]).unwrap();
    assert_eq!(cache.increment("n", 1).unwrap(), 1);
    // A failing raw command closes its connection too.
    assert!(cache.raw("NO-SUCH-COMMAND", &[] as &[String]).is_err());
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(3));

    // The connections `raw` used are closed, not leaked: the pool's one plus the admin connection.
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(clients.lines().count() <= 2, "{clients}");
    assert!(!clients.contains("renamed"), "{clients}");
}

/// A TCP proxy in front of a server that, when told to, forwards the next request but drops the
/// connection instead of returning the reply: the server ran the command, the client never hears so.
struct ReplyDropper {
    port: u16,
    drop_next_reply: Arc<std::sync::atomic::AtomicBool>,
}

impl ReplyDropper {
    fn start(upstream: u16) -> ReplyDropper {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let drop_next_reply = Arc::new(AtomicBool::new(false));
        let flag = drop_next_reply.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = client_in.read(&mut buf) {
                        if server_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_out.shutdown(Shutdown::Both);
                });
                let flag = flag.clone();
                let (mut server_in, mut client_out) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = server_in.read(&mut buf) {
                        if flag.swap(false, Ordering::SeqCst) {
                            break;
                        }
                        if client_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = client_out.shutdown(Shutdown::Both);
                    let _ = server_in.shutdown(Shutdown::Both);
                });
            }
        });
        ReplyDropper {
            port,
            drop_next_reply,
        }
    }

    fn drop_next_reply(&self) {
        self.drop_next_reply
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_command_the_server_ran_before_the_connection_dropped_is_resent_only_if_idempotent() {
    let server = support::redis_server();
    let mut admin = admin(server.port);
    let proxy = ReplyDropper::start(server.port);
    let cache = alias(proxy.port)
        .option("pool_max_size", 1u32)
        .namespace("once")
        .build_cache("once")
        .unwrap();
    let stored = |admin: &mut redis::Connection, key: &str| -> Option<String> {
        redis::cmd("GET")
            .arg(format!("once:{key}"))
            .query(admin)
            .unwrap()
    };

    // Idempotent: sent again on a new connection, the caller never sees the drop.
    cache.set("k", &1u32, Ttl::Default).unwrap();
    proxy.drop_next_reply();
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(1));
    proxy.drop_next_reply();
    cache.set("k", &2u32, Ttl::Default).unwrap();
    assert_eq!(stored(&mut admin, "k").as_deref(), Some("2"));

    // Not idempotent: an error, and the server ran it exactly once.
    proxy.drop_next_reply();
    assert!(cache.increment("n", 1).is_err());
    assert_eq!(
        stored(&mut admin, "n").as_deref(),
        Some("1"),
        "INCRBY ran once"
    );
    assert_eq!(cache.increment("n", 1).unwrap(), 2);

    proxy.drop_next_reply();
    assert!(cache.add("a", &1u32, Ttl::Default).is_err());
    assert_eq!(stored(&mut admin, "a").as_deref(), Some("1"));
    assert!(matches!(
        cache.add("a", &2u32, Ttl::Default),
        Err(Error::KeyExists { .. })
    ));

    // The first write loads the script (EVALSHA answered NOSCRIPT, then EVAL).
    OptimisticLock::new(&cache, "cas")
        .unwrap()
        .cas(&6u32, Ttl::Default)
        .unwrap();
    let lock = OptimisticLock::new(&cache, "cas").unwrap();
    proxy.drop_next_reply();
    assert!(lock.cas(&7u32, Ttl::Default).is_err());
    assert_eq!(stored(&mut admin, "cas").as_deref(), Some("7"), "ran once");

    assert_eq!(cache.get::<u32>("k").unwrap(), Some(2)); // a pooled connection again
    proxy.drop_next_reply();
    assert!(cache.raw("INCR", &["once:r"]).is_err());
    assert_eq!(
        stored(&mut admin, "r").as_deref(),
        Some("1"),
        "raw ran once"
    );
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(2));
}

#[test]
fn increment_errors_are_told_apart_by_the_server_reply() {
    let server = support::redis_server();
    let cache = cache_on(&server, "inc");
    cache.set("max", &i64::MAX, Ttl::Default).unwrap();
    assert!(
        matches!(cache.increment("max", 1), Err(Error::InvalidInput(_))),
        "overflow"
    );
    cache.set("text", &"abc".to_string(), Ttl::Default).unwrap();
    assert!(matches!(
        cache.increment("text", 1),
        Err(Error::NotAnInteger { .. })
    ));
    assert_eq!(cache.get::<String>("text").unwrap().as_deref(), Some("abc"));
    // A connection error naming a host called `overflow` is still a connection error.
    let port = support::free_port();
    let unreachable = AliasConfig::new("redis")
        .option("endpoint", "overflow-not-an-integer.invalid")
        .option("port", port)
        .timeout(Duration::from_secs(2))
        .build_cache("unreachable")
        .unwrap();
    let err = unreachable.increment("n", 1).unwrap_err();
    assert!(
        matches!(err, Error::Backend { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
}

#[test]
fn passwords_in_nodes_and_query_strings_never_show() {
    let secret = "hunter2-7";
    let node_forms = [
        format!("redis://user:{secret}@h"),
        format!("redis://user:{secret}@h:7000"),
        format!("user:{secret}@h"),
        format!(":{secret}@h:7000"),
    ];
    for node in &node_forms {
        let json = serde_json::json!({
            "default": {"cache": "memory"},
            "r": {"cache": "redis", "nodes": [node]},
        })
        .to_string();
        let err = Config::from_json(&json)
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `nodes`"), "{err}");
        assert!(!err.contains(secret), "{err}");
        let builder = RedisBackend::builder().cluster_nodes([node.as_str()]);
        let text = format!("{builder:?} {}", builder.clone().build().unwrap_err());
        assert!(!text.contains(secret), "{text}");
    }
    let url_forms = [
        format!("redis+unix:///nowhere.sock?pass={secret}&db=x"),
        format!("redis+unix:///nowhere.sock?db=x&password={secret}"),
        format!("redis://u:{secret}@h:notaport/0"),
        format!("redis://{secret}@h:notaport/0"),
    ];
    for url in &url_forms {
        let json = serde_json::json!({
            "default": {"cache": "memory"},
            "r": {"cache": "redis", "url": url},
        })
        .to_string();
        let err = Config::from_json(&json)
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        let builder = RedisBackend::builder().url(url.as_str());
        let text = format!("{builder:?} {}", builder.clone().build().unwrap_err());
        assert!(!text.contains(secret), "{text}");
        if let Err(err) = Cache::from_url(url) {
            let text = format!("{err} {err:?}");
            assert!(!text.contains(secret), "{text}");
        }
    }
    // A valid unix URL with its password in the query: not in the label, `Debug` or errors.
    let url = format!("redis+unix:///nowhere.sock?pass={secret}");
    let cache = AliasConfig::new("redis")
        .option("url", url.as_str())
        .timeout(Duration::from_millis(500))
        .build_cache(&url)
        .unwrap();
    let err = cache.get::<u8>("k").unwrap_err();
    let text = format!("{cache:?} {err} {err:?}");
    assert!(!text.contains(secret), "{text}");
}

/// A key of `namespace` whose slot `admin`'s cluster assigns to the master on `port`, avoiding `taken`
/// slots; with its slot.
fn key_on(
    admin: &mut redis::Connection,
    port: u16,
    namespace: &str,
    taken: &[i64],
) -> (String, i64) {
    let ranges = slots_of(admin, port);
    (0..10_000)
        .map(|i| format!("k{i}"))
        .find_map(|k| {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(format!("{namespace}:{k}"))
                .query(admin)
                .unwrap();
            (ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)) && !taken.contains(&slot))
                .then_some((k, slot))
        })
        .expect("some key lands on that master")
}

#[test]
fn a_cluster_never_sends_a_timed_out_increment_twice() {
    let cluster = support::redis_cluster();
    let cache = AliasConfig::new("redis")
        .option("nodes", cluster.addrs())
        .timeout(Duration::from_millis(300))
        .namespace("to")
        .build_cache("to")
        .unwrap();
    let victim = &cluster.nodes[0];
    let mut other = admin(cluster.nodes[1].port);
    let (key, _) = key_on(&mut other, victim.port, "to", &[]);
    assert_eq!(cache.increment(&key, 1).unwrap(), 1);
    signal(victim, "-STOP");
    let started = Instant::now();
    let err = cache.increment(&key, 1).unwrap_err();
    let waited = started.elapsed();
    signal(victim, "-CONT");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        waited < Duration::from_millis(900),
        "one timeout, not one per retry: {waited:?}"
    );
    // Whatever the stopped master still runs once resumed: at most the one INCRBY sent.
    let mut victim_admin = admin(victim.port);
    std::thread::sleep(Duration::from_millis(300));
    let n: i64 = redis::cmd("GET")
        .arg(format!("to:{key}"))
        .query(&mut victim_admin)
        .unwrap();
    assert!(n <= 2, "the increment ran {} times", n - 1);
    let now = cache.increment(&key, 1).unwrap();
    assert_eq!(now, n + 1);
}

#[test]
fn a_cluster_follows_moved_and_ask_for_commands_sent_once() {
    let cluster = support::redis_cluster();
    let cache = AliasConfig::new("redis")
        .option("nodes", cluster.addrs())
        .option("pool_max_size", 1u32)
        .timeout(Duration::from_secs(5))
        .namespace("mv")
        .build_cache("mv")
        .unwrap();
    let mut admins: Vec<redis::Connection> = cluster.nodes.iter().map(|n| admin(n.port)).collect();
    let ids: Vec<String> = admins
        .iter_mut()
        .map(|a| redis::cmd("CLUSTER").arg("MYID").query(a).unwrap())
        .collect();
    let (a, c) = (cluster.nodes[0].port, cluster.nodes[2].port);
    // The connection for commands sent once opens with the current slot map.
    let (warm, _) = key_on(&mut admins[2], c, "mv", &[]);
    assert_eq!(cache.increment(&warm, 1).unwrap(), 1);

    // MOVED: an empty slot of the first master now belongs to the second.
    let (moved, moved_slot) = key_on(&mut admins[0], a, "mv", &[]);
    for i in [1, 0, 2] {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(moved_slot)
            .arg("NODE")
            .arg(&ids[1])
            .query(&mut admins[i])
            .unwrap();
    }
    assert_eq!(cache.increment(&moved, 5).unwrap(), 5);
    let on_b: Option<String> = redis::cmd("GET")
        .arg(format!("mv:{moved}"))
        .query(&mut admins[1])
        .unwrap();
    assert_eq!(on_b.as_deref(), Some("5"));
    assert_eq!(cache.increment(&moved, 1).unwrap(), 6);

    // ASK: another empty slot of the first master is being migrated to the second.
    let (asked, ask_slot) = key_on(&mut admins[0], a, "mv", &[moved_slot]);
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(ask_slot)
        .arg("IMPORTING")
        .arg(&ids[0])
        .query(&mut admins[1])
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(ask_slot)
        .arg("MIGRATING")
        .arg(&ids[1])
        .query(&mut admins[0])
        .unwrap();
    let on_target = |admin: &mut redis::Connection, key: String| -> Option<String> {
        let _: () = redis::cmd("ASKING").query(admin).unwrap();
        redis::cmd("GET").arg(key).query(admin).unwrap()
    };
    cache.add(&asked, &1u32, Ttl::Default).unwrap();
    assert_eq!(
        on_target(&mut admins[1], format!("mv:{asked}")).as_deref(),
        Some("1")
    );
    // A script (loaded on the target on the way) and `raw` follow it too. `mv:{t1}cas` hashes by `t1`:
    // find a hash tag that lands in the migrating slot.
    let tag = (0..200_000)
        .map(|i| format!("{{t{i}}}"))
        .find(|tag| {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(tag)
                .query(&mut admins[0])
                .unwrap();
            slot == ask_slot
        })
        .expect("a hash tag for the slot");
    let cas_key = format!("{tag}cas");
    let lock = OptimisticLock::new(&cache, &cas_key).unwrap();
    lock.cas(&9u32, Ttl::Default).unwrap();
    assert_eq!(
        on_target(&mut admins[1], format!("mv:{cas_key}")).as_deref(),
        Some("9")
    );
    let raw_key = format!("mv:{tag}raw");
    assert_eq!(
        cache
            .raw("INCRBY", &[raw_key.clone(), "3".to_string()])
            .unwrap(),
        RawReply::Int(3)
    );
    assert_eq!(on_target(&mut admins[1], raw_key).as_deref(), Some("3"));
    assert_eq!(cache.increment(&warm, 1).unwrap(), 2);
}
