//! Plugins: the shipped hit/miss and timing plugins, and one of your own.
//!
//! Run: `cargo run --example plugins`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cache_runtime::{Cache, Call, Done, HitMissRatioPlugin, Outcome, Plugin, TimingPlugin, Ttl};

/// Counts misses per command and logs slow commands.
#[derive(Default)]
struct MissLogger {
    misses: AtomicU64,
}

impl Plugin for MissLogger {
    fn post_get(&self, call: &Call<'_>, done: &Done<'_>) {
        if let Outcome::Get { hit: false } = done.outcome {
            self.misses.fetch_add(1, Ordering::Relaxed);
            println!("miss: {:?} after {:?}", call.keys, done.elapsed);
        }
    }
}

fn main() -> cache_runtime::Result<()> {
    let ratio = Arc::new(HitMissRatioPlugin::new());
    let timing = Arc::new(TimingPlugin::new());
    let misses = Arc::new(MissLogger::default());
    let cache = Cache::builder()
        .plugin_shared(ratio.clone())
        .plugin_shared(timing.clone())
        .plugin_shared(misses.clone())
        .build()?;

    for i in 0..10u32 {
        cache.set(&format!("k{i}"), &i, Ttl::Default)?;
    }
    for i in 0..15u32 {
        let _ = cache.get::<u32>(&format!("k{i}"))?;
    }
    let _ = cache.multi_get::<u32, _>(&["k1", "k2", "k99"])?;

    println!("hit/miss: {:?}", ratio.stats());
    for (name, value) in timing.stats() {
        println!("{name:>16}: {value:.9}");
    }
    println!(
        "misses seen by the custom plugin: {}",
        misses.misses.load(Ordering::Relaxed)
    );
    Ok(())
}
