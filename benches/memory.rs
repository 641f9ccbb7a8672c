//! Memory backend: a `get` hit against a locked HashMap, quick_cache and moka on the same 1,024 keys, and
//! throughput of two threads against one on the same keys.
//!
//! Run: `cargo bench --bench memory`. Results are reported in BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Ttl};
use criterion::{criterion_group, criterion_main, Criterion};
use parking_lot::Mutex;

const KEYS: usize = 1024;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("user:{i}:profile")).collect()
}

/// The operations every contender offers.
trait Contender: Sync {
    fn get(&self, key: &str) -> Option<u64>;
}

struct Ours(Cache);
impl Contender for Ours {
    #[inline]
    fn get(&self, key: &str) -> Option<u64> {
        self.0.get::<u64>(key).ok().flatten()
    }
}

struct LockedMap(Mutex<HashMap<String, u64>>);
impl Contender for LockedMap {
    #[inline]
    fn get(&self, key: &str) -> Option<u64> {
        self.0.lock().get(key).copied()
    }
}

struct Quick(quick_cache::sync::Cache<String, u64>);
impl Contender for Quick {
    #[inline]
    fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key)
    }
}

struct Moka(moka::sync::Cache<String, u64>);
impl Contender for Moka {
    #[inline]
    fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key)
    }
}

fn contenders(keys: &[String]) -> Vec<(&'static str, Box<dyn Contender>)> {
    let ours = Cache::memory();
    let mut map = HashMap::new();
    let quick = quick_cache::sync::Cache::new(KEYS * 2);
    let moka = moka::sync::Cache::new((KEYS * 2) as u64);
    for (i, k) in keys.iter().enumerate() {
        ours.set(k, &(i as u64), Ttl::Default).unwrap();
        map.insert(k.clone(), i as u64);
        quick.insert(k.clone(), i as u64);
        moka.insert(k.clone(), i as u64);
    }
    vec![
        ("cache_runtime", Box::new(Ours(ours))),
        ("mutex_hashmap", Box::new(LockedMap(Mutex::new(map)))),
        ("quick_cache", Box::new(Quick(quick))),
        ("moka", Box::new(Moka(moka))),
    ]
}

/// `ops` hits spread over the keys, starting at a thread-specific offset.
#[inline]
fn run(c: &dyn Contender, keys: &[String], ops: u64, offset: usize) {
    let mut i = offset;
    for _ in 0..ops {
        black_box(c.get(black_box(&keys[i & (KEYS - 1)])));
        i = i.wrapping_add(7);
    }
}

fn hit(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("memory_get_hit");
    for (name, contender) in contenders(&keys) {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                run(&*contender, &keys, iters, 0);
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// Time per operation with `threads` threads each doing `iters` operations at once (wall time / iters):
/// two threads scaling perfectly show the same time per iteration as one.
fn scaling(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("memory_get_hit_threads");
    for (name, contender) in contenders(&keys) {
        for threads in [1usize, 2] {
            group.bench_function(format!("{name}/{threads}"), |b| {
                b.iter_custom(|iters| {
                    let barrier = std::sync::Barrier::new(threads);
                    let elapsed: Vec<Duration> = std::thread::scope(|s| {
                        let handles: Vec<_> = (0..threads)
                            .map(|t| {
                                let (keys, contender, barrier) = (&keys, &contender, &barrier);
                                s.spawn(move || {
                                    barrier.wait();
                                    let start = Instant::now();
                                    run(&**contender, keys, iters, t * 512);
                                    start.elapsed()
                                })
                            })
                            .collect();
                        handles.into_iter().map(|h| h.join().unwrap()).collect()
                    });
                    elapsed.into_iter().max().unwrap()
                })
            });
        }
    }
    group.finish();
}

fn set(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("memory_set");
    let ours = Cache::memory();
    let mut i = 0usize;
    group.bench_function("cache_runtime", |b| {
        b.iter(|| {
            i = i.wrapping_add(7);
            ours.set(&keys[i & (KEYS - 1)], &(i as u64), Ttl::Default)
                .unwrap()
        })
    });
    let map = Mutex::new(HashMap::<String, u64>::new());
    group.bench_function("mutex_hashmap", |b| {
        b.iter(|| {
            i = i.wrapping_add(7);
            map.lock().insert(keys[i & (KEYS - 1)].clone(), i as u64)
        })
    });
    let quick = quick_cache::sync::Cache::new(KEYS * 2);
    group.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = i.wrapping_add(7);
            quick.insert(keys[i & (KEYS - 1)].clone(), i as u64)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = hit, scaling, set
}
criterion_main!(benches);
