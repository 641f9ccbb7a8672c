//! Quickstart: configure aliases in code, use typed get/set, read the hit ratio.
//!
//! Run: `cargo run --example quickstart` (memory backend, nothing to install).

use std::time::Duration;

use cache_runtime::{caches, AliasConfig, Config, HitMissRatioPlugin, PluginConfig, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn load_user(id: u64) -> User {
    // Stands in for a database query.
    User {
        id,
        name: format!("user-{id}"),
    }
}

/// Read-through: the cache first, the source on a miss.
fn user(id: u64) -> cache_runtime::Result<User> {
    let cache = caches::get("users")?;
    let key = format!("user:{id}");
    if let Some(user) = cache.get::<User>(&key)? {
        return Ok(user);
    }
    let user = load_user(id);
    cache.set(&key, &user, Ttl::Default)?;
    Ok(user)
}

fn main() -> cache_runtime::Result<()> {
    caches::set_config(
        Config::new().default_alias(AliasConfig::memory()).alias(
            "users",
            AliasConfig::memory()
                .namespace("users")
                .ttl(Duration::from_secs(300))
                .option("max_entries", 10_000usize)
                .plugin(PluginConfig::new("hit_miss_ratio")),
        ),
    )?;

    for id in [1, 2, 1, 1, 3, 2] {
        let u = user(id)?;
        println!("user {} -> {}", u.id, u.name);
    }

    let cache = caches::get("users")?;
    let visits = cache.increment("visits", 6)?;
    println!("visits counted: {visits}");
    println!("keys: {:?}", cache.keys("user:*")?);

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
