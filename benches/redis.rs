//! Redis: a `Cache::get` hit and a `#[cached]` hit against a raw `redis` crate GET of the same bytes, and
//! `Cache::multi_get` of 100 keys against a raw MGET of them.
//!
//! Every contender talks to the same local redis-server (started on a free port, stopped at the end), one
//! request at a time. The raw contenders use one `redis::Connection` each, no pool, no decoding; the cache
//! decodes the JSON it reads. Run: `cargo bench --features redis --bench redis`
//! (quick: `-- --warm-up-time 1 --measurement-time 3`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use cache_runtime::{cached, caches, AliasConfig, Cache, Ttl};
use criterion::Criterion;

const KEYS: usize = 1000;
const BATCH: usize = 100;

/// A value of about 100 bytes as JSON.
fn value() -> String {
    "v".repeat(98)
}

#[cached(alias = "bench_redis")]
fn lookup(i: usize) -> String {
    let _ = i;
    value()
}

fn benches(c: &mut Criterion) {
    let server = support::redis_server();
    let config = AliasConfig::new("redis")
        .option("endpoint", "127.0.0.1")
        .option("port", server.port)
        .namespace("bench")
        .timeout(Duration::from_secs(5));
    let cache: Cache = config.build_cache("bench").unwrap();
    caches::add("bench_redis", config.clone()).unwrap();
    let mut raw = support::admin(server.port);

    let keys: Vec<String> = (0..KEYS).map(|i| format!("key:{i}")).collect();
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), value())).collect();
    cache.multi_set(&pairs, Ttl::Default).unwrap();
    let full_keys: Vec<String> = keys.iter().map(|k| cache.build_key(k)).collect();
    for i in 0..KEYS {
        assert_eq!(lookup(i), value()); // fill the #[cached] entries
    }
    let memo_keys: Vec<String> = (0..KEYS)
        .map(|i| format!("bench:{}", lookup_cache_key(i).unwrap()))
        .collect();

    let mut g = c.benchmark_group("redis_get_hit");
    let mut i = 0;
    g.bench_function("raw_redis_crate", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&full_keys[i])
                .query(&mut raw)
                .unwrap();
            black_box(v)
        })
    });
    g.bench_function("cache_get", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get::<String>(&keys[i]).unwrap().unwrap())
        })
    });
    g.bench_function("raw_redis_crate_memo_key", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&memo_keys[i])
                .query(&mut raw)
                .unwrap();
            black_box(v)
        })
    });
    g.bench_function("cached_fn", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(lookup(i))
        })
    });
    g.finish();

    let batches: Vec<Vec<String>> = (0..KEYS / BATCH)
        .map(|b| keys[b * BATCH..(b + 1) * BATCH].to_vec())
        .collect();
    let full_batches: Vec<Vec<String>> = batches
        .iter()
        .map(|batch| batch.iter().map(|k| cache.build_key(k)).collect())
        .collect();
    let mut g = c.benchmark_group("redis_multi_get_100");
    let mut n = 0;
    g.bench_function("raw_mget", |b| {
        b.iter(|| {
            n = (n + 1) % batches.len();
            let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&full_batches[n])
                .query(&mut raw)
                .unwrap();
            black_box(v)
        })
    });
    g.bench_function("cache_multi_get", |b| {
        b.iter(|| {
            n = (n + 1) % batches.len();
            black_box(cache.multi_get::<String, _>(&batches[n]).unwrap())
        })
    });
    g.finish();

    // Loopback latency on a shared machine drifts by more than the differences measured above between
    // one criterion benchmark and the next; measuring the contenders in alternation cancels that drift.
    // Under `cargo test` (no `--bench`) the build is unoptimized: exercise the code, report nothing.
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds = if measuring { 101 } else { 1 };
    let (mut ka, mut kb) = (0, 0);
    paired(
        "get hit: cache_get / raw GET",
        rounds,
        || {
            ka = (ka + 1) % KEYS;
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&full_keys[ka])
                .query(&mut raw)
                .unwrap();
            black_box(v);
        },
        || {
            kb = (kb + 1) % KEYS;
            black_box(cache.get::<String>(&keys[kb]).unwrap().unwrap());
        },
    );
    paired(
        "get hit: #[cached] fn / raw GET",
        rounds,
        || {
            ka = (ka + 1) % KEYS;
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&memo_keys[ka])
                .query(&mut raw)
                .unwrap();
            black_box(v);
        },
        || {
            kb = (kb + 1) % KEYS;
            black_box(lookup(kb));
        },
    );
    paired(
        "multi_get 100: cache_multi_get / raw MGET",
        rounds,
        || {
            ka = (ka + 1) % batches.len();
            let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&full_batches[ka])
                .query(&mut raw)
                .unwrap();
            black_box(v);
        },
        || {
            kb = (kb + 1) % batches.len();
            black_box(cache.multi_get::<String, _>(&batches[kb]).unwrap());
        },
    );
    drop(server);
}

/// Runs `a` and `b` in alternation (ABBA, 200 calls each per round) and prints the median of the per-round
/// time ratios b / a.
fn paired(label: &str, rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) {
    let measuring = rounds > 1;
    const CALLS: usize = 200;
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..CALLS {
            f();
        }
        started.elapsed().as_secs_f64()
    };
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|_| {
            let (a1, b1, b2, a2) = (time(&mut a), time(&mut b), time(&mut b), time(&mut a));
            (b1 + b2) / (a1 + a2)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    if !measuring {
        return;
    }
    println!(
        "paired {label}: median ratio {:.3} over {rounds} rounds (quartiles {:.3}..{:.3})",
        ratios[rounds / 2],
        ratios[rounds / 4],
        ratios[3 * rounds / 4]
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
