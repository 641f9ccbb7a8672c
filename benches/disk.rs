//! Disk: the backend's hit latency and write throughput next to SQLite's own (rusqlite on a plain
//! `key -> value` table with the same settings: WAL, `synchronous=NORMAL`, one transaction per write).
//!
//! Run: `cargo bench --features disk --bench disk`.

mod common;
use common::interleaved;

use std::hint::black_box;

use cache_runtime::{Backend, Cache, CallOptions, DiskBackend, Ttl, Value};
use criterion::{criterion_group, criterion_main, Criterion};
use rusqlite::{params, Connection};

const KEYS: usize = 1000;

fn raw_store(dir: &std::path::Path) -> Connection {
    let conn = Connection::open(dir.join("raw.sqlite3")).unwrap();
    let _: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        .unwrap();
    conn
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let backend = DiskBackend::open(dir.path().join("ours")).unwrap();
    let cache = Cache::builder()
        .backend(DiskBackend::open(dir.path().join("ours")).unwrap())
        .build()
        .unwrap();
    let raw = raw_store(dir.path());
    let opts = CallOptions {
        timeout: Some(std::time::Duration::from_secs(5)),
    };
    let value = "v".repeat(98); // 100 bytes as JSON
    let json = serde_json::to_vec(&value).unwrap();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("bench:key:{i}")).collect();
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), value.clone())).collect();
    cache.multi_set(&pairs, Ttl::Default).unwrap();
    for k in &keys {
        raw.execute("INSERT INTO kv VALUES (?1, ?2)", params![k, json])
            .unwrap();
    }

    let mut g = c.benchmark_group("disk_get_hit");
    let mut i = 0;
    g.bench_function("raw_sqlite", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let v: Vec<u8> = raw
                .prepare_cached("SELECT value FROM kv WHERE key = ?1")
                .unwrap()
                .query_row([&keys[i]], |r| r.get(0))
                .unwrap();
            black_box(v)
        })
    });
    g.bench_function("backend", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(backend.get(&keys[i], &opts).unwrap().unwrap())
        })
    });
    g.bench_function("cache_typed", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get::<String>(&keys[i]).unwrap().unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("disk_set");
    g.bench_function("raw_sqlite", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            raw.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                .unwrap()
                .execute(params![&keys[i], json])
                .unwrap();
        })
    });
    g.bench_function("backend", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            backend
                .set(&keys[i], Value::Bytes(json.clone()), None, &opts)
                .unwrap();
        })
    });
    g.bench_function("cache_typed_with_ttl", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            cache.set(&keys[i], &value, Ttl::secs(3600)).unwrap();
        })
    });
    g.finish();

    let batch: Vec<(String, String)> = pairs[..100].to_vec();
    let mut g = c.benchmark_group("disk_multi_set_100");
    g.bench_function("raw_sqlite_one_transaction", |b| {
        b.iter(|| {
            let tx = raw.unchecked_transaction().unwrap();
            {
                let mut stmt = tx
                    .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                    .unwrap();
                for (k, _) in &batch {
                    stmt.execute(params![k, json]).unwrap();
                }
            }
            tx.commit().unwrap();
        })
    });
    g.bench_function("backend", |b| {
        b.iter(|| cache.multi_set(black_box(&batch), Ttl::Default).unwrap())
    });
    g.finish();

    let i = std::cell::Cell::new(0usize);
    let next = || {
        i.set((i.get() + 1) % KEYS);
        &keys[i.get()]
    };
    interleaved(
        "disk get hit (raw SQLite vs backend)",
        20_000,
        || {
            let v: Vec<u8> = raw
                .prepare_cached("SELECT value FROM kv WHERE key = ?1")
                .unwrap()
                .query_row([next()], |r| r.get(0))
                .unwrap();
            drop(black_box(v));
        },
        || drop(black_box(backend.get(next(), &opts).unwrap())),
    );
    interleaved(
        "disk set (raw SQLite vs backend)",
        3_000,
        || {
            raw.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                .unwrap()
                .execute(params![next(), json])
                .unwrap();
        },
        || {
            backend
                .set(next(), Value::Bytes(json.clone()), None, &opts)
                .unwrap()
        },
    );
}

criterion_group!(disk, benches);
criterion_main!(disk);
