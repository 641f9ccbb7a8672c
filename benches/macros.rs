//! `#[cached]` against the `cached` crate's `#[cached]` on `fn f(a: u64, b: String) -> u64`.
//!
//! - `hit`: 1,024 hot keys, every call a hit (the caller clones the `String` argument on both sides).
//! - `miss_insert`: every call a new key into a cache bounded at 1,024 entries (so each call also evicts).
//! - `hit_2_threads`: two threads hitting the same 1,024 keys; one iteration is one call on each thread, so
//!   perfect scaling shows the same time per iteration as `hit`.
//!
//! Run: `cargo bench --bench macros -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use cache_runtime::{caches, AliasConfig};
use criterion::{criterion_group, criterion_main, Criterion};

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

fn hot_keys() -> Vec<(u64, String)> {
    (0..HOT as u64)
        .map(|i| (i * 7919, format!("user-{i}")))
        .collect()
}

fn hit(c: &mut Criterion) {
    caches::add("bench_hit", AliasConfig::memory()).expect("a memory alias");
    let keys = hot_keys();
    for (a, b) in &keys {
        ours(*a, b.clone());
        theirs(*a, b.clone());
    }
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
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let b = "user".to_string();
    let mut group = c.benchmark_group("macros/miss_insert");
    group.bench_function("ours", |bench| {
        bench.iter(|| {
            black_box(ours_bounded(
                NEXT.fetch_add(1, Ordering::Relaxed),
                b.clone(),
            ))
        });
    });
    group.bench_function("cached", |bench| {
        bench.iter(|| {
            black_box(theirs_bounded(
                NEXT.fetch_add(1, Ordering::Relaxed),
                b.clone(),
            ))
        });
    });
    group.finish();
}

/// Runs `iters` calls of `f` on each of two threads at once; returns the wall time.
fn two_threads(iters: u64, keys: &[(u64, String)], f: fn(u64, String) -> u64) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for offset in [0, HOT / 2] {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let mut i = offset;
                for _ in 0..iters {
                    i = (i + 1) % HOT;
                    let (a, b) = &keys[i];
                    black_box(f(*a, b.clone()));
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let started = Instant::now();
        barrier.wait();
        started.elapsed()
    })
}

fn hit_two_threads(c: &mut Criterion) {
    caches::add("bench_hit", AliasConfig::memory()).expect("a memory alias");
    let keys = hot_keys();
    for (a, b) in &keys {
        ours(*a, b.clone());
        theirs(*a, b.clone());
    }
    let mut group = c.benchmark_group("macros/hit_2_threads");
    group.bench_function("ours", |bench| {
        bench.iter_custom(|iters| two_threads(iters, &keys, ours))
    });
    group.bench_function("cached", |bench| {
        bench.iter_custom(|iters| two_threads(iters, &keys, theirs))
    });
    group.finish();
}

criterion_group!(benches, hit, miss_insert, hit_two_threads);
criterion_main!(benches);
