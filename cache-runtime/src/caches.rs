//! The alias table: named cache configurations and their shared instances.
//!
//! Starts as `{"default": {"cache": "memory"}}`. [`get`] returns the one shared instance of an alias, created on
//! first use; [`set_config`] and [`add`] take effect for every later call, decorated functions included.
//!
//! ```
//! use cache_runtime::{caches, AliasConfig, Config, PluginConfig, Ttl};
//!
//! caches::set_config(
//!     Config::new()
//!         .default_alias(AliasConfig::memory())
//!         .alias("stats", AliasConfig::memory().namespace("s").plugin(PluginConfig::new("hit_miss_ratio"))),
//! )
//! .unwrap();
//! let cache = caches::get("stats").unwrap();
//! cache.set("k", &1, Ttl::Default).unwrap();
//! assert!(caches::get("stats").unwrap().exists("k").unwrap()); // same instance
//! assert!(caches::get("nope").is_err());
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use once_cell::sync::{Lazy, OnceCell};
use parking_lot::Mutex;

use crate::cache::Cache;
use crate::config::{AliasConfig, Config};
use crate::error::{Error, Result};

pub use crate::registry::{register_backend, register_plugin, register_serializer, BackendSpec};

struct Table {
    config: Config,
    instances: HashMap<String, Arc<OnceCell<Cache>>>,
}

static TABLE: Lazy<ArcSwap<Table>> = Lazy::new(|| {
    let config = Config::new().default_alias(AliasConfig::memory());
    ArcSwap::from_pointee(Table::fresh(config))
});

/// Bumped on every change of the table; lets per-function resolvers notice changes with one atomic load.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Serializes writers so two concurrent changes cannot lose one another.
static WRITER: Mutex<()> = Mutex::new(());

impl Table {
    fn fresh(config: Config) -> Table {
        let instances = config
            .names()
            .map(|n| (n.to_string(), Arc::new(OnceCell::new())))
            .collect();
        Table { config, instances }
    }
}

fn publish(table: Table) {
    TABLE.store(Arc::new(table));
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Replaces the whole alias table. The `default` alias is required; every alias is validated (names, fields,
/// values) before anything changes. Instances of the old table stay valid for whoever holds them, including
/// decorated functions: each thread keeps a copy of the instance it last used and swaps it on its next call of
/// that function, so an old backend (its memory, its connections) lives until then.
///
/// ```
/// use cache_runtime::{caches, Config};
///
/// assert!(caches::set_config(Config::from_json(r#"{"other": {"cache": "memory"}}"#).unwrap()).is_err());
/// caches::set_config(Config::from_json(r#"{"default": {"cache": "memory", "ttl": 60}}"#).unwrap()).unwrap();
/// assert_eq!(caches::get("default").unwrap().default_ttl(), Some(std::time::Duration::from_secs(60)));
/// ```
pub fn set_config(config: Config) -> Result<()> {
    config.validate()?;
    let _writer = WRITER.lock();
    publish(Table::fresh(config));
    Ok(())
}

/// The shared instance of `alias` (created on first use; the same instance on every call until the alias's
/// config changes).
///
/// ```
/// let cache = cache_runtime::caches::get("default").unwrap();
/// # let _ = cache;
/// ```
pub fn get(alias: &str) -> Result<Cache> {
    let table = TABLE.load();
    let cell = table
        .instances
        .get(alias)
        .ok_or_else(|| unknown_alias(alias, &table.config))?;
    let config = table
        .config
        .get(alias)
        .ok_or_else(|| unknown_alias(alias, &table.config))?;
    cell.get_or_try_init(|| config.build_cache(alias)).cloned()
}

/// A new instance of `alias` with top-level fields changed by `overrides` (the shared instance is untouched).
///
/// ```
/// use cache_runtime::caches;
///
/// let other = caches::create("default", |c| c.namespace("reports")).unwrap();
/// assert_eq!(other.namespace(), Some("reports"));
/// ```
pub fn create(alias: &str, overrides: impl FnOnce(AliasConfig) -> AliasConfig) -> Result<Cache> {
    let config = overrides(get_alias_config(alias)?);
    config.build_cache(alias)
}

/// Adds or replaces one alias; other aliases keep their instances.
///
/// ```
/// use cache_runtime::{caches, AliasConfig};
///
/// caches::add("sessions", AliasConfig::memory().namespace("sess")).unwrap();
/// assert_eq!(caches::get_alias_config("sessions").unwrap().namespace.as_deref(), Some("sess"));
/// ```
pub fn add(alias: &str, config: AliasConfig) -> Result<()> {
    config.validate(alias)?;
    let _writer = WRITER.lock();
    let current = TABLE.load();
    let mut new_config = current.config.clone();
    new_config.insert(alias.to_string(), config);
    let mut instances = current.instances.clone();
    instances.insert(alias.to_string(), Arc::new(OnceCell::new()));
    publish(Table {
        config: new_config,
        instances,
    });
    Ok(())
}

/// The config of one alias.
///
/// ```
/// assert_eq!(cache_runtime::caches::get_alias_config("default").unwrap().cache, "memory");
/// ```
pub fn get_alias_config(alias: &str) -> Result<AliasConfig> {
    let table = TABLE.load();
    table
        .config
        .get(alias)
        .cloned()
        .ok_or_else(|| unknown_alias(alias, &table.config))
}

/// The whole alias table.
///
/// ```
/// assert!(cache_runtime::caches::get_config().get("default").is_some());
/// ```
pub fn get_config() -> Config {
    TABLE.load().config.clone()
}

/// A number that changes whenever the alias table changes.
#[inline]
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

fn unknown_alias(alias: &str, config: &Config) -> Error {
    let names: Vec<&str> = config.names().collect();
    Error::config(format!(
        "unknown alias `{alias}` (configured: {})",
        names.join(", ")
    ))
}

struct Resolved {
    generation: u64,
    cache: Cache,
}

/// Resolves an alias once per table generation: what each decorated function keeps in a `static`.
///
/// A call costs one atomic load of the generation and one lock-free read of the resolved instance; no map
/// lookup, no lock, no reference-count traffic. A change of the table is picked up on the next call.
///
/// ```
/// use cache_runtime::caches::AliasCell;
///
/// static CELL: AliasCell = AliasCell::new("default");
/// let namespace = CELL.with(|cache| cache.map(|c| c.namespace().map(str::to_owned)));
/// assert!(namespace.is_ok());
/// ```
pub struct AliasCell {
    alias: &'static str,
    resolved: ArcSwapOption<Resolved>,
}

impl AliasCell {
    /// A resolver for `alias`.
    pub const fn new(alias: &'static str) -> Self {
        AliasCell {
            alias,
            resolved: ArcSwapOption::const_empty(),
        }
    }

    /// The alias.
    pub fn alias(&self) -> &'static str {
        self.alias
    }

    /// Calls `f` with the alias's current instance (or the error resolving it).
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(Result<&Cache>) -> R) -> R {
        let current = generation();
        let guard = self.resolved.load();
        if let Some(resolved) = guard.as_ref() {
            if resolved.generation == current {
                return f(Ok(&resolved.cache));
            }
        }
        drop(guard);
        match get(self.alias) {
            Ok(cache) => {
                let resolved = Arc::new(Resolved {
                    generation: current,
                    cache,
                });
                self.resolved.store(Some(resolved.clone()));
                f(Ok(&resolved.cache))
            }
            Err(e) => f(Err(e)),
        }
    }
}
