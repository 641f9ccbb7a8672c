//! The disk backend: the shared command suite, persistence across restarts, TTLs on a controllable clock,
//! the bounded sweep and size bounds, handles and processes sharing a directory, and a writer killed
//! mid-write.
#![cfg(feature = "disk")]

mod suite;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cache_runtime::{
    caches, AliasConfig, Cache, Config, DiskBackend, Error, ManualClock, RawReply, Ttl,
};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

fn cache() -> (TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .backend(DiskBackend::open(dir.path()).unwrap())
        .namespace("test")
        .build()
        .unwrap();
    (dir, cache)
}

fn on(dir: &std::path::Path, clock: &ManualClock) -> Cache {
    Cache::builder()
        .backend(
            DiskBackend::builder(dir)
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn len(cache: &Cache) -> i64 {
    match cache.raw::<&str>("len", &[]).unwrap() {
        RawReply::Int(n) => n,
        other => panic!("unexpected {other:?}"),
    }
}

command_suite!(cache());

#[test]
fn entries_survive_dropping_every_handle_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    {
        let cache = on(dir.path(), &clock);
        cache.set("user", &suite::user(), Ttl::Default).unwrap();
        cache
            .set("session", &"s1".to_string(), Ttl::secs(10))
            .unwrap();
        assert_eq!(cache.increment("visits", 3).unwrap(), 3);
    }
    let cache = on(dir.path(), &clock);
    assert_eq!(
        cache.get::<suite::User>("user").unwrap(),
        Some(suite::user())
    );
    assert_eq!(
        cache.get::<String>("session").unwrap().as_deref(),
        Some("s1")
    );
    assert_eq!(cache.increment("visits", 1).unwrap(), 4);
    drop(cache);

    // The TTL is an absolute time, persisted: it runs on while nothing has the cache open.
    clock.advance(Duration::from_secs(9));
    let cache = on(dir.path(), &clock);
    assert!(cache.exists("session").unwrap());
    drop(cache);
    clock.advance(Duration::from_secs(1));
    let cache = on(dir.path(), &clock);
    assert_eq!(cache.get::<String>("session").unwrap(), None);
    assert_eq!(
        cache.get::<suite::User>("user").unwrap(),
        Some(suite::user())
    );
}

#[test]
fn expired_entries_are_removed_lazily_and_by_a_bounded_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let cache = on(dir.path(), &clock);
    let pairs: Vec<(String, u32)> = (0..100).map(|i| (format!("t{i}"), i)).collect();
    cache.multi_set(&pairs, Ttl::millis(1500)).unwrap();
    cache.set("forever", &1u32, Ttl::Never).unwrap();
    assert_eq!(len(&cache), 101);
    clock.advance(Duration::from_millis(1499));
    assert_eq!(cache.get::<u32>("t0").unwrap(), Some(0));
    clock.advance(Duration::from_millis(1));

    // Reads see the expiry at once; a get removes its own entry.
    assert_eq!(cache.get::<u32>("t0").unwrap(), None);
    assert!(!cache.exists("t1").unwrap());
    assert_eq!(
        cache.multi_get::<u32, _>(&["t2", "forever"]).unwrap(),
        vec![None, Some(1)]
    );
    assert!(cache.keys("t*").unwrap().is_empty());
    assert_eq!(len(&cache), 100);

    // A write sweeps a bounded batch, never everything at once; the next writes finish the job.
    cache.set("w", &1u32, Ttl::Default).unwrap();
    let after_one_write = len(&cache);
    assert!(
        after_one_write < 100 && after_one_write > 2,
        "{after_one_write}"
    );
    cache.set("w", &2u32, Ttl::Default).unwrap();
    assert_eq!(
        len(&cache),
        2,
        "a full batch was found, so the next write swept again"
    );

    // `raw("sweep")` removes everything expired at once.
    cache.multi_set(&pairs, Ttl::millis(10)).unwrap();
    clock.advance(Duration::from_millis(10));
    assert_eq!(cache.raw::<&str>("sweep", &[]).unwrap(), RawReply::Int(100));
    assert_eq!(len(&cache), 2);
}

