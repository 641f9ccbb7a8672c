//! A memoized function whose results survive a restart of the program: the cache is an SQLite database in a
//! directory. Run it twice; the second run finds every report already computed.
//!
//! Run: `cargo run --features disk --example disk` (twice), optionally with a directory as argument
//! (default: `cache-runtime-example-disk` in the system's temporary directory).

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{cached, caches, AliasConfig, Config, HitMissRatioPlugin, PluginConfig};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    year: u32,
    total: u64,
}

static COMPUTED: AtomicUsize = AtomicUsize::new(0);

/// Slow to compute, so computed once per year and kept on disk for an hour.
#[cached(alias = "reports", ttl = 3600)]
fn yearly_report(year: u32) -> Report {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    let total = (0..5_000_000u64).fold(u64::from(year), |acc, i| {
        acc.wrapping_mul(31).wrapping_add(i)
    }) % 1_000_000;
    Report { year, total }
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cache-runtime-example-disk"));
    caches::set_config(
        Config::new().default_alias(AliasConfig::memory()).alias(
            "reports",
            AliasConfig::new("disk")
                .option("path", dir.to_string_lossy().as_ref())
                .namespace("reports")
                .plugin(PluginConfig::new("hit_miss_ratio")),
        ),
    )
    .expect("a valid config");
    println!("cache directory: {}", dir.display());

    for year in [2022, 2023, 2024] {
        let before = COMPUTED.load(Ordering::SeqCst);
        let report = yearly_report(year);
        let how = if COMPUTED.load(Ordering::SeqCst) == before {
            "hit: read from disk"
        } else {
            "miss: computed and stored"
        };
        println!("report {year}: total {} ({how})", report.total);
    }
    let cache = caches::get("reports").expect("the alias exists");
    let stats = cache
        .plugin::<HitMissRatioPlugin>()
        .expect("configured above");
    println!(
        "hits {} of {} lookups; run me again and every lookup hits",
        stats.hits(),
        stats.total()
    );
}
