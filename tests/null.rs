//! The null backend, and `CACHE_DISABLE=1` turning every cache into a pass-through.

use cache_runtime::{caches, Cache, NullBackend, RawReply, Ttl};

fn null() -> Cache {
    Cache::builder().backend(NullBackend).build().unwrap()
}

#[test]
fn every_command_on_null() {
    let cache = null();
    cache.set("k", &1u8, Ttl::Default).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), None);
    cache.add("k", &1u8, Ttl::Default).unwrap();
    cache.add("k", &1u8, Ttl::Default).unwrap(); // nothing is ever present
    cache
        .multi_set(&[("a", 1u8), ("b", 2u8)], Ttl::secs(5))
        .unwrap();
    assert_eq!(
        cache.multi_get::<u8, _>(&["a", "b"]).unwrap(),
        vec![None, None]
    );
    assert!(!cache.exists("a").unwrap());
    assert_eq!(cache.increment("n", 3).unwrap(), 3);
    assert_eq!(cache.increment("n", 3).unwrap(), 3);
    assert_eq!(cache.delete("a").unwrap(), 0);
    assert!(!cache.expire("a", Ttl::secs(1)).unwrap());
    assert_eq!(cache.clear().unwrap(), 0);
    assert!(cache.keys("*").unwrap().is_empty());
    assert_eq!(cache.raw::<&str>("anything", &[]).unwrap(), RawReply::Nil);
    cache.close().unwrap();
    assert!(
        cache.set("k", &1u8, Ttl::secs(0)).is_err(),
        "bad input is still rejected"
    );
}

#[test]
fn null_from_config_and_url() {
    caches::add("off", cache_runtime::AliasConfig::new("null")).unwrap();
    let cache = caches::get("off").unwrap();
    cache.set("k", &1u8, Ttl::Default).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), None);
    let cache = Cache::from_url("null://").unwrap();
    assert_eq!(cache.backend().name(), "null");
}

/// Run in a child process with CACHE_DISABLE set (the environment is process-wide).
#[test]
fn cache_disable_env_turns_caches_into_pass_through() {
    if std::env::var_os("CACHE_NULL_TEST_CHILD").is_some() {
        let cache = Cache::memory();
        cache.set("k", &1u8, Ttl::Default).unwrap();
        assert_eq!(cache.get::<u8>("k").unwrap(), None);
        assert_eq!(caches::get("default").unwrap().backend().name(), "null");
        // An explicit setting wins over the environment.
        let forced = Cache::builder().disabled(false).build().unwrap();
        forced.set("k", &1u8, Ttl::Default).unwrap();
        assert_eq!(forced.get::<u8>("k").unwrap(), Some(1));
        return;
    }
    for (value, disabled) in [("1", true), ("true", true), ("0", false)] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cache_disable_env_turns_caches_into_pass_through",
                "--test-threads=1",
            ])
            .env("CACHE_NULL_TEST_CHILD", "1")
            .env("CACHE_DISABLE", value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.success(), disabled, "CACHE_DISABLE={value}");
    }
}
