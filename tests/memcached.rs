//! The Memcached backend against real `memcached` processes on free loopback ports: the shared command suite,
//! what memcached cannot do, hostile keys, the item size limit, TTL rules, two servers with one going down,
//! timeouts, and alias/URL configuration.
#![cfg(feature = "memcached")]

mod suite;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cache_runtime::{
    cached, caches, AliasConfig, Backend, Cache, CallOptions, Config, Error, MemcachedBackend,
    RawReply, Ttl, Value,
};
use support::Server;

/// A cache on its own memcached; the server lives as long as the returned handle.
fn cache() -> (Server, Cache) {
    let server = support::memcached_server();
    let cache = Cache::from_url(&format!("memcached://{}?namespace=test", server.addr())).unwrap();
    (server, cache)
}

/// Two memcached servers behind one cache.
fn two_servers() -> (Server, Server, Cache) {
    let a = support::memcached_server();
    let b = support::memcached_server();
    let backend = MemcachedBackend::builder()
        .server(a.addr())
        .server(b.addr())
        .dead_retry(Duration::from_millis(50))
        .build()
        .unwrap();
    let cache = Cache::builder()
        .backend(backend)
        .timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    (a, b, cache)
}

fn server_of(cache: &Cache, key: &str) -> String {
    match cache.raw("server_for", &[cache.build_key(key)]).unwrap() {
        RawReply::Bytes(addr) => String::from_utf8(addr).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Polls `check` until it holds or `within` passes (a readiness check, not a timed wait).
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

command_suite!(cache());

#[test]
fn suite_also_passes_across_two_servers() {
    let (_a, _b, cache) = two_servers();
    suite::multi_get_and_multi_set_keep_input_order(&cache);
    suite::hostile_keys_are_distinct_and_inject_nothing(&cache);
    suite::concurrent_increments_lose_no_update(&cache);
    suite::optimistic_lock_detects_concurrent_writes(&cache);
    suite::red_lock_excludes_and_releases_only_its_own(&cache);
}

#[test]
fn keys_and_namespaced_clear_are_unsupported_with_a_reason() {
    let (_server, cache) = cache();
    match cache.keys("*") {
        Err(Error::Unsupported {
            command,
            backend,
            reason,
        }) => {
            assert_eq!((command, backend.as_str()), ("keys", "memcached"));
            assert!(reason.contains("cannot list"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    cache.set("k", &1, Ttl::Default).unwrap();
    match cache.clear() {
        Err(Error::Unsupported {
            command, reason, ..
        }) => {
            assert_eq!(command, "clear");
            assert!(reason.contains("namespace"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(
        cache.get::<i32>("k").unwrap(),
        Some(1),
        "nothing was cleared"
    );
}

#[test]
fn clear_without_namespace_flushes_every_server() {
    let (_a, _b, cache) = two_servers();
    let pairs: Vec<(String, u32)> = (0..40).map(|i| (format!("c{i}"), i)).collect();
    cache.multi_set(&pairs, Ttl::Default).unwrap();
    let servers: std::collections::HashSet<String> =
        pairs.iter().map(|(k, _)| server_of(&cache, k)).collect();
    assert_eq!(servers.len(), 2, "keys spread over both servers");
    cache.clear().unwrap();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert!(cache
        .multi_get::<u32, _>(&keys)
        .unwrap()
        .iter()
        .all(Option::is_none));
}

#[test]
fn raw_answers_known_commands_and_refuses_others() {
    let (server, cache) = cache();
    match cache.raw::<&str>("version", &[]).unwrap() {
        RawReply::Array(replies) => {
            assert_eq!(replies.len(), 1);
            assert!(
                matches!(&replies[0], RawReply::Status(s) if s.starts_with("VERSION")),
                "{replies:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match cache.raw("stats", &["settings"]).unwrap() {
        RawReply::Array(per_server) => {
            let RawReply::Array(stats) = &per_server[0] else {
                panic!("{per_server:?}")
            };
            assert!(stats.iter().any(|s| matches!(s, RawReply::Array(kv) if kv[0] == RawReply::Bytes(b"item_size_max".to_vec()))));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server_of(&cache, "anything"), server.addr());
    assert!(matches!(
        cache.raw::<&str>("shutdown", &[]),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        cache.raw("stats", &["items\r\nflush_all"]),
        Err(Error::InvalidInput(_))
    ));
    cache.set("k", &1, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("k").unwrap(), Some(1));
}

#[test]
fn a_value_over_the_item_size_limit_is_an_error_and_nothing_partial_is_stored() {
    let (_server, cache) = cache();
    cache
        .set("report", &"small".to_string(), Ttl::Default)
        .unwrap();
    let huge = "x".repeat(2 * 1024 * 1024); // memcached's default limit is 1 MiB
    match cache.set("report", &huge, Ttl::Default) {
        Err(Error::InvalidInput(message)) => {
            assert!(message.contains("item size limit"), "{message}")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    // memcached drops the old item rather than keep a stale one; what is there is never a part of the new one.
    let after = cache.get::<String>("report").unwrap();
    assert!(
        after.is_none() || after.as_deref() == Some("small"),
        "{:?}",
        after.map(|s| s.len())
    );
    // The connection is still in step.
    cache.set("next", &1, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("next").unwrap(), Some(1));
    assert!(cache
        .multi_set(
            &[("a", huge.clone()), ("b", "ok".to_string())],
            Ttl::Default
        )
        .is_err());
    assert_eq!(cache.get::<String>("b").unwrap().as_deref(), Some("ok"));
    assert_eq!(cache.get::<String>("a").unwrap(), None);
}

/// What a memoized function does with its cache: a failing store never costs the caller its value.
fn memoized_report(cache: &Cache, size: usize) -> String {
    if let Ok(Some(hit)) = cache.get::<String>("memo:report") {
        return hit;
    }
    let value = "r".repeat(size);
    if let Err(e) = cache.set("memo:report", &value, Ttl::secs(60)) {
        eprintln!("caching failed, returning the value anyway: {e}");
    }
    value
}

#[test]
fn a_memoized_function_still_returns_a_value_too_large_to_cache() {
    let (_server, cache) = cache();
    let big = memoized_report(&cache, 3 * 1024 * 1024);
    assert_eq!(big.len(), 3 * 1024 * 1024);
    assert_eq!(cache.get::<String>("memo:report").unwrap(), None);
    assert_eq!(memoized_report(&cache, 10).len(), 10);
    assert_eq!(
        cache.get::<String>("memo:report").unwrap().map(|s| s.len()),
        Some(10)
    );
}

/// A decorated function whose result is too large for memcached's item size limit.
#[cached(alias = "mc_too_large", ttl = 60)]
fn big_report(size: usize) -> String {
    BIG_REPORT_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    "r".repeat(size)
}

static BIG_REPORT_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn a_cached_function_returns_its_value_when_memcached_refuses_to_store_it() {
    let (server, _) = cache();
    caches::add(
        "mc_too_large",
        AliasConfig::from_url(&format!("memcached://{}?namespace=big", server.addr())).unwrap(),
    )
    .unwrap();
    let runs = || BIG_REPORT_RUNS.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(big_report(3 << 20).len(), 3 << 20);
    assert_eq!(
        big_report(3 << 20).len(),
        3 << 20,
        "still returned, computed again"
    );
    assert_eq!(runs(), 2, "the store failed, so nothing was cached");
    assert_eq!(big_report(10).len(), 10);
    assert_eq!(big_report(10).len(), 10);
    assert_eq!(runs(), 3, "a small result is cached as usual");
}

#[test]
fn short_ttls_expire() {
    let (_server, cache) = cache();
    cache.set("short", &1, Ttl::millis(1500)).unwrap();
    cache.set("long", &1, Ttl::secs(600)).unwrap();
    assert!(eventually(Duration::from_secs(10), || cache
        .get::<i32>("short")
        .unwrap()
        .is_none()));
    assert_eq!(cache.get::<i32>("long").unwrap(), Some(1));
    cache.expire("long", Ttl::secs(1)).unwrap();
    assert!(eventually(Duration::from_secs(10), || !cache
        .exists("long")
        .unwrap()));
}

#[test]
fn ttls_beyond_thirty_days_are_sent_as_unix_times() {
    let (_server, cache) = cache();
    let forty_days = Ttl::secs(40 * 24 * 3600);
    // Sent as a relative 3456000 s, memcached would read a time in 1970 and drop the value at once.
    cache.set("far", &1, forty_days).unwrap();
    assert_eq!(cache.get::<i32>("far").unwrap(), Some(1));
    cache.add("far2", &2, forty_days).unwrap();
    assert_eq!(cache.get::<i32>("far2").unwrap(), Some(2));
    cache.set("touched", &3, Ttl::secs(60)).unwrap();
    assert!(cache.expire("touched", forty_days).unwrap());
    assert_eq!(cache.get::<i32>("touched").unwrap(), Some(3));
    cache.multi_set(&[("m", 4)], forty_days).unwrap();
    assert_eq!(cache.get::<i32>("m").unwrap(), Some(4));
}

#[test]
fn ttls_past_2038_are_capped_instead_of_expiring_at_once() {
    let (_server, cache) = cache();
    let century = Ttl::secs(100 * 365 * 24 * 3600);
    // Sent as `now + ttl`, this is past memcached's 32-bit exptime: the item would be expired on arrival.
    cache.set("century", &1, century).unwrap();
    assert_eq!(cache.get::<i32>("century").unwrap(), Some(1));
    cache.set("forever", &2, Ttl::secs(u64::MAX)).unwrap();
    assert_eq!(cache.get::<i32>("forever").unwrap(), Some(2));
    cache.add("added", &3, century).unwrap();
    assert_eq!(cache.get::<i32>("added").unwrap(), Some(3));
    cache.multi_set(&[("m", 4)], century).unwrap();
    assert_eq!(cache.get::<i32>("m").unwrap(), Some(4));
    // `touch` with such a TTL keeps the key rather than killing it.
    cache.set("touched", &5, Ttl::secs(60)).unwrap();
    assert!(cache.expire("touched", century).unwrap());
    assert!(cache.exists("touched").unwrap());
    assert_eq!(cache.get::<i32>("touched").unwrap(), Some(5));
    assert!(cache.expire("touched", Ttl::secs(u64::MAX)).unwrap());
    assert_eq!(cache.get::<i32>("touched").unwrap(), Some(5));
}

#[test]
fn keys_are_hashed_only_when_memcached_would_refuse_them() {
    let (server, cache) = cache();
    let plain = cache.without_namespace();
    plain.set("readable:key", &1, Ttl::Default).unwrap();
    plain.set("not readable", &2, Ttl::Default).unwrap();
    // Talk to the server directly: the readable key is stored as is, the other under its hash.
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(b"get readable:key\r\nget not\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "VALUE readable:key 0 1\r\n");
    let mut rest = String::new();
    reader.read_line(&mut rest).unwrap();
    reader.read_line(&mut rest).unwrap();
    reader.read_line(&mut rest).unwrap();
    assert_eq!(rest, "1\r\nEND\r\nEND\r\n", "no key `not` was stored");
}

/// The remaining TTL memcached reports for `key` (`mg <key> t`): seconds, -1 for none, `None` if absent.
fn server_ttl(server: &Server, key: &str) -> Option<i64> {
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(format!("mg {key} t\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    match line.trim_end() {
        "EN" => None,
        reply => Some(
            reply
                .strip_prefix("HD t")
                .unwrap_or_else(|| panic!("unexpected reply {reply:?}"))
                .parse()
                .unwrap(),
        ),
    }
}

#[test]
fn counters_are_plain_decimal_and_keep_their_ttl() {
    let (server, cache) = cache();
    assert_eq!(cache.increment("hits", 1).unwrap(), 1);
    assert_eq!(cache.increment("hits", 41).unwrap(), 42);
    assert_eq!(cache.increment("hits", -50).unwrap(), -8);
    assert_eq!(
        cache.get_stored("hits").unwrap().unwrap().as_bytes(),
        Some(&b"-8"[..])
    );
    // A counter created by `increment` has no TTL, and gets none.
    assert_eq!(server_ttl(&server, &cache.build_key("hits")), Some(-1));

    // A counter set with a TTL keeps it through increments up and down (memcached reports whole seconds
    // left; a slow machine may have ticked a few by now).
    cache.set("window", &5i64, Ttl::secs(600)).unwrap();
    assert_eq!(cache.increment("window", 1).unwrap(), 6);
    assert_eq!(cache.increment("window", -2).unwrap(), 4);
    let left = server_ttl(&server, &cache.build_key("window")).unwrap();
    assert!((590..=600).contains(&left), "600 s TTL kept, {left} s left");

    // Beyond 30 days memcached reads a TTL as a Unix time: the kept TTL must be sent as one.
    let forty_days = 40 * 24 * 3600;
    cache.set("long", &1i64, Ttl::secs(forty_days)).unwrap();
    assert_eq!(cache.increment("long", 1).unwrap(), 2);
    assert_eq!(
        cache.get::<i64>("long").unwrap(),
        Some(2),
        "not expired at once"
    );
    let left = server_ttl(&server, &cache.build_key("long")).unwrap();
    let forty_days = i64::try_from(forty_days).unwrap();
    assert!(
        (forty_days - 10..=forty_days + 1).contains(&left),
        "40-day TTL kept, {left} s left"
    );
}

static DOUBLE_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cached(alias = "mc_two")]
fn double(n: u64) -> u64 {
    DOUBLE_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    2 * n
}

#[test]
fn one_server_down_fails_its_keys_and_the_other_keeps_working() {
    let (a, mut b, cache) = two_servers();
    let keys: Vec<String> = (0..60).map(|i| format!("user:{i}")).collect();
    let pairs: Vec<(String, usize)> = keys.iter().cloned().zip(0..).collect();
    cache.multi_set(&pairs, Ttl::Default).unwrap();
    let (on_a, on_b): (Vec<&String>, Vec<&String>) =
        keys.iter().partition(|k| server_of(&cache, k) == a.addr());
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "both servers hold keys"
    );

    b.kill();
    for key in &on_a {
        assert!(
            cache.get::<usize>(key).unwrap().is_some(),
            "{key} on the live server"
        );
        cache.set(key, &1usize, Ttl::Default).unwrap();
    }
    for key in &on_b {
        match cache.get::<usize>(key) {
            Err(Error::Backend { backend, .. }) => assert_eq!(backend, "memcached"),
            other => panic!("expected a backend error for {key}, got {other:?}"),
        }
    }
    // multi_get over both: the dead server's keys read as misses, the live one's as hits.
    let got = cache.multi_get::<usize, _>(&keys).unwrap();
    for (key, value) in keys.iter().zip(&got) {
        assert_eq!(value.is_some(), on_a.contains(&key), "{key}");
    }
    // Writes to the dead server fail; a multi_set reports it while the live server's part is stored.
    assert!(cache.multi_set(&pairs, Ttl::Default).is_err());
    assert_eq!(
        cache.get::<usize>(on_a[0]).unwrap(),
        pairs.iter().find(|p| &p.0 == on_a[0]).map(|p| p.1)
    );

    // A memoized function over both servers keeps answering: the dead server's keys are computed every time
    // (fail-open), the live server's are cached.
    caches::add(
        "mc_two",
        AliasConfig::from_url(&format!("memcached://{},{}?timeout=2", a.addr(), b.addr())).unwrap(),
    )
    .unwrap();
    let before = DOUBLE_RUNS.load(std::sync::atomic::Ordering::SeqCst);
    for round in 0..2 {
        for n in 0..20 {
            assert_eq!(double(n), 2 * n, "round {round}");
        }
    }
    let runs = DOUBLE_RUNS.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        runs > 20 && runs < 40,
        "{runs} runs: misses on the dead server only"
    );

    // Back up (empty, as a restarted memcached is): its keys miss, then work again.
    b.restart();
    assert!(eventually(Duration::from_secs(10), || cache
        .get::<usize>(on_b[0])
        .is_ok()));
    assert_eq!(cache.get::<usize>(on_b[0]).unwrap(), None);
    cache.set(on_b[0], &7usize, Ttl::Default).unwrap();
    assert_eq!(cache.get::<usize>(on_b[0]).unwrap(), Some(7));
}

#[test]
fn a_restarted_server_is_reconnected_transparently() {
    let (mut server, cache) = cache();
    cache.set("k", &1, Ttl::Default).unwrap();
    server.restart();
    // The pooled connection is dead; an idempotent command retries once on a new one.
    assert_eq!(cache.get::<i32>("k").unwrap(), None);
    cache.set("k", &2, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("k").unwrap(), Some(2));
    // The pipelined commands too, after each restart.
    server.restart();
    cache
        .multi_set(&[("a", 1), ("b", 2)], Ttl::Default)
        .unwrap();
    server.restart();
    assert_eq!(
        cache.multi_get::<i32, _>(&["a", "b"]).unwrap(),
        vec![None, None]
    );
}

/// A fake server: the first connection's reply is held back until the test says so; later connections
/// answer every `get` with a miss.
fn stalling_server() -> (String, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (release, released) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut first = true;
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if first {
                first = false;
                let _ = reader.read_line(&mut line);
                let _ = released.recv_timeout(Duration::from_secs(30));
                let _ = stream.write_all(b"VALUE test:k 0 5\r\n\"old\"\r\nEND\r\n");
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    let _ = reader.read_line(&mut sink);
                });
                continue;
            }
            std::thread::spawn(move || {
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if stream.write_all(b"END\r\n").is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, release)
}

#[test]
fn a_timed_out_connection_is_never_reused() {
    let (addr, release) = stalling_server();
    let cache = Cache::from_url(&format!("memcached://{addr}?namespace=test&timeout=0.2")).unwrap();
    match cache.get::<String>("k") {
        Err(Error::Timeout { command, timeout }) => {
            assert_eq!(command, "get");
            assert_eq!(timeout, Duration::from_millis(200));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The late reply arrives on the abandoned connection; the next get must not read it.
    release.send(()).unwrap();
    assert_eq!(cache.get::<String>("k").unwrap(), None);
    // A zero timeout is "no time at all", not an error about the socket.
    assert!(matches!(
        cache.with_timeout(Some(Duration::ZERO)).get::<String>("k"),
        Ok(None) | Err(Error::Timeout { .. })
    ));
    // A per-call override applies too.
    assert_eq!(
        cache
            .with_timeout(Some(Duration::from_secs(2)))
            .get::<String>("k")
            .unwrap(),
        None
    );
}

/// A fake memcached that answers each request line with `answer(connection, line number on that
/// connection, line)` (`None`: no reply). Connections are numbered from 0 in the order they arrive.
fn scripted_server(
    answer: impl Fn(usize, usize, &str) -> Option<String> + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for (conn, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let mut n = 0;
                while reader.read_line(&mut line).map(|r| r > 0).unwrap_or(false) {
                    if let Some(reply) = answer(conn, n, line.trim_end()) {
                        if stream.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                    n += 1;
                    line.clear();
                }
            });
        }
    });
    addr
}

#[test]
fn a_multi_get_cut_short_by_an_error_never_pools_its_connection() {
    // The first connection answers the first `get` line of a pipelined multi_get with an error and the
    // second with a value; every other request misses.
    let addr = scripted_server(|conn, n, _| {
        Some(match (conn, n) {
            (0, 0) => "SERVER_ERROR out of memory writing get response\r\n".into(),
            (0, 1) => "VALUE test:k100 0 1\r\n7\r\nEND\r\n".into(),
            _ => "END\r\n".into(),
        })
    });
    let cache = Cache::from_url(&format!("memcached://{addr}?namespace=test&timeout=2")).unwrap();
    let keys: Vec<String> = (0..150).map(|i| format!("k{i}")).collect(); // two `get` lines
    assert!(matches!(
        cache.multi_get::<i32, _>(&keys),
        Err(Error::Backend { .. })
    ));
    // The unread reply to the second line must not answer the next command on that connection.
    assert_eq!(cache.get::<i32>("k100").unwrap(), None);
    assert!(cache
        .multi_get::<i32, _>(&keys)
        .unwrap()
        .iter()
        .all(Option::is_none));
}

#[test]
fn a_client_error_to_a_storage_command_closes_the_connection() {
    // Like a memcached that refused a `set` line without swallowing its data block: the data is read as a
    // command (`ERROR`), a reply the client did not ask for. Only the first connection misbehaves.
    let answer = |conn: usize, _: usize, line: &str| {
        Some(if line.starts_with("get") {
            "END\r\n".to_string()
        } else if line.starts_with("set") {
            if conn == 0 {
                "CLIENT_ERROR bad data chunk\r\n".into()
            } else {
                "STORED\r\n".into()
            }
        } else if conn == 0 {
            "ERROR\r\n".into()
        } else {
            return None; // a data block, swallowed
        })
    };
    let addr = scripted_server(answer);
    let cache = Cache::from_url(&format!("memcached://{addr}?namespace=test&timeout=2")).unwrap();
    match cache.set("k", &1, Ttl::Default) {
        Err(Error::Backend { message, .. }) => {
            assert!(message.contains("CLIENT_ERROR"), "{message}")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    // A reused connection would read the `ERROR` meant for the data block.
    assert_eq!(cache.get::<i32>("k").unwrap(), None);
    cache.set("k", &1, Ttl::Default).unwrap();

    let addr = scripted_server(answer);
    let cache = Cache::from_url(&format!("memcached://{addr}?namespace=test&timeout=2")).unwrap();
    assert!(cache
        .multi_set(&[("a", 1), ("b", 2)], Ttl::Default)
        .is_err());
    assert_eq!(cache.get::<i32>("a").unwrap(), None);
    cache
        .multi_set(&[("a", 1), ("b", 2)], Ttl::Default)
        .unwrap();
}

#[test]
fn a_value_no_memcached_can_hold_is_refused_before_it_is_sent() {
    // A server that never reads: anything sent would stall until the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = MemcachedBackend::new(silent.local_addr().unwrap().to_string()).unwrap();
    let opts = CallOptions {
        timeout: Some(Duration::from_secs(1)),
    };
    // Zeroed and never touched: the pages are not really allocated.
    let huge = vec![0u8; (1 << 30) + 1];
    for result in [
        backend.set("k", Value::Bytes(huge.clone()), None, &opts),
        backend.multi_set(vec![("k", Value::Bytes(huge.clone()))], None, &opts),
        backend
            .add("k", Value::Bytes(huge.clone()), None, &opts)
            .map(drop),
    ] {
        match result {
            Err(Error::InvalidInput(message)) => {
                assert!(message.contains("item size limit"), "{message}")
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
}

#[test]
fn a_reply_for_another_key_is_never_returned() {
    // A connection out of step answers a read of `k` with another key's value.
    let addr = scripted_server(|_, _, line| {
        Some(if line.starts_with("gets ") {
            "VALUE other 0 1 5\r\n9\r\nEND\r\n".into()
        } else if line.starts_with("get ") {
            "VALUE other 0 1\r\n9\r\nEND\r\n".into()
        } else {
            "ERROR\r\n".into()
        })
    });
    let backend = MemcachedBackend::new(addr).unwrap();
    let opts = CallOptions {
        timeout: Some(Duration::from_secs(2)),
    };
    assert!(matches!(
        backend.get("k", &opts),
        Err(Error::Backend { .. })
    ));
    assert!(matches!(
        backend.get_versioned("k", &opts),
        Err(Error::Backend { .. })
    ));
    // Two values for one key are just as wrong.
    let addr =
        scripted_server(|_, _, _| Some("VALUE k 0 1\r\n1\r\nVALUE k 0 1\r\n2\r\nEND\r\n".into()));
    let backend = MemcachedBackend::new(addr).unwrap();
    assert!(matches!(
        backend.get("k", &opts),
        Err(Error::Backend { .. })
    ));
}

#[test]
fn a_multi_get_reply_for_a_key_not_asked_for_closes_the_connection() {
    // The first connection answers its first `get` with a key that was not asked for.
    let addr = scripted_server(|conn, n, _| {
        Some(if (conn, n) == (0, 0) {
            "VALUE test:zzz 0 1\r\n9\r\nEND\r\n".into()
        } else {
            "END\r\n".into()
        })
    });
    let cache = Cache::from_url(&format!("memcached://{addr}?namespace=test&timeout=2")).unwrap();
    assert!(matches!(
        cache.multi_get::<i32, _>(&["a", "b"]),
        Err(Error::Backend { .. })
    ));
    assert_eq!(
        cache.multi_get::<i32, _>(&["a", "zzz"]).unwrap(),
        vec![None, None]
    );
}

#[test]
fn an_unexpected_one_line_reply_closes_the_connection() {
    // The first connection answers `delete` with a stray reply ahead of its own, as a connection out of
    // step would; later connections answer every command with NOT_FOUND.
    let addr = scripted_server(|conn, _, _| {
        Some(if conn == 0 {
            "NOT_STORED\r\nDELETED\r\n".into()
        } else {
            "NOT_FOUND\r\n".into()
        })
    });
    let backend = MemcachedBackend::new(addr).unwrap();
    let opts = CallOptions {
        timeout: Some(Duration::from_secs(2)),
    };
    assert!(matches!(
        backend.delete("a", &opts),
        Err(Error::Backend { .. })
    ));
    // A reused connection would read the `DELETED` left behind.
    assert_eq!(backend.delete("b", &opts).unwrap(), 0);
    let (_server, cache) = cache();
    assert!(matches!(
        cache.raw("flush_all", &["noreply"]),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn a_pipelined_command_that_times_out_is_not_run_again() {
    // The first connection answers its first request, then falls silent; later connections answer.
    let answer = |conn: usize, n: usize, line: &str| {
        if conn == 0 && n > 0 {
            return None;
        }
        Some(if line.starts_with("get") {
            "END\r\n".to_string()
        } else if line.starts_with("set") {
            "STORED\r\n".into()
        } else {
            return None; // a data block
        })
    };
    for pipelined in ["multi_get", "multi_set"] {
        let addr = scripted_server(answer);
        let cache =
            Cache::from_url(&format!("memcached://{addr}?namespace=test&timeout=0.2")).unwrap();
        assert_eq!(cache.get::<i32>("k").unwrap(), None); // the first connection is pooled
        let outcome = if pipelined == "multi_get" {
            cache.multi_get::<i32, _>(&["a", "b"]).map(drop)
        } else {
            cache.multi_set(&[("a", 1), ("b", 2)], Ttl::Default)
        };
        // Retried on a new connection, it would succeed after the caller's time was already spent.
        match outcome {
            Err(Error::Timeout { command, .. }) => assert_eq!(command, pipelined),
            other => panic!("{pipelined}: expected a timeout, got {other:?}"),
        }
    }
}

#[test]
fn after_a_restart_one_failure_drops_every_pooled_connection() {
    let (mut server, cache) = cache();
    // Several connections in the pool.
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                for i in 0..50 {
                    let keys: Vec<String> = (0..200).map(|k| format!("k{k}-{i}")).collect();
                    cache.multi_get::<i32, _>(&keys).unwrap();
                }
            });
        }
    });
    server.restart();
    // `add` and `increment` are never retried, so the first may meet a dead pooled connection; after that
    // failure, none of the others is used.
    let _ = cache.add("a", &1, Ttl::Default);
    cache.add("b", &2, Ttl::Default).unwrap();
    assert_eq!(cache.increment("n", 1).unwrap(), 1);
    assert_eq!(cache.get::<i32>("b").unwrap(), Some(2));
}

#[test]
fn an_unreachable_server_fails_fast_with_a_backend_error() {
    let port = support::free_port();
    let cache = Cache::from_url(&format!("memcached://127.0.0.1:{port}?timeout=1")).unwrap();
    for _ in 0..3 {
        match cache.get::<i32>("k") {
            Err(Error::Backend { backend, message }) => {
                assert_eq!(backend, "memcached");
                assert!(message.contains(&port.to_string()), "{message}");
            }
            other => panic!("expected a backend error, got {other:?}"),
        }
    }
}

#[test]
fn alias_configs_and_urls_build_memcached_caches() {
    let (a, b, _) = two_servers();
    let url = format!("memcached://{},{}?namespace=web", a.addr(), b.addr());
    let cache = Cache::from_url(&url).unwrap();
    cache.set("x", &1, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("x").unwrap(), Some(1));
    assert_eq!(cache.namespace(), Some("web"));

    let (host, port) = a
        .addr()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.parse::<u16>().unwrap()))
        .unwrap();
    // `add`, not `set_config`: other tests of this binary use aliases of their own at the same time.
    caches::add(
        "mc",
        AliasConfig::new("memcached")
            .option("endpoint", host.as_str())
            .option("port", port),
    )
    .unwrap();
    let mc = caches::get("mc").unwrap();
    mc.set("y", &2, Ttl::Default).unwrap();
    assert_eq!(mc.get::<i32>("y").unwrap(), Some(2));

    let json = format!(
        r#"{{"default": {{"cache": "memory"}}, "pair": {{"cache": "memcached", "servers": ["{}", "{}"], "pool_size": 2}}}}"#,
        a.addr(),
        b.addr()
    );
    let config: Config = serde_json::from_str(&json).unwrap();
    config.validate().unwrap();

    for (bad, field) in [
        (
            r#"{"cache": "memcached", "servers": ["h:1"], "port": 1}"#,
            "servers",
        ),
        (
            r#"{"cache": "memcached", "servers": ["h:notaport"]}"#,
            "servers",
        ),
        (r#"{"cache": "memcached", "port": 70000}"#, "port"),
        (r#"{"cache": "memcached", "pool_size": "big"}"#, "pool_size"),
        (r#"{"cache": "memcached", "keys": 1}"#, "keys"),
    ] {
        let json = format!(r#"{{"default": {{"cache": "memory"}}, "bad": {bad}}}"#);
        let err = serde_json::from_str::<Config>(&json)
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate().map_err(|e| e.to_string()))
            .expect_err(bad);
        assert!(err.contains("bad") && err.contains(field), "{err}");
    }
}

#[test]
fn close_drops_connections_and_the_next_command_reconnects() {
    let (_server, cache) = cache();
    cache.set("k", &1, Ttl::Default).unwrap();
    cache.close().unwrap();
    assert_eq!(cache.get::<i32>("k").unwrap(), Some(1));
}

#[test]
fn a_huge_multi_get_never_waits_on_full_socket_buffers() {
    // Like memcached: the reply to the first `get` line is written whole (64 MiB) before the next line is
    // read. A client that wrote every `get` line (~48 MiB of keys) before reading anything would wait on
    // full buffers on both sides until its timeout.
    const BIG: usize = 64 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            // Like memcached: no Nagle delay on small replies.
            stream.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let mut first = true;
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    let reply = if std::mem::take(&mut first) {
                        let key = line.trim_end().split(' ').nth(1).unwrap_or("").to_string();
                        let mut reply = format!("VALUE {key} 0 {BIG}\r\n");
                        reply.push_str(&"v".repeat(BIG));
                        reply.push_str("\r\nEND\r\n");
                        reply
                    } else {
                        "END\r\n".to_string()
                    };
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    let backend = MemcachedBackend::new(addr).unwrap();
    let keys: Vec<String> = (0..200_000).map(|i| format!("{i:0>240}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let opts = CallOptions {
        timeout: Some(Duration::from_secs(10)),
    };
    let started = Instant::now();
    let values = backend.multi_get(&refs, &opts).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        values[0]
            .as_ref()
            .and_then(Value::as_bytes)
            .map(<[u8]>::len),
        Some(BIG)
    );
    assert!(values[1..].iter().all(Option::is_none));
}

#[test]
fn a_connect_cut_short_by_the_call_timeout_does_not_mark_the_server_down() {
    // A listener whose accept queue is full: connects hang until they time out.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4096 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    let backend = MemcachedBackend::builder()
        .server(addr.to_string())
        .connect_timeout(Duration::from_secs(5))
        .dead_retry(Duration::from_secs(60))
        .build()
        .unwrap();
    let short = CallOptions {
        timeout: Some(Duration::from_millis(100)),
    };
    assert!(backend.get("k", &short).is_err());
    // The server catches up: it accepts and answers every `get` with a miss.
    drop(fillers);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if stream.write_all(b"END\r\n").is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    let long = CallOptions {
        timeout: Some(Duration::from_secs(5)),
    };
    // Not skipped for `dead_retry` (60 s): the short connect said nothing about the server.
    assert!(
        eventually(Duration::from_secs(3), || backend.get("k", &long).is_ok()),
        "{:?}",
        backend.get("k", &long)
    );
}

#[test]
fn a_stored_number_above_i64_max_is_not_an_integer_and_stays_unchanged() {
    let (server, cache) = cache();
    let backend = MemcachedBackend::new(server.addr()).unwrap();
    let opts = CallOptions::default();
    for stored in [
        "18446744073709551615",
        "9223372036854775808",
        "18446744073709551000",
    ] {
        backend
            .set(
                "test:big",
                Value::Bytes(stored.as_bytes().to_vec()),
                None,
                &opts,
            )
            .unwrap();
        for delta in [0, 1, 1000, i64::MAX] {
            match cache.increment("big", delta) {
                Err(Error::NotAnInteger { key }) => assert_eq!(key, "big"),
                other => panic!("{stored} + {delta}: expected NotAnInteger, got {other:?}"),
            }
            // The same number: nothing was written (`trim_end` allows for the padding of another client's
            // `incr`).
            let after = cache.get_stored("big").unwrap().unwrap();
            let after = std::str::from_utf8(after.as_bytes().unwrap()).unwrap();
            assert_eq!(after.trim_end(), stored, "{stored} + {delta}");
        }
    }
    // An i64 counter that would overflow is still an overflow, and unchanged.
    cache.set("max", &i64::MAX, Ttl::Default).unwrap();
    assert!(matches!(
        cache.increment("max", 1),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(cache.get::<i64>("max").unwrap(), Some(i64::MAX));
}

#[test]
fn stats_reset_answers_at_once() {
    let server = support::memcached_server();
    let cache = Cache::from_url(&format!("memcached://{}?timeout=2", server.addr())).unwrap();
    let started = Instant::now();
    match cache.raw("stats", &["reset"]).unwrap() {
        RawReply::Array(replies) => {
            assert_eq!(replies, vec![RawReply::Status("RESET".into())]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // The connection is still in step.
    cache.set("k", &1, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("k").unwrap(), Some(1));
}

#[test]
fn ipv6_servers_are_parsed_with_brackets() {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(_) => return, // no IPv6 loopback here
    };
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if stream.write_all(b"END\r\n").is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    let backend = MemcachedBackend::new(format!("[::1]:{port}")).unwrap();
    assert!(backend.get("k", &CallOptions::default()).unwrap().is_none());
    for (name, options) in [
        (
            "v6a",
            AliasConfig::new("memcached")
                .option("endpoint", "::1")
                .option("port", port),
        ),
        (
            "v6b",
            AliasConfig::new("memcached")
                .option("endpoint", "[::1]")
                .option("port", port),
        ),
        (
            "v6c",
            AliasConfig::new("memcached").option("servers", vec![format!("[::1]:{port}")]),
        ),
    ] {
        caches::add(name, options.timeout(Duration::from_secs(2))).unwrap();
        assert_eq!(
            caches::get(name).unwrap().get::<i32>("k").unwrap(),
            None,
            "{name}"
        );
    }
    // `::1` alone is a host (default port 11211), not host `:` and port 1.
    let json = r#"{"default": {"cache": "memory"}, "v6": {"cache": "memcached", "servers": ["::1", "[::1]"]}}"#;
    serde_json::from_str::<Config>(json)
        .unwrap()
        .validate()
        .unwrap();
    let bad = r#"{"default": {"cache": "memory"}, "v6": {"cache": "memcached", "servers": ["::1:11211"]}}"#;
    let err = serde_json::from_str::<Config>(bad)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("brackets"), "{err}");
}

/// A scripted memcached whose meta commands answer as `meta` says (`mg` to the first string, `ms` to the
/// second); the classic `gets`/`cas` work on key `n` holding 5 with CAS id 77. Returns the address and what
/// every `cas` line carried.
fn old_meta_server(meta: [&'static str; 2]) -> (String, mpsc::Receiver<String>) {
    let (sent, seen) = mpsc::channel();
    let sent = std::sync::Mutex::new(sent);
    let addr = scripted_server(move |_, _, line| {
        Some(if line.starts_with("mg") {
            meta[0].to_string()
        } else if line.starts_with("ms") {
            meta[1].to_string()
        } else if line == "gets n" {
            "VALUE n 0 1 77\r\n5\r\nEND\r\n".into()
        } else if line.starts_with("cas") {
            sent.lock().unwrap().send(line.to_string()).unwrap();
            return None; // its data block follows
        } else if line == "6" {
            "STORED\r\n".into()
        } else {
            "ERROR\r\n".into()
        })
    });
    (addr, seen)
}

#[test]
fn an_increment_on_a_server_without_these_meta_commands_falls_back_to_gets_and_cas() {
    let cases = [
        // Before 1.6: no meta commands at all.
        ("no mg", ["ERROR\r\n", "ERROR\r\n"]),
        // An `mg` reply in a form this client does not read (no size after `VA`).
        ("another mg", ["VA s1 c77\r\n", "ERROR\r\n"]),
        // `mg` as expected, but `ms` refused (an earlier form of its command line).
        (
            "another ms",
            [
                "VA 1 c77 t-1\r\n5\r\n",
                "CLIENT_ERROR bad command line format\r\n",
            ],
        ),
    ];
    for (case, meta) in cases {
        let (addr, seen) = old_meta_server(meta);
        let cache = Cache::from_url(&format!("memcached://{addr}?timeout=5")).unwrap();
        assert_eq!(cache.increment("n", 1).unwrap(), 6, "{case}");
        // Written with `cas` and exptime 0: such a server's TTL cannot be kept.
        assert_eq!(seen.recv().unwrap(), "cas n 0 0 1 77", "{case}");
    }
}

#[test]
fn an_increment_whose_key_keeps_vanishing_gives_up_with_a_backend_error() {
    // The read always finds no key and `add` always finds one: a bounded number of rounds, then an error.
    let addr = scripted_server(|_, _, line| {
        Some(if line.starts_with("mg") {
            "EN\r\n".to_string()
        } else if line.starts_with("add") {
            "NOT_STORED\r\n".into()
        } else {
            return None; // a data block
        })
    });
    let cache = Cache::from_url(&format!("memcached://{addr}?timeout=5")).unwrap();
    let started = Instant::now();
    match cache.increment("n", 1) {
        Err(Error::Backend { message, .. }) => assert!(message.contains("times"), "{message}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}