#[test]
fn expire_and_increment_follow_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let cache = on(dir.path(), &clock);
    cache.set("k", &1, Ttl::secs(5)).unwrap();
    assert!(cache.expire("k", Ttl::Never).unwrap());
    clock.advance(Duration::from_secs(60));
    assert_eq!(cache.get::<i32>("k").unwrap(), Some(1));
    assert!(cache.expire("k", Ttl::secs(1)).unwrap());
    clock.advance(Duration::from_secs(1));
    assert!(
        !cache.expire("k", Ttl::secs(1)).unwrap(),
        "expired entries do not come back"
    );
    // An expired counter starts again from zero; add succeeds over an expired entry.
    cache.set("n", &10, Ttl::secs(1)).unwrap();
    assert_eq!(cache.increment("n", 1).unwrap(), 11);
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.increment("n", 1).unwrap(), 1);
    cache.set("a", &1, Ttl::secs(1)).unwrap();
    clock.advance(Duration::from_secs(1));
    cache.add("a", &2, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("a").unwrap(), Some(2));
    assert_eq!(cache.delete("gone").unwrap(), 0);
}

#[test]
fn the_entry_bound_evicts_the_least_recently_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .backend(
            DiskBackend::builder(dir.path())
                .max_entries(10)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    for i in 0..25 {
        cache.set(&format!("k{i}"), &i, Ttl::Default).unwrap();
        // Rewriting k0 keeps it the most recently stored.
        cache.set("k0", &0, Ttl::Default).unwrap();
    }
    assert_eq!(len(&cache), 10);
    let present: Vec<String> = cache.keys("*").unwrap();
    let mut expected: Vec<String> = (16..25).map(|i| format!("k{i}")).collect();
    expected.push("k0".into());
    expected.sort();
    assert_eq!(present, expected);
    cache
        .multi_set(
            &(100..130).map(|i| (format!("m{i}"), i)).collect::<Vec<_>>(),
            Ttl::Default,
        )
        .unwrap();
    assert_eq!(len(&cache), 10);
    assert_eq!(cache.get::<i32>("m129").unwrap(), Some(129));
}

