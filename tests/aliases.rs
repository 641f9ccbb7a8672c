//! The alias table: shared instances, create with overrides, set_config, configs from JSON and TOML, errors
//! that name the alias and field, URLs, and user-defined backends registered by name.

mod support;

use std::sync::Arc;
use std::time::Duration;

use cache_runtime::{
    caches, AliasConfig, Backend, BackendSpec, Cache, CallOptions, Config, ConfigValue, Error,
    HitMissRatioPlugin, ManualClock, PluginConfig, SerializerConfig, TimingPlugin, Ttl, Value,
};
use parking_lot::Mutex;

/// Most tests here change the process-wide alias table, and one replaces it whole: they run one at a time
/// (the few that never touch the table take the lock too, so no test has to be checked for it).
static TABLE: Mutex<()> = Mutex::new(());

fn config_error(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn get_returns_the_same_instance_and_create_a_new_one() {
    let _table = TABLE.lock();
    caches::add("shared_a", AliasConfig::memory().namespace("sa")).unwrap();
    let first = caches::get("shared_a").unwrap();
    first.set("k", &1u8, Ttl::Default).unwrap();
    let second = caches::get("shared_a").unwrap();
    assert_eq!(
        second.get::<u8>("k").unwrap(),
        Some(1),
        "same backend behind both handles"
    );

    let created = caches::create("shared_a", |c| {
        c.namespace("other").ttl(Duration::from_secs(9))
    })
    .unwrap();
    assert_eq!(created.namespace(), Some("other"));
    assert_eq!(created.default_ttl(), Some(Duration::from_secs(9)));
    assert_eq!(
        created.get::<u8>("k").unwrap(),
        None,
        "a new instance with a new memory store"
    );
    assert_eq!(
        caches::get("shared_a").unwrap().namespace(),
        Some("sa"),
        "shared instance untouched"
    );
    assert!(caches::create("missing_alias", |c| c).is_err());
}

#[test]
fn set_config_replaces_the_table_and_requires_default() {
    let _table = TABLE.lock();
    let before = caches::get("default").unwrap();
    before.set("k", &1u8, Ttl::Default).unwrap();

    let message = config_error(caches::set_config(
        Config::new().alias("x", AliasConfig::memory()),
    ));
    assert!(message.contains("`default` alias is required"), "{message}");
    assert!(
        caches::get("default").unwrap().exists("k").unwrap(),
        "a rejected config changes nothing"
    );

    caches::set_config(
        Config::new()
            .default_alias(AliasConfig::memory().namespace("fresh"))
            .alias("second", AliasConfig::new("null")),
    )
    .unwrap();
    let after = caches::get("default").unwrap();
    assert_eq!(after.namespace(), Some("fresh"));
    assert!(
        !after.exists("k").unwrap(),
        "a new table builds new instances"
    );
    assert_eq!(caches::get("second").unwrap().backend().name(), "null");
    assert!(caches::get("shared_a_never_added").is_err());
    assert!(before.exists("k").unwrap(), "old handles stay valid");
    let names: Vec<String> = caches::get_config().names().map(String::from).collect();
    assert_eq!(names, vec!["default", "second"]);
    caches::set_config(Config::new().default_alias(AliasConfig::memory())).unwrap();
}

#[test]
fn add_keeps_other_instances() {
    let _table = TABLE.lock();
    caches::add("keep_a", AliasConfig::memory()).unwrap();
    let a = caches::get("keep_a").unwrap();
    a.set("k", &1u8, Ttl::Default).unwrap();
    caches::add("keep_b", AliasConfig::memory()).unwrap();
    assert!(caches::get("keep_a").unwrap().exists("k").unwrap());
    caches::add("keep_a", AliasConfig::memory().namespace("v2")).unwrap();
    assert_eq!(caches::get("keep_a").unwrap().namespace(), Some("v2"));
    assert_eq!(
        caches::get_alias_config("keep_a")
            .unwrap()
            .namespace
            .as_deref(),
        Some("v2")
    );
}

#[test]
fn unknown_alias_is_an_error_naming_it() {
    let _table = TABLE.lock();
    let message = config_error(caches::get("no_such_alias"));
    assert!(message.contains("`no_such_alias`"), "{message}");
    assert!(caches::get_alias_config("no_such_alias").is_err());
}

const JSON: &str = r#"{
    "default": {"cache": "memory"},
    "redis_alt": {"cache": "redis", "endpoint": "127.0.0.1", "port": 6379, "timeout": 1,
                  "namespace": "main", "serializer": {"class": "binary"},
                  "plugins": [{"class": "hit_miss_ratio"}, {"class": "timing"}]},
    "bounded": {"cache": "aiocache.SimpleMemoryCache", "max_entries": 2, "ttl": 0.5,
                "serializer": {"class": "aiocache.serializers.JsonSerializer", "compression": "lz4"}}
}"#;

