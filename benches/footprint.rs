//! Memory per entry for 1M small entries (`"user:{i}"` -> `u64`), in our memory backend and in a plain
//! `HashMap<String, u64>`, measured as the growth of the process's resident set (allocator overhead
//! included). Each structure is measured in a child process of its own so freed memory is not reused.
//!
//! Run: `cargo bench --bench footprint`.

use std::collections::HashMap;
use std::hint::black_box;

/// Entries measured under `cargo bench`; `cargo test` runs a small smoke pass instead.
const ENTRIES: usize = 1_000_000;
const SMOKE_ENTRIES: usize = 10_000;

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn measure(which: &str, entries: usize) -> usize {
    let keys: Vec<String> = (0..entries).map(|i| format!("user:{i}")).collect();
    let before = rss_bytes();
    match which {
        "cache_runtime" => {
            let cache = cache_runtime::Cache::memory();
            for (i, k) in keys.iter().enumerate() {
                cache
                    .set(k, &(i as u64), cache_runtime::Ttl::Default)
                    .unwrap();
            }
            let after = rss_bytes();
            black_box(&cache);
            after - before
        }
        "cache_runtime_ttl" => {
            let cache = cache_runtime::Cache::memory();
            for (i, k) in keys.iter().enumerate() {
                cache
                    .set(k, &(i as u64), cache_runtime::Ttl::secs(3600))
                    .unwrap();
            }
            let after = rss_bytes();
            black_box(&cache);
            after - before
        }
        "hashmap" => {
            let mut map = HashMap::new();
            for (i, k) in keys.iter().enumerate() {
                map.insert(k.clone(), i as u64);
            }
            let after = rss_bytes();
            black_box(&map);
            after - before
        }
        "moka" => {
            let cache = moka::sync::Cache::new(entries as u64 * 2);
            for (i, k) in keys.iter().enumerate() {
                cache.insert(k.clone(), i as u64);
            }
            cache.run_pending_tasks();
            let after = rss_bytes();
            black_box(&cache);
            after - before
        }
        "quick_cache" => {
            let cache = quick_cache::sync::Cache::new(entries * 2);
            for (i, k) in keys.iter().enumerate() {
                cache.insert(k.clone(), i as u64);
            }
            let after = rss_bytes();
            black_box(&cache);
            after - before
        }
        other => panic!("unknown structure {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let entries = if args.iter().any(|a| a == "--bench") {
        ENTRIES
    } else {
        SMOKE_ENTRIES
    };
    if let Some(which) = args.iter().find(|a| !a.starts_with('-')) {
        println!("{}", measure(which, entries));
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!("bytes per entry, {entries} entries (\"user:{{i}}\" -> u64), RSS growth:");
    let mut base = None;
    for which in [
        "hashmap",
        "cache_runtime",
        "cache_runtime_ttl",
        "quick_cache",
        "moka",
    ] {
        let mut child = std::process::Command::new(&exe);
        child.arg(which);
        if entries == ENTRIES {
            child.arg("--bench");
        }
        let out = child.output().expect("child run");
        assert!(out.status.success(), "measuring {which} failed");
        let bytes: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let per = bytes as f64 / entries as f64;
        let base = *base.get_or_insert(per);
        println!(
            "{which:>18}: {per:7.1} B/entry ({:.2}x hashmap)",
            per / base
        );
    }
}
