//! The caching macros on every function shape, counting body executions to prove hits and misses.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{cached, caches, AliasConfig};

static FIB_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_fib")]
fn fib(n: u64) -> u64 {
    FIB_CALLS.fetch_add(1, Ordering::SeqCst);
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[test]
fn recursive_fibonacci_runs_each_argument_once() {
    caches::add("macros_fib", AliasConfig::memory()).unwrap();
    assert_eq!(fib(40), 102_334_155);
    assert_eq!(FIB_CALLS.load(Ordering::SeqCst), 41);
    assert_eq!(fib(40), 102_334_155);
    assert_eq!(FIB_CALLS.load(Ordering::SeqCst), 41);
    assert_eq!(fib_cache::key(7).unwrap(), "macros::fib(7)");
}