#[test]
fn config_from_json_in_aiocache_shape() {
    let _table = TABLE.lock();
    let config = Config::from_json(JSON).unwrap();
    let redis = config.get("redis_alt").unwrap();
    assert_eq!(redis.cache, "redis");
    assert_eq!(redis.namespace.as_deref(), Some("main"));
    assert_eq!(redis.timeout, Some(Duration::from_secs(1)));
    assert_eq!(redis.serializer, Some(SerializerConfig::new("binary")));
    assert_eq!(
        redis.plugins,
        vec![
            PluginConfig::new("hit_miss_ratio"),
            PluginConfig::new("timing")
        ]
    );
    assert_eq!(redis.options["endpoint"], ConfigValue::from("127.0.0.1"));
    assert_eq!(redis.options["port"], ConfigValue::Int(6379));

    let bounded = config.get("bounded").unwrap();
    assert_eq!(bounded.cache, "memory");
    assert_eq!(bounded.ttl, Some(Duration::from_millis(500)));
    let cache = bounded.build_cache("bounded").unwrap();
    assert_eq!(cache.serializer().name(), "lz4+json");
    for i in 0..10 {
        cache.set(&format!("k{i}"), &i, Ttl::Default).unwrap();
    }
    assert_eq!(cache.keys("*").unwrap().len(), 2, "max_entries applied");

    // The table serializes back to the same shape.
    let round = Config::from_json(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(round.get("redis_alt").unwrap().options, redis.options);
    assert_eq!(round.get("bounded").unwrap().ttl, bounded.ttl);
}

#[test]
fn config_from_toml() {
    let _table = TABLE.lock();
    let config = Config::from_toml(
        r#"
        [default]
        cache = "memory"

        [stats]
        cache = "memory"
        namespace = "s"
        ttl = 30
        serializer = { class = "msgpack" }
        plugins = [{ class = "hit_miss_ratio" }]
        max_entries = 1000
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    let stats = config.get("stats").unwrap();
    assert_eq!(stats.ttl, Some(Duration::from_secs(30)));
    let cache = stats.build_cache("stats").unwrap();
    cache.set("k", &vec![1, 2], Ttl::Default).unwrap();
    let _ = cache.get::<Vec<i32>>("k").unwrap();
    assert_eq!(cache.plugin::<HitMissRatioPlugin>().unwrap().hits(), 1);
    assert_eq!(cache.serializer().name(), "msgpack");
}

#[test]
fn bad_configs_name_the_alias_and_the_field() {
    let _table = TABLE.lock();
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{"default": {"cache": "memory", "colour": "red"}}"#,
            &["alias `default`", "`colour`"],
        ),
        (
            r#"{"default": {"cache": "memory"}, "a": {"cache": "nope"}}"#,
            &["alias `a`", "`cache`", "`nope`"],
        ),
        (
            r#"{"default": {"cache": "memory"}, "a": {"cache": "memory", "serializer": {"class": "yaml"}}}"#,
            &["alias `a`", "serializer", "`yaml`"],
        ),
        (
            r#"{"default": {"cache": "memory"}, "a": {"cache": "memory", "serializer": {"class": "json", "level": 3}}}"#,
            &["alias `a`", "serializer", "level"],
        ),
        (
            r#"{"default": {"cache": "memory"}, "a": {"cache": "memory", "serializer": {"class": "json", "compression": "zip"}}}"#,
            &["alias `a`", "compression", "`zip`"],
        ),
        (
            r#"{"default": {"cache": "memory"}, "a": {"cache": "memory", "plugins": [{"class": "timing"}, {"class": "bogus"}]}}"#,
            &["alias `a`", "plugins[1]", "`bogus`"],
        ),
        (
            r#"{"default": {"cache": "memory", "ttl": "soon"}}"#,
            &["alias `default`", "`ttl`"],
        ),
        (
            r#"{"default": {"cache": "memory", "ttl": 0}}"#,
            &["alias `default`", "`ttl`", "positive"],
        ),
        (
            r#"{"default": {"cache": "memory", "timeout": -1}}"#,
            &["alias `default`", "`timeout`"],
        ),
        (
            r#"{"default": {"cache": "memory", "max_entries": "many"}}"#,
            &["alias `default`", "`max_entries`"],
        ),
        (
            r#"{"default": {"cache": "memory", "max_entries": 0}}"#,
            &["alias `default`", "`max_entries`"],
        ),
        (
            r#"{"default": {"namespace": "x"}}"#,
            &["alias `default`", "`cache`"],
        ),
        (r#"{"default": 3}"#, &["alias `default`", "map"]),
        (
            r#"{"default": {"cache": "memory", "namespace": 5}}"#,
            &["alias `default`", "`namespace`"],
        ),
    ];
    for (json, needles) in cases {
        let message = match Config::from_json(json) {
            Err(Error::Config(m)) => m,
            Ok(config) => config_error(config.validate()),
            Err(other) => panic!("{json}: {other:?}"),
        };
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{json}\n  -> {message}\n  missing {needle}"
            );
        }
    }
}

