//! The harness itself: servers start on free loopback ports and stop on drop.
mod support;

#[test]
fn free_ports_are_loopback_and_distinct() {
    let a = support::free_port();
    let b = support::free_port();
    assert!(a > 0 && b > 0);
    let cache = cache_runtime::Cache::memory();
    assert!(cache.get::<u8>("x").unwrap().is_none());
}
