//! Helpers shared by the backend benches.

use std::time::Instant;

/// Alternates two operations sample by sample, so load from other processes hits both alike, and prints the
/// median latency of each and their ratio (a cross-check of the criterion medians on a busy machine).
pub fn interleaved(name: &str, samples: usize, mut base: impl FnMut(), mut ours: impl FnMut()) {
    let (mut a, mut b) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let t = Instant::now();
        base();
        a.push(t.elapsed());
        let t = Instant::now();
        ours();
        b.push(t.elapsed());
    }
    a.sort_unstable();
    b.sort_unstable();
    let (ma, mb) = (a[samples / 2], b[samples / 2]);
    println!(
        "interleaved {name}: baseline median {:.2} us, ours median {:.2} us, ratio {:.3}",
        ma.as_secs_f64() * 1e6,
        mb.as_secs_f64() * 1e6,
        mb.as_secs_f64() / ma.as_secs_f64()
    );
}