#[test]
fn code_built_configs_are_validated_too() {
    let _table = TABLE.lock();
    let message = config_error(caches::add(
        "bad_code",
        AliasConfig::memory().option("max_entriez", 3usize),
    ));
    assert!(
        message.contains("alias `bad_code`") && message.contains("`max_entriez`"),
        "{message}"
    );
    let message = config_error(caches::add(
        "bad_ser",
        AliasConfig::memory().serializer(SerializerConfig::new("pickle")),
    ));
    assert!(message.contains("`pickle`"), "{message}");
    let message = config_error(caches::add(
        "bad_null",
        AliasConfig::new("null").option("x", 1i64),
    ));
    assert!(message.contains("takes no options"), "{message}");
}

#[test]
fn object_serializer_on_a_byte_backend_is_a_config_error() {
    let _table = TABLE.lock();
    register_flaky();
    let message = config_error(
        AliasConfig::new("flaky_bytes")
            .serializer(SerializerConfig::new("null"))
            .build_cache("objs"),
    );
    assert!(
        message.contains("alias `objs`") && message.contains("byte serializer"),
        "{message}"
    );
}

#[test]
fn cache_from_url() {
    let _table = TABLE.lock();
    let cache = Cache::from_url("memory://?namespace=web&ttl=60&max_entries=3").unwrap();
    assert_eq!(cache.namespace(), Some("web"));
    assert_eq!(cache.default_ttl(), Some(Duration::from_secs(60)));
    for i in 0..5 {
        cache.set(&format!("k{i}"), &i, Ttl::Default).unwrap();
    }
    assert_eq!(cache.keys("*").unwrap().len(), 3);

    let json = Cache::from_url("memory://?serializer=json").unwrap();
    assert_eq!(json.serializer().name(), "json");

    for bad in [
        "nope://x",
        "no-scheme",
        "memory://?ttl=0",
        "memory://?bogus=1",
        "redis://h:1/notanumber",
    ] {
        assert!(
            matches!(Cache::from_url(bad), Err(Error::Config(_))),
            "{bad}"
        );
    }
    let redis =
        AliasConfig::from_url("redis://user:s3cret@127.0.0.1:7000/3?namespace=n&timeout=0.25")
            .unwrap();
    assert_eq!(redis.options["username"], ConfigValue::from("user"));
    assert_eq!(redis.options["password"], ConfigValue::from("s3cret"));
    assert_eq!(redis.options["db"], ConfigValue::Int(3));
    assert_eq!(redis.timeout, Some(Duration::from_millis(250)));
    assert!(!format!("{redis:?}").contains("s3cret"));
    let err = Cache::from_url("bogus://user:s3cret@host")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("s3cret"), "{err}");

    let multi = AliasConfig::from_url("memcached://127.0.0.1:1,127.0.0.1:2").unwrap();
    assert_eq!(
        multi.options["servers"],
        ConfigValue::from(vec!["127.0.0.1:1", "127.0.0.1:2"])
    );
    let disk = AliasConfig::from_url("disk:///var/cache/app").unwrap();
    assert_eq!(disk.options["path"], ConfigValue::from("/var/cache/app"));
}

/// A user-defined backend: memory wrapped to count reads, with an option of its own.
struct CountingBackend {
    inner: cache_runtime::MemoryBackend,
    reads: Arc<std::sync::atomic::AtomicUsize>,
    label: String,
}

