//! Redis: an alias configured for a local redis-server, a `#[cached(ttl = ..)]` function, a `#[multi_cached]`
//! batch, and the hit ratio.
//!
//! Start a throwaway local server first (no persistence), for example:
//!
//! ```text
//! apt-get install redis-server            # Debian/Ubuntu; `brew install redis` on macOS
//! redis-server --port 6379 --save '' --appendonly no
//! ```
//!
//! or `docker run --rm -p 6379:6379 redis:7`. Then:
//!
//! ```text
//! cargo run --example redis --features redis
//! REDIS_URL=redis://127.0.0.1:6380/2 cargo run --example redis --features redis   # another server or db
//! ```

use std::collections::HashMap;
use std::time::Duration;

use cache_runtime::{
    cached, caches, multi_cached, AliasConfig, Config, HitMissRatioPlugin, PluginConfig,
    SerializerConfig,
};

/// Stands in for a slow query; cached for a minute under the `redis` alias.
#[cached(alias = "redis", ttl = 60)]
fn exchange_rate(from: String, to: String) -> f64 {
    println!("  (computing {from}->{to})");
    match (from.as_str(), to.as_str()) {
        ("EUR", "USD") => 1.08,
        ("USD", "EUR") => 0.93,
        _ => 1.0,
    }
}

/// A batch lookup: one MGET for all ids, the function called only with the ids that missed, one
/// MULTI/MSET/PEXPIRE/EXEC to store them.
#[multi_cached(alias = "redis", keys_from_attr = "ids", ttl = 300)]
fn user_names(ids: Vec<u32>) -> HashMap<u32, String> {
    println!("  (loading users {ids:?})");
    ids.into_iter()
        .map(|id| (id, format!("user-{id}")))
        .collect()
}

fn main() -> cache_runtime::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string());
    // The URL supplies endpoint, port, db and credentials; the rest of the alias is set here.
    let redis = AliasConfig::from_url(&url)?
        .namespace("example")
        .timeout(Duration::from_secs(1))
        .serializer(SerializerConfig::new("json"))
        .plugin(PluginConfig::new("hit_miss_ratio"));
    caches::set_config(
        Config::new()
            .default_alias(AliasConfig::memory())
            .alias("redis", redis),
    )?;

    let cache = caches::get("redis")?;
    if let Err(e) = cache.raw::<&str>("PING", &[]) {
        eprintln!("cannot reach Redis at {url}: {e}");
        eprintln!("start one with `redis-server --port 6379 --save '' --appendonly no` (see the top of this file)");
        std::process::exit(1);
    }
    cache.clear()?; // a clean run: only this example's namespace

    for (from, to) in [
        ("EUR", "USD"),
        ("USD", "EUR"),
        ("EUR", "USD"),
        ("EUR", "USD"),
    ] {
        println!("{from}->{to} = {}", exchange_rate(from.into(), to.into()));
    }
    for batch in [vec![1, 2, 3], vec![2, 3, 4], vec![1, 4]] {
        let mut names: Vec<_> = user_names(batch).into_iter().collect();
        names.sort();
        println!("users: {names:?}");
    }

    println!("stored keys: {:?}", cache.keys("*")?);
    let stats = cache
        .plugin::<HitMissRatioPlugin>()
        .expect("configured above");
    println!(
        "hits: {} of {} reads (hit ratio {:.2})",
        stats.hits(),
        stats.total(),
        stats.hit_ratio()
    );
    Ok(())
}
