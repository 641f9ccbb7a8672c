//! Backends, serializers and plugins by name, so alias configs can refer to them.

use std::collections::HashMap;
use std::sync::Arc;

use once_cell::sync::Lazy;
use parking_lot::RwLock;

use crate::backend::{Backend, BackendConfig};
use crate::config::{AliasConfig, PluginConfig, SerializerConfig};
use crate::error::{Error, Result};
use crate::plugin::{HitMissRatioPlugin, Plugin, TimingPlugin};
use crate::serializer::{
    BinarySerializer, Compressed, JsonSerializer, MsgPackSerializer, NullSerializer, Serializer,
    StringSerializer,
};

type BuildFn = Arc<dyn Fn(&BackendConfig<'_>) -> Result<Arc<dyn Backend>> + Send + Sync>;
type CheckFn = Arc<dyn Fn(&BackendConfig<'_>) -> Result<()> + Send + Sync>;
type SerializerFn = Arc<dyn Fn() -> Arc<dyn Serializer> + Send + Sync>;
type PluginFn = Arc<dyn Fn() -> Arc<dyn Plugin> + Send + Sync>;

/// How a named backend is built from an alias config.
#[derive(Clone)]
pub struct BackendSpec {
    fields: Vec<String>,
    build: BuildFn,
    check: Option<CheckFn>,
}

impl BackendSpec {
    /// A backend accepting the option `fields`, built by `build`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cache_runtime::{BackendSpec, NullBackend};
    ///
    /// let spec = BackendSpec::new(&[], |_cfg| Ok(Arc::new(NullBackend)));
    /// # let _ = spec;
    /// ```
    pub fn new(
        fields: &[&str],
        build: impl Fn(&BackendConfig<'_>) -> Result<Arc<dyn Backend>> + Send + Sync + 'static,
    ) -> Self {
        BackendSpec {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            build: Arc::new(build),
            check: None,
        }
    }

    /// Validates option values at `set_config` time, before any instance is built (no connecting here).
    pub fn with_check(
        mut self,
        check: impl Fn(&BackendConfig<'_>) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.check = Some(Arc::new(check));
        self
    }
}

#[derive(Clone)]
enum BackendEntry {
    Available(BackendSpec),
    /// A built-in backend whose cargo feature is off (none is, with every backend feature on).
    #[cfg_attr(
        all(
            feature = "memory",
            feature = "redis",
            feature = "memcached",
            feature = "disk"
        ),
        allow(dead_code)
    )]
    NeedsFeature(&'static str),
}

static BACKENDS: Lazy<RwLock<HashMap<String, BackendEntry>>> =
    Lazy::new(|| RwLock::new(builtin_backends()));
static SERIALIZERS: Lazy<RwLock<HashMap<String, SerializerFn>>> =
    Lazy::new(|| RwLock::new(builtin_serializers()));
static PLUGINS: Lazy<RwLock<HashMap<String, PluginFn>>> =
    Lazy::new(|| RwLock::new(builtin_plugins()));

fn builtin_backends() -> HashMap<String, BackendEntry> {
    let mut map = HashMap::new();
    map.insert(
        "null".to_string(),
        BackendEntry::Available(BackendSpec::new(&[], |_| {
            Ok(Arc::new(crate::backend::null::NullBackend))
        })),
    );
    #[cfg(feature = "memory")]
    map.insert("memory".into(), BackendEntry::Available(memory_spec()));
    #[cfg(not(feature = "memory"))]
    map.insert("memory".into(), BackendEntry::NeedsFeature("memory"));
    #[cfg(feature = "redis")]
    map.insert(
        "redis".into(),
        BackendEntry::Available(crate::backend::redis::spec()),
    );
    #[cfg(not(feature = "redis"))]
    map.insert("redis".into(), BackendEntry::NeedsFeature("redis"));
    #[cfg(feature = "memcached")]
    map.insert(
        "memcached".into(),
        BackendEntry::Available(crate::backend::memcached::spec()),
    );
    #[cfg(not(feature = "memcached"))]
    map.insert("memcached".into(), BackendEntry::NeedsFeature("memcached"));
    #[cfg(feature = "disk")]
    map.insert(
        "disk".into(),
        BackendEntry::Available(crate::backend::disk::spec()),
    );
    #[cfg(not(feature = "disk"))]
    map.insert("disk".into(), BackendEntry::NeedsFeature("disk"));
    map
}

#[cfg(feature = "memory")]
fn memory_spec() -> BackendSpec {
    use crate::backend::memory::MemoryBackend;
    fn builder(cfg: &BackendConfig<'_>) -> Result<crate::backend::memory::MemoryBackendBuilder> {
        let mut b = MemoryBackend::builder();
        if let Some(max) = cfg.u64("max_entries")? {
            if max == 0 {
                return Err(cfg.error("max_entries", "must be at least 1"));
            }
            b = b.max_entries(usize::try_from(max).unwrap_or(usize::MAX));
        }
        if let Some(max) = cfg.u64("max_weight")? {
            if max == 0 {
                return Err(cfg.error("max_weight", "must be at least 1"));
            }
            b = b.max_weight(usize::try_from(max).unwrap_or(usize::MAX));
        }
        if let Some(shards) = cfg.u64("shards")? {
            b = b.shards(usize::try_from(shards).unwrap_or(1024));
        }
        if let Some(clock) = cfg.clock() {
            b = b.clock_shared(clock);
        }
        Ok(b)
    }
    BackendSpec::new(&["max_entries", "max_weight", "shards"], |cfg| {
        Ok(Arc::new(builder(cfg)?.build()))
    })
    .with_check(|cfg| builder(cfg).map(drop))
}

fn builtin_serializers() -> HashMap<String, SerializerFn> {
    let mut map: HashMap<String, SerializerFn> = HashMap::new();
    map.insert("null".into(), Arc::new(|| Arc::new(NullSerializer)));
    map.insert("string".into(), Arc::new(|| Arc::new(StringSerializer)));
    map.insert("json".into(), Arc::new(|| Arc::new(JsonSerializer)));
    map.insert("msgpack".into(), Arc::new(|| Arc::new(MsgPackSerializer)));
    map.insert("binary".into(), Arc::new(|| Arc::new(BinarySerializer)));
    map
}

fn builtin_plugins() -> HashMap<String, PluginFn> {
    let mut map: HashMap<String, PluginFn> = HashMap::new();
    map.insert(
        "hit_miss_ratio".into(),
        Arc::new(|| Arc::new(HitMissRatioPlugin::new())),
    );
    map.insert("timing".into(), Arc::new(|| Arc::new(TimingPlugin::new())));
    map
}

/// The last segment of a dotted class path (`aiocache.serializers.JsonSerializer` -> `JsonSerializer`).
fn last_segment(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Backend names, accepting aiocache's class names too.
pub(crate) fn canonical_backend(name: &str) -> String {
    match last_segment(name) {
        "SimpleMemoryCache" => "memory".into(),
        "RedisCache" => "redis".into(),
        "MemcachedCache" => "memcached".into(),
        _ => name.to_string(),
    }
}

fn canonical_serializer(name: &str) -> &str {
    match last_segment(name) {
        "NullSerializer" => "null",
        "StringSerializer" => "string",
        "JsonSerializer" => "json",
        "MsgPackSerializer" => "msgpack",
        "PickleSerializer" => "binary",
        _ => name,
    }
}

fn canonical_plugin(name: &str) -> &str {
    match last_segment(name) {
        "HitMissRatioPlugin" => "hit_miss_ratio",
        "TimingPlugin" => "timing",
        _ => name,
    }
}

fn known<V>(map: &HashMap<String, V>) -> String {
    let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
    names.sort_unstable();
    names.join(", ")
}

fn spec_for(alias: &str, config: &AliasConfig) -> Result<BackendSpec> {
    let backends = BACKENDS.read();
    match backends.get(&config.cache) {
        Some(BackendEntry::Available(spec)) => Ok(spec.clone()),
        Some(BackendEntry::NeedsFeature(feature)) => Err(Error::config(format!(
            "alias `{alias}`: field `cache`: the `{}` backend needs the cargo feature `{feature}` of cache-runtime \
             (enable it in Cargo.toml: features = [\"{feature}\"])",
            config.cache
        ))),
        None => Err(Error::config(format!(
            "alias `{alias}`: field `cache`: unknown backend `{}` (known: {})",
            config.cache,
            known(&backends)
        ))),
    }
}

fn backend_config<'a>(alias: &'a str, config: &'a AliasConfig) -> BackendConfig<'a> {
    BackendConfig {
        alias,
        backend: &config.cache,
        options: &config.options,
        clock: config.clock.clone(),
        timeout: config.timeout,
    }
}

/// Checks the backend name, its option names and (where the backend says how) their values.
pub(crate) fn check_backend(alias: &str, config: &AliasConfig) -> Result<()> {
    let spec = spec_for(alias, config)?;
    if let Some(field) = config.options.keys().find(|f| !spec.fields.contains(f)) {
        let expected = if spec.fields.is_empty() {
            "this backend takes no options".to_string()
        } else {
            format!("expected one of: {}", spec.fields.join(", "))
        };
        return Err(Error::config(format!(
            "alias `{alias}`: unknown field `{field}` for cache `{}` ({expected}; common fields: cache, namespace, \
             ttl, timeout, serializer, plugins)",
            config.cache
        )));
    }
    match &spec.check {
        Some(check) => check(&backend_config(alias, config)),
        None => Ok(()),
    }
}

pub(crate) fn build_backend(alias: &str, config: &AliasConfig) -> Result<Arc<dyn Backend>> {
    let spec = spec_for(alias, config)?;
    (spec.build)(&backend_config(alias, config))
}

pub(crate) fn make_serializer(
    alias: &str,
    config: &SerializerConfig,
) -> Result<Arc<dyn Serializer>> {
    let name = canonical_serializer(&config.class);
    let make = {
        let serializers = SERIALIZERS.read();
        serializers.get(name).cloned().ok_or_else(|| {
            Error::config(format!(
                "alias `{alias}`: field `serializer.class`: unknown serializer `{}` (known: {})",
                config.class,
                known(&serializers)
            ))
        })?
    };
    let serializer = make();
    match config.compression.as_deref() {
        None => Ok(serializer),
        Some("lz4") => Ok(Arc::new(Compressed::lz4_shared(serializer))),
        Some(other) => Err(Error::config(format!(
            "alias `{alias}`: field `serializer.compression`: unknown codec `{other}` (known: lz4)"
        ))),
    }
}

pub(crate) fn make_plugin(
    alias: &str,
    index: usize,
    config: &PluginConfig,
) -> Result<Arc<dyn Plugin>> {
    let name = canonical_plugin(&config.class);
    let plugins = PLUGINS.read();
    let make = plugins.get(name).cloned().ok_or_else(|| {
        Error::config(format!(
            "alias `{alias}`: field `plugins[{index}].class`: unknown plugin `{}` (known: {})",
            config.class,
            known(&plugins)
        ))
    })?;
    drop(plugins);
    Ok(make())
}

/// Registers a backend under `name`, usable as `"cache": name` in alias configs. Replaces a backend already
/// registered under that name.
///
/// ```
/// use std::sync::Arc;
/// use cache_runtime::{caches, AliasConfig, BackendSpec, Config, MemoryBackend};
///
/// // A "tiny" backend: memory bounded by an option of its own.
/// caches::register_backend("tiny", BackendSpec::new(&["size"], |cfg| {
///     let size = cfg.u64("size")?.unwrap_or(16) as usize;
///     Ok(Arc::new(MemoryBackend::builder().max_entries(size).build()))
/// }));
/// let config = Config::new()
///     .default_alias(AliasConfig::memory())
///     .alias("small", AliasConfig::new("tiny").option("size", 4usize));
/// config.validate().unwrap();
/// ```
pub fn register_backend(name: impl Into<String>, spec: BackendSpec) {
    BACKENDS
        .write()
        .insert(name.into(), BackendEntry::Available(spec));
}

/// Registers a serializer under `name`, usable as `"serializer": {"class": name}`.
///
/// ```
/// use std::sync::Arc;
/// use cache_runtime::{caches, JsonSerializer};
/// caches::register_serializer("json2", || Arc::new(JsonSerializer));
/// ```
pub fn register_serializer(
    name: impl Into<String>,
    make: impl Fn() -> Arc<dyn Serializer> + Send + Sync + 'static,
) {
    SERIALIZERS.write().insert(name.into(), Arc::new(make));
}

/// Registers a plugin under `name`, usable as `"plugins": [{"class": name}]`. Each cache built from a config
/// gets a new instance.
///
/// ```
/// use std::sync::Arc;
/// use cache_runtime::{caches, TimingPlugin};
/// caches::register_plugin("timing2", || Arc::new(TimingPlugin::new()));
/// ```
pub fn register_plugin(
    name: impl Into<String>,
    make: impl Fn() -> Arc<dyn Plugin> + Send + Sync + 'static,
) {
    PLUGINS.write().insert(name.into(), Arc::new(make));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_whose_feature_is_off_names_the_feature() {
        // With `--all-features` every built-in backend is on, so stand one in that is off.
        BACKENDS
            .write()
            .insert("offline".into(), BackendEntry::NeedsFeature("offline"));
        let err = check_backend("mine", &AliasConfig::new("offline"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("alias `mine`"), "{err}");
        assert!(err.contains("cargo feature `offline`"), "{err}");
        assert!(build_backend("mine", &AliasConfig::new("offline")).is_err());
    }

    #[test]
    fn builtin_backends_are_listed_with_or_without_their_feature() {
        let backends = BACKENDS.read();
        for name in ["memory", "null", "redis", "memcached", "disk"] {
            assert!(backends.contains_key(name), "{name}");
        }
    }
}
