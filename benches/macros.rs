//! `#[cached]` against the `cached` crate's `#[cached]` on `fn f(a: u64, b: String) -> u64`.
//!
//! - `macros/hit`: 1,024 hot keys, every call a hit (the caller clones the `String` argument on both sides).
//! - `macros/miss_insert`: every call a new key into a cache bounded at 1,024 entries (so each call also evicts).
//! - `macros/hit_2_threads`: two threads hitting the same 1,024 keys; one iteration is one call on each thread,
//!   so perfect scaling shows the same time per iteration as `macros/hit`.
//! - `macros/breakdown`: the pieces of our hit path (key building, alias resolution, `Cache::get` on the
//!   memory backend, served from its lock-free hot index) next to a `RwLock<HashMap<String, u64>>` lookup of
//!   the same keys.
//!
//! Before criterion runs, an interleaved A/B pass alternates short batches of ours and `cached` and prints the
//! ratio of the medians: on a shared, loaded machine it is steadier than comparing two criterion runs taken
//! seconds apart.
//!
//! Run: `cargo bench --bench macros -- --warm-up-time 1 --measurement-time 3`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use cache_runtime::caches::{self, AliasCell};
use cache_runtime::AliasConfig;
use criterion::{criterion_group, Criterion};

const HOT: usize = 1024;

#[cache_runtime::cached(alias = "bench_hit")]
fn ours(a: u64, b: String) -> u64 {
    a.wrapping_mul(31).wrapping_add(b.len() as u64)
}

#[cached::proc_macro::cached]
fn theirs(a: u64, b: String) -> u64 {
    a.wrapping_mul(31).wrapping_add(b.len() as u64)
}

#[cache_runtime::cached(cache = "memory://?max_entries=1024")]
fn ours_bounded(a: u64, b: String) -> u64 {
    a.wrapping_mul(31).wrapping_add(b.len() as u64)
}

#[cached::proc_macro::cached(max_size = 1024)]
fn theirs_bounded(a: u64, b: String) -> u64 {
    a.wrapping_mul(31).wrapping_add(b.len() as u64)
}

static NEXT_MISS: AtomicU64 = AtomicU64::new(0);

fn hot_keys() -> Vec<(u64, String)> {
    (0..HOT as u64)
        .map(|i| (i * 7919, format!("user-{i}")))
        .collect()
}

/// Configures the alias and fills both caches with the hot keys.
fn warm() -> Vec<(u64, String)> {
    caches::add("bench_hit", AliasConfig::memory()).expect("a memory alias");
    let keys = hot_keys();
    for (a, b) in &keys {
        ours(*a, b.clone());
        theirs(*a, b.clone());
    }
    keys
}

fn calls(f: fn(u64, String) -> u64, keys: &[(u64, String)], n: usize, start: usize) {
    let mut i = start;
    for _ in 0..n {
        i = (i + 1) % HOT;
        let (a, b) = &keys[i];
        black_box(f(*a, b.clone()));
    }
}

fn miss_calls(f: fn(u64, String) -> u64, n: usize) {
    let b = "user".to_string();
    for _ in 0..n {
        black_box(f(NEXT_MISS.fetch_add(1, Ordering::Relaxed), b.clone()));
    }
}

/// Alternates batches of `a` and `b`; returns the median nanoseconds per call of each.
fn interleaved(
    rounds: usize,
    batch: usize,
    mut a: impl FnMut(usize),
    mut b: impl FnMut(usize),
) -> (f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        a(batch);
        ta.push(started.elapsed().as_nanos() as f64 / batch as f64);
        let started = Instant::now();
        b(batch);
        tb.push(started.elapsed().as_nanos() as f64 / batch as f64);
    }
    (median(&mut ta), median(&mut tb))
}

/// The median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Two threads each making `n` calls at once; the wall time.
fn two_threads(n: u64, keys: &[(u64, String)], f: fn(u64, String) -> u64) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for offset in [0, HOT / 2] {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                calls(f, keys, n as usize, offset);
                barrier.wait();
            });
        }
        barrier.wait();
        let started = Instant::now();
        barrier.wait();
        started.elapsed()
    })
}

