//! Placeholder replaced by the capability tests.
#[test]
fn builds() {
    let cache = cache_runtime::Cache::memory();
    assert!(cache.get::<u8>("x").unwrap().is_none());
}