#[test]
fn the_byte_bound_evicts_and_refuses_an_entry_that_cannot_fit() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .backend(
            DiskBackend::builder(dir.path())
                .max_bytes(10_000)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let chunk = "x".repeat(998); // 1000 bytes as JSON, plus the key
    for i in 0..30 {
        cache
            .set(&format!("b{i:02}"), &chunk, Ttl::Default)
            .unwrap();
        match cache.raw::<&str>("bytes", &[]).unwrap() {
            RawReply::Int(bytes) => assert!(bytes <= 10_000, "{bytes}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        cache.get::<String>("b29").unwrap().map(|s| s.len()),
        Some(998)
    );
    assert_eq!(cache.get::<String>("b00").unwrap(), None);
    match cache.set("huge", &"y".repeat(20_000), Ttl::Default) {
        Err(Error::InvalidInput(message)) => assert!(message.contains("max_bytes"), "{message}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(
        cache.get::<String>("b29").unwrap().map(|s| s.len()),
        Some(998),
        "nothing evicted for it"
    );
}

#[test]
fn keys_match_globs_within_the_namespace_and_clear_is_per_namespace() {
    let (dir, cache) = cache();
    let other = Cache::builder()
        .backend(DiskBackend::open(dir.path()).unwrap())
        .namespace("test2")
        .build()
        .unwrap();
    for k in ["user:1", "user:2", "user:10", "post:1", "u*ser"] {
        cache.set(k, &1, Ttl::Default).unwrap();
    }
    other.set("user:1", &2, Ttl::Default).unwrap();
    assert_eq!(
        cache.keys("user:*").unwrap(),
        vec!["user:1", "user:10", "user:2"]
    );
    assert_eq!(cache.keys("user:?").unwrap(), vec!["user:1", "user:2"]);
    assert_eq!(cache.keys("[pu]*:1").unwrap(), vec!["post:1", "user:1"]);
    assert_eq!(cache.keys(r"u\*ser").unwrap(), vec!["u*ser"]);
    assert_eq!(other.keys("*").unwrap(), vec!["user:1"]);
    assert_eq!(cache.clear().unwrap(), 5);
    assert!(cache.keys("*").unwrap().is_empty());
    assert_eq!(other.get::<i32>("user:1").unwrap(), Some(2));
    assert_eq!(other.without_namespace().clear().unwrap(), 1);
}

#[test]
fn two_handles_on_one_directory_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let a = DiskBackend::open(dir.path()).unwrap();
    // A different spelling of the same directory is the same database.
    let b = DiskBackend::open(dir.path().join(".")).unwrap();
    assert_eq!(a.dir(), b.dir());
    let a = Cache::builder().backend(a).build().unwrap();
    let b = Cache::builder().backend(b).build().unwrap();
    a.set("k", &1, Ttl::Default).unwrap();
    assert_eq!(b.get::<i32>("k").unwrap(), Some(1));
    let threads: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                (0..200).for_each(|_| assert!(c.increment("n", 1).unwrap() > 0))
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(a.get::<i64>("n").unwrap(), Some(400));
    drop(a);
    b.set("k", &2, Ttl::Default).unwrap();
    assert_eq!(b.get::<i32>("k").unwrap(), Some(2));
}

#[test]
fn a_foreign_file_or_a_file_in_place_of_the_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    match DiskBackend::open(&file) {
        Err(Error::Backend { backend, message }) => {
            assert_eq!(backend, "disk");
            assert!(message.contains("plain-file"), "{message}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("cache.sqlite3"), vec![0x42u8; 8192]).unwrap();
    assert!(matches!(
        DiskBackend::open(&garbage),
        Err(Error::Backend { .. })
    ));
    assert_eq!(
        std::fs::read(garbage.join("cache.sqlite3")).unwrap(),
        vec![0x42u8; 8192],
        "left untouched"
    );
}

#[test]
fn alias_configs_and_urls_build_disk_caches() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "disk://{}?namespace=web&max_entries=100",
        dir.path().display()
    );
    let cache = Cache::from_url(&url).unwrap();
    cache.set("x", &1, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("x").unwrap(), Some(1));
    assert_eq!(cache.namespace(), Some("web"));

    caches::add(
        "files",
        AliasConfig::new("disk").option("path", dir.path().to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(
        caches::get("files")
            .unwrap()
            .with_namespace("web")
            .get::<i32>("x")
            .unwrap(),
        Some(1)
    );
    for (bad, field) in [
        (r#"{"cache": "disk"}"#, "path"),
        (
            r#"{"cache": "disk", "path": "/tmp/x", "max_entries": 0}"#,
            "max_entries",
        ),
        (
            r#"{"cache": "disk", "path": "/tmp/x", "max_bytes": -1}"#,
            "max_bytes",
        ),
        (r#"{"cache": "disk", "path": 3}"#, "path"),
    ] {
        let json = format!(r#"{{"default": {{"cache": "memory"}}, "bad": {bad}}}"#);
        let err = serde_json::from_str::<Config>(&json)
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate().map_err(|e| e.to_string()))
            .expect_err(bad);
        assert!(err.contains("bad") && err.contains(field), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Other processes: this test binary re-runs itself with `CACHE_DISK_CHILD` set, as the writer.

/// A value that proves its own integrity: the payload is a function of `seq`, and `digest` hashes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    seq: u64,
    payload: String,
    digest: u64,
}

fn payload(seq: u64) -> String {
    // From a few bytes to ~100 KB, so writes span many pages.
    let len = (seq.wrapping_mul(2_654_435_761) % 100_000) as usize;
    let unit = format!("{seq:x}-");
    unit.repeat(len / unit.len() + 1)[..len].to_string()
}

fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn record(seq: u64) -> Record {
    let payload = payload(seq);
    Record {
        seq,
        digest: digest(&payload),
        payload,
    }
}

fn check(record: &Record) {
    assert_eq!(
        record.digest,
        digest(&record.payload),
        "digest of seq {}",
        record.seq
    );
    assert_eq!(
        record.payload,
        payload(record.seq),
        "payload of seq {}",
        record.seq
    );
}

const CHILD_ENV: &str = "CACHE_DISK_CHILD";

/// The writer when run as a child; a no-op in a normal test run.
#[test]
fn disk_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let cache = Cache::builder()
        .backend(DiskBackend::open(&dir).unwrap())
        .namespace("crash")
        .build()
        .unwrap();
    // Bounded in count and time: killed long before either runs out in the tests.
    let started = Instant::now();
    for seq in 0..2_000_000u64 {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        cache
            .set(&format!("single:{}", seq % 50), &record(seq), Ttl::Default)
            .unwrap();
        // Pairs written together must always be seen together.
        cache
            .multi_set(
                &[
                    (format!("pair-a:{}", seq % 20), record(seq)),
                    (format!("pair-b:{}", seq % 20), record(seq)),
                ],
                Ttl::Default,
            )
            .unwrap();
        cache.increment("writes", 1).unwrap();
    }
}

/// This test binary, run again to do only `test` (a child-process entry point), with `env` set to `dir`.
fn child_command(test: &str, env: &str, dir: &std::path::Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(Stdio::null());
    command
}

fn spawn_writer(dir: &std::path::Path) -> std::process::Child {
    child_command("disk_child_writer", CHILD_ENV, dir)
        .stderr(std::fs::File::create(child_log(dir)).unwrap())
        .spawn()
        .unwrap()
}

/// Where the child writer's stderr goes (in the cache's directory, beside the database).
fn child_log(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("child-stderr.log")
}

fn verify(cache: &Cache) -> usize {
    let keys = cache.keys("*").unwrap();
    let mut checked = 0;
    for key in &keys {
        if key == "writes" {
            assert!(cache.get::<i64>(key).unwrap().unwrap() >= 0);
            continue;
        }
        let r = cache
            .get::<Record>(key)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} listed but absent"));
        check(&r);
        checked += 1;
    }
    for i in 0..20 {
        let pair = cache
            .multi_get::<Record, _>(&[format!("pair-a:{i}"), format!("pair-b:{i}")])
            .unwrap();
        match (&pair[0], &pair[1]) {
            (Some(a), Some(b)) => assert_eq!(a.seq, b.seq, "pair {i} torn"),
            (None, None) => {}
            _ => panic!("pair {i}: one half written without the other"),
        }
    }
    checked
}

#[test]
fn a_writer_killed_mid_write_leaves_only_intact_values_and_another_process_shares_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_writer(dir.path());
    // This process uses the same database while the child writes.
    let cache = Cache::builder()
        .backend(DiskBackend::open(dir.path()).unwrap())
        .namespace("crash")
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut mine = 0;
    loop {
        let writes = cache.get::<i64>("writes").unwrap().unwrap_or(0);
        if writes >= 150 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child wrote only {writes} rounds in 60 s"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the child exited early ({status}); its stderr:\n{}",
                std::fs::read_to_string(child_log(dir.path())).unwrap_or_default()
            );
        }
        cache
            .set(&format!("parent:{mine}"), &record(mine), Ttl::Default)
            .unwrap();
        mine += 1;
        verify(&cache);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(cache);

    let cache = Cache::builder()
        .backend(DiskBackend::open(dir.path()).unwrap())
        .namespace("crash")
        .build()
        .unwrap();
    let checked = verify(&cache);
    assert!(checked >= 50, "only {checked} values to check");
    for i in 0..mine {
        check(
            &cache
                .get::<Record>(&format!("parent:{i}"))
                .unwrap()
                .expect("the parent's writes survive"),
        );
    }
    // The database is writable again at once.
    cache.set("after", &record(1), Ttl::Default).unwrap();
    assert_eq!(
        cache.raw::<&str>("checkpoint", &[]).unwrap(),
        RawReply::Status("OK".into())
    );
}

/// Another process's write transaction on the cache's database, held until dropped.
fn foreign_write_lock(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("cache.sqlite3")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

#[test]
fn a_read_of_an_expired_entry_never_waits_on_another_process_s_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .backend(
            DiskBackend::builder(dir.path())
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .timeout(Some(Duration::from_secs(3)))
        .build()
        .unwrap();
    // The writer's busy timeout is now the call timeout (3 s).
    cache.set("gone", &1, Ttl::secs(1)).unwrap();
    clock.advance(Duration::from_secs(2));
    let lock = foreign_write_lock(dir.path());
    let started = Instant::now();
    assert_eq!(cache.get::<i32>("gone").unwrap(), None);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the best-effort delete waited {:?} on the lock",
        started.elapsed()
    );
    drop(lock);
    // The sweep (or a later read) still removes it.
    assert_eq!(cache.get::<i32>("gone").unwrap(), None);
}

#[test]
fn a_write_waits_at_most_its_timeout_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .backend(DiskBackend::open(dir.path()).unwrap())
        .timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    cache.set("warm", &0, Ttl::Default).unwrap();
    let lock = foreign_write_lock(dir.path());
    std::thread::scope(|s| {
        // The first write holds this process's writer while it waits on SQLite's lock...
        let first = s.spawn(|| cache.set("a", &1, Ttl::Default));
        std::thread::sleep(Duration::from_millis(300));
        // ...so the second waits for the writer first, then only for what is left of its timeout.
        let started = Instant::now();
        let second = cache.set("b", &2, Ttl::Default);
        let waited = started.elapsed();
        assert!(matches!(second, Err(Error::Timeout { .. })), "{second:?}");
        assert!(
            waited < Duration::from_millis(1500),
            "a 1 s timeout waited {waited:?}"
        );
        assert!(matches!(first.join().unwrap(), Err(Error::Timeout { .. })));
    });
    drop(lock);
    cache.set("b", &2, Ttl::Default).unwrap();
}

#[test]
fn increment_respects_the_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .backend(
            DiskBackend::builder(dir.path())
                .max_bytes(20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(cache.increment("n", 5).unwrap(), 5);
    let long = "k".repeat(30);
    match cache.increment(&long, 1) {
        Err(Error::InvalidInput(message)) => assert!(message.contains("max_bytes"), "{message}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(
        cache.get::<i64>("n").unwrap(),
        Some(5),
        "nothing evicted for it"
    );
    assert_eq!(cache.get::<i64>(&long).unwrap(), None);
}

#[test]
fn compare_and_set_refuses_a_byte_valued_token() {
    use cache_runtime::{Backend, CallOptions, CasToken, Value};
    let dir = tempfile::tempdir().unwrap();
    let backend = DiskBackend::open(dir.path()).unwrap();
    let opts = CallOptions::default();
    backend
        .set("k", Value::Bytes(b"1".to_vec()), None, &opts)
        .unwrap();
    assert!(matches!(
        backend.compare_and_set(
            "k",
            &CasToken::Bytes(b"1".to_vec()),
            Value::Bytes(b"2".to_vec()),
            None,
            &opts
        ),
        Err(Error::InvalidInput(_))
    ));
    let stored = backend.get("k", &opts).unwrap().unwrap();
    assert_eq!(stored.as_bytes(), Some(&b"1"[..]));
}

const OPENER_ENV: &str = "CACHE_DISK_OPENER";

/// Opens the cache and writes one key, when run as a child; a no-op in a normal test run.
#[test]
fn disk_child_opener() {
    let Some(dir) = std::env::var_os(OPENER_ENV) else {
        return;
    };
    let cache = Cache::builder()
        .backend(DiskBackend::open(&dir).unwrap())
        .build()
        .unwrap();
    cache
        .set(
            &format!("opened-by:{}", std::process::id()),
            &1u8,
            Ttl::Default,
        )
        .unwrap();
}

/// Processes that open a new cache directory at the same moment contend for the switch to WAL mode and the
/// schema: every one of them must open it (SQLite answers some of these contentions with "database is
/// locked" at once, which the backend retries).
#[test]
fn processes_opening_a_new_cache_at_once_all_open_it() {
    const PROCESSES: usize = 6;
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                child_command("disk_child_opener", OPENER_ENV, dir.path())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "an opener failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let cache = Cache::builder()
            .backend(DiskBackend::open(dir.path()).unwrap())
            .build()
            .unwrap();
        assert_eq!(cache.keys("opened-by:*").unwrap().len(), PROCESSES);
    }
}
