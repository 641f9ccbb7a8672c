//! A memoized function whose results outlive the program: they are kept in memcached (one server or several
//! on a consistent-hash ring). Run it twice; the second run finds every result already computed.
//!
//! Needs a running memcached (`apt-get install memcached`, or `memcached -p 11211`).
//! Run: `cargo run --features memcached --example memcached [host:port[,host:port...]]` (twice).
//! If no server answers, the function still returns its values (fail-open), computing them every time.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{cached, caches, AliasConfig, Config, HitMissRatioPlugin};

static COMPUTED: AtomicUsize = AtomicUsize::new(0);

/// Stands in for a slow lookup: computed once per word, kept for ten minutes.
#[cached(alias = "words", ttl = 600)]
fn word_score(word: String) -> u64 {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    (0..3_000_000u64).fold(word.len() as u64, |acc, i| {
        acc.wrapping_mul(31).wrapping_add(i)
    }) % 10_000
}

fn main() {
    let servers = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:11211".to_string());
    let url = format!("memcached://{servers}?namespace=example-words&timeout=1");
    let alias = AliasConfig::from_url(&url)
        .expect("a valid URL")
        .plugin(cache_runtime::PluginConfig::new("hit_miss_ratio"));
    caches::set_config(
        Config::new()
            .default_alias(AliasConfig::memory())
            .alias("words", alias),
    )
    .expect("a valid config");
    println!("memcached: {servers}");

    for word in ["cache", "memoize", "memcached"] {
        let before = COMPUTED.load(Ordering::SeqCst);
        let score = word_score(word.to_string());
        let how = if COMPUTED.load(Ordering::SeqCst) == before {
            "hit"
        } else {
            "miss: computed and stored"
        };
        println!("score({word}) = {score} ({how})");
    }
    let cache = caches::get("words").expect("the alias exists");
    let stats = cache
        .plugin::<HitMissRatioPlugin>()
        .expect("configured above");
    println!(
        "hits {} of {} lookups; run me again and every lookup hits",
        stats.hits(),
        stats.total()
    );
}
