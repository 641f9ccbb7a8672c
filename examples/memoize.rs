//! Memoizing functions with `#[cached]` and `#[multi_cached]`: recursive fibonacci, a method, a `Result`, a
//! batch lookup, the hit ratio, and the first call against the second.
//!
//! Run: `cargo run --example memoize`.

use std::collections::HashMap;
use std::time::Instant;

use cache_runtime::{
    cached, caches, multi_cached, AliasConfig, Config, HitMissRatioPlugin, PluginConfig,
};
use serde::Serialize;

/// Each `fib(n)` is computed once; the recursion reads the smaller ones from the cache.
#[cached]
fn fib(n: u64) -> u128 {
    if n < 2 {
        u128::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[derive(Serialize)]
struct Catalog {
    region: String,
}

impl Catalog {
    /// A method: the key holds the type, `self` and the arguments.
    #[cached(alias = "catalog", ttl = 300)]
    fn price(&self, sku: &str) -> u64 {
        // Stands in for a slow lookup.
        (0..2_000_000u64).fold(sku.len() as u64, |acc, i| {
            acc.wrapping_mul(31).wrapping_add(i)
        }) % 1000
            + self.region.len() as u64
    }
}

/// Only `Ok` results are cached; errors are returned every time and never stored.
#[cached(alias = "catalog")]
fn parse_quantity(text: String) -> Result<u32, std::num::ParseIntError> {
    text.trim().parse()
}

/// One `multi_get` for all ids; the function sees only the ids that missed.
#[multi_cached(alias = "catalog", keys_from_attr = "ids")]
fn names(ids: Vec<u32>) -> HashMap<u32, String> {
    println!("  names() called for {ids:?}");
    ids.into_iter()
        .map(|id| (id, format!("item-{id}")))
        .collect()
}

fn main() {
    caches::set_config(
        Config::new().default_alias(AliasConfig::memory()).alias(
            "catalog",
            AliasConfig::memory()
                .namespace("catalog")
                .plugin(PluginConfig::new("hit_miss_ratio")),
        ),
    )
    .expect("a valid config");

    let started = Instant::now();
    let f = fib(150);
    println!(
        "fib(150) = {f} in {:?} (each fib(n) computed once)",
        started.elapsed()
    );
    println!("its cache key: {}", fib_cache_key(150).expect("a key"));

    let catalog = Catalog {
        region: "eu".into(),
    };
    let started = Instant::now();
    let first = catalog.price("tea");
    let first_took = started.elapsed();
    let started = Instant::now();
    let second = catalog.price("tea");
    let second_took = started.elapsed();
    println!(
        "price: first call {first} in {first_took:?}, second call {second} in {second_took:?}"
    );
    println!(
        "its cache key: {}",
        catalog.price_cache_key("tea").expect("a key")
    );

    println!("parse_quantity(\"12\") = {:?}", parse_quantity("12".into()));
    println!(
        "parse_quantity(\"x\")  = {:?} (errors are not cached)",
        parse_quantity("x".into())
    );
    println!(
        "cached for \"12\": {:?}",
        parse_quantity_cache_get("12".into()).expect("the cache answers")
    );

    println!("names([1, 2]):");
    names(vec![1, 2]);
    println!("names([1, 2, 3]):");
    let all = names(vec![1, 2, 3]);
    println!("  -> {} names", all.len());

    let cache = caches::get("catalog").expect("the alias");
    let ratio = cache
        .plugin::<HitMissRatioPlugin>()
        .expect("configured above");
    println!(
        "catalog cache: {} hits of {} lookups (hit ratio {:.2})",
        ratio.hits(),
        ratio.total(),
        ratio.hit_ratio()
    );
}