impl Backend for CountingBackend {
    fn name(&self) -> &str {
        &self.label
    }
    fn stores_objects(&self) -> bool {
        true
    }
    fn get(&self, key: &str, opts: &CallOptions) -> Result<Option<Value>, Error> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(key, opts)
    }
    fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<(), Error> {
        self.inner.set(key, value, ttl, opts)
    }
    fn add(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool, Error> {
        self.inner.add(key, value, ttl, opts)
    }
    fn delete(&self, key: &str, opts: &CallOptions) -> Result<u64, Error> {
        self.inner.delete(key, opts)
    }
}

static READS: once_cell_reads::Reads = once_cell_reads::Reads::new();

mod once_cell_reads {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, OnceLock};

    pub struct Reads(OnceLock<Arc<AtomicUsize>>);
    impl Reads {
        pub const fn new() -> Self {
            Reads(OnceLock::new())
        }
        pub fn get(&self) -> Arc<AtomicUsize> {
            self.0.get_or_init(|| Arc::new(AtomicUsize::new(0))).clone()
        }
    }
}

#[test]
fn user_defined_backend_registered_by_name_and_used_through_an_alias() {
    let _table = TABLE.lock();
    caches::register_backend(
        "counting",
        BackendSpec::new(&["label"], |cfg| {
            Ok(Arc::new(CountingBackend {
                inner: cache_runtime::MemoryBackend::new(),
                reads: READS.get(),
                label: cfg.str("label")?.unwrap_or("counting").to_string(),
            }))
        }),
    );
    let config = Config::from_json(
        r#"{"default": {"cache": "memory"}, "counted": {"cache": "counting", "label": "mine", "plugins": [{"class": "timing"}]}}"#,
    )
    .unwrap();
    config.validate().unwrap();
    caches::add("counted", config.get("counted").unwrap().clone()).unwrap();
    let cache = caches::get("counted").unwrap();
    assert_eq!(cache.backend().name(), "mine");
    cache.set("k", &5u8, Ttl::Default).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), Some(5));
    assert_eq!(READS.get().load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(cache.plugin::<TimingPlugin>().is_some());
    // Commands the backend did not implement say so.
    assert!(matches!(cache.keys("*"), Err(Error::Unsupported { .. })));
    // Unknown options of a user backend are caught too.
    let message = config_error(caches::add(
        "counted2",
        AliasConfig::new("counting").option("lable", "x"),
    ));
    assert!(
        message.contains("`lable`") && message.contains("label"),
        "{message}"
    );
}

/// A byte-only backend (one that fails every command) registered by name: for the config error above.
fn register_flaky() {
    caches::register_backend(
        "flaky_bytes",
        BackendSpec::new(&[], |_| Ok(Arc::new(support::DownBackend))),
    );
}

#[test]
fn alias_clock_drives_expiry() {
    let _table = TABLE.lock();
    let clock = ManualClock::new();
    caches::add("clocked", AliasConfig::memory().clock(clock.clone())).unwrap();
    let cache = caches::get("clocked").unwrap();
    cache.set("k", &1u8, Ttl::secs(5)).unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.get::<u8>("k").unwrap(), None);
}

#[test]
fn alias_cell_follows_config_changes() {
    let _table = TABLE.lock();
    static CELL: caches::AliasCell = caches::AliasCell::new("cell_alias");
    assert!(CELL.with(|c| c.is_err()), "not configured yet");
    caches::add("cell_alias", AliasConfig::memory().namespace("one")).unwrap();
    assert_eq!(
        CELL.with(|c| c.unwrap().namespace().map(String::from)),
        Some("one".into())
    );
    caches::add("cell_alias", AliasConfig::memory().namespace("two")).unwrap();
    assert_eq!(
        CELL.with(|c| c.unwrap().namespace().map(String::from)),
        Some("two".into())
    );
}

#[test]
fn plugin_classes_from_aiocache_paths() {
    let _table = TABLE.lock();
    let alias = AliasConfig::memory()
        .plugin(PluginConfig::new("aiocache.plugins.HitMissRatioPlugin"))
        .plugin(PluginConfig::new("aiocache.plugins.TimingPlugin"));
    let cache = alias.build_cache("paths").unwrap();
    assert!(cache.plugin::<HitMissRatioPlugin>().is_some());
    assert!(cache.plugin::<TimingPlugin>().is_some());
}