fn ab_report() {
    let keys = warm();
    let rounds = if std::env::args().any(|a| a == "--bench") {
        201
    } else {
        3
    };
    let (ours_hit, theirs_hit) = interleaved(
        rounds,
        20_000,
        |n| calls(ours, &keys, n, 0),
        |n| calls(theirs, &keys, n, 0),
    );
    let (ours_miss, theirs_miss) = interleaved(
        rounds,
        20_000,
        |n| miss_calls(ours_bounded, n),
        |n| miss_calls(theirs_bounded, n),
    );
    // Two-thread runs, alternating, each timed from the start barrier to the end barrier (threads already up).
    let mut ours_runs = Vec::new();
    let mut theirs_runs = Vec::new();
    // Long runs (200,000 calls per thread), so waking the threads is a small part of each.
    let calls_2t = if rounds > 3 { 200_000 } else { 2_000 };
    for _ in 0..rounds / 20 + 1 {
        ours_runs.push(two_threads(calls_2t, &keys, ours).as_nanos() as f64 / calls_2t as f64);
        theirs_runs.push(two_threads(calls_2t, &keys, theirs).as_nanos() as f64 / calls_2t as f64);
    }
    let (ours_2t, theirs_2t) = (median(&mut ours_runs), median(&mut theirs_runs));
    println!("interleaved A/B, median ns per call (ours / cached / ratio):");
    println!(
        "  hit            {ours_hit:8.1} {theirs_hit:8.1} {:6.2}x",
        ours_hit / theirs_hit
    );
    println!(
        "  miss+insert    {ours_miss:8.1} {theirs_miss:8.1} {:6.2}x",
        ours_miss / theirs_miss
    );
    println!(
        "  2-thread hit throughput vs one thread: ours {:.2}x, cached {:.2}x",
        2.0 * ours_hit / ours_2t,
        2.0 * theirs_hit / theirs_2t
    );
}

fn hit(c: &mut Criterion) {
    let keys = warm();
    let mut group = c.benchmark_group("macros/hit");
    group.bench_function("ours", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % HOT;
            let (a, b) = &keys[i];
            black_box(ours(*a, b.clone()))
        });
    });
    group.bench_function("cached", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % HOT;
            let (a, b) = &keys[i];
            black_box(theirs(*a, b.clone()))
        });
    });
    group.finish();
}

fn miss_insert(c: &mut Criterion) {
    let b = "user".to_string();
    let mut group = c.benchmark_group("macros/miss_insert");
    group.bench_function("ours", |bench| {
        bench.iter(|| {
            black_box(ours_bounded(
                NEXT_MISS.fetch_add(1, Ordering::Relaxed),
                b.clone(),
            ))
        });
    });
    group.bench_function("cached", |bench| {
        bench.iter(|| {
            black_box(theirs_bounded(
                NEXT_MISS.fetch_add(1, Ordering::Relaxed),
                b.clone(),
            ))
        });
    });
    group.finish();
}

fn hit_two_threads(c: &mut Criterion) {
    let keys = warm();
    let mut group = c.benchmark_group("macros/hit_2_threads");
    group.bench_function("ours", |bench| {
        bench.iter_custom(|iters| two_threads(iters, &keys, ours))
    });
    group.bench_function("cached", |bench| {
        bench.iter_custom(|iters| two_threads(iters, &keys, theirs))
    });
    group.finish();
}

fn breakdown(c: &mut Criterion) {
    let keys = warm();
    let cache = ours_cache().expect("the alias resolves");
    let full: Vec<String> = keys
        .iter()
        .map(|(a, b)| ours_cache_key(*a, b.clone()).expect("a key"))
        .collect();
    let mut group = c.benchmark_group("macros/breakdown");
    group.bench_function("clone_string_argument", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % HOT;
            black_box(keys[i].1.clone())
        });
    });
    group.bench_function("build_key", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % HOT;
            let (a, b) = &keys[i];
            // As the macro writes it.
            use cache_runtime::__private::{KeyBuf, KeyDirect as _, KeyPart};
            let mut key = KeyBuf::new();
            key.push("cache_suite::ours");
            key.open();
            KeyPart(a).put(&mut key);
            KeyPart(b).put(&mut key);
            key.close();
            black_box(key.as_bytes().map(<[u8]>::len).unwrap_or(0))
        });
    });
    static CELL: AliasCell = AliasCell::new("bench_hit");
    group.bench_function("alias_cell", |bench| {
        bench.iter(|| black_box(CELL.with(|c| c.is_ok())));
    });
    group.bench_function("cache_get", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % HOT;
            black_box(cache.get::<u64>(&full[i]).ok().flatten())
        });
    });
    let map: HashMap<String, u64> = full.iter().map(|k| (k.clone(), 1)).collect();
    let locked = parking_lot::RwLock::new(map);
    group.bench_function("rwlock_hashmap_get", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % HOT;
            black_box(locked.read().get(&full[i]).copied())
        });
    });
    group.finish();
}

criterion_group!(benches, hit, miss_insert, hit_two_threads, breakdown);

fn main() {
    ab_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
