//! Function memoization and alias-configured caches on real backends.
//!
//! - [`Cache`]: one configured instance (backend, serializer, plugins, namespace, default TTL, timeout) with
//!   every command: `add`, `get`, `multi_get`, `set`, `multi_set`, `exists`, `increment`, `delete`, `expire`,
//!   `clear`, `keys`, `raw`, `close`.
//! - [`caches`]: the alias table, configured in code or from JSON/TOML.
//! - Backends: [`MemoryBackend`] (default), [`NullBackend`], and behind cargo features Redis, Memcached and disk;
//!   your own through the [`Backend`] trait.
//! - Serializers: [`NullSerializer`], [`StringSerializer`], [`JsonSerializer`], [`MsgPackSerializer`],
//!   [`BinarySerializer`], [`Compressed`]; your own through the [`Serializer`] trait.
//! - Plugins: [`HitMissRatioPlugin`], [`TimingPlugin`]; your own through the [`Plugin`] trait.
//! - Locks: [`RedLock`], [`OptimisticLock`].
//!
//! ```
//! use cache_runtime::{caches, AliasConfig, Config, PluginConfig, Ttl};
//!
//! caches::set_config(
//!     Config::new().default_alias(AliasConfig::memory().plugin(PluginConfig::new("hit_miss_ratio"))),
//! )
//! .unwrap();
//! let cache = caches::get("default").unwrap();
//! cache.set("answer", &42u32, Ttl::secs(60)).unwrap();
//! assert_eq!(cache.get::<u32>("answer").unwrap(), Some(42));
//! ```
//!
//! Setting `CACHE_DISABLE=1` in the environment turns every cache built afterwards into a pass-through.

pub mod backend;
mod cache;
pub mod caches;
mod clock;
mod config;
mod error;
mod key;
mod lock;
mod memo;
mod plugin;
mod registry;
mod serializer;
mod ttl;
mod value;

#[cfg(feature = "disk")]
pub use backend::disk::{DiskBackend, DiskBackendBuilder};
#[cfg(feature = "memcached")]
pub use backend::memcached::{MemcachedBackend, MemcachedBackendBuilder};
#[cfg(feature = "memory")]
pub use backend::memory::{MemoryBackend, MemoryBackendBuilder};
pub use backend::null::NullBackend;
#[cfg(feature = "redis")]
pub use backend::redis::{RedisBackend, RedisBackendBuilder};
pub use backend::{Backend, BackendConfig, CallOptions};
pub use cache::{Cache, CacheBuilder, Cacheable};
pub use caches::BackendSpec;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AliasConfig, Config, ConfigValue, PluginConfig, SerializerConfig};
pub use error::{Error, Result};
pub use key::{escape_glob, glob_match, KeyBuilder};
pub use lock::{OptimisticLock, RedLock, RedLockGuard};
pub use plugin::{Call, Command, Done, HitMissRatioPlugin, Outcome, Plugin, Timing, TimingPlugin};
pub use serializer::{
    BinarySerializer, Compressed, JsonSerializer, MsgPackSerializer, NullSerializer, Serializer,
    Sink, StringSerializer,
};
pub use ttl::{ttl_millis, Ttl};
pub use value::{CasToken, RawReply, Value};

/// Serde and erased-serde, for implementing [`Serializer`].
pub use erased_serde;

#[cfg(feature = "macros")]
pub use cache_macros::{cached, cached_stampede, multi_cached};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Support for generated code; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::memo::{
        derive, get, invalidate, key_string, lease, lookup, multi_lookup, multi_store, plugin,
        secs_f64, serializer, set, site_path, stampede, store, ttl, Flight, KeyArg, KeyBuf,
        KeyCollection, KeyDirect, KeyPart, KeySerde, LocalCache, MemoCell, MemoMap, ResultParts,
    };
    pub use crate::{Cache, Result, Ttl};
    pub use core::time::Duration;
}
